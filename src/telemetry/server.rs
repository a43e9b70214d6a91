//! The operations HTTP server: `/healthz` (alive), `/readyz` (assigned partitions restored, no
//! configuration fault).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{metrics, Health};

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

fn route(health: &Health, registry: &prometheus::Registry, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics::render(registry));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" if health.is_live() => text(StatusCode::OK, "ok\n".into()),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "poll loop stalled\n".into(),
        ),
        "/readyz" => {
            let assignment = health.assignment();
            let restoring: Vec<String> = assignment
                .iter()
                .filter(|(_, r)| !**r)
                .map(|(p, _)| p.to_string())
                .collect();
            if health.config_fault() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: WeChat Pay configuration fault (401)\n".into(),
                )
            } else if !restoring.is_empty() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: restoring partitions {}\n", restoring.join(",")),
                )
            } else {
                text(
                    StatusCode::OK,
                    format!("ready: {} partitions\n", assignment.len()),
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// The pause after a failed `accept()` (EMFILE, ENFILE, ENOBUFS…): doubling from 10 ms to 1 s
/// and reset by a success, so a process out of file descriptors neither spins a core on the
/// ops port nor stops serving once descriptors are free again.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    fn on_error(&mut self) -> std::time::Duration {
        self.failures = self.failures.saturating_add(1);
        let ms = 10u64 << (self.failures - 1).min(7);
        std::time::Duration::from_millis(ms.min(1_000))
    }

    fn on_success(&mut self) {
        self.failures = 0;
    }

    /// Log the first failure of a run and every 100th after it.
    fn should_log(&self) -> bool {
        self.failures % 100 == 1
    }
}

/// Serve until `stop` turns true. Returns the bound address through `bound`.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    registry: prometheus::Registry,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = AcceptBackoff::default();
    let mut paused: Option<std::time::Duration> = None;
    loop {
        if let Some(pause) = paused.take() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => {
                        backoff.on_success();
                        stream
                    }
                    Err(e) => {
                        let pause = backoff.on_error();
                        if backoff.should_log() {
                            tracing::warn!(error = %e, failures = backoff.failures, "ops server cannot accept connections (file descriptors exhausted?); backing off");
                        }
                        // Not in this select (it holds `stop`): sleep below.
                        paused = Some(pause);
                        continue;
                    }
                };
                let health = health.clone();
                let registry = registry.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let resp = route(&health, &registry, req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

/// Bind the operations server.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::AcceptBackoff;
    use std::time::Duration;

    /// Before: `let Ok(..) = accepted else { continue }` retried `accept()` at once, spinning a
    /// core while EMFILE lasted. Now every failure pauses, growing to 1 s, and a success resets.
    #[test]
    fn accept_failures_back_off_and_a_success_resets() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<Duration> = (0..10).map(|_| b.on_error()).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().unwrap(), Duration::from_secs(1));
        // Ten failures in a row cost seconds of waiting, not ten tight loops.
        assert!(pauses.iter().sum::<Duration>() > Duration::from_secs(3));
        b.on_success();
        assert_eq!(b.on_error(), Duration::from_millis(10));
    }
}
