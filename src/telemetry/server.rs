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

/// Serve until `stop` turns true. Returns the bound address through `bound`.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    registry: prometheus::Registry,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
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
