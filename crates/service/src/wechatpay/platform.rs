//! Platform-certificate mode, as the official SDKs run it (wechatpay-go `core/downloader`,
//! wechatpay-java `RSAAutoCertificateConfig`): the merchant's APIv3 key, a periodic
//! `GET /v3/certificates`, each certificate decrypted (AEAD_AES_256_GCM) and parsed, the answer
//! itself verified, and a refresh when an answer names a serial the service does not have yet.
//!
//! A certificate that decrypts with the APIv3 key is WeChat Pay's (only WeChat Pay and the
//! merchant know the key); the answer listing it must verify with a key already held or with one
//! of the certificates it lists. A certificate verifies answers only inside its validity window
//! (`VerificationKeys::verify`), so one listed ahead of its use is held but not trusted early.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use catering_sync_core::apiv3::certificates::{
    CertificateList, EncryptedResource, ALGORITHM, APIV3_KEY_LEN, NONCE_LEN,
};
use catering_sync_core::apiv3::CERTIFICATES_PATH;

use super::keys::{normalize_serial, VerificationKeys};
use super::verify::{verify_response, VerifyError};
use super::WechatPayClient;

/// The default interval between two downloads: WeChat Pay lists a new certificate 24 h before it
/// signs with it and asks for a download at least every 12 h; wechatpay-java refreshes every
/// 60 min.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);
/// After a failed download, the next try comes this soon (or at the interval, if sooner).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// An answer naming an unknown serial triggers at most one download in this long (a forged or
/// wrong serial must not turn every answer into a download).
pub const UNKNOWN_SERIAL_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// The merchant's APIv3 key: 32 bytes, a secret. `Debug` never shows it.
pub struct ApiV3Key([u8; APIV3_KEY_LEN]);

impl ApiV3Key {
    /// From the key file's text (surrounding whitespace ignored): exactly 32 bytes.
    pub fn from_text(text: &str) -> Result<Self, PlatformError> {
        let bytes = text.trim().as_bytes();
        let key: [u8; APIV3_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| PlatformError::KeyLength(bytes.len()))?;
        Ok(Self(key))
    }

    /// Decrypt an AEAD_AES_256_GCM resource (ciphertext ‖ 16-byte tag, Base64).
    pub fn decrypt(&self, r: &EncryptedResource) -> Result<Vec<u8>, PlatformError> {
        if r.algorithm != ALGORITHM {
            return Err(PlatformError::Algorithm(r.algorithm.clone()));
        }
        let nonce: [u8; NONCE_LEN] = r
            .nonce
            .as_bytes()
            .try_into()
            .map_err(|_| PlatformError::Decrypt("a nonce that is not 12 bytes"))?;
        let mut sealed = base64::engine::general_purpose::STANDARD
            .decode(&r.ciphertext)
            .map_err(|_| PlatformError::Decrypt("a ciphertext that is not Base64"))?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.0).map_err(|_| PlatformError::KeyLength(0))?,
        );
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(r.associated_data.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| {
                PlatformError::Decrypt("an authentication failure (wrong APIv3 key, or tampered)")
            })?;
        Ok(plain.to_vec())
    }
}

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key(redacted)")
    }
}

/// Why a certificate download failed (the certificates held are kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The APIv3 key is not 32 bytes.
    #[error("the APIv3 key must be 32 bytes, found {0}")]
    KeyLength(usize),
    /// No APIv3 key is configured (public-key mode).
    #[error("no APIv3 key configured (wechatpay.apiv3_key_file)")]
    NoKey,
    /// No answer.
    #[error("GET {CERTIFICATES_PATH}: {0}")]
    Transport(String),
    /// An answer other than 200.
    #[error("GET {CERTIFICATES_PATH} answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is not the certificate list.
    #[error("GET {CERTIFICATES_PATH}: not a certificate list: {0}")]
    Body(String),
    /// An algorithm other than AEAD_AES_256_GCM.
    #[error("unsupported encryption algorithm {0:?}")]
    Algorithm(String),
    /// A certificate did not decrypt.
    #[error("a certificate did not decrypt: {0}")]
    Decrypt(&'static str),
    /// A decrypted certificate is not usable.
    #[error("certificate {serial}: {problem}")]
    Certificate {
        /// The listed serial.
        serial: String,
        /// What is wrong.
        problem: String,
    },
    /// The answer's own signature did not verify with a held or a listed key.
    #[error("the certificate list's signature did not verify: {0}")]
    Unverified(VerifyError),
}

