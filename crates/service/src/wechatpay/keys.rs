//! Key material: the merchant's API private key (signing) and WeChat Pay's verification keys.
//!
//! The private key is parsed once; its `Debug` never shows it. Verification keys are keyed by the
//! serial WeChat Pay puts in `Wechatpay-Serial`: a platform certificate's serial (hex) or a WeChat
//! Pay public key id (`PUB_KEY_ID_…`). Several may be configured at once (key migration).

use std::collections::BTreeMap;
use std::fmt;

use ring::signature::{RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use spki::der::{Decode, Encode};

/// Why key material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No PEM block, or a broken one.
    #[error("not a PEM document: {0}")]
    Pem(String),
    /// A PEM block of a kind we cannot use here.
    #[error("unexpected PEM label {found:?}, expected one of {expected}")]
    Label {
        /// The label found.
        found: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The DER inside is not a usable RSA key (ring requires 2048–8192 bits).
    #[error("not a usable RSA key: {0}")]
    Rsa(String),
    /// The certificate could not be parsed.
    #[error("not a usable X.509 certificate: {0}")]
    Certificate(String),
    /// An empty or malformed key id / serial.
    #[error("invalid key id {0:?}: expected a hex certificate serial or PUB_KEY_ID_…")]
    KeyId(String),
}

/// Decode the first PEM block of `text`, tolerating text before it (e.g. openssl bag attributes).
pub fn decode_pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    catering_sync_core::pem::decode_first(text).map_err(|e| KeyError::Pem(e.0))
}

/// The merchant's API private key (`apiclient_key.pem`), ready to sign with ring.
pub struct MerchantKey {
    pair: RsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl MerchantKey {
    /// Load a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem(text)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            _ => {
                return Err(KeyError::Label {
                    found: label,
                    expected: "PRIVATE KEY, RSA PRIVATE KEY",
                })
            }
        }
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(Self {
            pair,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public().modulus_len()];
        // Only fails for a signature buffer of the wrong length, which cannot happen here.
        self.pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                message,
                &mut sig,
            )
            .expect("signature buffer has the modulus length");
        sig
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.pair.public().modulus_len() * 8
    }
}

impl fmt::Debug for MerchantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerchantKey(RSA-{}, redacted)", self.bits())
    }
}

/// One WeChat Pay verification key.
#[derive(Clone)]
struct VerificationKey {
    /// PKCS#1 `RSAPublicKey` DER, what ring verifies with.
    rsa_public_der: Vec<u8>,
    /// A platform certificate's `notBefore` (Unix seconds); a public key has none.
    not_before: Option<i64>,
    /// A platform certificate's `notAfter` (Unix seconds); a public key does not expire.
    not_after: Option<i64>,
}

/// What a key said of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// No key has the serial.
    Unknown,
    /// A certificate with the serial exists, but `now` is outside its validity window.
    NotValid,
    /// The key checked the signature: `true` when it matches.
    Checked(bool),
}

/// A `Wechatpay-Serial` or verification key that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// `wechatpay_serial` names no configured verification key.
    #[error("{serial} is not a configured verification key (configured: {configured}); WeChat Pay would sign its answers with a key this service does not have")]
    NotConfigured {
        /// What was configured.
        serial: String,
        /// The configured key ids.
        configured: String,
    },
    /// Several public keys and no `wechatpay_serial` saying which to name.
    #[error("several WeChat Pay public keys are configured ({0}): set wechatpay.wechatpay_serial to the one to send as Wechatpay-Serial (\"\" sends none)")]
    SeveralPublicKeys(String),
    /// A verification key with the merchant's own certificate serial.
    #[error("{0} is the merchant's own API certificate serial (wechatpay.merchant_serial), not a WeChat Pay key: configure WeChat Pay's public key or platform certificate")]
    MerchantOwn(String),
}

/// WeChat Pay's verification keys by serial.
#[derive(Clone, Default)]
pub struct VerificationKeys {
    keys: BTreeMap<String, VerificationKey>,
}

impl fmt::Debug for VerificationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}

/// Serials compare case-insensitively for hex certificate serials; `PUB_KEY_ID_…` stay as given.
pub fn normalize_serial(serial: &str) -> String {
    let s = serial.trim();
    if s.starts_with("PUB_KEY_ID_") {
        s.to_string()
    } else {
        s.to_ascii_uppercase()
    }
}

