//! The key material in use, swapped whole: the signing merchant (mchid, serial, private key),
//! WeChat Pay's verification keys and the `Wechatpay-Serial` to send. A request takes the current
//! set once and uses it for signing and for verifying its answer, so a reload between the two
//! never pairs one set's signature with another's verification.

use std::sync::{Arc, RwLock};

use super::keys::VerificationKeys;
use super::sign::Credentials;

/// One consistent set of keys.
#[derive(Debug)]
pub struct KeySet {
    /// The signing merchant.
    pub credentials: Arc<Credentials>,
    /// WeChat Pay's keys.
    pub keys: Arc<VerificationKeys>,
    /// Sent as `Wechatpay-Serial`.
    pub wechatpay_serial: Option<String>,
}

/// The current [`KeySet`], replaceable at run time (a reload on SIGHUP or a changed file).
#[derive(Debug)]
pub struct KeyStore {
    current: RwLock<Arc<KeySet>>,
}

impl KeyStore {
    /// A store holding `set`.
    pub fn new(set: KeySet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The set in use now.
    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Use `set` from the next request on (requests under way finish with theirs).
    pub fn replace(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}
