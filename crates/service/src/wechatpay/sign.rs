//! Request signing (APIv3 `WECHATPAY2-SHA256-RSA2048`) with the merchant key: the nonce and the
//! signed `Authorization` header (the canonical messages and the header's format are the core's,
//! `catering_sync_core::apiv3`, re-exported here).

use base64::Engine as _;
use rand::Rng;

use super::keys::MerchantKey;

pub use catering_sync_core::apiv3::{
    request_message, response_message, Authorization, AuthorizationParseError, AUTH_SCHEME,
    NONCE_ALPHABET,
};

/// 32 random characters of `[0-9A-Za-z]`, as the official SDKs make them.
pub fn nonce<R: Rng + ?Sized>(rng: &mut R) -> String {
    (0..32)
        .map(|_| NONCE_ALPHABET[rng.gen_range(0..NONCE_ALPHABET.len())] as char)
        .collect()
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
