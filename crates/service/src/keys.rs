//! The key material a configuration names, loaded whole, and reloaded without a restart: on
//! SIGHUP, and when the configuration file or a key file changes (a Kubernetes secret update).
//! A reload that fails keeps the keys in use, logs ERROR and moves
//! `catering_sync_key_reloads_total{outcome="failed"}`; one that succeeds replaces them for the
//! next request, atomically (merchant key, its serial, the verification keys and the
//! `Wechatpay-Serial` together).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::Cancel;
use crate::config::{Config, ConfigError, WechatPayConfig};
use crate::telemetry::events::{self, Emit as _};
use crate::telemetry::metrics::Metrics;
use crate::wechatpay::keystore::{KeySet, KeyStore};
use crate::wechatpay::platform::ApiV3Key;
use crate::wechatpay::{Credentials, MerchantKey, VerificationKeys};

fn read(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        key: key.to_string(),
        problem: format!("cannot read {}: {e}", path.display()),
    })
}

fn bad(key: &str, e: &dyn std::fmt::Display) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: e.to_string(),
    }
}

/// Load the signing merchant, WeChat Pay's keys and the `Wechatpay-Serial` to send, and check
/// they can work together (no `wechatpay_serial` that is no key, not the merchant's own serial).
pub fn load(w: &WechatPayConfig) -> Result<KeySet, ConfigError> {
    let key = MerchantKey::from_pem(&read("wechatpay.private_key_file", &w.private_key_file)?)
        .map_err(|e| bad("wechatpay.private_key_file", &e))?;
    let credentials = Credentials::new(&w.mchid, &w.merchant_serial, key);
    let mut keys = VerificationKeys::new();
    for (i, v) in w.verification_keys.iter().enumerate() {
        let k = format!("wechatpay.verification_keys[{i}]");
        match (&v.key_id, &v.public_key_file, &v.certificate_file) {
            (Some(id), Some(file), _) => keys
                .add_public_key_pem(id, &read(&k, file)?)
                .map_err(|e| bad(&k, &e))?,
            (_, _, Some(file)) => {
                keys.add_certificate_pem(&read(&k, file)?)
                    .map_err(|e| bad(&k, &e))?;
            }
            _ => {
                return Err(bad(
                    &k,
                    &"give key_id with public_key_file, or certificate_file",
                ))
            }
        }
    }
    keys.check_not_merchant(&w.merchant_serial)
        .map_err(|e| bad("wechatpay.verification_keys", &e))?;
    let wechatpay_serial = keys
        .request_serial(w.wechatpay_serial.as_deref())
        .map_err(|e| bad("wechatpay.wechatpay_serial", &e))?;
    let apiv3_key = match &w.apiv3_key_file {
        Some(file) => Some(Arc::new(
            ApiV3Key::from_text(&read("wechatpay.apiv3_key_file", file)?)
                .map_err(|e| bad("wechatpay.apiv3_key_file", &e))?,
        )),
        None => None,
    };
    Ok(KeySet {
        credentials: Arc::new(credentials),
        keys: Arc::new(keys),
        wechatpay_serial,
        apiv3_key,
    })
}

/// The files a reload reads: the configuration and every key file it names.
fn files(source: &Path, w: &WechatPayConfig) -> Vec<PathBuf> {
    let mut files = vec![source.to_path_buf(), w.private_key_file.clone()];
    files.extend(w.apiv3_key_file.iter().cloned());
    for v in &w.verification_keys {
        files.extend(v.public_key_file.iter().chain(&v.certificate_file).cloned());
    }
    files
}

/// A digest of the files' contents (a missing file counts as empty): a change of any of them
/// changes it, whatever their timestamps say (Kubernetes swaps a secret's files by symlink).
fn fingerprint(files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(std::fs::read(f).unwrap_or_default());
        h.update([0]);
    }
    h.finalize().into()
}

/// Export what is in use by every merchant (configured and downloaded keys): each verification
/// key's expiry (`+Inf` for a public key) and each signing identity.
pub fn export(stores: &[Arc<KeyStore>], metrics: &Metrics) {
    metrics.verification_key_expiry.reset();
    metrics.signing_key_info.reset();
    for store in stores {
        let set = store.current();
        for (id, not_after) in set.keys.expiries() {
            metrics
                .verification_key_expiry
                .with_label_values(&[id])
                .set(not_after.map_or(f64::INFINITY, |t| t as f64));
        }
        metrics
            .signing_key_info
            .with_label_values(&[
                set.credentials.mchid.as_str(),
                set.credentials.serial_no.as_str(),
                set.wechatpay_serial.as_deref().unwrap_or(""),
            ])
            .set(1);
    }
}

