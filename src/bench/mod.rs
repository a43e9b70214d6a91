//! Benchmarks.
//!
//! - `bench sign`: signatures per second of the production backend (ring) against the pure-Rust
//!   `rsa` crate, for the same key and a typical body, on one thread and on several.
//! - `bench state`: resident bytes per tracked order.
//! - `bench all` ([`all`]): the whole picture in one run — the signing ceiling, end-to-end
//!   acknowledged posts/s and CPU per post through the real `run` service ([`e2e`]), the cost of
//!   per-order sequencing, changelog restore speed ([`restore`]), memory per order, the latency
//!   from event produced to POST sent (on librdkafka's mock cluster and on tansu, [`broker`]),
//!   and how those figures scale ([`scaling`]); the table and its targets in [`report`].
//! - `bench all --json FILE` and `bench compare A.json B.json` ([`json`]): every figure as a
//!   row, two runs as ratios.
//! - `bench broker` (hidden): the mock cluster in a process of its own, for `bench all`.

pub mod all;
pub mod broker;
pub mod e2e;
pub mod json;
pub mod report;
pub mod restore;
pub mod scaling;
pub mod stack;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;

use crate::wechatpay::sign::request_message;
use crate::wechatpay::MerchantKey;

/// A typical sync-status body (5 dishes), for benchmarks.
pub fn typical_body() -> Vec<u8> {
    let dishes: Vec<serde_json::Value> = ["宫保鸡丁", "鱼香肉丝", "麻婆豆腐", "酸梅汤", "米饭"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({"out_dish_no": format!("D{i:04}"), "name": name, "price": 3800 - 500 * i as i64,
                "unit": "BY_SHARE", "count": 1, "type": "SICHUAN_CUISINE"})
        })
        .collect();
    serde_json::json!({
        "sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "out_shop_no": "SHOP-0001",
        "login_token": "benchmark-not-a-secret", "order_entry": "pages/menu/index",
        "total_amount": 9900, "discount_amount": 1100, "user_amount": 8800,
        "status": "CREATE_DEAL", "action_time": "2026-11-27T12:34:56+08:00",
        "out_order_no": "20261127123456789", "out_table_no": "A12", "people_count": 3,
        "dish_list": dishes
    })
    .to_string()
    .into_bytes()
}

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct SignResult {
    /// Backend name.
    pub backend: &'static str,
    /// Threads signing at once.
    pub threads: usize,
    /// Signatures made.
    pub signatures: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// CPU time of the whole process during the measurement, when known.
    pub cpu: Option<Duration>,
}

/// CPU time (user + system) a process has used: `/proc/PID/stat` on Linux (`None` elsewhere).
/// Clock ticks are taken as 100 per second (Linux's USER_HZ on every mainstream architecture).
pub fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_string(),
        |p| format!("/proc/{p}/stat"),
    );
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces, inside parentheses).
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

impl SignResult {
    /// CPU time per signature, when known.
    pub fn cpu_per_signature(&self) -> Option<Duration> {
        self.cpu.map(|c| c.div_f64(self.signatures.max(1) as f64))
    }

    /// Signatures per second.
    pub fn per_second(&self) -> f64 {
        self.signatures as f64 / self.elapsed.as_secs_f64()
    }
}

/// A signing function under test; returns the signature length.
type SignFn = Arc<dyn Fn(&[u8]) -> usize + Send + Sync>;

