//! The APIv3 conversation's pure parts (`WECHATPAY2-SHA256-RSA2048`): the sync-status path, the
//! canonical messages a request and a response signature cover, the `Authorization` header
//! built and parsed, and the response-verification constants. Signing and verifying themselves
//! (keys, RSA) are the service's and the sandbox's, each with its own implementation.

use std::fmt;

/// Path of the sync-status endpoint; also its canonical URL for signing.
pub const SYNC_STATUS_PATH: &str = "/v3/catering/orders/sync-status";

/// The platform-certificate download (`wechatpay check` asks it: signed, changes nothing).
pub const CERTIFICATES_PATH: &str = "/v3/certificates";

/// Largest accepted distance between `Wechatpay-Timestamp` and local time.
pub const MAX_RESPONSE_SKEW_SECS: i64 = 300;

/// Prefix of the deliberately wrong signatures WeChat Pay sends to check that merchants verify.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// The characters of a nonce (32 of them, as the official SDKs make them).
pub const NONCE_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The Authorization scheme of APIv3.
pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// The message a request signature covers: `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`.
/// Every line ends with `\n`, the last one too, even if the body itself ends with one.
pub fn request_message(
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let head = format!(
        "{}\n{canonical_url}\n{timestamp}\n{nonce}\n",
        method.to_ascii_uppercase()
    );
    let mut msg = Vec::with_capacity(head.len() + body.len() + 1);
    msg.extend_from_slice(head.as_bytes());
    msg.extend_from_slice(body);
    msg.push(b'\n');
    msg
}

/// The message a response signature covers: `TIMESTAMP\nNONCE\nBODY\n`.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(nonce.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(body);
    msg.push(b'\n');
    msg
}

/// The five parameters of an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The merchant making the request (the `sp_mchid` in service-provider mode).
    pub mchid: String,
    /// The request nonce.
    pub nonce: String,
    /// Unix seconds, as sent.
    pub timestamp: String,
    /// The merchant API certificate serial (hex).
    pub serial_no: String,
    /// Standard Base64 of the signature.
    pub signature: String,
}

impl fmt::Debug for Authorization {
    // A signature is not a secret, but a whole header invites copy-paste replay: keep logs short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("mchid", &self.mchid)
            .field("serial_no", &self.serial_no)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{AUTH_SCHEME} mchid=\"{}\",nonce_str=\"{}\",timestamp=\"{}\",serial_no=\"{}\",signature=\"{}\"",
            self.mchid, self.nonce, self.timestamp, self.serial_no, self.signature
        )
    }
}

/// Why an `Authorization` header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationParseError {
    /// Not `WECHATPAY2-SHA256-RSA2048 …`.
    #[error("unsupported authorization scheme")]
    Scheme,
    /// A parameter is not `key="value"`.
    #[error("malformed parameter {0:?}")]
    Malformed(String),
    /// A parameter given twice.
    #[error("duplicate parameter {0}")]
    Duplicate(String),
    /// A required parameter is missing.
    #[error("missing parameter {0}")]
    Missing(&'static str),
}

impl Authorization {
    /// Parse a header value: the scheme, then five `key="value"` pairs, comma-separated, in any
    /// order. Unknown parameters are rejected, as is anything not quoted.
    pub fn parse(header: &str) -> Result<Self, AuthorizationParseError> {
        let rest = header
            .trim()
            .strip_prefix(AUTH_SCHEME)
            .filter(|r| r.starts_with(' '))
            .ok_or(AuthorizationParseError::Scheme)?;
        let mut fields: [Option<String>; 5] = Default::default();
        const NAMES: [&str; 5] = ["mchid", "nonce_str", "timestamp", "serial_no", "signature"];
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| AuthorizationParseError::Malformed(part.trim().to_string()))?;
            let value = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|v| !v.contains('"'))
                .ok_or_else(|| AuthorizationParseError::Malformed(k.to_string()))?;
            let i = NAMES
                .iter()
                .position(|n| *n == k)
                .ok_or_else(|| AuthorizationParseError::Malformed(k.to_string()))?;
            if fields[i].replace(value.to_string()).is_some() {
                return Err(AuthorizationParseError::Duplicate(k.to_string()));
            }
        }
        let mut take = |i: usize| {
            fields[i]
                .take()
                .ok_or(AuthorizationParseError::Missing(NAMES[i]))
        };
        Ok(Self {
            mchid: take(0)?,
            nonce: take(1)?,
            timestamp: take(2)?,
            serial_no: take(3)?,
            signature: take(4)?,
        })
    }
}

/// The numeric suffix of a `Request-ID` (after its last `-`): WeChat Pay's internal error code,
/// what its support asks for beside the id.
pub fn request_id_code(request_id: &str) -> Option<u64> {
    let (_, code) = request_id.rsplit_once('-')?;
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_code_is_the_numeric_suffix() {
        assert_eq!(
            request_id_code("08F78BB5AF0610D302189F0F2029CE8E2D8D030C-268435461"),
            Some(268_435_461)
        );
        assert_eq!(request_id_code("08F78BB5AF0610D302189F0F20"), None);
        assert_eq!(request_id_code("08F7-"), None);
        assert_eq!(request_id_code("08F7-12a"), None);
    }
}