impl VerificationKeys {
    /// No keys: every response fails verification.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a public key (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY` PKCS#1 PEM) under `key_id`.
    pub fn add_public_key_pem(&mut self, key_id: &str, text: &str) -> Result<(), KeyError> {
        let id = normalize_serial(key_id);
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(KeyError::KeyId(key_id.to_string()));
        }
        let (label, der) = decode_pem(text)?;
        let rsa_public_der = match label.as_str() {
            "PUBLIC KEY" => spki_to_pkcs1(&der)?,
            "RSA PUBLIC KEY" => der,
            _ => {
                return Err(KeyError::Label {
                    found: label,
                    expected: "PUBLIC KEY, RSA PUBLIC KEY",
                })
            }
        };
        self.insert(id, rsa_public_der, None, None)
    }

    /// Add a platform certificate (X.509 PEM); its serial (upper-case hex) becomes the key id.
    /// Returns that serial.
    pub fn add_certificate_pem(&mut self, text: &str) -> Result<String, KeyError> {
        let (serial, spki, not_before, not_after) = parse_certificate(text)?;
        self.insert(serial.clone(), spki, Some(not_before), Some(not_after))?;
        Ok(serial)
    }

    /// Add every key of `other` whose id this set does not have (a configured key wins over a
    /// downloaded one).
    pub fn merge(&mut self, other: &VerificationKeys) {
        for (id, k) in &other.keys {
            self.keys.entry(id.clone()).or_insert_with(|| k.clone());
        }
    }

    /// Whether a key has this serial.
    pub fn contains(&self, serial: &str) -> bool {
        self.keys.contains_key(&normalize_serial(serial))
    }

    /// Each key id with its validity window (Unix seconds; `None` for a public key).
    pub fn windows(&self) -> impl Iterator<Item = (&str, Option<(i64, i64)>)> {
        self.keys
            .iter()
            .map(|(id, k)| (id.as_str(), k.not_before.zip(k.not_after)))
    }
}

/// A certificate PEM's serial (upper-case hex), RSA public key (PKCS#1 DER) and validity window.
pub fn parse_certificate(text: &str) -> Result<(String, Vec<u8>, i64, i64), KeyError> {
    {
        let (label, der) = decode_pem(text)?;
        if label != "CERTIFICATE" {
            return Err(KeyError::Label {
                found: label,
                expected: "CERTIFICATE",
            });
        }
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| KeyError::Certificate(e.to_string()))?;
        let serial = hex_upper(strip_sign_byte(
            cert.tbs_certificate.serial_number.as_bytes(),
        ));
        let spki_der = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| KeyError::Certificate(e.to_string()))?;
        let validity = &cert.tbs_certificate.validity;
        let not_before = validity.not_before.to_unix_duration().as_secs() as i64;
        let not_after = validity.not_after.to_unix_duration().as_secs() as i64;
        Ok((serial, spki_to_pkcs1(&spki_der)?, not_before, not_after))
    }
}

impl VerificationKeys {
    fn insert(
        &mut self,
        id: String,
        rsa_public_der: Vec<u8>,
        not_before: Option<i64>,
        not_after: Option<i64>,
    ) -> Result<(), KeyError> {
        // Check the key once now, so a bad key fails at start-up and not on the first response.
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPublicKey::from_pkcs1_der(&rsa_public_der)
            .map_err(|e| KeyError::Rsa(e.to_string()))?;
        if key.size() * 8 < 2048 {
            return Err(KeyError::Rsa(format!(
                "{}-bit key, at least 2048 required",
                key.size() * 8
            )));
        }
        self.keys.insert(
            id,
            VerificationKey {
                rsa_public_der,
                not_before,
                not_after,
            },
        );
        Ok(())
    }

    /// Each key id with its expiry (Unix seconds; `None` for a public key, which does not
    /// expire).
    pub fn expiries(&self) -> impl Iterator<Item = (&str, Option<i64>)> {
        self.keys.iter().map(|(id, k)| (id.as_str(), k.not_after))
    }

    /// The configured key ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `Wechatpay-Serial` to send, from the configured `wechatpay_serial`: `Some("")` sends
    /// none; `Some(id)` must be a configured key; `None` (the default) names the one configured
    /// `PUB_KEY_ID_…` key as the official SDKs do, so a merchant migrating from platform
    /// certificates gets answers signed with a key it has, and sends none without one.
    pub fn request_serial(&self, configured: Option<&str>) -> Result<Option<String>, SerialError> {
        match configured.map(str::trim) {
            Some("") => Ok(None),
            Some(id) => {
                let id = normalize_serial(id);
                if self.keys.contains_key(&id) {
                    Ok(Some(id))
                } else {
                    Err(SerialError::NotConfigured {
                        serial: id,
                        configured: self.ids().collect::<Vec<_>>().join(", "),
                    })
                }
            }
            None => {
                let public: Vec<&str> = self
                    .ids()
                    .filter(|id| id.starts_with("PUB_KEY_ID_"))
                    .collect();
                match public[..] {
                    [] => Ok(None),
                    [one] => Ok(Some(one.to_string())),
                    _ => Err(SerialError::SeveralPublicKeys(public.join(", "))),
                }
            }
        }
    }

