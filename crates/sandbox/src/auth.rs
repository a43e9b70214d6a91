//! Request authentication as WeChat Pay does it, with an implementation independent of the
//! client's (the pure-Rust `rsa` crate, not ring): scheme, known mchid and serial, timestamp
//! within 5 minutes, nonce not seen before, RSA-SHA256 over the canonical message.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::Engine as _;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use sha2::Sha256;

use catering_sync_core::apiv3::{request_message, Authorization};

/// WeChat Pay rejects a timestamp more than this far from its clock.
pub const MAX_REQUEST_SKEW_SECS: i64 = 300;
/// Remembered nonces, at most (oldest forgotten first).
const MAX_NONCES: usize = 1_000_000;

/// Why a request was refused with 401 SIGN_ERROR. The message mirrors WeChat Pay's wording
/// closely enough for a support engineer to tell the cases apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No Authorization header.
    #[error("Authorization header is missing")]
    Missing,
    /// Not parseable.
    #[error("Authorization header is malformed: {0}")]
    Malformed(String),
    /// Unknown merchant.
    #[error("mchid {0} is not known")]
    UnknownMchid(String),
    /// Known merchant, unknown certificate serial.
    #[error("serial_no does not match a certificate of the merchant")]
    UnknownSerial,
    /// Timestamp not an integer, or too far from now.
    #[error("timestamp is out of range ({0} s from server time)")]
    Skewed(i64),
    /// The timestamp is not a number.
    #[error("timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// Nonce reused within the window.
    #[error("nonce_str has been used before")]
    ReusedNonce,
    /// Nonce empty or longer than 32 characters.
    #[error("nonce_str must be 1-32 characters")]
    BadNonce,
    /// The signature is not Base64 of the key's size.
    #[error("signature is not valid Base64 of an RSA-2048 signature")]
    BadEncoding,
    /// Does not verify.
    #[error("signature verification failed")]
    Mismatch,
}

/// A merchant's API certificate as WeChat Pay knows it.
#[derive(Clone)]
pub struct MerchantIdentity {
    /// Merchant id.
    pub mchid: String,
    /// Certificate serial (hex, compared case-insensitively).
    pub serial: String,
    /// The public key.
    pub public_key: RsaPublicKey,
}

/// Verifies requests; remembers nonces.
pub struct RequestAuthenticator {
    merchants: HashMap<(String, String), VerifyingKey<Sha256>>,
    known_mchids: std::collections::HashSet<String>,
    nonces: Mutex<NonceCache>,
}

#[derive(Default)]
struct NonceCache {
    seen: HashMap<(String, String), i64>,
    order: VecDeque<((String, String), i64)>,
}

impl NonceCache {
    /// Record a nonce; false when already seen. Forgets nonces older than twice the skew window.
    fn insert(&mut self, key: (String, String), ts: i64, now: i64) -> bool {
        while let Some((k, t)) = self.order.front() {
            if *t >= now - 2 * MAX_REQUEST_SKEW_SECS && self.order.len() < MAX_NONCES {
                break;
            }
            self.seen.remove(k);
            self.order.pop_front();
        }
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key.clone(), ts);
        self.order.push_back((key, now));
        true
    }
}

impl RequestAuthenticator {
    /// Authenticator for these merchants.
    pub fn new(merchants: &[MerchantIdentity]) -> Self {
        Self {
            merchants: merchants
                .iter()
                .map(|m| {
                    (
                        (m.mchid.clone(), m.serial.to_ascii_uppercase()),
                        VerifyingKey::<Sha256>::new(m.public_key.clone()),
                    )
                })
                .collect(),
            known_mchids: merchants.iter().map(|m| m.mchid.clone()).collect(),
            nonces: Mutex::new(NonceCache::default()),
        }
    }

    /// Check one request. `verify_signature` false skips only the RSA check (benchmark sampling).
    pub fn authenticate(
        &self,
        header: Option<&str>,
        method: &str,
        canonical_url: &str,
        body: &[u8],
        now: i64,
        verify_signature: bool,
    ) -> Result<Authorization, AuthError> {
        let auth = Authorization::parse(header.ok_or(AuthError::Missing)?)
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        if !self.known_mchids.contains(&auth.mchid) {
            return Err(AuthError::UnknownMchid(auth.mchid));
        }
        let key = self
            .merchants
            .get(&(auth.mchid.clone(), auth.serial_no.to_ascii_uppercase()))
            .ok_or(AuthError::UnknownSerial)?;
        let ts: i64 = auth
            .timestamp
            .parse()
            .map_err(|_| AuthError::BadTimestamp)?;
        if (now - ts).abs() > MAX_REQUEST_SKEW_SECS {
            return Err(AuthError::Skewed(now - ts));
        }
        if auth.nonce.is_empty() || auth.nonce.len() > 32 {
            return Err(AuthError::BadNonce);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&auth.signature)
            .map_err(|_| AuthError::BadEncoding)?;
        let signature = Signature::try_from(raw.as_slice()).map_err(|_| AuthError::BadEncoding)?;
        if verify_signature {
            let message = request_message(method, canonical_url, ts, &auth.nonce, body);
            key.verify(&message, &signature)
                .map_err(|_| AuthError::Mismatch)?;
        }
        // Only a request that verified burns its nonce, as a replay must carry the same one.
        let fresh = self
            .nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((auth.mchid.clone(), auth.nonce.clone()), ts, now);
        if !fresh {
            return Err(AuthError::ReusedNonce);
        }
        Ok(auth)
    }
}
