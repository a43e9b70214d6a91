//! Liveness and readiness, shared by the pipeline and the HTTP endpoints.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How long the poll loop may go without progress before `/healthz` fails.
pub const LIVENESS_WINDOW_MS: u64 = 60_000;

fn now_ms() -> u64 {
    crate::clock::unix_millis()
}

/// Shared health state.
#[derive(Debug, Default)]
pub struct Health {
    config_fault: AtomicBool,
    produce_fault: AtomicBool,
    last_poll_ms: AtomicU64,
    /// Assigned partitions and whether each is restored.
    partitions: Mutex<BTreeMap<i32, bool>>,
}

impl Health {
    /// The poll loop made progress.
    pub fn polled(&self) {
        self.last_poll_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Alive: the poll loop made progress recently.
    pub fn is_live(&self) -> bool {
        now_ms().saturating_sub(self.last_poll_ms.load(Ordering::Relaxed)) < LIVENESS_WINDOW_MS
    }

    /// WeChat Pay answered 401 (or a redirect): set; a delivered post clears it.
    pub fn set_config_fault(&self, on: bool) {
        self.config_fault.store(on, Ordering::Relaxed);
    }

    /// Whether a configuration fault is active.
    pub fn config_fault(&self) -> bool {
        self.config_fault.load(Ordering::Relaxed)
    }

    /// Kafka refuses the service's writes permanently (topic missing, ACL, fatal producer
    /// error): set; the next acknowledged write clears it.
    pub fn set_produce_fault(&self, on: bool) {
        self.produce_fault.store(on, Ordering::Relaxed);
    }

    /// Whether a permanent produce fault is active.
    pub fn produce_fault(&self) -> bool {
        self.produce_fault.load(Ordering::Relaxed)
    }

    /// A partition was assigned (not yet restored).
    pub fn assigned(&self, partition: i32) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partition, false);
    }

    /// A partition's state is restored.
    pub fn restored(&self, partition: i32) {
        if let Some(r) = self
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&partition)
        {
            *r = true;
        }
    }

    /// A partition was revoked.
    pub fn revoked(&self, partition: i32) {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&partition);
    }

    /// Ready: every assigned partition restored, no deployment fault, no produce fault.
    pub fn is_ready(&self) -> bool {
        !self.config_fault()
            && !self.produce_fault()
            && self
                .partitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .all(|r| *r)
    }

    /// Assigned partitions, restored or not.
    pub fn assignment(&self) -> BTreeMap<i32, bool> {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_restored_and_no_config_fault() {
        let h = Health::default();
        assert!(h.is_ready(), "no partitions: nothing to restore");
        h.assigned(0);
        assert!(!h.is_ready());
        h.restored(0);
        assert!(h.is_ready());
        h.set_config_fault(true);
        assert!(!h.is_ready());
        h.set_config_fault(false);
        h.revoked(0);
        assert!(h.is_ready());
        assert!(!h.is_live(), "never polled");
        h.polled();
        assert!(h.is_live());
    }
}
