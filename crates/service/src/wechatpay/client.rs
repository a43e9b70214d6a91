//! The HTTP client for sync-status: one `reqwest::Client` with timeouts, a fresh signature for
//! every attempt, exactly the signed bytes on the wire, and the response verified and classified.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::classify::{classify, Disposition, Exchange};
use super::keys::VerificationKeys;
use super::keystore::{KeySet, KeyStore};
use super::sign::{nonce, Credentials};
use super::verify::{header, verify_response};
use super::SYNC_STATUS_PATH;
use crate::clock::Instant;

/// Largest response body read; WeChat Pay's error bodies are tiny.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The `User-Agent` sent with every request.
pub fn user_agent() -> String {
    format!(
        "catering-sync/{} ({} {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// HTTP settings of the client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme and host, e.g. `https://api.mch.weixin.qq.com` (no trailing path).
    pub base_url: String,
    /// Whole-request timeout; the pipeline's drain bound must cover it.
    pub request_timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Sent as `Wechatpay-Serial`: the key the response should be signed with.
    pub wechatpay_serial: Option<String>,
    /// Opt-in failover on connection-level failure (`https://api2.mch.weixin.qq.com`).
    pub backup_base_url: Option<String>,
    /// While on the backup, how often a request tries the primary first.
    pub backup_probe_interval: Duration,
    /// Cap on idle keep-alive connections per host: the pipeline's `max_in_flight`, the most
    /// requests that can be open at once (each needs a connection of its own under HTTP/1.1).
    /// Every connection a burst opened can stay warm for the next one; none beyond that is
    /// kept (reqwest's default is no cap).
    pub max_idle_connections: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: super::PRODUCTION_BASE_URL.to_string(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            wechatpay_serial: None,
            backup_base_url: None,
            backup_probe_interval: Duration::from_secs(60),
            max_idle_connections: 256,
        }
    }
}

/// How long an idle keep-alive connection is kept: below WeChat Pay's `Keep-Alive: timeout=8`,
/// so the client retires a connection before the server may close it under a request (a
/// request written into a closing socket fails its attempt).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One POST attempt and its classification.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// What to do next.
    pub disposition: Disposition,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// WeChat Pay's `Request-ID`, when sent.
    pub request_id: Option<String>,
    /// Time from send to classification.
    pub elapsed: Duration,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an absolute http(s) URL without a path.
    #[error("invalid base_url {0:?}: expected http(s)://host[:port] without a path")]
    BaseUrl(String),
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// What triggered a certificate download (`catering_sync_certificate_downloads_total{trigger}`).
pub use crate::telemetry::labels::CertificateTrigger;

pub use crate::telemetry::labels::Endpoint;

/// Told of what the client does on its own: certificate downloads and endpoint switches (the
/// app moves metrics and logs).
pub trait Observer: Send + Sync {
    /// A certificate download ended.
    fn downloaded(
        &self,
        trigger: CertificateTrigger,
        result: &Result<usize, super::platform::PlatformError>,
    );
    /// Requests go to `now` from here on; `cause` says why.
    fn endpoint(&self, now: Endpoint, cause: &str);
}

/// The primary endpoint and the opt-in backup: which one is in use, and when the primary was
/// last tried while on the backup.
#[derive(Debug)]
struct Endpoints {
    primary: String,
    backup: Option<String>,
    probe_interval: Duration,
    /// `Some(last try of the primary)` while on the backup.
    on_backup: std::sync::Mutex<Option<Instant>>,
}

impl Endpoints {
    /// Where this request goes first, and whether it is a probe of the primary: the primary,
    /// unless on the backup and not yet due for a probe (a due probe is this request, and
    /// restarts the interval).
    fn first(&self) -> (Endpoint, bool) {
        let mut on_backup = self.on_backup.lock().unwrap_or_else(|p| p.into_inner());
        match *on_backup {
            Some(last) if last.elapsed() < self.probe_interval => (Endpoint::Backup, false),
            Some(_) => {
                *on_backup = Some(Instant::now());
                (Endpoint::Primary, true)
            }
            None => (Endpoint::Primary, false),
        }
    }

    fn base(&self, e: Endpoint) -> &str {
        match e {
            Endpoint::Backup => self.backup.as_deref().unwrap_or(&self.primary),
            Endpoint::Primary => &self.primary,
        }
    }

    /// The primary failed to connect: use the backup (when configured). `true` on a switch.
    fn to_backup(&self) -> bool {
        if self.backup.is_none() {
            return false;
        }
        let mut on_backup = self.on_backup.lock().unwrap_or_else(|p| p.into_inner());
        let switched = on_backup.is_none();
        *on_backup = Some(Instant::now());
        switched
    }

    /// The primary answered: back to it. `true` on a switch.
    fn to_primary(&self) -> bool {
        self.on_backup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }
}

