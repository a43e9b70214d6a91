//! Known-answer tests against an independent implementation (the `openssl` CLI), and the
//! client (ring) and sandbox (rsa crate) accepting each other's signatures.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use catering_sync::sandbox::auth::{AuthError, RequestAuthenticator};
use catering_sync::sandbox::faults::SignatureFault;
use catering_sync::sandbox::respond::ResponseSigner;
use catering_sync::sandbox::{merchant_public_key, MerchantIdentity};
use catering_sync::wechatpay::sign::request_message;
use catering_sync::wechatpay::verify::verify_response;
use catering_sync::wechatpay::{MerchantKey, SYNC_STATUS_PATH};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rsa::pkcs8::DecodePrivateKey;

use crate::harness::{credentials, keys, keys_dir, verification_keys};

/// `openssl dgst -sha256 -sign KEY | base64 -w0` over `message`.
fn openssl_sign(key_file: &std::path::Path, message: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl CLI is installed (scripts/test.sh installs it)");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl failed");
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// ≥ 50 bodies: CJK, escapes, empty, a trailing newline, long, control characters, raw bytes.
fn kat_bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n".to_vec(),
        b"{}\n".to_vec(),
        b"{}".to_vec(),
        "{\"name\":\"宫保鸡丁\",\"taste\":\"微辣 | 麻\"}"
            .as_bytes()
            .to_vec(),
        br#"{"escaped":"quote \" backslash \\ tab \t newline \n unicode \u5bab"}"#.to_vec(),
        "line1\r\nline2\r\n".as_bytes().to_vec(),
        "  leading and trailing spaces  ".as_bytes().to_vec(),
        crate::harness::bytes(&crate::harness::sp_body("KAT-0001", "PAY_SUCCESS")).to_vec(),
        crate::harness::bytes(&crate::harness::channel_body("KAT-0002")).to_vec(),
        "x".repeat(100_000).into_bytes(),
        vec![0u8, 1, 2, 0xff, 0xfe, b'\n'],
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261127);
    let alphabet: Vec<char> = "abcXYZ019 {}[]\":,\\\n\t宫保鸡丁鱼香肉丝点餐订单é"
        .chars()
        .collect();
    while bodies.len() < 60 {
        let len = rng.gen_range(0..400);
        let s: String = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();
        bodies.push(s.into_bytes());
    }
    bodies
}

#[test]
fn signatures_equal_openssl_for_sixty_bodies() {
    let key_file = keys_dir().join(catering_sync::keygen::files::MERCHANT_KEY);
    let creds = credentials(keys());
    let bodies = kat_bodies();
    assert!(bodies.len() >= 50);
    for (i, body) in bodies.iter().enumerate() {
        let ts = 1_764_218_096 + i as i64;
        let nonce = format!("NONCE{i:027}");
        let auth = creds.authorize("POST", SYNC_STATUS_PATH, body, ts, &nonce);
        let message = request_message("POST", SYNC_STATUS_PATH, ts, &nonce, body);
        assert_eq!(
            auth.signature,
            openssl_sign(&key_file, &message),
            "body #{i}"
        );
        assert_eq!(auth.timestamp, ts.to_string());
        assert_eq!(auth.nonce, nonce);
    }
}

#[test]
fn pkcs1_and_pkcs8_keys_sign_identically() {
    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = keys_dir().join(catering_sync::keygen::files::MERCHANT_KEY);
    let pkcs1 = dir.path().join("pkcs1.pem");
    let status = Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&pkcs8)
        .arg("-out")
        .arg(&pkcs1)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&pkcs1).unwrap();
    assert!(
        text.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "openssl wrote PKCS#1"
    );
    let a = MerchantKey::from_pem(&text).unwrap();
    let b = MerchantKey::from_pem(&keys().merchant_private_pem).unwrap();
    assert_eq!(a.sign(b"message"), b.sign(b"message"));
    // CRLF line endings and text before the block are tolerated.
    let crlf = format!("Bag Attributes\r\n{}", text.replace('\n', "\r\n"));
    assert_eq!(
        MerchantKey::from_pem(&crlf).unwrap().sign(b"m"),
        a.sign(b"m")
    );
}