/// Parse a certificate list, decrypting each with `key`: the certificates, keyed by serial.
pub fn certificates(key: &ApiV3Key, body: &[u8]) -> Result<VerificationKeys, PlatformError> {
    let list: CertificateList =
        serde_json::from_slice(body).map_err(|e| PlatformError::Body(e.to_string()))?;
    let mut keys = VerificationKeys::new();
    for entry in &list.data {
        let pem = key.decrypt(&entry.encrypt_certificate)?;
        let bad = |problem: String| PlatformError::Certificate {
            serial: entry.serial_no.clone(),
            problem,
        };
        let text = String::from_utf8(pem).map_err(|_| bad("not UTF-8 PEM".into()))?;
        let serial = keys
            .add_certificate_pem(&text)
            .map_err(|e| bad(e.to_string()))?;
        if serial != normalize_serial(&entry.serial_no) {
            return Err(bad(format!("the certificate's own serial is {serial}")));
        }
    }
    Ok(keys)
}

/// Download, decrypt and verify the platform certificates with the client's current keys, and
/// put them in its key store. Returns how many are held.
pub async fn download(client: &WechatPayClient) -> Result<usize, PlatformError> {
    let set = client.key_store().current();
    let key = set.apiv3_key.clone().ok_or(PlatformError::NoKey)?;
    let answer = client
        .get(CERTIFICATES_PATH)
        .await
        .map_err(|e| PlatformError::Transport(e.to_string()))?;
    if answer.status != 200 {
        let body = String::from_utf8_lossy(&answer.body[..answer.body.len().min(256)]);
        return Err(PlatformError::Status {
            status: answer.status,
            body: body.into_owned(),
        });
    }
    let downloaded = certificates(&key, &answer.body)?;
    // Signed with a key held, or (the first download, a rotation) with one it lists.
    if answer.verified.is_err() {
        let mut keys = (*set.keys).clone();
        keys.merge(&downloaded);
        verify_response(
            &keys,
            &answer.headers,
            &answer.body,
            super::client::unix_now(),
        )
        .map_err(PlatformError::Unverified)?;
    }
    let held = downloaded.ids().count();
    client.key_store().set_downloaded(downloaded);
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_32_bytes_and_never_shown() {
        let k = ApiV3Key::from_text(" 0123456789abcdef0123456789ABCDEF\n").unwrap();
        assert_eq!(format!("{k:?}"), "ApiV3Key(redacted)");
        assert_eq!(
            ApiV3Key::from_text("short").unwrap_err(),
            PlatformError::KeyLength(5)
        );
    }

    #[test]
    fn decrypts_what_ring_sealed_and_refuses_a_wrong_key_or_tampering() {
        let key = *b"0123456789abcdef0123456789ABCDEF";
        let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
        let mut data = b"-----BEGIN CERTIFICATE-----".to_vec();
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(*b"61f9c719728a"),
                Aad::from(b"certificate"),
                &mut data,
            )
            .unwrap();
        let resource = |ciphertext: &[u8], aad: &str| EncryptedResource {
            algorithm: ALGORITHM.into(),
            nonce: "61f9c719728a".into(),
            associated_data: aad.into(),
            ciphertext: base64::engine::general_purpose::STANDARD.encode(ciphertext),
        };
        let k = ApiV3Key(key);
        assert_eq!(
            k.decrypt(&resource(&data, "certificate")).unwrap(),
            b"-----BEGIN CERTIFICATE-----"
        );
        assert!(matches!(
            k.decrypt(&resource(&data, "other")),
            Err(PlatformError::Decrypt(_))
        ));
        let wrong = ApiV3Key(*b"0123456789abcdef0123456789ABCDEX");
        assert!(wrong.decrypt(&resource(&data, "certificate")).is_err());
        let mut other = resource(&data, "certificate");
        other.algorithm = "AEAD_SM4_GCM".into();
        assert!(matches!(
            k.decrypt(&other),
            Err(PlatformError::Algorithm(_))
        ));
    }
}
