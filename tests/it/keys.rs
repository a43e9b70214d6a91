//! Loading key material, and response verification rules (WECHATPAY.md "Response verification").

use std::process::{Command, Stdio};

use catering_sync::sandbox::faults::SignatureFault;
use catering_sync::sandbox::respond::ResponseSigner;
use catering_sync::wechatpay::verify::verify_response;
use catering_sync::wechatpay::{KeyError, MerchantKey, VerificationKeys, VerifyError};
use rsa::pkcs8::DecodePrivateKey;

use crate::harness::{keys, keys_dir, other_keys};

const NOW: i64 = 1_764_218_096;

fn signed_headers(
    private_pem: &str,
    key_id: &str,
    body: &[u8],
    ts: i64,
    fault: SignatureFault,
) -> http::HeaderMap {
    let signer = ResponseSigner::new(
        rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap(),
        key_id.to_string(),
        false,
    );
    let s = signer.sign(body, ts, fault);
    let mut h = http::HeaderMap::new();
    h.insert("wechatpay-timestamp", s.timestamp.parse().unwrap());
    h.insert("wechatpay-nonce", s.nonce.parse().unwrap());
    h.insert("wechatpay-signature", s.signature.parse().unwrap());
    h.insert("wechatpay-serial", s.serial.parse().unwrap());
    h
}

fn wechatpay_keys() -> VerificationKeys {
    let mut v = VerificationKeys::new();
    v.add_public_key_pem(&keys().wechatpay_key_id, &keys().wechatpay_public_pem)
        .unwrap();
    v
}

