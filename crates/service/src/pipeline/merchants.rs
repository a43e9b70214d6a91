//! Several signing merchants in one deployment (a platform operating several service-provider or
//! channel accounts): one [`Delivery`] per merchant — its own keys, breaker, send-rate limiter and
//! deployment-fault state — and the routing of an order to the merchant its snapshot names.
//!
//! A 429 slows, and a 401 pauses, only the merchant that got it: its bodies wait in its own gate
//! while the others' go on. Consumption pauses (and the pod reports not ready) only once every
//! merchant is in a deployment fault; with one merchant that is today's behaviour exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::delivery::Delivery;
use crate::snapshot::OrderState;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::Health;

/// Every merchant's deployment fault and breaker state, folded into what is process-wide:
/// consumption paused and not ready when all are in a fault; the `config_fault` gauge when any
/// is; the breaker gauges show the worst merchant.
pub struct Board {
    merchants: usize,
    state: Mutex<BTreeMap<String, (bool, i64, f64)>>,
    paused: watch::Sender<bool>,
    health: Arc<Health>,
    metrics: Metrics,
}

impl Board {
    /// A board for `merchants` merchants.
    pub fn new(health: Arc<Health>, metrics: Metrics, merchants: usize) -> Arc<Self> {
        Arc::new(Self {
            merchants: merchants.max(1),
            state: Mutex::new(BTreeMap::new()),
            paused: watch::channel(false).0,
            health,
            metrics,
        })
    }

    /// Watch whether consumption should be paused.
    pub fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// `mchid`'s state now.
    pub fn report(&self, mchid: &str, fault: bool, breaker: i64, open_secs: f64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.insert(mchid.to_string(), (fault, breaker, open_secs));
        let faulted = state.values().filter(|s| s.0).count();
        let all = faulted >= self.merchants;
        let worst = state.values().map(|s| s.1).max().unwrap_or(0);
        let open = state.values().map(|s| s.2).fold(0.0, f64::max);
        drop(state);
        self.health.set_config_fault(all);
        self.metrics.config_fault.set(i64::from(faulted > 0));
        self.metrics.breaker_state.set(worst);
        self.metrics.breaker_open_seconds.set(open);
        self.paused
            .send_if_modified(|p| std::mem::replace(p, all) != all);
    }
}

/// The configured merchants and how an order finds its own.
pub struct Merchants {
    by_mchid: BTreeMap<String, Arc<Delivery>>,
    by_channel: BTreeMap<String, String>,
    single: Option<Arc<Delivery>>,
    board: Arc<Board>,
}

/// Why an order has no configured merchant to sign it (dead-lettered, reason `unknown_merchant`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoMerchant {
    /// Its `sp_mchid` is not configured.
    #[error("sp_mchid {0} is not a configured signing merchant (wechatpay.mchid, wechatpay.merchants: {1})")]
    SpMchid(String, String),
    /// Its `channel_id` is in no merchant's `channel_ids`.
    #[error("channel_id {0} is in no merchant's channel_ids (wechatpay.channel_ids, wechatpay.merchants[].channel_ids)")]
    Channel(String),
    /// Neither.
    #[error(
        "the order names no merchant (no sp_mchid and no channel_id) and several are configured"
    )]
    Unnamed,
}

impl Merchants {
    /// One merchant signs every order (the single-merchant configuration, unchanged).
    pub fn single(delivery: Arc<Delivery>, board: Arc<Board>) -> Self {
        Self {
            by_mchid: BTreeMap::new(),
            by_channel: BTreeMap::new(),
            single: Some(delivery),
            board,
        }
    }

    /// Several: each delivery with the channel ids it signs for.
    pub fn several(
        merchants: Vec<(Arc<Delivery>, Vec<String>, String)>,
        board: Arc<Board>,
    ) -> Self {
        let mut by_mchid = BTreeMap::new();
        let mut by_channel = BTreeMap::new();
        for (delivery, channels, mchid) in merchants {
            for c in channels {
                by_channel.insert(c, mchid.clone());
            }
            by_mchid.insert(mchid, delivery);
        }
        Self {
            by_mchid,
            by_channel,
            single: None,
            board,
        }
    }

    /// The delivery of the merchant the order's snapshot names: its `sp_mchid` (service-provider mode),
    /// else its `channel_id` through the configured `channel_ids`.
    pub fn route(&self, state: &OrderState) -> Result<&Arc<Delivery>, NoMerchant> {
        if let Some(d) = &self.single {
            // One merchant: nothing to read from the snapshot (no decode per post).
            return Ok(d);
        }
        let (sp_mchid, channel_id) = state.merchant_ids();
        self.route_ids(sp_mchid, channel_id)
    }

    fn route_ids(
        &self,
        sp_mchid: Option<&str>,
        channel_id: Option<&str>,
    ) -> Result<&Arc<Delivery>, NoMerchant> {
        if let Some(sp) = sp_mchid {
            return self.by_mchid.get(sp).ok_or_else(|| {
                NoMerchant::SpMchid(
                    sp.to_string(),
                    self.by_mchid.keys().cloned().collect::<Vec<_>>().join(", "),
                )
            });
        }
        if let Some(ch) = channel_id {
            return self
                .by_channel
                .get(ch)
                .and_then(|m| self.by_mchid.get(m))
                .ok_or_else(|| NoMerchant::Channel(ch.to_string()));
        }
        Err(NoMerchant::Unnamed)
    }

    /// Watch whether consumption should be paused (every merchant in a deployment fault).
    pub fn paused(&self) -> watch::Receiver<bool> {
        self.board.paused()
    }
}
