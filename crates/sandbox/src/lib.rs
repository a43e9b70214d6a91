//! # catering-sync-sandbox
//!
//! `catering-sync sandbox`: a faithful stand-in for WeChat Pay's sync-status endpoint.
//!
//! It authenticates requests exactly as WeChat Pay does ([`auth`], with the `rsa` crate, an
//! implementation independent of the client's ring), validates bodies with the same rules module
//! as the client (`catering_sync_core::rules`), answers 204 with signed headers ([`respond`]) or
//! WeChat Pay's error JSON, records what it accepted ([`store`]) and injects faults on demand
//! ([`faults`]). Usable as a library (tests, the demo) and as a process. [`keygen`] makes the
//! test keys it and its merchants use.
//!
//! It depends on the core only (`catering-sync-core`) plus its own crypto (the pure-Rust `rsa`
//! crate), never on the service: `scripts/check-layers.sh` fails the test command if it does.
//!
//! Routes:
//! - `POST /v3/catering/orders/sync-status`
//! - `GET /__sandbox/orders`, `GET /__sandbox/orders/{out_order_no}`, `GET /__sandbox/posts`,
//!   `GET /__sandbox/stats`
//! - `POST /__sandbox/reset`, `GET|POST /__sandbox/faults`

pub mod auth;
mod certificates;
pub mod faults;
pub mod keygen;
pub mod respond;
mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use spki::der::{Decode, Encode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use catering_sync_core::pem::decode_first as decode_pem;

pub use crate::keygen::PlatformCertificate;
use crate::keygen::{files, GeneratedKeys};

pub use auth::MerchantIdentity;
pub use faults::{DeploymentFault, FaultError, Faults, Outage, OutageKind};
pub use store::{RecordedPost, Stats};

/// Everything the sandbox needs to start.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Merchants it accepts requests from.
    pub merchants: Vec<MerchantIdentity>,
    /// The key id it signs responses as (`PUB_KEY_ID_…` or a platform certificate serial).
    pub wechatpay_key_id: String,
    /// WeChat Pay's private key.
    pub wechatpay_private_key: rsa::RsaPrivateKey,
    /// Faults from the start.
    pub faults: Faults,
    /// Reuse one response signature per second (benchmarks).
    pub bench_mode: bool,
    /// Verify the RSA signature of one request in N (1 = every request; the rest of
    /// authentication always runs).
    pub verify_every: u64,
    /// Keep accepted bodies (off for long benchmarks: only statuses are kept).
    pub record_bodies: bool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// A merchant migrating from platform certificates to the public key: answers are signed
    /// with this platform certificate's key unless the request's `Wechatpay-Serial` names the
    /// public key (`wechatpay_key_id`), as WeChat Pay does during the migration.
    pub platform_certificate: Option<PlatformCertificate>,
    /// The merchant's APIv3 key: with it, `GET /v3/certificates` lists the platform
    /// certificates (the signing one and any listed at run time), each encrypted with it
    /// (AEAD_AES_256_GCM), as WeChat Pay does for a merchant in platform-certificate mode;
    /// without it, the answer is `404 RESOURCE_NOT_EXISTS` (public-key mode).
    pub apiv3_key: Option<String>,
    /// Close a keep-alive connection idle this long, announced as `Keep-Alive: timeout=N`
    /// (WeChat Pay: 8 s); `None` keeps idle connections open.
    pub idle_timeout: Option<std::time::Duration>,
}

/// How long WeChat Pay keeps an idle connection open (`Keep-Alive: timeout=8`).
pub const WECHATPAY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// Why the sandbox could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A key file could not be read or parsed.
    #[error("{path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Binding or serving failed.
    #[error("sandbox I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn key_err(path: &Path, reason: impl ToString) -> SandboxError {
    SandboxError::Key {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Why a key given to the sandbox is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No PEM block, or a broken one.
    #[error("not a PEM document: {0}")]
    Pem(String),
    /// A PEM block of another kind.
    #[error("unexpected PEM label {0:?}, expected PUBLIC KEY or CERTIFICATE")]
    Label(String),
    /// The certificate or key inside could not be parsed.
    #[error("{0}")]
    Der(String),
}