/// Client for the sync-status endpoint.
#[derive(Clone)]
pub struct WechatPayClient {
    http: reqwest::Client,
    endpoints: Arc<Endpoints>,
    store: Arc<KeyStore>,
    /// When the last download for an unknown serial ran (one at a time, rate-limited).
    on_demand: Arc<tokio::sync::Mutex<Option<Instant>>>,
    /// Held by every download: one at a time, so an older list never replaces a newer one.
    downloads: Arc<tokio::sync::Mutex<()>>,
    request_timeout: Duration,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for WechatPayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatPayClient")
            .field("endpoints", &self.endpoints)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl WechatPayClient {
    /// Build the client with fixed keys (`config.wechatpay_serial` is sent as given). No
    /// redirects are followed: a redirect means a wrong base URL.
    pub fn new(
        config: &ClientConfig,
        credentials: Arc<Credentials>,
        keys: Arc<VerificationKeys>,
    ) -> Result<Self, ClientError> {
        let set = KeySet {
            credentials,
            keys,
            wechatpay_serial: config.wechatpay_serial.clone(),
            apiv3_key: None,
        };
        Self::with_store(config, Arc::new(KeyStore::new(set)))
    }

    /// Build the client on a key store that may be replaced at run time (its
    /// `wechatpay_serial` wins over `config`'s).
    pub fn with_store(config: &ClientConfig, store: Arc<KeyStore>) -> Result<Self, ClientError> {
        let base = valid_base(&config.base_url)?;
        let backup = config
            .backup_base_url
            .as_deref()
            .map(valid_base)
            .transpose()?;
        let http = reqwest::Client::builder()
            .user_agent(user_agent())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(config.max_idle_connections.max(1))
            .build()?;
        Ok(Self {
            http,
            endpoints: Arc::new(Endpoints {
                primary: base,
                backup,
                probe_interval: config.backup_probe_interval,
                on_backup: std::sync::Mutex::new(None),
            }),
            store,
            on_demand: Arc::new(tokio::sync::Mutex::new(None)),
            downloads: Arc::new(tokio::sync::Mutex::new(())),
            request_timeout: config.request_timeout,
            observer: None,
        })
    }

    /// Tell `observer` of certificate downloads and endpoint switches.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The endpoint requests go to now.
    pub fn active_endpoint(&self) -> Endpoint {
        let on_backup = self
            .endpoints
            .on_backup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if on_backup {
            Endpoint::Backup
        } else {
            Endpoint::Primary
        }
    }

    /// Send `request` (built for `path` on an endpoint by `build`) to the endpoint in use,
    /// failing over to the backup when the primary cannot be connected to, and back when it
    /// answers. The request is the same signed bytes on either host (the host is not signed).
    async fn send(
        &self,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let e = &self.endpoints;
        let (first, probe) = e.first();
        let result = build(&format!("{}{path}", e.base(first))).send().await;
        match (&result, first) {
            // Only a probe's answer brings traffic back: an answer on a connection the primary
            // kept alive from before the switch says nothing of new connections.
            (Ok(_), Endpoint::Primary) if probe => {
                if e.to_primary() {
                    self.switched(Endpoint::Primary, "the primary answered a probe");
                }
                result
            }
            (Err(err), Endpoint::Primary) if err.is_connect() && e.backup.is_some() => {
                if e.to_backup() {
                    self.switched(Endpoint::Backup, "the primary refused the connection");
                }
                build(&format!("{}{path}", e.base(Endpoint::Backup)))
                    .send()
                    .await
            }
            _ => result,
        }
    }

    fn switched(&self, now: Endpoint, cause: &str) {
        if let Some(o) = &self.observer {
            o.endpoint(now, cause);
        }
    }

    /// Download the platform certificates now (platform-certificate mode) and report it.
    pub async fn download_certificates(
        &self,
        trigger: CertificateTrigger,
    ) -> Result<usize, super::platform::PlatformError> {
        let result = {
            let _one_at_a_time = self.downloads.lock().await;
            super::platform::download(self).await
        };
        if let Some(o) = &self.observer {
            o.downloaded(trigger, &result);
        }
        result
    }

    /// Verify a 2xx answer. An unknown serial in platform-certificate mode triggers one
    /// download (at most one per [`UNKNOWN_SERIAL_REFRESH_INTERVAL`], one at a time: the
    /// requests that see the serial meanwhile wait for it) before the answer is judged.
    ///
    /// [`UNKNOWN_SERIAL_REFRESH_INTERVAL`]: super::platform::UNKNOWN_SERIAL_REFRESH_INTERVAL
    async fn verify(
        &self,
        set: &KeySet,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), super::VerifyError> {
        let first = verify_response(&set.keys, headers, body, unix_now());
        let Err(super::VerifyError::UnknownSerial(serial)) = &first else {
            return first;
        };
        if set.apiv3_key.is_none() {
            return first;
        }
        let mut last = self.on_demand.lock().await;
        if !self.store.current().keys.contains(serial) {
            let recent = last
                .is_some_and(|t| t.elapsed() < super::platform::UNKNOWN_SERIAL_REFRESH_INTERVAL);
            if recent {
                return first;
            }
            *last = Some(Instant::now());
            let _ = self
                .download_certificates(CertificateTrigger::UnknownSerial)
                .await;
        }
        drop(last);
        verify_response(&self.store.current().keys, headers, body, unix_now())
    }

    /// POST one body, signed afresh, and classify the outcome. Never panics, never retries:
    /// retrying is the caller's decision, made on the [`Disposition`].
    pub async fn sync_status(&self, body: Bytes) -> Attempt {
        let started = Instant::now();
        let timestamp = unix_now();
        let nonce = nonce(&mut rand::thread_rng());
        let set = self.store.current();
        let auth = set
            .credentials
            .authorize("POST", SYNC_STATUS_PATH, &body, timestamp, &nonce);
        let auth = auth.to_string();
        let build = |url: &str| {
            let mut request = self
                .http
                .post(url)
                .header(http::header::AUTHORIZATION, auth.as_str())
                .header(http::header::ACCEPT, "application/json")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(serial) = &set.wechatpay_serial {
                request = request.header("Wechatpay-Serial", serial.as_str());
            }
            request
        };
        // One deadline for the whole attempt — a failover and a certificate download for an
        // unknown serial included — so an attempt never outlasts `request_timeout` and the drain
        // bound (which covers one) holds.
        let exchange = async {
            let mut outcome = match self.send(SYNC_STATUS_PATH, build).await {
                Ok(response) => read(response).await,
                Err(e) => Err(transport(&e)),
            };
            if let Ok(r) = &mut outcome {
                if (200..300).contains(&r.status) {
                    r.verified = self.verify(&set, &r.headers, &r.body).await;
                }
            }
            outcome
        };
        let outcome = tokio::time::timeout_at(started + self.request_timeout, exchange)
            .await
            .unwrap_or(Err(Exchange::Timeout));
        let now = crate::clock::system_now();
        match outcome {
            Ok(r) => {
                let exchange = Exchange::Response {
                    status: r.status,
                    verified: r.verified,
                    retry_after: r.retry_after.as_deref(),
                    body: &r.body,
                    request_id: r.request_id.as_deref(),
                };
                Attempt {
                    disposition: classify(&exchange, now),
                    status: Some(r.status),
                    request_id: r.request_id,
                    elapsed: started.elapsed(),
                }
            }
            Err(exchange) => Attempt {
                disposition: classify(&exchange, now),
                status: None,
                request_id: None,
                elapsed: started.elapsed(),
            },
        }
    }

    /// A signed `GET` of `path` (with its query, as signed), the answer read whole and its
    /// signature checked whatever its status (`wechatpay check`). `Err` when no answer came.
    pub async fn get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        let timestamp = unix_now();
        let nonce = nonce(&mut rand::thread_rng());
        let set = self.store.current();
        let auth = set
            .credentials
            .authorize("GET", path, b"", timestamp, &nonce);
        let auth = auth.to_string();
        let build = |url: &str| {
            let mut request = self
                .http
                .get(url)
                .header(http::header::AUTHORIZATION, auth.as_str())
                .header(http::header::ACCEPT, "application/json");
            if let Some(serial) = &set.wechatpay_serial {
                request = request.header("Wechatpay-Serial", serial.as_str());
            }
            request
        };
        let response = self.send(path, build).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        let verified = verify_response(&set.keys, &headers, &body, unix_now());
        Ok(Answer {
            status,
            headers,
            body,
            verified,
            signed: catering_sync_core::apiv3::request_message("GET", path, timestamp, &nonce, b""),
        })
    }

