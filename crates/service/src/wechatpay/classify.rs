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
    /// 202 ("accepted, not processed yet: repeat the request") or a 2xx other than 200/204.
    NotProcessed(u16),
    /// 408 or 5xx.
    Server(u16),
    /// No answer in time.
    Timeout,
    /// Connection refused, reset or dropped.
    Connection,
}

impl TransientCause {
    /// One cause of each kind (payloads arbitrary): the retry metric's label set is derived
    /// from it.
    pub fn each() -> [Self; 6] {
        // A new variant fails to compile here until it is matched; list it in the array too
        // (a unit test checks that the labels are distinct).
        let _every_variant_listed = |c: &Self| match c {
            Self::Unverified(_)
            | Self::Throttled
            | Self::NotProcessed(_)
            | Self::Server(_)
            | Self::Timeout
            | Self::Connection => (),
        };
        [
            Self::Unverified(VerifyError::Mismatch),
            Self::Throttled,
            Self::NotProcessed(202),
            Self::Server(500),
            Self::Timeout,
            Self::Connection,
        ]
    }

    /// A short, bounded label for metrics and dead-letter headers.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unverified(_) => "unverified",
            Self::Throttled => "throttled",
            Self::NotProcessed(_) => "not_processed",
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
    /// WeChat Pay's `Request-ID`, when it answered with one.
    pub request_id: Option<String>,
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
    /// A fault of the deployment, not of one order: 401 (key, serial, mchid, clock), 403
    /// `NO_AUTH` (API not enabled, IP not allow-listed), 404/405 or a redirect (wrong base URL or
    /// path), a header-level 400 `INVALID_REQUEST` (Accept, User-Agent). Never dead-letter; pause
    /// everything, report not ready, probe slowly.
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

/// Classify one attempt (SPEC §7), `now` for an HTTP-date `Retry-After`. A transient outcome
/// keeps the answer's `Request-ID`, as a rejection does.
pub fn classify(exchange: &Exchange<'_>, now: SystemTime) -> Disposition {
    let mut disposition = classify_answer(exchange, now);
    if let (
        Disposition::Transient(t),
        Exchange::Response {
            request_id: Some(id),
            ..
        },
    ) = (&mut disposition, exchange)
    {
        t.request_id = Some((*id).to_string());
    }
    disposition
}

fn classify_answer(exchange: &Exchange<'_>, now: SystemTime) -> Disposition {
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
            // Only 204 (and a verified 200) mean "synced"; 202 is "not processed yet, repeat".
            Ok(()) if matches!(status, 200 | 204) => Disposition::Delivered,
            Ok(()) => transient(
                TransientCause::NotProcessed(status),
                retry_after,
                Some(status),
                None,
            ),
            Err(e) => transient(
                TransientCause::Unverified(e.clone()),
                None,
                Some(status),
                None,
            ),
        },
        401 | 404 | 405 | 300..=399 => Disposition::ConfigFault(rejection()),
        400 | 403 if deployment_fault(status, body) => Disposition::ConfigFault(rejection()),
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

/// A 400 or 403 that is the deployment's fault rather than the body's: 403 `NO_AUTH` (or a 403
/// without WeChat Pay's error body: a proxy or allow-list in front of it), and 400
/// `INVALID_REQUEST` unless its detail places the problem in the body. A body-level
/// `PARAM_ERROR` stays a per-event rejection.
fn deployment_fault(status: u16, body: &[u8]) -> bool {
    let error = ApiError::parse(body);
    match status {
        403 => error.is_none_or(|e| e.code == "NO_AUTH"),
        400 => error.is_some_and(|e| {
            e.code == "INVALID_REQUEST"
                && e.detail
                    .as_ref()
                    .and_then(|d| d.get("location"))
                    .and_then(serde_json::Value::as_str)
                    != Some("body")
        }),
        _ => false,
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
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: fn() -> SystemTime = || SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_218_096);

    fn response<'a>(
        status: u16,
        verified: Result<(), VerifyError>,
        retry_after: Option<&'a str>,
        body: &'a [u8],
    ) -> Exchange<'a> {
        Exchange::Response {
            status,
            verified,
            retry_after,
            body,
            request_id: Some("08ABC"),
        }
    }

    fn err(code: &str) -> Vec<u8> {
        format!(r#"{{"code":"{code}","message":"m","detail":{{"field":"f"}}}}"#).into_bytes()
    }

    /// Every HTTP row of SPEC §7, plus transport failures, as one table:
    /// (status, verified?, Retry-After, body) → (label, transient cause, retry-after seconds).
    #[test]
    fn classification_table_covers_every_row_of_spec_section_7() {
        use TransientCause as C;
        let ok = || Ok(());
        let bad = || Err(VerifyError::Mismatch);
        let probe = || Err(VerifyError::SignTestProbe);
        type Row = (
            u16,
            Result<(), VerifyError>,
            Option<&'static str>,
            Vec<u8>,
            &'static str,
            Option<C>,
            Option<u64>,
        );
        let rows: Vec<Row> = vec![
            // 204 (or a 200) with a valid response signature: done.
            (204, ok(), None, vec![], "delivered", None, None),
            (200, ok(), None, vec![], "delivered", None, None),
            // 202 "accepted, not processed yet: repeat the request", and any other 2xx: retry.
            (
                202,
                ok(),
                None,
                vec![],
                "transient",
                Some(C::NotProcessed(202)),
                None,
            ),
            (
                201,
                ok(),
                None,
                vec![],
                "transient",
                Some(C::NotProcessed(201)),
                None,
            ),
            // 2xx with a missing or invalid signature: retry (possible tampering).
            (
                204,
                bad(),
                None,
                vec![],
                "transient",
                Some(C::Unverified(VerifyError::Mismatch)),
                None,
            ),
            (
                204,
                probe(),
                None,
                vec![],
                "transient",
                Some(C::Unverified(VerifyError::SignTestProbe)),
                None,
            ),
            (
                204,
                Err(VerifyError::MissingHeader("wechatpay-signature")),
                None,
                vec![],
                "transient",
                Some(C::Unverified(VerifyError::MissingHeader(
                    "wechatpay-signature",
                ))),
                None,
            ),
            // 400 PARAM_ERROR (a body rule), body-level INVALID_REQUEST, 403 other than NO_AUTH,
            // other 4xx: dead-letter (rejected).
            (400, bad(), None, err("PARAM_ERROR"), "rejected", None, None),
            (
                400,
                ok(),
                None,
                br#"{"code":"INVALID_REQUEST","message":"m","detail":{"location":"body"}}"#
                    .to_vec(),
                "rejected",
                None,
                None,
            ),
            (
                400,
                ok(),
                None,
                b"not json".to_vec(),
                "rejected",
                None,
                None,
            ),
            (403, ok(), None, err("RULE_LIMIT"), "rejected", None, None),
            (409, ok(), None, vec![], "rejected", None, None),
            (
                422,
                ok(),
                None,
                b"not json".to_vec(),
                "rejected",
                None,
                None,
            ),
            // Deployment faults: header-level 400 INVALID_REQUEST, 403 NO_AUTH (or a bare 403),
            // 404/405 (wrong base URL or path).
            (
                400,
                ok(),
                None,
                err("INVALID_REQUEST"),
                "config_fault",
                None,
                None,
            ),
            (
                400,
                ok(),
                None,
                br#"{"code":"INVALID_REQUEST","message":"m","detail":{"location":"header"}}"#
                    .to_vec(),
                "config_fault",
                None,
                None,
            ),
            (403, ok(), None, err("NO_AUTH"), "config_fault", None, None),
            (
                403,
                ok(),
                None,
                b"<html>".to_vec(),
                "config_fault",
                None,
                None,
            ),
            (
                404,
                ok(),
                None,
                err("RESOURCE_NOT_EXISTS"),
                "config_fault",
                None,
                None,
            ),
            (404, ok(), None, vec![], "config_fault", None, None),
            (405, ok(), None, vec![], "config_fault", None, None),
            // 401 SIGN_ERROR: configuration fault. So is a redirect (wrong base URL).
            (
                401,
                ok(),
                None,
                err("SIGN_ERROR"),
                "config_fault",
                None,
                None,
            ),
            (301, ok(), None, vec![], "config_fault", None, None),
            (307, ok(), None, vec![], "config_fault", None, None),
            // 429: back off, honour Retry-After (seconds or HTTP-date).
            (
                429,
                ok(),
                Some("5"),
                err("FREQUENCY_LIMITED"),
                "transient",
                Some(C::Throttled),
                Some(5),
            ),
            (
                429,
                ok(),
                Some("Thu, 27 Nov 2025 04:35:06 GMT"),
                err("RATE_LIMITED"),
                "transient",
                Some(C::Throttled),
                Some(10),
            ),
            (
                429,
                ok(),
                None,
                vec![],
                "transient",
                Some(C::Throttled),
                None,
            ),
            (
                429,
                ok(),
                Some("soon"),
                vec![],
                "transient",
                Some(C::Throttled),
                None,
            ),
            // 408 and 5xx: retry with backoff.
            (
                408,
                ok(),
                None,
                vec![],
                "transient",
                Some(C::Server(408)),
                None,
            ),
            (
                500,
                ok(),
                None,
                err("SYSTEM_ERROR"),
                "transient",
                Some(C::Server(500)),
                None,
            ),
            (
                502,
                ok(),
                None,
                vec![],
                "transient",
                Some(C::Server(502)),
                None,
            ),
            (
                503,
                ok(),
                Some("2"),
                err("SERVICE_UNAVAILABLE"),
                "transient",
                Some(C::Server(503)),
                Some(2),
            ),
            (
                504,
                ok(),
                None,
                vec![],
                "transient",
                Some(C::Server(504)),
                None,
            ),
        ];
        for (status, verified, retry_after, body, label, cause, retry_secs) in rows {
            let d = classify(&response(status, verified, retry_after, &body), NOW());
            assert_eq!(d.label(), label, "status {status}: {d:?}");
            if let Disposition::Transient(t) = &d {
                assert_eq!(Some(&t.cause), cause.as_ref(), "status {status}");
                assert_eq!(
                    t.retry_after,
                    retry_secs.map(Duration::from_secs),
                    "status {status}"
                );
            } else {
                assert!(cause.is_none(), "status {status} expected transient");
            }
        }
        assert_eq!(classify(&Exchange::Timeout, NOW()).label(), "transient");
        assert!(matches!(
            classify(&Exchange::Timeout, NOW()),
            Disposition::Transient(Transient {
                cause: TransientCause::Timeout,
                ..
            })
        ));
        assert!(matches!(
            classify(&Exchange::Connection, NOW()),
            Disposition::Transient(Transient {
                cause: TransientCause::Connection,
                ..
            })
        ));
    }

    #[test]
    fn rejections_keep_code_message_detail_and_request_id() {
        let body = err("PARAM_ERROR");
        match classify(&response(400, Ok(()), None, &body), NOW()) {
            Disposition::Permanent(r) => {
                assert_eq!(r.status, 400);
                assert_eq!(r.request_id.as_deref(), Some("08ABC"));
                let e = r.error.unwrap();
                assert_eq!((e.code.as_str(), e.message.as_str()), ("PARAM_ERROR", "m"));
                assert_eq!(e.detail.unwrap()["field"], "f");
            }
            other => panic!("{other:?}"),
        }
        match classify(&response(401, Ok(()), None, b"<html>"), NOW()) {
            Disposition::ConfigFault(r) => assert_eq!((r.status, r.error), (401, None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(" 3 ", NOW()),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_retry_after("-1", NOW()), None);
    }
}