/// A merchant public key from a `PUBLIC KEY` PEM or an X.509 `CERTIFICATE` PEM.
pub fn merchant_public_key(pem: &str) -> Result<rsa::RsaPublicKey, KeyError> {
    let der_err = |e: &dyn std::fmt::Display| KeyError::Der(e.to_string());
    let (label, der) = decode_pem(pem).map_err(|e| KeyError::Pem(e.0))?;
    let spki = match label.as_str() {
        "PUBLIC KEY" => der,
        "CERTIFICATE" => x509_cert::Certificate::from_der(&der)
            .map_err(|e| der_err(&e))?
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| der_err(&e))?,
        other => return Err(KeyError::Label(other.to_string())),
    };
    rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|e| der_err(&e))
}

impl SandboxConfig {
    /// Configuration from generated keys, faithful (no faults, every signature checked).
    pub fn from_generated(keys: &GeneratedKeys) -> Result<Self, KeyError> {
        Ok(Self {
            merchants: vec![MerchantIdentity {
                mchid: keys.mchid.clone(),
                serial: keys.merchant_serial.clone(),
                public_key: merchant_public_key(&keys.merchant_public_pem)?,
            }],
            wechatpay_key_id: keys.wechatpay_key_id.clone(),
            wechatpay_private_key: rsa::RsaPrivateKey::from_pkcs8_pem(&keys.wechatpay_private_pem)
                .map_err(|e| KeyError::Der(e.to_string()))?,
            faults: Faults::default(),
            bench_mode: false,
            verify_every: 1,
            record_bodies: true,
            max_body_bytes: 1 << 20,
            platform_certificate: None,
            apiv3_key: None,
            idle_timeout: Some(WECHATPAY_IDLE_TIMEOUT),
        })
    }

    /// Configuration from a directory written by `catering-sync keys generate`.
    pub fn from_keys_dir(dir: &Path) -> Result<Self, SandboxError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| key_err(&path, e))
        };
        let identity_path = dir.join(files::IDENTITY);
        let identity: toml::Table = read(files::IDENTITY)?
            .parse()
            .map_err(|e| key_err(&identity_path, e))?;
        let field = |k: &str| {
            identity
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| key_err(&identity_path, format!("missing string key {k}")))
        };
        let keys = GeneratedKeys {
            mchid: field("mchid")?,
            merchant_serial: field("merchant_serial")?,
            merchant_private_pem: String::new(),
            merchant_public_pem: read(files::MERCHANT_PUBLIC)?,
            wechatpay_key_id: field("wechatpay_key_id")?,
            wechatpay_private_pem: read(files::WECHATPAY_PRIVATE)?,
            wechatpay_public_pem: String::new(),
        };
        Self::from_generated(&keys).map_err(|e| key_err(dir, e))
    }
}

pub(crate) struct State {
    pub(crate) auth: auth::RequestAuthenticator,
    pub(crate) signer: Arc<respond::ResponseSigner>,
    /// The platform certificates: listed, and the one signing answers to requests that do not
    /// name the public key.
    pub(crate) platform: RwLock<Platform>,
    pub(crate) apiv3_key: Option<String>,
    pub(crate) bench_mode: bool,
    pub(crate) public_key_id: String,
    pub(crate) idle_timeout: Option<std::time::Duration>,
    pub(crate) store: store::Store,
    pub(crate) faults: RwLock<(Faults, Instant)>,
    pub(crate) verify_every: u64,
    pub(crate) verify_counter: std::sync::atomic::AtomicU64,
    pub(crate) record_bodies: bool,
    pub(crate) max_body_bytes: usize,
}

/// The platform certificates WeChat Pay holds for the merchant.
pub(crate) struct Platform {
    /// What `GET /v3/certificates` lists (a new certificate is listed before it signs).
    pub(crate) listed: Vec<PlatformCertificate>,
    /// Signs answers to requests that do not name the public key; `None`: public-key mode.
    pub(crate) signer: Option<Arc<respond::ResponseSigner>>,
}

