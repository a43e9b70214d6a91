//! The sandbox over real HTTP: every authentication rule and every category of body rule of
//! WECHATPAY.md, broken one at a time, gets the documented status and code.

use catering_sync::wechatpay::client::{unix_now, user_agent};
use catering_sync::wechatpay::sign::nonce;
use catering_sync::wechatpay::{Credentials, Disposition, SYNC_STATUS_PATH};
use serde_json::{json, Value};

use crate::harness::{
    bytes, channel_body, client, credentials, keys, other_keys, sandbox, sp_body,
};

struct Raw {
    status: u16,
    body: Value,
}

/// A request built by hand, so each header can be broken on purpose.
struct Req {
    body: Vec<u8>,
    signed_body: Option<Vec<u8>>,
    /// Seconds added to the clock when the request is signed, just before it is sent.
    skew: i64,
    nonce: String,
    creds: std::sync::Arc<Credentials>,
    mchid: Option<String>,
    serial: Option<String>,
    accept: Option<&'static str>,
    user_agent: Option<String>,
    content_type: Option<&'static str>,
    authorization: Option<Option<String>>,
}

impl Req {
    fn new(body: &Value) -> Self {
        Self {
            body: serde_json::to_vec(body).unwrap(),
            signed_body: None,
            skew: 0,
            nonce: nonce(&mut rand::thread_rng()),
            creds: credentials(keys()),
            mchid: None,
            serial: None,
            accept: Some("application/json"),
            user_agent: Some(user_agent()),
            content_type: Some("application/json"),
            authorization: None,
        }
    }