    /// The key store the client signs and verifies with.
    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.store
    }
}

fn valid_base(url: &str) -> Result<String, ClientError> {
    let base = url.trim_end_matches('/');
    let valid = (base.starts_with("https://") || base.starts_with("http://"))
        && base.splitn(4, '/').nth(3).is_none()
        && reqwest::Url::parse(base).is_ok();
    if valid {
        Ok(base.to_string())
    } else {
        Err(ClientError::BaseUrl(url.to_string()))
    }
}

async fn read(mut response: reqwest::Response) -> Result<Received, Exchange<'static>> {
    {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => return Err(transport(&e)),
            }
        }
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Received {
            status,
            verified: Ok(()),
            retry_after: text("retry-after"),
            request_id: text(header::REQUEST_ID),
            headers,
            body,
        })
    }
}

/// The answer to a signed `GET`.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Raw body.
    pub body: Vec<u8>,
    /// Whether its signature verified with a configured key.
    pub verified: Result<(), super::VerifyError>,
    /// The canonical message the request's signature covers (what WeChat Pay's SIGN_ERROR asks
    /// to compare).
    pub signed: Vec<u8>,
}

struct Received {
    status: u16,
    /// Set by [`WechatPayClient::verify`] for a 2xx.
    verified: Result<(), super::VerifyError>,
    retry_after: Option<String>,
    request_id: Option<String>,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

fn transport(e: &reqwest::Error) -> Exchange<'static> {
    if e.is_timeout() {
        Exchange::Timeout
    } else {
        Exchange::Connection
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    crate::clock::unix_secs()
}
