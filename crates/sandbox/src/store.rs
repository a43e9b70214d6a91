//! What the sandbox accepted, per order in arrival order, and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// One accepted POST.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedPost {
    /// The `Request-ID` answered.
    pub request_id: String,
    /// Milliseconds since the Unix epoch when the request arrived (its headers were read).
    pub received_at_ms: u64,
    /// The same instant in microseconds (latency benchmarks).
    pub received_at_us: u64,
    /// The body as received (absent when the sandbox does not record bodies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The body's `status`.
    pub status: Option<String>,
}

/// Counters of the sandbox, as `GET /__sandbox/stats` shows them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Requests to the sync-status endpoint.
    pub requests: u64,
    /// Accepted (recorded) requests; a 204 with an injected bad signature counts too.
    pub accepted: u64,
    /// Responses by HTTP status (dropped and hung connections are not responses).
    pub responses_by_status: BTreeMap<u16, u64>,
    /// Injected faults by kind.
    pub faults: BTreeMap<String, u64>,
    /// Distinct orders recorded.
    pub orders: u64,
    /// Signed 204s by the kind of key that signed them (`public_key`, `platform_certificate`).
    pub signed_with: BTreeMap<String, u64>,
    /// TCP connections accepted.
    pub connections: u64,
    /// Authenticated sync-status requests by the merchant serial that signed them.
    pub signed_by: BTreeMap<String, u64>,
}

/// The record of accepted posts.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    orders: HashMap<String, Vec<RecordedPost>>,
    stats: Stats,
}

impl Store {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Record an accepted post.
    pub fn record(&self, out_order_no: &str, post: RecordedPost) {
        self.with(|i| {
            i.stats.accepted += 1;
            let posts = i.orders.entry(out_order_no.to_string()).or_default();
            posts.push(post);
            i.stats.orders = i.orders.len() as u64;
        });
    }

    /// Count a request.
    pub fn count_request(&self) {
        self.with(|i| i.stats.requests += 1);
    }

    /// Count a response status.
    pub fn count_response(&self, status: u16) {
        self.with(|i| *i.stats.responses_by_status.entry(status).or_default() += 1);
    }

    /// Count an authenticated request by its merchant serial.
    pub fn count_signed_by(&self, serial: &str) {
        self.with(|i| {
            *i.stats
                .signed_by
                .entry(serial.to_ascii_uppercase())
                .or_default() += 1
        });
    }

    /// Count an accepted connection.
    pub fn count_connection(&self) {
        self.with(|i| i.stats.connections += 1);
    }

    /// Count a signed 204 by the kind of key that signed it.
    pub fn count_signed_with(&self, key: &str) {
        self.with(|i| *i.stats.signed_with.entry(key.to_string()).or_default() += 1);
    }

    /// Count an injected fault.
    pub fn count_fault(&self, kind: &str) {
        self.with(|i| *i.stats.faults.entry(kind.to_string()).or_default() += 1);
    }

    /// The posts accepted for one order, in arrival order.
    pub fn posts(&self, out_order_no: &str) -> Vec<RecordedPost> {
        self.with(|i| i.orders.get(out_order_no).cloned().unwrap_or_default())
    }

    /// Every order with all its posts, in arrival order.
    pub fn all_posts(&self) -> BTreeMap<String, Vec<RecordedPost>> {
        self.with(|i| {
            i.orders
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// Every order with its posts' statuses in arrival order.
    pub fn summary(&self) -> BTreeMap<String, Vec<Option<String>>> {
        self.with(|i| {
            i.orders
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|p| p.status.clone()).collect()))
                .collect()
        })
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.with(|i| i.stats.clone())
    }

    /// Forget everything recorded and counted.
    pub fn reset(&self) {
        self.with(|i| *i = Inner::default());
    }
}
