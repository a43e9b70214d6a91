//! `wechatpay check`: what an operator runs before a rollout. One harmless signed request
//! (`GET /v3/certificates`) to the configured endpoint, and a report: reachable, clock skew,
//! signature accepted (or WeChat Pay's `SIGN_ERROR` with the canonical message to compare),
//! response verified and with which key, and which certificates WeChat Pay lists.

use std::fmt;

use super::client::{Answer, WechatPayClient};
use super::verify::header;
use super::VerifyError;

pub use catering_sync_core::apiv3::CERTIFICATES_PATH;

/// WeChat Pay rejects requests whose timestamp is more than this far from its clock.
const MAX_SKEW_SECS: i64 = 300;

/// What the check found.
#[derive(Debug)]
pub struct Report {
    /// The endpoint asked.
    pub base_url: String,
    /// The `Wechatpay-Serial` sent, if any.
    pub wechatpay_serial: Option<String>,
    /// The configured verification keys.
    pub keys: Vec<String>,
    /// The answer, or why none came.
    pub answer: Result<Answer, String>,
    /// Local clock minus WeChat Pay's (`Date`), in seconds, when it sent one.
    pub skew_secs: Option<i64>,
    /// Platform-certificate mode: how many listed certificates decrypted with the APIv3 key.
    pub decrypted: Option<Result<usize, super::platform::PlatformError>>,
}

impl Report {
    /// Reachable, the signature accepted, the answer verified and the clocks within bounds.
    pub fn ok(&self) -> bool {
        let Ok(a) = &self.answer else { return false };
        a.status != 401
            && a.verified.is_ok()
            && self.decrypted.as_ref().is_none_or(|d| d.is_ok())
            && self.skew_secs.is_none_or(|s| s.abs() <= MAX_SKEW_SECS)
    }
}

/// Send the request and build the report.
pub async fn check(client: &WechatPayClient, base_url: &str) -> Report {
    let mut answer = client
        .get(CERTIFICATES_PATH)
        .await
        .map_err(|e| error_chain(&e));
    let set = client.key_store().current();
    let decrypted = match (&mut answer, &set.apiv3_key) {
        (Ok(a), Some(key)) => Some(decrypt(a, key, &set.keys)),
        _ => None,
    };
    let skew_secs = answer.as_ref().ok().and_then(|a| {
        let date = a.headers.get(http::header::DATE)?.to_str().ok()?;
        let server = httpdate::parse_http_date(date).ok()?;
        let local = crate::clock::system_now();
        Some(match local.duration_since(server) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        })
    });
    Report {
        base_url: base_url.to_string(),
        wechatpay_serial: set.wechatpay_serial.clone(),
        keys: set.keys.ids().map(str::to_string).collect(),
        answer,
        skew_secs,
        decrypted,
    }
}

/// Decrypt the listed certificates; an answer signed with one of them verifies (the first
/// download of platform-certificate mode has nothing else to verify it with).
fn decrypt(
    a: &mut Answer,
    key: &super::platform::ApiV3Key,
    held: &super::VerificationKeys,
) -> Result<usize, super::platform::PlatformError> {
    if a.status != 200 {
        return Err(super::platform::PlatformError::Status {
            status: a.status,
            body: String::from_utf8_lossy(&a.body[..a.body.len().min(256)]).into_owned(),
        });
    }
    let listed = super::platform::certificates(key, &a.body)?;
    if a.verified.is_err() {
        let mut keys = held.clone();
        keys.merge(&listed);
        a.verified =
            super::verify::verify_response(&keys, &a.headers, &a.body, super::client::unix_now());
    }
    Ok(listed.ids().count())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn text<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = |good: bool| if good { "ok  " } else { "FAIL" };
        writeln!(f, "endpoint          {}{CERTIFICATES_PATH}", self.base_url)?;
        writeln!(
            f,
            "keys              {} (Wechatpay-Serial sent: {})",
            self.keys.join(", "),
            self.wechatpay_serial.as_deref().unwrap_or("none")
        )?;
        let a = match &self.answer {
            Ok(a) => a,
            Err(e) => return writeln!(f, "{} reachable      no: {e}", mark(false)),
        };
        let request_id = text(a, header::REQUEST_ID);
        writeln!(
            f,
            "{} reachable      HTTP {} (Request-ID {request_id})",
            mark(true),
            a.status
        )?;
        match self.skew_secs {
            Some(s) => writeln!(
                f,
                "{} clock skew     {s:+} s against WeChat Pay's Date (at most ±{MAX_SKEW_SECS} s)",
                mark(s.abs() <= MAX_SKEW_SECS)
            )?,
            None => writeln!(f, "     clock skew     unknown (no Date header)")?,
        }
        let error: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        let code = error["code"].as_str().unwrap_or("");
        if a.status == 401 {
            writeln!(
                f,
                "{} signature      refused: {code} {}",
                mark(false),
                error["message"].as_str().unwrap_or("")
            )?;
            writeln!(
                f,
                "                  the signed message was {:?} (mchid, merchant_serial and \
                 private_key_file must belong together)",
                String::from_utf8_lossy(&a.signed)
            )?;
        } else {
            writeln!(f, "{} signature      accepted", mark(true))?;
        }
        let serial = text(a, header::SERIAL);
        match &a.verified {
            Ok(()) => writeln!(f, "{} response       verified with {serial}", mark(true))?,
            Err(VerifyError::UnknownSerial(s)) => writeln!(
                f,
                "{} response       signed with {s}, which is not a configured key (configure it, \
                 or name a configured one in wechatpay.wechatpay_serial)",
                mark(false)
            )?,
            Err(e) => writeln!(f, "{} response       not verified: {e}", mark(false))?,
        }
        match &self.decrypted {
            None => {}
            Some(Ok(n)) => writeln!(
                f,
                "{} APIv3 key      decrypts the {n} listed certificate(s)",
                mark(true)
            )?,
            Some(Err(e)) => writeln!(f, "{} APIv3 key      {e}", mark(false))?,
        }
        match (a.status, code) {
            (404, "RESOURCE_NOT_EXISTS") => writeln!(
                f,
                "     certificates   none: public-key mode (WeChat Pay signs with its public key)"
            ),
            (200, _) => {
                let listed = error["data"].as_array().cloned().unwrap_or_default();
                writeln!(f, "     certificates   {} listed", listed.len())?;
                for c in listed {
                    writeln!(
                        f,
                        "                    {} effective {} expires {}",
                        c["serial_no"].as_str().unwrap_or("?"),
                        c["effective_time"].as_str().unwrap_or("?"),
                        c["expire_time"].as_str().unwrap_or("?")
                    )?;
                }
                Ok(())
            }
            _ => writeln!(f, "     certificates   HTTP {} {code}", a.status),
        }
    }
}
