//! Shared test harness. Keys are generated at test time (never committed) and cached for the run.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use catering_sync::keygen::{self, GeneratedKeys};
use catering_sync::sandbox::{Faults, SandboxConfig, SandboxHandle};
use catering_sync::wechatpay::{
    ClientConfig, Credentials, MerchantKey, VerificationKeys, WechatPayClient,
};
use serde_json::{json, Value};

/// The merchant and WeChat Pay keys of this test run.
pub fn keys() -> &'static GeneratedKeys {
    static KEYS: OnceLock<GeneratedKeys> = OnceLock::new();
    KEYS.get_or_init(|| keygen::generate("1900000001", &mut rand::rngs::OsRng).expect("keygen"))
}

/// A second, unrelated set (wrong keys).
pub fn other_keys() -> &'static GeneratedKeys {
    static KEYS: OnceLock<GeneratedKeys> = OnceLock::new();
    KEYS.get_or_init(|| keygen::generate("1900000001", &mut rand::rngs::OsRng).expect("keygen"))
}

/// A platform certificate valid from an hour ago for a year (generated once per run).
pub fn platform_certificate() -> &'static catering_sync::sandbox::PlatformCertificate {
    static CERT: OnceLock<catering_sync::sandbox::PlatformCertificate> = OnceLock::new();
    CERT.get_or_init(|| fresh_platform_certificate(0))
}

/// A new platform certificate valid from `offset_secs` (from now) minus an hour, for a year.
pub fn fresh_platform_certificate(offset_secs: i64) -> catering_sync::sandbox::PlatformCertificate {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset_secs;
    keygen::platform_certificate(&mut rand::rngs::OsRng, now - 3600, now + 365 * 86_400)
        .expect("platform certificate")
}

/// The keys written to a directory that lives as long as the test run.
pub fn keys_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        keys().write_to(d.path()).expect("write keys");
        d
    });
    dir.path().to_path_buf()
}

/// Panics written straight to the process's stderr as well, past the test harness's capture.
/// A failed assertion leaves the test's in-process service running in a dying runtime, and its
/// crash-only paths (`process::exit`: an unquiet drain, a shutdown deadline, a lease) may end
/// the whole binary before the harness prints the captured panic: the run would then say only
/// "exited abnormally". Installed by every in-process service and sandbox.
pub fn panics_past_capture() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            use std::io::Write;
            let thread = std::thread::current();
            let _ = writeln!(
                std::io::stderr(),
                "panic in thread '{}': {info}",
                thread.name().unwrap_or("<unnamed>")
            );
            default(info);
        }));
    });
}

pub async fn sandbox_with(faults: Faults) -> SandboxHandle {
    panics_past_capture();
    let mut config = SandboxConfig::from_generated(keys()).expect("sandbox config");
    config.faults = faults;
    SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts")
}

pub async fn sandbox() -> SandboxHandle {
    sandbox_with(Faults::default()).await
}

pub fn credentials(k: &GeneratedKeys) -> Arc<Credentials> {
    let key = MerchantKey::from_pem(&k.merchant_private_pem).expect("merchant key");
    Arc::new(Credentials::new(
        k.mchid.clone(),
        k.merchant_serial.clone(),
        key,
    ))
}

pub fn verification_keys(k: &GeneratedKeys) -> Arc<VerificationKeys> {
    let mut v = VerificationKeys::new();
    v.add_public_key_pem(&k.wechatpay_key_id, &k.wechatpay_public_pem)
        .expect("wechatpay key");
    Arc::new(v)
}

pub fn client_for(sandbox: &SandboxHandle, timeout: Duration) -> WechatPayClient {
    let config = ClientConfig {
        base_url: sandbox.base_url(),
        request_timeout: timeout,
        connect_timeout: Duration::from_secs(2),
        wechatpay_serial: Some(keys().wechatpay_key_id.clone()),
        ..ClientConfig::default()
    };
    WechatPayClient::new(&config, credentials(keys()), verification_keys(keys())).expect("client")
}

pub fn client(sandbox: &SandboxHandle) -> WechatPayClient {
    client_for(sandbox, Duration::from_secs(5))
}

/// A valid service-provider body with five dishes.
pub fn sp_body(out_order_no: &str, status: &str) -> Value {
    let mut body = json!({
        "sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "out_shop_no": "SHOP-0001",
        "login_token": "test-login-token", "order_entry": "pages/menu/index",
        "total_amount": 9900, "discount_amount": 1100, "user_amount": 8800,
        "status": status, "action_time": "2026-11-27T12:34:56+08:00",
        "out_order_no": out_order_no, "out_table_no": "A12", "people_count": 3,
        "dish_list": [
            {"out_dish_no": "D1", "name": "宫保鸡丁", "price": 3800, "unit": "BY_SHARE", "count": 1, "type": "SICHUAN_CUISINE"},
            {"out_dish_no": "D2", "name": "鱼香肉丝", "price": 3200, "unit": "BY_SHARE", "count": 1,
             "properties": {"taste": "微辣", "cuisine": "川菜", "main_material": "猪肉", "ingredients": "木耳 | 胡萝卜"}},
            {"out_dish_no": "D3", "name": "麻婆豆腐", "price": 1800, "unit": "BY_SHARE", "count": 1, "discount": 80},
            {"out_dish_no": "D4", "name": "酸梅汤", "price": 800, "unit": "BY_WEIGHT", "count": 1.5, "type": "DRINK"},
            {"out_dish_no": "D5", "name": "米饭", "price": 200, "unit": "BY_SHARE", "count": 3, "priority": 100}
        ]
    });
    if status == "PAY_SUCCESS" {
        body["pay_time"] = json!("2026-11-27T12:40:01+08:00");
        body["transaction_id"] = json!("4200002026112712345678901234");
        body["out_trade_no"] = json!("P20261127123456789");
    }
    body
}

/// A valid channel body.
pub fn channel_body(out_order_no: &str) -> Value {
    let mut body = sp_body(out_order_no, "CREATE_DEAL");
    let o = body.as_object_mut().unwrap();
    for k in ["sp_mchid", "sp_appid", "openid"] {
        o.remove(k);
    }
    o.insert("channel_id".into(), json!("CH0001"));
    o.insert("sub_appid".into(), json!("wx9999999999999999"));
    o.insert("sub_openid".into(), json!("oSubOpenid0000000000000001"));
    body
}

pub fn bytes(v: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(v).unwrap())
}

/// Poll `f` until it returns true, up to `limit`; the condition, not a sleep, decides.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