#[test]
fn platform_certificate_serial_and_key_verify_responses() {
    // A platform certificate made by openssl for WeChat Pay's test key, with a known serial.
    let dir = tempfile::tempdir().unwrap();
    let key = keys_dir().join(catering_sync::keygen::files::WECHATPAY_PRIVATE);
    let cert = dir.path().join("wechatpay_cert.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-new",
            "-subj",
            "/CN=Tenpay.com Root CA/O=Tenpay.com",
            "-days",
            "2",
        ])
        .args([
            "-set_serial",
            "0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut v = VerificationKeys::new();
    let serial = v
        .add_certificate_pem(&std::fs::read_to_string(&cert).unwrap())
        .unwrap();
    assert_eq!(serial, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
    // Several keys at once (migration): the public key id as well.
    v.add_public_key_pem(&keys().wechatpay_key_id, &keys().wechatpay_public_pem)
        .unwrap();
    assert_eq!(v.ids().count(), 2);
    // The certificate is valid from now for two days: used only inside that window.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let by_cert = signed_headers(
        &keys().wechatpay_private_pem,
        &serial.to_ascii_lowercase(),
        b"",
        now,
        SignatureFault::None,
    );
    assert_eq!(
        verify_response(&v, &by_cert, b"", now),
        Ok(()),
        "serials compare case-insensitively"
    );
    let before = signed_headers(
        &keys().wechatpay_private_pem,
        &serial,
        b"",
        NOW,
        SignatureFault::None,
    );
    assert_eq!(
        verify_response(&v, &before, b"", NOW),
        Err(VerifyError::KeyNotValid(serial.clone())),
        "not before its notBefore"
    );
    let after = signed_headers(
        &keys().wechatpay_private_pem,
        &serial,
        b"",
        now + 3 * 86_400,
        SignatureFault::None,
    );
    assert_eq!(
        verify_response(&v, &after, b"", now + 3 * 86_400),
        Err(VerifyError::KeyNotValid(serial.clone())),
        "not after its notAfter"
    );
    let by_id = signed_headers(
        &keys().wechatpay_private_pem,
        &keys().wechatpay_key_id,
        b"",
        NOW,
        SignatureFault::None,
    );
    assert_eq!(verify_response(&v, &by_id, b"", NOW), Ok(()));
}

#[test]
fn response_verification_rules() {
    let v = wechatpay_keys();
    let kid = &keys().wechatpay_key_id;
    let good = signed_headers(
        &keys().wechatpay_private_pem,
        kid,
        b"",
        NOW,
        SignatureFault::None,
    );
    assert_eq!(verify_response(&v, &good, b"", NOW), Ok(()));
    // 300 s skew is the limit, both ways.
    assert_eq!(verify_response(&v, &good, b"", NOW + 300), Ok(()));
    assert_eq!(
        verify_response(&v, &good, b"", NOW + 301),
        Err(VerifyError::Skewed(301))
    );
    assert_eq!(
        verify_response(&v, &good, b"", NOW - 301),
        Err(VerifyError::Skewed(-301))
    );
    // Body bytes are covered.
    assert_eq!(
        verify_response(&v, &good, b" ", NOW),
        Err(VerifyError::Mismatch)
    );
    // Each header is required.
    for name in [
        "wechatpay-timestamp",
        "wechatpay-nonce",
        "wechatpay-signature",
        "wechatpay-serial",
    ] {
        let mut h = good.clone();
        h.remove(name);
        assert!(
            matches!(verify_response(&v, &h, b"", NOW), Err(VerifyError::MissingHeader(n)) if n == name)
        );
    }
    // Unknown serial, and a key that is not WeChat Pay's.
    let mut h = good.clone();
    h.insert("wechatpay-serial", "PUB_KEY_ID_0000".parse().unwrap());
    assert_eq!(
        verify_response(&v, &h, b"", NOW),
        Err(VerifyError::UnknownSerial("PUB_KEY_ID_0000".into()))
    );
    let forged = signed_headers(
        &other_keys().wechatpay_private_pem,
        kid,
        b"",
        NOW,
        SignatureFault::None,
    );
    assert_eq!(
        verify_response(&v, &forged, b"", NOW),
        Err(VerifyError::Mismatch)
    );
    // SIGNTEST probes and garbage.
    let probe = signed_headers(
        &keys().wechatpay_private_pem,
        kid,
        b"",
        NOW,
        SignatureFault::SignTest,
    );
    assert_eq!(
        verify_response(&v, &probe, b"", NOW),
        Err(VerifyError::SignTestProbe)
    );
    let mut h = good.clone();
    h.insert("wechatpay-signature", "!!!".parse().unwrap());
    assert_eq!(
        verify_response(&v, &h, b"", NOW),
        Err(VerifyError::BadEncoding)
    );
    let mut h = good;
    h.insert("wechatpay-timestamp", "soon".parse().unwrap());
    assert_eq!(
        verify_response(&v, &h, b"", NOW),
        Err(VerifyError::BadTimestamp)
    );
    // No keys at all: nothing verifies.
    let none = signed_headers(
        &keys().wechatpay_private_pem,
        kid,
        b"",
        NOW,
        SignatureFault::None,
    );
    assert!(matches!(
        verify_response(&VerificationKeys::new(), &none, b"", NOW),
        Err(VerifyError::UnknownSerial(_))
    ));
}

#[test]
fn bad_key_material_is_refused_with_a_clear_error() {
    assert!(matches!(
        MerchantKey::from_pem("not a pem"),
        Err(KeyError::Pem(_))
    ));
    assert!(matches!(
        MerchantKey::from_pem(&keys().merchant_public_pem),
        Err(KeyError::Label { found, .. }) if found == "PUBLIC KEY"
    ));
    let mut v = VerificationKeys::new();
    assert!(matches!(
        v.add_public_key_pem("PUB_KEY_ID_1", &keys().merchant_private_pem),
        Err(KeyError::Label { .. })
    ));
    assert!(matches!(
        v.add_public_key_pem("bad id!", &keys().wechatpay_public_pem),
        Err(KeyError::KeyId(_))
    ));
    let garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(v.add_public_key_pem("PUB_KEY_ID_1", garbage).is_err());
    assert!(v.is_empty());
}

#[test]
fn private_key_never_shows_in_debug() {
    let k = MerchantKey::from_pem(&keys().merchant_private_pem).unwrap();
    let shown = format!(
        "{k:?} {:?} {:?}",
        crate::harness::credentials(keys()),
        keys()
    );
    assert!(shown.contains("redacted"), "{shown}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
    assert!(
        !shown.contains(&keys().merchant_private_pem[40..80]),
        "{shown}"
    );
}
