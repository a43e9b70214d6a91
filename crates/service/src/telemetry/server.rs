//! The operations HTTP server: `/healthz` (alive), `/readyz` (assigned partitions restored, no
//! configuration fault, Kafka takes the service's writes). A failed `accept()` (EMFILE…) backs
//! off instead of spinning.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::{metrics, Health};
use crate::clock::Cancel;

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
            } else if health.produce_fault() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: Kafka refuses the service's writes (changelog or dead-letter topic)\n"
                        .into(),
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

/// Where the operations server's connections come from: the TCP listener, or (in tests) a
/// scripted source of accept errors and in-memory streams.
pub(crate) trait Accept: Send {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection, or why none could be taken.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    async fn accept(&mut self) -> io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Serve until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    registry: prometheus::Registry,
    stop: Cancel,
) {
    serve_on(listener, tokio::time::sleep, health, registry, stop).await;
}

/// The accept loop over `acceptor`; `pause` is how it waits after a failed accept.
async fn serve_on<A, P, F>(
    mut acceptor: A,
    mut pause: P,
    health: Arc<Health>,
    registry: prometheus::Registry,
    mut stop: Cancel,
) where
    A: Accept,
    P: FnMut(Duration) -> F + Send,
    F: Future<Output = ()> + Send,
{
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        match accepted {
            Ok(stream) => {
                if backoff.failures > 0 {
                    tracing::info!(
                        failures = backoff.failures,
                        "ops server accepting connections again"
                    );
                }
                backoff.on_success();
                spawn_connection(stream, health.clone(), registry.clone());
            }
            Err(e) => {
                let wait = backoff.on_error();
                if backoff.should_log() {
                    tracing::warn!(error = %e, failures = backoff.failures, pause_ms = wait.as_millis() as u64, "ops server cannot accept connections (file descriptors exhausted?); backing off");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = pause(wait) => {}
                }
            }
        }
    }
}

/// Serve one connection on its own task.
fn spawn_connection<S>(stream: S, health: Arc<Health>, registry: prometheus::Registry)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let resp = route(&health, &registry, req.uri().path());
            async move { Ok::<_, std::convert::Infallible>(resp) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
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

#[cfg(test)]
mod accept_loop {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::sync::{mpsc, Semaphore};

    use super::*;

    /// `EMFILE` ("Too many open files") on Linux.
    const EMFILE: i32 = 24;
    /// Accept attempts after which a loop that never pauses is stopped, so the test can say so.
    const SPIN_CAP: usize = 10_000;

    /// Fails every accept with EMFILE while `failing`, then hands out the streams it is sent.
    struct Scripted {
        attempts: Arc<AtomicUsize>,
        failing: Arc<AtomicBool>,
        streams: mpsc::UnboundedReceiver<DuplexStream>,
    }

    impl Accept for Scripted {
        type Stream = DuplexStream;
        async fn accept(&mut self) -> io::Result<DuplexStream> {
            if self.attempts.fetch_add(1, Ordering::SeqCst) >= SPIN_CAP {
                std::future::pending::<()>().await;
            }
            // A real accept goes through the reactor (and tokio's budget) between attempts.
            tokio::task::yield_now().await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(EMFILE));
            }
            self.streams
                .recv()
                .await
                .ok_or_else(|| io::Error::other("script ended"))
        }
    }

    /// A clock the test drives: each pause is recorded and lasts until the test releases it.
    #[derive(Clone)]
    struct Clock {
        paused_ms: Arc<AtomicU64>,
        pauses: Arc<AtomicUsize>,
        release: Arc<Semaphore>,
    }

    type Pause = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

    impl Clock {
        fn new() -> Self {
            Self {
                paused_ms: Arc::default(),
                pauses: Arc::default(),
                release: Arc::new(Semaphore::new(0)),
            }
        }

        fn pause(&self) -> impl FnMut(Duration) -> Pause + Send {
            let clock = self.clone();
            move |d| {
                clock
                    .paused_ms
                    .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
                clock.pauses.fetch_add(1, Ordering::SeqCst);
                let release = clock.release.clone();
                Box::pin(async move { release.acquire().await.expect("open").forget() })
            }
        }
    }

    async fn get(streams: &mpsc::UnboundedSender<DuplexStream>, path: &str) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        streams.send(server).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        response
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool, attempts: &AtomicUsize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not reached after {} accept attempts",
                attempts.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// EMFILE from accept (descriptors exhausted, connections waiting in the backlog): the loop
    /// pauses after each failure — one attempt per 100 ms of its clock, not a spin — and serves
    /// again once descriptors are free. (Before: `continue`, thousands of attempts, no pause.)
    #[tokio::test]
    async fn accept_errors_back_off_and_the_server_keeps_serving() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(true));
        let (streams, rx) = mpsc::unbounded_channel();
        let acceptor = Scripted {
            attempts: attempts.clone(),
            failing: failing.clone(),
            streams: rx,
        };
        let clock = Clock::new();
        let health = Arc::new(Health::default());
        health.polled();
        let stop = crate::clock::Canceller::new();
        let server = tokio::spawn(serve_on(
            acceptor,
            clock.pause(),
            health,
            prometheus::Registry::new(),
            stop.token(),
        ));
        // Fifty pauses of the loop's clock while every accept fails: exactly one attempt each.
        for step in 1..=50 {
            until(
                "the loop pauses after a failed accept",
                || clock.pauses.load(Ordering::SeqCst) == step,
                &attempts,
            )
            .await;
            assert_eq!(
                attempts.load(Ordering::SeqCst),
                step,
                "one attempt per pause"
            );
            clock.release.add_permits(1);
        }
        until(
            "the 51st pause",
            || clock.pauses.load(Ordering::SeqCst) == 51,
            &attempts,
        )
        .await;
        let paused = Duration::from_millis(clock.paused_ms.load(Ordering::SeqCst));
        let tried = attempts.load(Ordering::SeqCst);
        // At most ten attempts per second of the loop's clock once it is backing off.
        assert!(
            tried == 51 && paused >= Duration::from_millis(5_000),
            "{tried} accept attempts in {paused:?} of pauses"
        );
        // Descriptors are free again: the next attempt takes the waiting connection.
        failing.store(false, Ordering::SeqCst);
        clock.release.add_permits(1);
        let response = get(&streams, "/healthz").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let response = get(&streams, "/readyz").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(
            clock.pauses.load(Ordering::SeqCst),
            51,
            "no pause once accepting"
        );
        stop.cancel();
        server.await.unwrap();
    }

    /// `/readyz` says not ready while Kafka refuses the service's writes for good (finding 1's
    /// produce fault; before, only a 401 or a restoring partition made it 503).
    #[test]
    fn readyz_is_503_while_kafka_refuses_writes() {
        let health = Health::default();
        let registry = prometheus::Registry::new();
        assert_eq!(
            route(&health, &registry, "/readyz").status(),
            StatusCode::OK
        );
        health.set_produce_fault(true);
        assert_eq!(
            route(&health, &registry, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_produce_fault(false);
        assert_eq!(
            route(&health, &registry, "/readyz").status(),
            StatusCode::OK
        );
    }
}