#[test]
fn the_sign_command_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.json");
    let body = "{\"name\":\"宫保鸡丁\"}\n";
    std::fs::write(&body_file, body).unwrap();
    let key_file = keys_dir().join(catering_sync::keygen::files::MERCHANT_KEY);
    let out = Command::new(env!("CARGO_BIN_EXE_catering-sync"))
        .args([
            "sign",
            "--mchid",
            "1900000001",
            "--serial",
            "ABC123",
            "--timestamp",
            "1764218096",
        ])
        .args([
            "--nonce",
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            "--verbose",
            "--private-key",
        ])
        .arg(&key_file)
        .arg("--body")
        .arg(&body_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let message = request_message(
        "POST",
        SYNC_STATUS_PATH,
        1764218096,
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        body.as_bytes(),
    );
    let expected = format!(
        "Authorization: WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",timestamp=\"1764218096\",serial_no=\"ABC123\",signature=\"{}\"\n",
        openssl_sign(&key_file, &message)
    );
    assert_eq!(stdout, expected);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("POST\\n"),
        "verbose shows the canonical message: {stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "never prints the key");
}

fn authenticator() -> RequestAuthenticator {
    RequestAuthenticator::new(&[MerchantIdentity {
        mchid: keys().mchid.clone(),
        serial: keys().merchant_serial.clone(),
        public_key: merchant_public_key(&keys().merchant_public_pem).unwrap(),
    }])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// ring-signed requests verify with the sandbox's rsa-crate verifier, and tampering is caught.
    #[test]
    fn sandbox_accepts_client_signatures(body in proptest::collection::vec(any::<u8>(), 0..600), skew in -290i64..290, flip in any::<prop::sample::Index>()) {
        let auth = authenticator();
        let now = 1_764_218_096i64;
        let ts = now + skew;
        let nonce = catering_sync::wechatpay::sign::nonce(&mut rand::thread_rng());
        let header = credentials(keys()).authorize("POST", SYNC_STATUS_PATH, &body, ts, &nonce).to_string();
        if !body.is_empty() {
            let mut tampered = body.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 1;
            prop_assert_eq!(auth.authenticate(Some(&header), "POST", SYNC_STATUS_PATH, &tampered, now, true), Err(AuthError::Mismatch));
        }
        prop_assert!(auth.authenticate(Some(&header), "POST", SYNC_STATUS_PATH, &body, now, true).is_ok());
        prop_assert_eq!(auth.authenticate(Some(&header), "POST", SYNC_STATUS_PATH, &body, now, true), Err(AuthError::ReusedNonce));
    }

    /// rsa-crate-signed responses verify with the client's ring verifier, and tampering is caught.
    #[test]
    fn client_accepts_sandbox_signatures(body in proptest::collection::vec(any::<u8>(), 0..300), skew in -290i64..290) {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&keys().wechatpay_private_pem).unwrap();
        let signer = ResponseSigner::new(private, keys().wechatpay_key_id.clone(), false);
        let now = 1_764_218_096i64;
        let signed = signer.sign(&body, now + skew, SignatureFault::None);
        let mut headers = http::HeaderMap::new();
        headers.insert("wechatpay-timestamp", signed.timestamp.parse().unwrap());
        headers.insert("wechatpay-nonce", signed.nonce.parse().unwrap());
        headers.insert("wechatpay-signature", signed.signature.parse().unwrap());
        headers.insert("wechatpay-serial", signed.serial.parse().unwrap());
        let keys = verification_keys(keys());
        prop_assert_eq!(verify_response(&keys, &headers, &body, now), Ok(()));
        let mut tampered = body.clone();
        tampered.push(b' ');
        prop_assert_eq!(verify_response(&keys, &headers, &tampered, now), Err(catering_sync::wechatpay::VerifyError::Mismatch));
    }
}
