//! The key material in use, swapped whole: the signing merchant (mchid, serial, private key),
//! WeChat Pay's verification keys, the `Wechatpay-Serial` to send and the APIv3 key. A request
//! takes the current set once and uses it for signing and for verifying its answer, so a reload
//! between the two never pairs one set's signature with another's verification.
//!
//! Two sources feed the verification keys: the configured ones (replaced by a reload) and, in
//! platform-certificate mode, the certificates last downloaded from `GET /v3/certificates`
//! (replaced by each download). The set in use is both, a configured key winning.

use std::sync::{Arc, RwLock};

use super::keys::VerificationKeys;
use super::platform::ApiV3Key;
use super::sign::Credentials;

/// One consistent set of keys.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// The signing merchant.
    pub credentials: Arc<Credentials>,
    /// WeChat Pay's keys.
    pub keys: Arc<VerificationKeys>,
    /// Sent as `Wechatpay-Serial`.
    pub wechatpay_serial: Option<String>,
    /// The APIv3 key, in platform-certificate mode: it decrypts the downloaded certificates.
    pub apiv3_key: Option<Arc<ApiV3Key>>,
}

#[derive(Debug)]
struct Sources {
    configured: Arc<KeySet>,
    downloaded: Arc<VerificationKeys>,
    current: Arc<KeySet>,
}

impl Sources {
    fn combine(configured: Arc<KeySet>, downloaded: Arc<VerificationKeys>) -> Self {
        let current = if downloaded.is_empty() {
            configured.clone()
        } else {
            let mut keys = (*configured.keys).clone();
            keys.merge(&downloaded);
            Arc::new(KeySet {
                keys: Arc::new(keys),
                ..(*configured).clone()
            })
        };
        Self {
            configured,
            downloaded,
            current,
        }
    }
}

/// The current [`KeySet`], replaceable at run time (a reload on SIGHUP or a changed file, a
/// certificate download).
#[derive(Debug)]
pub struct KeyStore {
    sources: RwLock<Sources>,
}

impl KeyStore {
    /// A store holding `set`.
    pub fn new(set: KeySet) -> Self {
        Self {
            sources: RwLock::new(Sources::combine(
                Arc::new(set),
                Arc::new(VerificationKeys::new()),
            )),
        }
    }

    /// The set in use now.
    pub fn current(&self) -> Arc<KeySet> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// Use the configured `set` from the next request on (requests under way finish with
    /// theirs); the downloaded certificates stay.
    /// Without an APIv3 key (platform-certificate mode turned off) the downloaded
    /// certificates are dropped.
    pub fn replace(&self, set: KeySet) {
        let mut s = self.sources.write().unwrap_or_else(|p| p.into_inner());
        let downloaded = if set.apiv3_key.is_some() {
            s.downloaded.clone()
        } else {
            Arc::new(VerificationKeys::new())
        };
        *s = Sources::combine(Arc::new(set), downloaded);
    }

    /// Use the downloaded platform certificates `keys` from the next request on, in place of
    /// the previous download's.
    pub fn set_downloaded(&self, keys: VerificationKeys) {
        let mut s = self.sources.write().unwrap_or_else(|p| p.into_inner());
        *s = Sources::combine(s.configured.clone(), Arc::new(keys));
    }

    /// The certificates of the last download.
    pub fn downloaded(&self) -> Arc<VerificationKeys> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .downloaded
            .clone()
    }
}
