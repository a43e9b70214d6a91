//! `GET /v3/certificates` in platform-certificate mode: each listed certificate's PEM encrypted
//! with the merchant's APIv3 key (AEAD_AES_256_GCM, associated data `certificate`, a fresh
//! 12-character nonce), with the `aes-gcm` crate (the service decrypts with ring).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use rand::Rng;

use catering_sync_core::apiv3::certificates::{
    CertificateEntry, CertificateList, EncryptedResource, ALGORITHM, NONCE_LEN,
};
use catering_sync_core::apiv3::NONCE_ALPHABET;

use crate::keygen::PlatformCertificate;

/// Associated data of an encrypted certificate, as WeChat Pay sets it.
pub(crate) const ASSOCIATED_DATA: &str = "certificate";

/// Encrypt `plaintext` as WeChat Pay does; `None` for a key that is not 32 bytes.
pub(crate) fn encrypt(apiv3_key: &str, plaintext: &[u8]) -> Option<EncryptedResource> {
    let cipher = Aes256Gcm::new_from_slice(apiv3_key.as_bytes()).ok()?;
    let mut rng = rand::thread_rng();
    let nonce: String = (0..NONCE_LEN)
        .map(|_| NONCE_ALPHABET[rng.gen_range(0..NONCE_ALPHABET.len())] as char)
        .collect();
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: plaintext,
                aad: ASSOCIATED_DATA.as_bytes(),
            },
        )
        .ok()?;
    Some(EncryptedResource {
        algorithm: ALGORITHM.to_string(),
        nonce,
        associated_data: ASSOCIATED_DATA.to_string(),
        ciphertext: base64::engine::general_purpose::STANDARD.encode(sealed),
    })
}

fn rfc3339(unix: i64) -> String {
    // WeChat Pay writes Beijing time with its offset, e.g. 2018-06-08T10:34:56+08:00.
    let t = time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+8));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The JSON body listing `certificates`, encrypted with `apiv3_key` (a certificate that cannot be
/// encrypted, with a key of the wrong length, is left out: the merchant then sees none).
pub(crate) fn list(apiv3_key: &str, certificates: &[PlatformCertificate]) -> String {
    let data = certificates
        .iter()
        .filter_map(|c| {
            Some(CertificateEntry {
                serial_no: c.serial.clone(),
                effective_time: rfc3339(c.not_before),
                expire_time: rfc3339(c.not_after),
                encrypt_certificate: encrypt(apiv3_key, c.certificate_pem.as_bytes())?,
            })
        })
        .collect();
    serde_json::to_string(&CertificateList { data }).unwrap_or_default()
}