    async fn send(self, base_url: &str) -> Raw {
        let signed = self.signed_body.as_deref().unwrap_or(&self.body);
        let mut auth = self.creds.authorize(
            "POST",
            SYNC_STATUS_PATH,
            signed,
            unix_now() + self.skew,
            &self.nonce,
        );
        if let Some(m) = self.mchid {
            auth.mchid = m;
        }
        if let Some(s) = self.serial {
            auth.serial_no = s;
        }
        let http = reqwest::Client::builder().user_agent("").build().unwrap();
        let mut rb = http
            .post(format!("{base_url}{SYNC_STATUS_PATH}"))
            .body(self.body);
        match self.authorization {
            None => rb = rb.header("authorization", auth.to_string()),
            Some(Some(h)) => rb = rb.header("authorization", h),
            Some(None) => {}
        }
        if let Some(a) = self.accept {
            rb = rb.header("accept", a);
        }
        if let Some(u) = self.user_agent {
            rb = rb.header("user-agent", u);
        }
        if let Some(c) = self.content_type {
            rb = rb.header("content-type", c);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        Raw {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }
}

/// A signed POST without an Accept header, written by hand on a TCP socket.
async fn raw_post_without_accept(
    sb: &catering_sync::sandbox::SandboxHandle,
    body: &Value,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::to_vec(body).unwrap();
    let auth = credentials(keys()).authorize(
        "POST",
        SYNC_STATUS_PATH,
        &body,
        unix_now(),
        &nonce(&mut rand::thread_rng()),
    );
    let head = format!(
        "POST {SYNC_STATUS_PATH} HTTP/1.1\r\nHost: {}\r\nUser-Agent: raw-test\r\nContent-Type: application/json\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        sb.addr(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(sb.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn assert_error(raw: &Raw, status: u16, code: &str) {
    assert_eq!(raw.status, status, "{}", raw.body);
    assert_eq!(raw.body["code"], code, "{}", raw.body);
    assert!(raw.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn a_valid_request_gets_a_verified_204_and_is_recorded() {
    let sb = sandbox().await;
    let c = client(&sb);
    for (no, body) in [
        ("SP-1", sp_body("SP-1", "CREATE_DEAL")),
        ("CH-1", channel_body("CH-1")),
    ] {
        let attempt = c.sync_status(bytes(&body)).await;
        assert_eq!(attempt.disposition, Disposition::Delivered, "{no}");
        assert_eq!(attempt.status, Some(204));
        assert!(attempt.request_id.is_some());
        let posts = sb.posts(no);
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].body.as_ref(), Some(&body));
    }
    assert_eq!(
        c.sync_status(bytes(&sp_body("SP-1", "PAY_SUCCESS")))
            .await
            .disposition,
        Disposition::Delivered
    );
    let statuses: Vec<_> = sb
        .posts("SP-1")
        .into_iter()
        .map(|p| p.status.unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["CREATE_DEAL", "PAY_SUCCESS"],
        "arrival order per order"
    );
    // The query endpoints over HTTP.
    let http = reqwest::Client::new();
    let one: Value = http
        .get(format!("{}/__sandbox/orders/SP-1", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["posts"].as_array().unwrap().len(), 2);
    assert_eq!(one["posts"][1]["body"]["status"], "PAY_SUCCESS");
    let all: Value = http
        .get(format!("{}/__sandbox/orders", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["orders"]["CH-1"], json!(["CREATE_DEAL"]));
    let stats: Value = http
        .get(format!("{}/__sandbox/stats", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["accepted"], 3);
    assert_eq!(stats["responses_by_status"]["204"], 3);
    let missing = http
        .get(format!("{}/__sandbox/orders/NOPE", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let reset = http
        .post(format!("{}/__sandbox/reset", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(sb.stats().accepted, 0);
    assert!(sb.summary().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn headers_rules_give_400_invalid_request() {
    let sb = sandbox().await;
    let url = sb.base_url();
    let body = sp_body("H-1", "CREATE_DEAL");
    // reqwest always adds `Accept: */*`, so a request without Accept goes over a raw socket.
    let raw = raw_post_without_accept(&sb, &body).await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(
        raw.contains("INVALID_REQUEST") && raw.contains("Accept"),
        "{raw}"
    );
    let mut r = Req::new(&body);
    r.accept = Some("text/html");
    assert_error(&r.send(&url).await, 400, "INVALID_REQUEST");
    let mut r = Req::new(&body);
    r.user_agent = None;
    assert_error(&r.send(&url).await, 400, "INVALID_REQUEST");
    let mut r = Req::new(&body);
    r.content_type = Some("text/plain");
    assert_error(&r.send(&url).await, 400, "INVALID_REQUEST");
    let mut r = Req::new(&body);
    r.body = b"{not json".to_vec();
    assert_error(&r.send(&url).await, 400, "INVALID_REQUEST");
    // Accept with parameters and lists is fine.
    let mut r = Req::new(&body);
    r.accept = Some("text/html, application/json; q=0.9");
    assert_eq!(r.send(&url).await.status, 204);
    assert_eq!(sb.stats().accepted, 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn authentication_rules_give_401_sign_error() {
    let sb = sandbox().await;
    let url = sb.base_url();
    let body = sp_body("A-1", "CREATE_DEAL");
    let cases: Vec<(&str, Req)> = vec![
        (
            "missing header",
            Req {
                authorization: Some(None),
                ..Req::new(&body)
            },
        ),
        (
            "other scheme",
            Req {
                authorization: Some(Some("Bearer abc".into())),
                ..Req::new(&body)
            },
        ),
        (
            "malformed",
            Req {
                authorization: Some(Some("WECHATPAY2-SHA256-RSA2048 mchid=1".into())),
                ..Req::new(&body)
            },
        ),
        (
            "unknown mchid",
            Req {
                mchid: Some("1234567890".into()),
                ..Req::new(&body)
            },
        ),
        (
            "unknown serial",
            Req {
                serial: Some("00AA".into()),
                ..Req::new(&body)
            },
        ),
        (
            "timestamp 305 s late",
            Req {
                skew: -305,
                ..Req::new(&body)
            },
        ),
        (
            "timestamp 305 s early",
            Req {
                skew: 305,
                ..Req::new(&body)
            },
        ),
        (
            "wrong key",
            Req {
                creds: credentials(other_keys()),
                ..Req::new(&body)
            },
        ),
        (
            "body changed after signing",
            Req {
                signed_body: Some(b"{}".to_vec()),
                ..Req::new(&body)
            },
        ),
        (
            "nonce too long",
            Req {
                nonce: "N".repeat(33),
                ..Req::new(&body)
            },
        ),
    ];
    for (name, req) in cases {
        let raw = req.send(&url).await;
        assert_eq!(raw.status, 401, "{name}: {}", raw.body);
        assert_eq!(raw.body["code"], "SIGN_ERROR", "{name}");
    }
    // A reused nonce: the first request passes, the replay does not.
    let fixed = nonce(&mut rand::thread_rng());
    assert_eq!(
        Req {
            nonce: fixed.clone(),
            ..Req::new(&body)
        }
        .send(&url)
        .await
        .status,
        204
    );
    let replay = Req {
        nonce: fixed,
        ..Req::new(&body)
    }
    .send(&url)
    .await;
    assert_error(&replay, 401, "SIGN_ERROR");
    assert!(replay.body["message"].as_str().unwrap().contains("nonce"));
    // 295 s of skew is still fine (the margins of 5 s keep a second boundary or a slow
    // machine between signing and checking from deciding the outcome).
    assert_eq!(
        Req {
            skew: -295,
            ..Req::new(&body)
        }
        .send(&url)
        .await
        .status,
        204
    );
    assert_eq!(
        sb.stats().accepted,
        2,
        "only the two valid requests were recorded"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn the_client_classifies_a_401_as_a_configuration_fault() {
    let sb = sandbox().await;
    let config = catering_sync::wechatpay::ClientConfig {
        base_url: sb.base_url(),
        ..Default::default()
    };
    let c = catering_sync::wechatpay::WechatPayClient::new(
        &config,
        credentials(other_keys()),
        crate::harness::verification_keys(keys()),
    )
    .unwrap();
    let attempt = c.sync_status(bytes(&sp_body("K-1", "CREATE_DEAL"))).await;
    match attempt.disposition {
        Disposition::ConfigFault(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.error.unwrap().code, "SIGN_ERROR");
        }
        other => panic!("expected a configuration fault, got {other:?}"),
    }
    sb.shutdown().await;
}

/// One mutation per category of body rule; each must give 400 PARAM_ERROR naming the field.
fn body_rule_cases() -> Vec<(&'static str, Value, &'static str)> {
    let sp = |f: &dyn Fn(&mut Value)| {
        let mut b = sp_body("R-1", "CREATE_DEAL");
        f(&mut b);
        b
    };
    let paid = |f: &dyn Fn(&mut Value)| {
        let mut b = sp_body("R-1", "PAY_SUCCESS");
        f(&mut b);
        b
    };
    let remove = |k: &'static str| {
        move |b: &mut Value| {
            b.as_object_mut().unwrap().remove(k);
        }
    };
    vec![
        ("required field", sp(&remove("out_shop_no")), "out_shop_no"),
        ("required dish_list", sp(&remove("dish_list")), "dish_list"),
        (
            "PAY_SUCCESS needs transaction_id",
            paid(&remove("transaction_id")),
            "transaction_id",
        ),
        (
            "PAY_SUCCESS needs pay_time",
            paid(&remove("pay_time")),
            "pay_time",
        ),
        (
            "PAY_SUCCESS needs out_trade_no",
            paid(&remove("out_trade_no")),
            "out_trade_no",
        ),
        (
            "null is never sent",
            sp(&|b| b["out_table_no"] = Value::Null),
            "out_table_no",
        ),
        (
            "string amount",
            sp(&|b| b["total_amount"] = json!("9900")),
            "total_amount",
        ),
        (
            "negative amount",
            sp(&|b| b["user_amount"] = json!(-1)),
            "user_amount",
        ),
        (
            "fractional fen",
            sp(&|b| b["discount_amount"] = json!(10.5)),
            "discount_amount",
        ),
        (
            "too long",
            sp(&|b| b["sub_mchid"] = json!("1".repeat(33))),
            "sub_mchid",
        ),
        (
            "CJK bytes count",
            sp(&|b| b["out_table_no"] = json!("桌号桌号桌号")),
            "out_table_no",
        ),
        (
            "emoji in a dish name",
            sp(&|b| b["dish_list"][1]["name"] = json!("牛肉面🍜")),
            "dish_list[1].name",
        ),
        (
            "status enum",
            sp(&|b| b["status"] = json!("REFUNDED")),
            "status",
        ),
        (
            "unit enum",
            sp(&|b| b["dish_list"][0]["unit"] = json!("BY_BOX")),
            "dish_list[0].unit",
        ),
        (
            "dish type enum",
            sp(&|b| b["dish_list"][0]["type"] = json!("GUANGDONG_CUISINE")),
            "dish_list[0].type",
        ),
        (
            "count decimals",
            sp(&|b| b["dish_list"][3]["count"] = json!(1.255)),
            "dish_list[3].count",
        ),
        (
            "priority range",
            sp(&|b| b["dish_list"][4]["priority"] = json!(101)),
            "dish_list[4].priority",
        ),
        (
            "discount range",
            sp(&|b| b["dish_list"][2]["discount"] = json!(120)),
            "dish_list[2].discount",
        ),
        (
            "properties need taste",
            sp(&|b| {
                b["dish_list"][1]["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("taste");
            }),
            "dish_list[1].properties.taste",
        ),
        (
            "RFC 3339 time",
            sp(&|b| b["action_time"] = json!("2026-11-27 12:34:56")),
            "action_time",
        ),
        (
            "unknown field",
            sp(&|b| b["colour"] = json!("red")),
            "colour",
        ),
        ("both variants", sp(&|b| b["channel_id"] = json!("CH1")), ""),
        ("openid or sub_openid", sp(&remove("openid")), "openid"),
        (
            "sub_openid needs sub_appid",
            sp(&|b| {
                b.as_object_mut().unwrap().remove("openid");
                b["sub_openid"] = json!("o1");
            }),
            "sub_appid",
        ),
        (
            "channel forbids openid",
            {
                let mut b = channel_body("R-1");
                b["openid"] = json!("o1");
                b
            },
            "openid",
        ),
        (
            "channel needs sub_openid",
            {
                let mut b = channel_body("R-1");
                b.as_object_mut().unwrap().remove("sub_openid");
                b
            },
            "sub_openid",
        ),
        ("not an object", json!([1, 2]), ""),
    ]
}

#[tokio::test]
async fn every_body_rule_category_gives_400_param_error_naming_the_field() {
    let sb = sandbox().await;
    let url = sb.base_url();
    let cases = body_rule_cases();
    assert!(cases.len() >= 25);
    for (name, body, field) in cases {
        let raw = Req::new(&body).send(&url).await;
        assert_eq!(raw.status, 400, "{name}: {}", raw.body);
        assert_eq!(raw.body["code"], "PARAM_ERROR", "{name}: {}", raw.body);
        let issues: Vec<String> = raw.body["detail"]["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        let prefix = if field.is_empty() {
            "body: ".to_string()
        } else {
            format!("{field}: ")
        };
        assert!(
            issues.iter().any(|i| i.starts_with(&prefix)),
            "{name}: expected an issue at {field:?}, got {issues:?}"
        );
        assert!(
            !raw.body.to_string().contains("test-login-token"),
            "{name}: the login_token is a secret"
        );
    }
    assert_eq!(sb.stats().accepted, 0);
    let attempt = client(&sb)
        .sync_status(bytes(&sp_body("R-2", "PAY_SUCCESS").tap_remove("pay_time")))
        .await;
    match attempt.disposition {
        Disposition::Permanent(r) => {
            let e = r.error.unwrap();
            assert_eq!((r.status, e.code.as_str()), (400, "PARAM_ERROR"));
            // A JSON Pointer, as WeChat Pay writes `detail.field` (issue 13).
            assert_eq!(e.detail.unwrap()["field"], "/pay_time");
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    sb.shutdown().await;
}

trait TapRemove {
    fn tap_remove(self, key: &str) -> Self;
}

impl TapRemove for Value {
    fn tap_remove(mut self, key: &str) -> Self {
        self.as_object_mut().unwrap().remove(key);
        self
    }
}
