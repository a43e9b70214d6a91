//! Response verification: SHA256withRSA over `TIMESTAMP\nNONCE\nBODY\n`, with the key named by
//! `Wechatpay-Serial`, and a timestamp no more than 300 s from local time.

use base64::Engine as _;
use http::HeaderMap;

use super::keys::{KeyCheck, VerificationKeys};
use super::sign::response_message;

pub use catering_sync_core::apiv3::{MAX_RESPONSE_SKEW_SECS, SIGNTEST_PREFIX};

/// Response header names.
pub mod header {
    /// Unix seconds of the response.
    pub const TIMESTAMP: &str = "wechatpay-timestamp";
    /// Response nonce.
    pub const NONCE: &str = "wechatpay-nonce";
    /// Base64 signature.
    pub const SIGNATURE: &str = "wechatpay-signature";
    /// Serial of the key that signed.
    pub const SERIAL: &str = "wechatpay-serial";
    /// WeChat Pay's request id.
    pub const REQUEST_ID: &str = "request-id";
}

/// Why a response did not verify. Each is treated as possible tampering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A signature header is absent (or not visible ASCII).
    #[error("missing response header {0}")]
    MissingHeader(&'static str),
    /// A `WECHATPAY/SIGNTEST/` probe: unverified by design.
    #[error("signature is a WECHATPAY/SIGNTEST/ probe")]
    SignTestProbe,
    /// No configured key has this serial.
    #[error("unknown Wechatpay-Serial {0:?}")]
    UnknownSerial(String),
    /// The platform certificate with this serial is outside its validity window.
    #[error("the platform certificate {0:?} is outside its validity window")]
    KeyNotValid(String),
    /// `Wechatpay-Timestamp` is not an integer.
    #[error("malformed Wechatpay-Timestamp")]
    BadTimestamp,
    /// The timestamp is too far from local time.
    #[error("Wechatpay-Timestamp is {0} s away from local time (max {MAX_RESPONSE_SKEW_SECS})")]
    Skewed(i64),
    /// The signature is not Base64.
    #[error("Wechatpay-Signature is not Base64")]
    BadEncoding,
    /// The signature does not match.
    #[error("response signature does not match")]
    Mismatch,
}

impl VerifyError {
    /// One failure of each kind (payloads arbitrary): the signature-failure metric's label set
    /// is derived from it.
    pub fn each() -> [Self; 8] {
        // A new variant fails to compile here until it is matched; list it in the array too
        // (a unit test checks that the labels are distinct).
        let _every_variant_listed = |e: &Self| match e {
            Self::MissingHeader(_)
            | Self::SignTestProbe
            | Self::UnknownSerial(_)
            | Self::KeyNotValid(_)
            | Self::BadTimestamp
            | Self::Skewed(_)
            | Self::BadEncoding
            | Self::Mismatch => (),
        };
        [
            Self::MissingHeader(header::SIGNATURE),
            Self::SignTestProbe,
            Self::UnknownSerial(String::new()),
            Self::KeyNotValid(String::new()),
            Self::BadTimestamp,
            Self::Skewed(0),
            Self::BadEncoding,
            Self::Mismatch,
        ]
    }

    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::SignTestProbe => "signtest",
            Self::UnknownSerial(_) => "unknown_serial",
            Self::KeyNotValid(_) => "key_not_valid",
            Self::BadTimestamp => "bad_timestamp",
            Self::Skewed(_) => "skewed",
            Self::BadEncoding => "bad_encoding",
            Self::Mismatch => "mismatch",
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// Verify a response's signature headers against its raw `body` at local time `now_unix`.
pub fn verify_response(
    keys: &VerificationKeys,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let signature = header(headers, header::SIGNATURE)?;
    if signature.starts_with(SIGNTEST_PREFIX) {
        return Err(VerifyError::SignTestProbe);
    }
    let timestamp = header(headers, header::TIMESTAMP)?;
    let nonce = header(headers, header::NONCE)?;
    let serial = header(headers, header::SERIAL)?;
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now_unix.saturating_sub(ts);
    if skew.abs() > MAX_RESPONSE_SKEW_SECS {
        return Err(VerifyError::Skewed(skew));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| VerifyError::BadEncoding)?;
    let message = response_message(timestamp, nonce, body);
    match keys.verify(serial, &message, &raw, now_unix) {
        KeyCheck::Unknown => Err(VerifyError::UnknownSerial(serial.to_string())),
        KeyCheck::NotValid => Err(VerifyError::KeyNotValid(serial.to_string())),
        KeyCheck::Checked(true) => Ok(()),
        KeyCheck::Checked(false) => Err(VerifyError::Mismatch),
    }
}
