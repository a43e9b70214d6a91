//! Health, metrics, notable occurrences as events (their log line and metric together), and
//! the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).

pub mod events;
pub mod health;
pub mod labels;
pub mod metrics;
pub mod server;

pub use health::Health;

/// Crash-only exit (code 1): the reason as an ERROR event and on stderr, then `process::exit`.
/// For the states the process must not continue from (a possibly expired lease, an unquiet
/// drain, a shutdown deadline passed, Kafka writes failing for good, a panicked order task); the
/// write-ahead state makes the restart safe. The stderr line is written on the raw handle, not
/// through `eprintln!`, so a test harness's output capture cannot swallow the reason of an exit
/// that ends the whole test binary.
pub fn exit_crash_only(reason: &str) -> ! {
    use std::io::Write;
    tracing::error!("{reason}");
    let _ = writeln!(std::io::stderr().lock(), "catering-sync: {reason}");
    std::process::exit(1);
}