impl Platform {
    fn new(signing: Option<PlatformCertificate>, bench_mode: bool) -> Self {
        let signer = signing.as_ref().map(|c| {
            Arc::new(respond::ResponseSigner::new(
                c.private_key.clone(),
                c.serial.clone(),
                bench_mode,
            ))
        });
        Self {
            listed: signing.into_iter().collect(),
            signer,
        }
    }
}

/// A running sandbox. Dropping it does not stop it: call [`SandboxHandle::shutdown`].
pub struct SandboxHandle {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SandboxHandle {
    /// Bind `addr` (port 0 for a free one) and serve in the background.
    pub async fn start(config: SandboxConfig, addr: SocketAddr) -> Result<Self, SandboxError> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::serve(config, listener)?)
    }

    /// Serve on an already bound listener.
    pub fn serve(config: SandboxConfig, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            auth: auth::RequestAuthenticator::new(&config.merchants),
            signer: Arc::new(respond::ResponseSigner::new(
                config.wechatpay_private_key,
                config.wechatpay_key_id.clone(),
                config.bench_mode,
            )),
            platform: RwLock::new(Platform::new(
                config.platform_certificate,
                config.bench_mode,
            )),
            apiv3_key: config.apiv3_key,
            bench_mode: config.bench_mode,
            public_key_id: config.wechatpay_key_id,
            idle_timeout: config.idle_timeout,
            store: store::Store::default(),
            faults: RwLock::new((config.faults, Instant::now())),
            verify_every: config.verify_every.max(1),
            verify_counter: std::sync::atomic::AtomicU64::new(0),
            record_bodies: config.record_bodies,
            max_body_bytes: config.max_body_bytes,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::accept_loop(listener, state.clone(), stopped));
        Ok(Self {
            addr,
            state,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the client's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace the faults; outage windows count from now.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.write().unwrap_or_else(|p| p.into_inner()) = (faults, Instant::now());
    }

    /// Accepted posts of one order, in arrival order.
    pub fn posts(&self, out_order_no: &str) -> Vec<RecordedPost> {
        self.state.store.posts(out_order_no)
    }

    /// Every order with the statuses of its accepted posts in arrival order.
    pub fn summary(&self) -> std::collections::BTreeMap<String, Vec<Option<String>>> {
        self.state.store.summary()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.state.store.stats()
    }

    /// List `certificate` in `GET /v3/certificates` (WeChat Pay lists a new platform
    /// certificate 24 h before it signs with it); it does not sign yet.
    pub fn list_platform_certificate(&self, certificate: PlatformCertificate) {
        let mut p = self
            .state
            .platform
            .write()
            .unwrap_or_else(|p| p.into_inner());
        p.listed.retain(|c| c.serial != certificate.serial);
        p.listed.push(certificate);
    }

    /// Sign answers with the listed certificate `serial` from now on (the rotation's switch).
    /// `false` when no listed certificate has that serial.
    pub fn sign_with_platform_certificate(&self, serial: &str) -> bool {
        let mut p = self
            .state
            .platform
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let Some(c) = p.listed.iter().find(|c| c.serial == serial).cloned() else {
            return false;
        };
        p.signer = Some(Arc::new(respond::ResponseSigner::new(
            c.private_key,
            c.serial,
            self.state.bench_mode,
        )));
        true
    }

    /// Stop listing the certificate `serial` (an old one, after the rotation).
    pub fn unlist_platform_certificate(&self, serial: &str) {
        let mut p = self
            .state
            .platform
            .write()
            .unwrap_or_else(|p| p.into_inner());
        p.listed.retain(|c| c.serial != serial);
    }

    /// Forget what was recorded.
    pub fn reset(&self) {
        self.state.store.reset();
    }

    /// Stop accepting, close every connection (hung ones too), and wait for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