fn run_threads(
    threads: usize,
    duration: Duration,
    sign: SignFn,
) -> (u64, Duration, Option<Duration>) {
    let message = request_message(
        "POST",
        crate::wechatpay::SYNC_STATUS_PATH,
        1_764_218_096,
        "N0NCE",
        &typical_body(),
    );
    let message = Arc::new(message);
    let cpu_before = process_cpu(None);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let sign = sign.clone();
            let message = message.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut n = 0u64;
                while t0.elapsed() < duration {
                    std::hint::black_box(sign(&message));
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let elapsed = started.elapsed();
    let cpu = process_cpu(None)
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    (total, elapsed, cpu)
}

/// Measure both backends with `pem` (PKCS#8) for `duration` each, at every thread count.
pub fn sign_benchmark(
    pem: &str,
    thread_counts: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<SignResult>> {
    sign_backends(pem, thread_counts, duration, true)
}

/// Measure the production backend (ring) only.
pub fn sign_benchmark_ring(
    pem: &str,
    thread_counts: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<SignResult>> {
    sign_backends(pem, thread_counts, duration, false)
}

fn sign_backends(
    pem: &str,
    thread_counts: &[usize],
    duration: Duration,
    with_rsa_crate: bool,
) -> anyhow::Result<Vec<SignResult>> {
    let ring_key = Arc::new(MerchantKey::from_pem(pem)?);
    let rsa_key = Arc::new(SigningKey::<Sha256>::new(
        rsa::RsaPrivateKey::from_pkcs8_pem(pem)?,
    ));
    let mut results = Vec::new();
    for &threads in thread_counts {
        let k = ring_key.clone();
        let (n, elapsed, cpu) =
            run_threads(threads, duration, Arc::new(move |m: &[u8]| k.sign(m).len()));
        results.push(SignResult {
            backend: "ring (production)",
            threads,
            signatures: n,
            elapsed,
            cpu,
        });
        if !with_rsa_crate {
            continue;
        }
        let k = rsa_key.clone();
        let (n, elapsed, cpu) = run_threads(
            threads,
            duration,
            Arc::new(move |m: &[u8]| k.sign(m).to_bytes().len()),
        );
        results.push(SignResult {
            backend: "rsa crate",
            threads,
            signatures: n,
            elapsed,
            cpu,
        });
    }
    Ok(results)
}

/// The results as a Markdown table.
pub fn render(results: &[SignResult]) -> String {
    let mut out = String::from(
        "| backend | threads | signs/s | ms per sign per thread | CPU ms per sign |\n|---|---:|---:|---:|---:|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {} |\n",
            r.backend,
            r.threads,
            r.per_second(),
            1000.0 * r.threads as f64 / r.per_second(),
            r.cpu_per_signature().map_or("n/a".to_string(), |c| format!(
                "{:.3}",
                c.as_secs_f64() * 1000.0
            ))
        ));
    }
    out
}

/// Resident set size of this process, in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

pub use catering_sync_core::fixtures::{order_events, order_no};

/// Resident bytes per tracked order.
#[derive(Debug, Clone)]
pub struct MemoryResult {
    /// Orders tracked.
    pub orders: usize,
    /// Dishes per order.
    pub dishes: usize,
    /// RSS growth divided by orders.
    pub bytes_per_order: f64,
    /// Size of one request body, for comparison.
    pub body_bytes: usize,
}

/// Track `orders` orders of `dishes` dishes each (both events applied and acknowledged, each
/// post remembered in the delivery history with a Request-ID of WeChat Pay's length) in a map
/// keyed by order number, as the pipeline does, and measure the resident growth.
pub fn state_memory(orders: usize, dishes: usize) -> anyhow::Result<MemoryResult> {
    use crate::event::{decode, DecodeLimits};
    use crate::snapshot::{Defaults, OrderState};
    let limits = DecodeLimits::default();
    let defaults = Defaults::default();
    let mut body_bytes = 0;
    let before = resident_bytes();
    let mut states: std::collections::HashMap<Box<str>, Box<OrderState>> =
        std::collections::HashMap::new();
    for i in 0..orders {
        for value in order_events(i, dishes) {
            let event = decode(&value, &limits).map_err(|e| anyhow::anyhow!("{e}"))?;
            let state = states
                .entry(event.out_order_no.as_str().into())
                .or_default();
            state.apply(&event, &defaults);
            if let Some(body) = state.body() {
                body_bytes = body.bytes.len();
                state.mark_acked(&body, 0);
                let request_id = format!("08{:016X}{:016X}{:014X}", i, i, i);
                state.deliveries.push(crate::snapshot::Delivery::new(
                    body.status,
                    1_764_218_096_000,
                    Some(&request_id),
                ));
            }
        }
    }
    let after = resident_bytes();
    std::hint::black_box(&states);
    Ok(MemoryResult {
        orders,
        dishes,
        bytes_per_order: after.saturating_sub(before) as f64 / orders.max(1) as f64,
        body_bytes,
    })
}

/// [`state_memory`] in a fresh process of this binary (`bench state` with one dishes value):
/// memory freed by earlier work would otherwise be reused without growing the resident set.
pub fn state_memory_fresh(orders: usize, dishes: usize) -> anyhow::Result<MemoryResult> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(&exe)
        .args([
            "bench",
            "state",
            "--orders",
            &orders.to_string(),
            "--dishes",
            &dishes.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "bench state failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_state_row(&String::from_utf8_lossy(&out.stdout))
}

/// One row printed by `bench state`: `| dishes | orders | bytes per order | body bytes |`.
fn parse_state_row(row: &str) -> anyhow::Result<MemoryResult> {
    let cells: Vec<&str> = row
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    let bad = || anyhow::anyhow!("unexpected bench state output {row:?}");
    if cells.len() != 4 {
        return Err(bad());
    }
    Ok(MemoryResult {
        dishes: cells[0].parse().map_err(|_| bad())?,
        orders: cells[1].parse().map_err(|_| bad())?,
        bytes_per_order: cells[2].parse().map_err(|_| bad())?,
        body_bytes: cells[3].parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_row_parses_back() {
        let r = parse_state_row("| 5 | 500000 | 1809 | 737 |\n").unwrap();
        assert_eq!((r.dishes, r.orders, r.body_bytes), (5, 500_000, 737));
        assert_eq!(r.bytes_per_order, 1809.0);
        assert!(parse_state_row("| 5 | x | 1 | 2 |").is_err());
        assert!(parse_state_row("garbage").is_err());
    }
}
