//! Signing the sandbox's responses as WeChat Pay does (`Wechatpay-*` headers), with the `rsa`
//! crate. In benchmark mode one signature per second is reused for every 204 so the sandbox does
//! not dominate the CPU.

use std::sync::Mutex;

use base64::Engine as _;
use rand::Rng;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;

use catering_sync_core::apiv3::{response_message, NONCE_ALPHABET, SIGNTEST_PREFIX};

use super::faults::SignatureFault;

/// 32 random characters of the APIv3 nonce alphabet, as WeChat Pay's responses carry.
fn response_nonce<R: Rng>(rng: &mut R) -> String {
    (0..32)
        .map(|_| NONCE_ALPHABET[rng.gen_range(0..NONCE_ALPHABET.len())] as char)
        .collect()
}

/// The four signature headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Wechatpay-Timestamp`.
    pub timestamp: String,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Signature`.
    pub signature: String,
    /// `Wechatpay-Serial`.
    pub serial: String,
}

/// Signs responses with WeChat Pay's private key.
pub struct ResponseSigner {
    key: SigningKey<Sha256>,
    key_id: String,
    reuse_per_second: bool,
    cached: Mutex<Option<(i64, SignedHeaders)>>,
}

impl ResponseSigner {
    /// A signer for `key_id`; `reuse_per_second` is benchmark mode.
    pub fn new(private_key: RsaPrivateKey, key_id: String, reuse_per_second: bool) -> Self {
        Self {
            key: SigningKey::<Sha256>::new(private_key),
            key_id,
            reuse_per_second,
            cached: Mutex::new(None),
        }
    }

    /// Headers for a response with `body`, at `now`.
    pub fn sign(&self, body: &[u8], now: i64, fault: SignatureFault) -> SignedHeaders {
        let mut headers = if body.is_empty() && self.reuse_per_second {
            let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            match &*cached {
                Some((second, h)) if *second == now => h.clone(),
                _ => {
                    let h = self.fresh(body, now);
                    *cached = Some((now, h.clone()));
                    h
                }
            }
        } else {
            self.fresh(body, now)
        };
        match fault {
            SignatureFault::None => {}
            SignatureFault::Bad => {
                // A valid-looking signature over a different message.
                let other = self.fresh(b"tampered", now);
                headers.signature = other.signature;
            }
            SignatureFault::SignTest => {
                headers.signature = format!("{SIGNTEST_PREFIX}{}", headers.signature);
            }
        }
        headers
    }

    fn fresh(&self, body: &[u8], now: i64) -> SignedHeaders {
        let timestamp = now.to_string();
        let nonce = response_nonce(&mut rand::thread_rng());
        let message = response_message(&timestamp, &nonce, body);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(self.key.sign(&message).to_bytes());
        SignedHeaders {
            timestamp,
            nonce,
            signature,
            serial: self.key_id.clone(),
        }
    }
}

/// A WeChat Pay style request id.
pub fn request_id() -> String {
    let mut rng = rand::thread_rng();
    format!("08{:016X}{:016X}", rng.gen::<u64>(), rng.gen::<u64>())
}
