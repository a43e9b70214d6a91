//! One pure, table-driven function from "what happened to a POST" to what the pipeline does next
//! (SPEC §7). The pipeline matches on [`Disposition`], never on text.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::verify::VerifyError;

/// WeChat Pay's error body: `{"code": …, "message": …, "detail": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// e.g. `PARAM_ERROR`.
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Optional structured detail (field, location, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    /// Parse an error body; `None` when it is not WeChat Pay's error JSON.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }
}

/// What happened to one POST attempt, as seen by the client.
#[derive(Debug, Clone)]
pub enum Exchange<'a> {
    /// An HTTP response arrived.
    Response {
        /// HTTP status code.
        status: u16,
        /// For a 2xx: whether its signature verified. Ignored otherwise (the SDKs do not verify
        /// error responses).
        verified: Result<(), VerifyError>,
        /// `Retry-After`, raw.
        retry_after: Option<&'a str>,
        /// Raw body.
        body: &'a [u8],
        /// `Request-ID`, if any.
        request_id: Option<&'a str>,
    },
    /// No response within the request timeout.
    Timeout,
    /// Could not connect, or the connection broke before a response.
    Connection,
}

/// A final "no" from WeChat Pay, kept for the dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status code.
    pub status: u16,
    /// The parsed error body, if it was one.
    pub error: Option<ApiError>,
    /// `Request-ID`, if any.
    pub request_id: Option<String>,
}

/// Why an attempt may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransientCause {
    /// 2xx whose signature did not verify: possibly forged; count and alert.
    Unverified(VerifyError),
    /// 429: slow down.
    Throttled,
    /// 408 or 5xx.
    Server(u16),
    /// No answer in time.
    Timeout,
    /// Connection refused, reset or dropped.
    Connection,
}

impl TransientCause {
    /// A short, bounded label for metrics and dead-letter headers.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unverified(_) => "unverified",
            Self::Throttled => "throttled",
            Self::Server(_) => "server_error",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
        }
    }
}

/// A retryable outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transient {
    /// What went wrong.
    pub cause: TransientCause,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The parsed error body, when there was one.
    pub error: Option<ApiError>,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Verified 2xx: done, the offset may move past the event.
    Delivered,
    /// Retry with backoff; after the retry budget (and only while WeChat Pay otherwise works), dead-letter as `retries_exhausted`.
    Transient(Transient),
    /// The request itself is wrong: dead-letter as `rejected`, then commit.
    Permanent(Rejection),
    /// 401 (or a redirect): key, serial, mchid, clock or URL is wrong. Never dead-letter; pause
    /// everything, report not ready, retry slowly.
    ConfigFault(Rejection),
}

impl Disposition {
    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "rejected",
            Self::ConfigFault(_) => "config_fault",
        }
    }
}

/// Parse `Retry-After` (delta-seconds or an HTTP-date) relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classify one attempt (SPEC §7), `now` for an HTTP-date `Retry-After`.
pub fn classify(exchange: &Exchange<'_>, now: SystemTime) -> Disposition {
    let (status, verified, retry_after, body, request_id) = match exchange {
        Exchange::Timeout => return transient(TransientCause::Timeout, None, None, None),
        Exchange::Connection => return transient(TransientCause::Connection, None, None, None),
        Exchange::Response {
            status,
            verified,
            retry_after,
            body,
            request_id,
        } => (*status, verified, retry_after, *body, request_id),
    };
    let retry_after = retry_after.and_then(|v| parse_retry_after(v, now));
    let rejection = || Rejection {
        status,
        error: ApiError::parse(body),
        request_id: request_id.map(str::to_string),
    };
    match status {
        200..=299 => match verified {
            Ok(()) => Disposition::Delivered,
            Err(e) => transient(
                TransientCause::Unverified(e.clone()),
                None,
                Some(status),
                None,
            ),
        },
        401 | 300..=399 => Disposition::ConfigFault(rejection()),
        408 => transient(
            TransientCause::Server(status),
            retry_after,
            Some(status),
            ApiError::parse(body),
        ),
        429 => transient(
            TransientCause::Throttled,
            retry_after,
            Some(status),
            ApiError::parse(body),
        ),
        400..=499 => Disposition::Permanent(rejection()),
        500..=599 => transient(
            TransientCause::Server(status),
            retry_after,
            Some(status),
            ApiError::parse(body),
        ),
        // 1xx as a final status, or a code outside the standard range: the peer is not WeChat Pay.
        _ => transient(TransientCause::Server(status), None, Some(status), None),
    }
}

fn transient(
    cause: TransientCause,
    retry_after: Option<Duration>,
    status: Option<u16>,
    error: Option<ApiError>,
) -> Disposition {
    Disposition::Transient(Transient {
        cause,
        retry_after,
        status,
        error,
    })
}
