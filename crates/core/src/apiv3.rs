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

/// The answer of `GET /v3/certificates` (platform-certificate mode): WeChat Pay's platform
/// certificates, each encrypted with the merchant's APIv3 key (AEAD_AES_256_GCM), so only the
/// merchant can read them and a certificate that decrypts is WeChat Pay's.
pub mod certificates {
    use serde::{Deserialize, Serialize};

    /// The only algorithm WeChat Pay uses for `encrypt_certificate`.
    pub const ALGORITHM: &str = "AEAD_AES_256_GCM";
    /// Bytes of an APIv3 key (32 ASCII characters, the AES-256 key as is).
    pub const APIV3_KEY_LEN: usize = 32;
    /// Bytes of an AEAD_AES_256_GCM nonce (12 ASCII characters).
    pub const NONCE_LEN: usize = 12;

    /// `{"data": [...]}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CertificateList {
        /// Every certificate in use or about to be (a new one is listed 24 h before use).
        pub data: Vec<CertificateEntry>,
    }

    /// One platform certificate.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CertificateEntry {
        /// Its serial (hex), as `Wechatpay-Serial` names it.
        pub serial_no: String,
        /// RFC 3339, e.g. `2018-06-08T10:34:56+08:00`.
        pub effective_time: String,
        /// RFC 3339.
        pub expire_time: String,
        /// The PEM, encrypted.
        pub encrypt_certificate: EncryptedResource,
    }

    /// An AEAD_AES_256_GCM ciphertext (Base64, the 16-byte tag appended) with its nonce and
    /// associated data, as WeChat Pay encrypts certificates and notifications.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EncryptedResource {
        /// `AEAD_AES_256_GCM`.
        pub algorithm: String,
        /// 12 characters.
        pub nonce: String,
        /// Authenticated, not encrypted (`certificate`).
        pub associated_data: String,
        /// Base64 of ciphertext ‖ tag.
        pub ciphertext: String,
    }
}