    /// Refuse the merchant's own API certificate serial as a WeChat Pay key (wechatpay-php and
    /// the Node SDK refuse it too): it verifies nothing WeChat Pay signs.
    pub fn check_not_merchant(&self, merchant_serial: &str) -> Result<(), SerialError> {
        let own = normalize_serial(merchant_serial);
        if self.keys.contains_key(&own) {
            return Err(SerialError::MerchantOwn(own));
        }
        Ok(())
    }

    /// Verify SHA256withRSA `signature` over `message` with the key `serial`, at `now_unix`: a
    /// certificate is used only inside its validity window.
    pub fn verify(
        &self,
        serial: &str,
        message: &[u8],
        signature: &[u8],
        now_unix: i64,
    ) -> KeyCheck {
        let Some(key) = self.keys.get(&normalize_serial(serial)) else {
            return KeyCheck::Unknown;
        };
        let before = key.not_before.is_some_and(|t| now_unix < t);
        let after = key.not_after.is_some_and(|t| now_unix > t);
        if before || after {
            return KeyCheck::NotValid;
        }
        let pk = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.rsa_public_der);
        KeyCheck::Checked(pk.verify(message, signature).is_ok())
    }
}

fn spki_to_pkcs1(spki_der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
    const RSA_ENCRYPTION: spki::ObjectIdentifier =
        spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(KeyError::Rsa(format!(
            "not an RSA key (algorithm {})",
            info.algorithm.oid
        )));
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| KeyError::Rsa("public key bit string has unused bits".into()))
}

fn strip_sign_byte(bytes: &[u8]) -> &[u8] {
    match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => bytes,
    }
}

pub use catering_sync_core::pem::hex_upper;

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys under `ids`, all the same test public key.
    fn keys(ids: &[&str]) -> VerificationKeys {
        static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let pem = PEM.get_or_init(|| {
            catering_sync_sandbox::keygen::generate("1900000001", &mut rand::thread_rng())
                .unwrap()
                .wechatpay_public_pem
        });
        let mut v = VerificationKeys::new();
        for id in ids {
            v.add_public_key_pem(id, pem).unwrap();
        }
        v
    }

    const PUB: &str = "PUB_KEY_ID_0114232134912410000000000000";
    const CERT: &str = "3B7F2A9C1D0E4F5A6B7C8D9E0F1A2B3C4D5E6F70";

    #[test]
    fn the_one_public_key_is_named_by_default() {
        assert_eq!(keys(&[PUB]).request_serial(None), Ok(Some(PUB.into())));
        // Mid-migration, with the certificate still configured: the public key all the same.
        assert_eq!(
            keys(&[CERT, PUB]).request_serial(None),
            Ok(Some(PUB.into()))
        );
        assert_eq!(
            keys(&[CERT]).request_serial(None),
            Ok(None),
            "certificates only: none"
        );
    }

    #[test]
    fn an_empty_serial_sends_none_and_a_configured_one_is_kept() {
        assert_eq!(keys(&[PUB]).request_serial(Some("")), Ok(None));
        assert_eq!(
            keys(&[CERT, PUB]).request_serial(Some(&CERT.to_lowercase())),
            Ok(Some(CERT.into())),
            "hex serials compare case-insensitively"
        );
    }

    #[test]
    fn a_serial_that_is_not_a_configured_key_is_refused() {
        let e = keys(&[PUB])
            .request_serial(Some("PUB_KEY_ID_0999"))
            .unwrap_err();
        assert!(matches!(e, SerialError::NotConfigured { .. }), "{e}");
        assert!(
            e.to_string().contains(PUB),
            "names the configured keys: {e}"
        );
    }

    #[test]
    fn several_public_keys_need_a_choice() {
        let two = keys(&[PUB, "PUB_KEY_ID_0114232134912410000000000001"]);
        assert!(matches!(
            two.request_serial(None),
            Err(SerialError::SeveralPublicKeys(_))
        ));
        assert_eq!(two.request_serial(Some(PUB)), Ok(Some(PUB.into())));
    }

    #[test]
    fn the_merchant_s_own_serial_is_not_a_verification_key() {
        let v = keys(&[CERT, PUB]);
        assert_eq!(
            v.check_not_merchant(&CERT.to_lowercase()),
            Err(SerialError::MerchantOwn(CERT.into()))
        );
        assert_eq!(
            v.check_not_merchant("5157F09EFDC096DE15EBE81A47057A7232F1B8E1"),
            Ok(())
        );
    }
}
