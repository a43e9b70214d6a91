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
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: super::PRODUCTION_BASE_URL.to_string(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            wechatpay_serial: None,
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

/// Client for the sync-status endpoint.
#[derive(Debug, Clone)]
pub struct WechatPayClient {
    http: reqwest::Client,
    base: String,
    url: String,
    store: Arc<KeyStore>,
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
        };
        Self::with_store(config, Arc::new(KeyStore::new(set)))
    }

    /// Build the client on a key store that may be replaced at run time (its
    /// `wechatpay_serial` wins over `config`'s).
    pub fn with_store(config: &ClientConfig, store: Arc<KeyStore>) -> Result<Self, ClientError> {
        let base = config.base_url.trim_end_matches('/');
        let valid = (base.starts_with("https://") || base.starts_with("http://"))
            && base.splitn(4, '/').nth(3).is_none()
            && reqwest::Url::parse(base).is_ok();
        if !valid {
            return Err(ClientError::BaseUrl(config.base_url.clone()));
        }
        let http = reqwest::Client::builder()
            .user_agent(user_agent())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            base: base.to_string(),
            url: format!("{base}{SYNC_STATUS_PATH}"),
            store,
        })
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
        let mut request = self
            .http
            .post(&self.url)
            .header(http::header::AUTHORIZATION, auth.to_string())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(serial) = &set.wechatpay_serial {
            request = request.header("Wechatpay-Serial", serial.as_str());
        }
        let outcome = match request.send().await {
            Ok(response) => read(response, &set.keys).await,
            Err(e) => Err(transport(&e)),
        };
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
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header(http::header::AUTHORIZATION, auth.to_string())
            .header(http::header::ACCEPT, "application/json");
        if let Some(serial) = &set.wechatpay_serial {
            request = request.header("Wechatpay-Serial", serial.as_str());
        }
        let response = request.send().await?;
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

async fn read(
    mut response: reqwest::Response,
    keys: &VerificationKeys,
) -> Result<Received, Exchange<'static>> {
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
        let verified = if (200..300).contains(&status) {
            verify_response(keys, &headers, &body, unix_now())
        } else {
            Ok(())
        };
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Received {
            status,
            verified,
            retry_after: text("retry-after"),
            request_id: text(header::REQUEST_ID),
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
    verified: Result<(), super::VerifyError>,
    retry_after: Option<String>,
    request_id: Option<String>,
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