/// What one merchant's reload watch reads and replaces.
pub struct Watched {
    /// The configuration file.
    pub source: PathBuf,
    /// This merchant's configuration (`WechatPayConfig::signing_merchants`).
    pub wechatpay: WechatPayConfig,
    /// Its key store.
    pub store: Arc<KeyStore>,
    /// Every merchant's, for the export.
    pub stores: Arc<Vec<Arc<KeyStore>>>,
}

/// Why a reload was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// The configuration or a key file changed.
    Files,
}

impl Trigger {
    /// For the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "sighup",
            Self::Files => "files_changed",
        }
    }
}

/// Reread the configuration and replace the watched merchant's keys; on failure keep them.
pub fn reload(watched: &Watched, metrics: &Metrics, trigger: Trigger) -> bool {
    let mchid = &watched.wechatpay.mchid;
    let loaded = Config::load(&watched.source).and_then(|c| {
        let w = c.wechatpay.merchant(mchid).ok_or_else(|| ConfigError {
            key: "wechatpay.merchants".into(),
            problem: format!(
                "merchant {mchid} is no longer configured: the set of merchants changes with a restart"
            ),
        })?;
        load(&w)
    });
    let store = &watched.store;
    match loaded {
        Ok(set) => {
            events::KeysReloaded {
                trigger: trigger.as_str(),
                merchant_serial: Some(&set.credentials.serial_no),
                error: None,
            }
            .emit(metrics);
            store.replace(set);
            export(&watched.stores, metrics);
            true
        }
        Err(e) => {
            events::KeysReloaded {
                trigger: trigger.as_str(),
                merchant_serial: None,
                error: Some(&e),
            }
            .emit(metrics);
            false
        }
    }
}

/// Reload on SIGHUP and whenever the files change (checked every `interval`), until `stop`.
pub async fn watch(watched: Watched, interval: Duration, metrics: Metrics, mut stop: Cancel) {
    let mut hangups = hangup_signals();
    let source = watched.source.clone();
    let mchid = watched.wechatpay.mchid.clone();
    let mut files_now = files(&source, &watched.wechatpay);
    let mut seen = fingerprint(&files_now);
    loop {
        let trigger = tokio::select! {
            _ = stop.cancelled() => return,
            _ = hangup(&mut hangups) => Trigger::Signal,
            _ = tokio::time::sleep(interval) => {
                let now = fingerprint(&files_now);
                if now == seen {
                    continue;
                }
                Trigger::Files
            }
        };
        reload(&watched, &metrics, trigger);
        // Watch what the configuration names now (a key may have moved to a new file).
        if let Some(w) = Config::load(&source)
            .ok()
            .and_then(|c| c.wechatpay.merchant(&mchid))
        {
            files_now = files(&source, &w);
        }
        seen = fingerprint(&files_now);
    }
}

#[cfg(unix)]
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signals() -> Option<()> {
    None
}

#[cfg(unix)]
async fn hangup(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn hangup(_: &mut Option<()>) {
    std::future::pending().await
}

/// The client's own occurrences as telemetry: a certificate download moves its counter, logs,
/// and re-exports the keys in use (a downloaded certificate's `notAfter` included); an endpoint
/// switch moves the active-endpoint gauge and logs.
pub struct ClientTelemetry {
    /// Every merchant's keys, exported.
    pub stores: Arc<Vec<Arc<KeyStore>>>,
    /// Where.
    pub metrics: Metrics,
}

impl crate::wechatpay::client::Observer for ClientTelemetry {
    fn downloaded(
        &self,
        trigger: crate::wechatpay::client::CertificateTrigger,
        result: &Result<usize, crate::wechatpay::platform::PlatformError>,
    ) {
        events::CertificatesDownloaded {
            trigger,
            held: result.as_ref().ok().copied(),
            error: result.as_ref().err().map(|e| e as &dyn std::error::Error),
        }
        .emit(&self.metrics);
        export(&self.stores, &self.metrics);
    }

    fn endpoint(&self, now: crate::wechatpay::client::Endpoint, cause: &str) {
        events::EndpointSwitched { now, cause }.emit(&self.metrics);
    }
}

/// Platform-certificate mode: download the certificates every `interval` (sooner after a
/// failure), until `stop`. The first download is the caller's, at start-up.
pub async fn refresh_certificates(
    client: crate::wechatpay::WechatPayClient,
    interval: Duration,
    mut stop: Cancel,
    mut last_ok: bool,
) {
    use crate::wechatpay::client::CertificateTrigger;
    use crate::wechatpay::platform::RETRY_AFTER_FAILURE;
    loop {
        let wait = if last_ok {
            interval
        } else {
            interval.min(RETRY_AFTER_FAILURE)
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // A reload may have turned platform-certificate mode off.
        if client.key_store().current().apiv3_key.is_none() {
            last_ok = true;
            continue;
        }
        last_ok = client
            .download_certificates(CertificateTrigger::Scheduled)
            .await
            .is_ok();
    }
}
