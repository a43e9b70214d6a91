//! Request signing (APIv3 `WECHATPAY2-SHA256-RSA2048`): the canonical message, the nonce, and the
//! `Authorization` header, built and parsed.

use std::fmt;

use base64::Engine as _;
use rand::Rng;

use super::keys::MerchantKey;

/// The Authorization scheme of APIv3.
pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

const NONCE_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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

/// 32 random characters of `[0-9A-Za-z]`, as the official SDKs make them.
pub fn nonce<R: Rng + ?Sized>(rng: &mut R) -> String {
    (0..32)
        .map(|_| NONCE_ALPHABET[rng.gen_range(0..NONCE_ALPHABET.len())] as char)
        .collect()
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

/// The signing merchant: mchid, certificate serial and private key, which must belong together.
#[derive(Debug)]
pub struct Credentials {
    /// The signing merchant id (configuration, never derived from the body).
    pub mchid: String,
    /// The merchant API certificate serial (hex).
    pub serial_no: String,
    key: MerchantKey,
}

impl Credentials {
    /// Bundle a loaded key with its merchant id and serial.
    pub fn new(mchid: impl Into<String>, serial_no: impl Into<String>, key: MerchantKey) -> Self {
        Self {
            mchid: mchid.into(),
            serial_no: serial_no.into(),
            key,
        }
    }

    /// Sign one request. Pure apart from the signature itself: time and nonce are passed in.
    pub fn authorize(
        &self,
        method: &str,
        canonical_url: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
    ) -> Authorization {
        let message = request_message(method, canonical_url, timestamp, nonce, body);
        Authorization {
            mchid: self.mchid.clone(),
            nonce: nonce.to_string(),
            timestamp: timestamp.to_string(),
            serial_no: self.serial_no.clone(),
            signature: base64::engine::general_purpose::STANDARD.encode(self.key.sign(&message)),
        }
    }

    /// The private key, for benchmarks of the raw signature.
    pub fn key(&self) -> &MerchantKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_message_ends_every_line_with_newline_even_after_a_trailing_newline_body() {
        let m = request_message("post", "/v3/x", 1700000000, "N", b"{}\n");
        assert_eq!(m, b"POST\n/v3/x\n1700000000\nN\n{}\n\n");
        let empty = request_message("GET", "/v3/x?a=1", 1, "N", b"");
        assert_eq!(empty, b"GET\n/v3/x?a=1\n1\nN\n\n");
    }

    #[test]
    fn response_message_for_204_is_timestamp_nonce_and_empty_line() {
        assert_eq!(response_message("1", "abc", b""), b"1\nabc\n\n");
    }

    #[test]
    fn nonce_is_32_alphanumerics() {
        let n = nonce(&mut rand::thread_rng());
        assert_eq!(n.len(), 32);
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
    }

    #[test]
    fn authorization_round_trips_and_accepts_any_order() {
        let a = Authorization {
            mchid: "1900000001".into(),
            nonce: "abc".into(),
            timestamp: "123".into(),
            serial_no: "5157F09E".into(),
            signature: "c2ln".into(),
        };
        assert_eq!(Authorization::parse(&a.to_string()).unwrap(), a);
        let reordered = format!(
            "{AUTH_SCHEME} signature=\"c2ln\", serial_no=\"5157F09E\",timestamp=\"123\",nonce_str=\"abc\",mchid=\"1900000001\""
        );
        assert_eq!(Authorization::parse(&reordered).unwrap(), a);
    }

    #[test]
    fn authorization_parse_rejects_bad_headers() {
        use AuthorizationParseError as E;
        let ok = "mchid=\"1\",nonce_str=\"n\",timestamp=\"1\",serial_no=\"s\",signature=\"x\"";
        assert_eq!(
            Authorization::parse(&format!("Bearer {ok}")),
            Err(E::Scheme)
        );
        assert_eq!(
            Authorization::parse(&format!("{AUTH_SCHEME}{ok}")),
            Err(E::Scheme)
        );
        assert_eq!(
            Authorization::parse(&format!(
                "{AUTH_SCHEME} mchid=\"1\",nonce_str=\"n\",timestamp=\"1\",serial_no=\"s\""
            )),
            Err(E::Missing("signature"))
        );
        assert_eq!(
            Authorization::parse(&format!("{AUTH_SCHEME} {ok},mchid=\"2\"")),
            Err(E::Duplicate("mchid".into()))
        );
        assert!(matches!(
            Authorization::parse(&format!("{AUTH_SCHEME} {},mchid=1", &ok[10..])),
            Err(E::Malformed(_))
        ));
        assert!(matches!(
            Authorization::parse(&format!("{AUTH_SCHEME} {ok},extra=\"1\"")),
            Err(E::Malformed(_))
        ));
    }
}
