//! The HTTP side of the sandbox: accept loop, routing, and the sync-status handler.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::faults::{DeploymentFault, Faults, Injected, SignatureFault};
use super::respond::request_id;
use super::store::RecordedPost;
use super::State;
use catering_sync_core::apiv3::{CERTIFICATES_PATH, SYNC_STATUS_PATH};
use catering_sync_core::rules::{self, Mode};

type Body = Full<Bytes>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                state.store.count_connection();
                connections.spawn(serve(stream, state.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// One keep-alive connection. Like WeChat Pay (`Keep-Alive: timeout=8`), it is closed once it has
/// been idle — no request in progress — for the idle timeout.
async fn serve(stream: tokio::net::TcpStream, state: Arc<State>) {
    let idle_timeout = state.idle_timeout;
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let (state, activity) = (state.clone(), activity.clone());
            async move {
                activity.begin();
                let response = handle(state, req).await;
                activity.end();
                response
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let Some(idle_timeout) = idle_timeout else {
        let _ = conn.await;
        return;
    };
    let tick = (idle_timeout / 8).max(std::time::Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                if activity.idle_for() >= Some(idle_timeout) {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    return;
                }
            }
        }
    }
}

/// Requests in progress on a connection, and when the last one ended.
struct Activity {
    state: std::sync::Mutex<(usize, std::time::Instant)>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            state: std::sync::Mutex::new((0, std::time::Instant::now())),
        }
    }
}

impl Activity {
    fn begin(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
    }

    fn end(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = s.0.saturating_sub(1);
        s.1 = std::time::Instant::now();
    }

    /// How long the connection has been idle; `None` while a request is in progress.
    fn idle_for(&self) -> Option<std::time::Duration> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.0 == 0).then(|| s.1.elapsed())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == SYNC_STATUS_PATH {
        if method != Method::POST {
            return Ok(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "use POST",
                None,
            ));
        }
        return sync_status(&state, req).await;
    }
    if path == CERTIFICATES_PATH {
        if method != Method::GET {
            return Ok(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "use GET",
                None,
            ));
        }
        return Ok(respond(&state, certificates(&state, &req)));
    }
    Ok(admin(&state, &method, &path, req).await)
}

async fn admin(
    state: &State,
    method: &Method,
    path: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    match (method, path) {
        (&Method::GET, "/__sandbox/orders") => {
            json_response(StatusCode::OK, &json!({ "orders": state.store.summary() }))
        }
        (&Method::GET, "/__sandbox/posts") => json_response(
            StatusCode::OK,
            &json!({ "orders": state.store.all_posts() }),
        ),
        (&Method::GET, "/__sandbox/stats") => {
            json_response(StatusCode::OK, &json!(state.store.stats()))
        }
        (&Method::POST, "/__sandbox/reset") => {
            state.store.reset();
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "/__sandbox/faults") => {
            let faults = state
                .faults
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .clone();
            json_response(StatusCode::OK, &json!(faults))
        }
        (&Method::POST, "/__sandbox/faults") => set_faults(state, req).await,
        (&Method::GET, p) if p.starts_with("/__sandbox/orders/") => {
            let no = &p["/__sandbox/orders/".len()..];
            let posts = state.store.posts(no);
            if posts.is_empty() {
                error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "no accepted post for this order",
                    None,
                )
            } else {
                json_response(
                    StatusCode::OK,
                    &json!({ "out_order_no": no, "posts": posts }),
                )
            }
        }
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route", None),
    }
}

async fn set_faults(state: &State, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "body too large",
                None,
            )
        }
    };
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &e.to_string(), None),
    };
    if let Err(e) = faults.validate() {
        return error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &e.to_string(), None);
    }
    *state.faults.write().unwrap_or_else(|p| p.into_inner()) =
        (faults.clone(), std::time::Instant::now());
    json_response(StatusCode::OK, &json!(faults))
}

async fn sync_status(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let arrived_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    state.store.count_request();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, state.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(respond(
                state,
                error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "request body too large or unreadable",
                    Some(json!({ "location": "body" })),
                ),
            ))
        }
    };
    let (faults, since) = state
        .faults
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let faults = match &faults.only_mchid {
        Some(only) if signer_mchid(&parts.headers).as_deref() != Some(only.as_str()) => {
            Faults::default()
        }
        _ => faults,
    };
    let (latency, injected, signature_fault) = {
        let mut rng = rand::thread_rng();
        (
            faults.latency(&mut rng),
            faults.pick(&mut rng, since.elapsed()),
            faults.signature(&mut rng),
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = injected {
        return inject(state, fault, faults.retry_after_secs).await;
    }
    if faults.fails_order(&body) {
        return inject(state, Injected::Status(500), faults.retry_after_secs).await;
    }
    let response = match accept(state, &parts.headers, &body) {
        Ok((out_order_no, value)) => {
            let rid = request_id();
            if signature_fault != SignatureFault::None {
                state
                    .store
                    .count_fault(if signature_fault == SignatureFault::Bad {
                        "bad_signature"
                    } else {
                        "signtest"
                    });
            }
            record(state, &out_order_no, value, &rid, arrived_us);
            let named = parts
                .headers
                .get("wechatpay-serial")
                .and_then(|v| v.to_str().ok());
            signed_no_content(state, &rid, signature_fault, named)
        }
        Err(resp) => *resp,
    };
    Ok(respond(state, response))
}

/// The `mchid` of a request's `Authorization`, when it parses.
fn signer_mchid(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    catering_sync_core::apiv3::Authorization::parse(value)
        .ok()
        .map(|a| a.mchid)
}

fn record(state: &State, out_order_no: &str, value: Value, rid: &str, arrived_us: u64) {
    let status = value
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_string);
    state.store.record(
        out_order_no,
        RecordedPost {
            request_id: rid.to_string(),
            received_at_ms: arrived_us / 1000,
            received_at_us: arrived_us,
            body: state.record_bodies.then_some(value),
            status,
        },
    );
}

fn respond(state: &State, mut response: Response<Body>) -> Response<Body> {
    state.store.count_response(response.status().as_u16());
    if let Some(idle) = state.idle_timeout {
        if let Ok(v) = format!("timeout={}", idle.as_secs().max(1)).parse() {
            response.headers_mut().insert("keep-alive", v);
        }
    }
    response
}

async fn inject(
    state: &State,
    fault: Injected,
    retry_after_secs: u64,
) -> Result<Response<Body>, DropConnection> {
    match fault {
        Injected::Drop => {
            state.store.count_fault("drop");
            Err(DropConnection)
        }
        Injected::Hang(d) => {
            state.store.count_fault("hang");
            tokio::time::sleep(d).await;
            Err(DropConnection)
        }
        Injected::Unauthorized => {
            state.store.count_fault("unauthorized");
            Ok(respond(
                state,
                error(
                    StatusCode::UNAUTHORIZED,
                    "SIGN_ERROR",
                    "signature verification failed (injected)",
                    None,
                ),
            ))
        }
        Injected::Deployment(f) => {
            state.store.count_fault("deployment");
            Ok(respond(state, deployment_answer(f)))
        }
        Injected::Status(code) => {
            state.store.count_fault(&code.to_string());
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = match code {
                429 => error(
                    status,
                    "FREQUENCY_LIMITED",
                    "too many requests, slow down",
                    None,
                ),
                503 => error(
                    status,
                    "SERVICE_UNAVAILABLE",
                    "service unavailable, retry later",
                    None,
                ),
                _ => error(
                    status,
                    "SYSTEM_ERROR",
                    "system error, retry later with the same body",
                    None,
                ),
            };
            if code == 429 {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
            }
            Ok(respond(state, resp))
        }
    }
}

fn deployment_answer(f: DeploymentFault) -> Response<Body> {
    match f {
        DeploymentFault::NoAuth => error(
            StatusCode::FORBIDDEN,
            "NO_AUTH",
            "the merchant has no permission for this API (injected)",
            None,
        ),
        DeploymentFault::NotFound => empty(StatusCode::NOT_FOUND),
        DeploymentFault::MethodNotAllowed => empty(StatusCode::METHOD_NOT_ALLOWED),
        DeploymentFault::InvalidRequest => error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "User-Agent header is required (injected)",
            Some(json!({ "location": "header", "field": "User-Agent" })),
        ),
    }
}

/// Authenticate and validate; `Ok` carries the order number and the parsed body.
fn accept(
    state: &State,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Value), Box<Response<Body>>> {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let accepts_json = text(header::ACCEPT).is_some_and(|a| {
        a.split(',').any(|t| {
            matches!(
                t.split(';').next().map(str::trim),
                Some("application/json" | "*/*" | "application/*")
            )
        })
    });
    if !accepts_json {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Accept header must allow application/json",
            Some(json!({ "location": "header", "field": "Accept" })),
        )));
    }
    if text(header::USER_AGENT).is_none_or(str::is_empty) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "User-Agent header is required",
            Some(json!({ "location": "header", "field": "User-Agent" })),
        )));
    }
    if text(header::CONTENT_TYPE)
        .is_none_or(|c| c.split(';').next().map(str::trim) != Some("application/json"))
    {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Content-Type must be application/json",
            Some(json!({ "location": "header", "field": "Content-Type" })),
        )));
    }
    let n = state.verify_counter.fetch_add(1, Ordering::Relaxed);
    let verify = n % state.verify_every == 0;
    let auth = state
        .auth
        .authenticate(
            text(header::AUTHORIZATION),
            "POST",
            SYNC_STATUS_PATH,
            body,
            unix_now(),
            verify,
        )
        .map_err(|e| {
            Box::new(error(
                StatusCode::UNAUTHORIZED,
                "SIGN_ERROR",
                &e.to_string(),
                None,
            ))
        })?;
    state.store.count_signed_by(&auth.serial_no);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            &format!("body is not valid JSON: {e}"),
            Some(json!({ "location": "body" })),
        )
    })?;
    let violations = rules::validate(&value, Mode::Full);
    if let Some(first) = violations.first() {
        let issues: Vec<String> = violations.iter().map(ToString::to_string).collect();
        let detail = json!({ "location": "body", "field": json_pointer(&first.path), "issue": first.message, "issues": issues });
        let message = format!("{} ({} violation(s))", first, violations.len());
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            &message,
            Some(detail),
        )));
    }
    let out_order_no = value
        .get("out_order_no")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((out_order_no, value))
}

/// A signed 204. With a migrating merchant, the key is the one the request's `Wechatpay-Serial`
/// names: the public key when it names its id, the platform certificate otherwise.
/// `GET /v3/certificates`, authenticated like any request. With an APIv3 key and a platform
/// certificate (platform-certificate mode) it lists every listed certificate, each encrypted with
/// the APIv3 key, signed like any answer; otherwise it answers as WeChat Pay does a merchant in
/// public-key mode: `404 RESOURCE_NOT_EXISTS`, signed with the public key.
fn certificates(state: &State, req: &Request<Incoming>) -> Response<Body> {
    let canonical = req
        .uri()
        .path_and_query()
        .map_or(CERTIFICATES_PATH, |p| p.as_str());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = state
        .auth
        .authenticate(authorization, "GET", canonical, b"", unix_now(), true)
    {
        return error(StatusCode::UNAUTHORIZED, "SIGN_ERROR", &e.to_string(), None);
    }
    let listed = state
        .platform
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .listed
        .clone();
    let rid = request_id();
    let named = req
        .headers()
        .get("wechatpay-serial")
        .and_then(|v| v.to_str().ok());
    match &state.apiv3_key {
        Some(key) if !listed.is_empty() => {
            let body = crate::certificates::list(key, &listed).into_bytes();
            signed(
                state,
                &rid,
                SignatureFault::None,
                named,
                StatusCode::OK,
                body,
            )
        }
        _ => {
            let body = json!({
                "code": "RESOURCE_NOT_EXISTS",
                "message": "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥",
            })
            .to_string();
            let headers = state
                .signer
                .sign(body.as_bytes(), unix_now(), SignatureFault::None);
            with_signature(
                json_response_bytes(StatusCode::NOT_FOUND, body.into_bytes()),
                &rid,
                &headers,
            )
        }
    }
}

fn signed_no_content(
    state: &State,
    rid: &str,
    fault: SignatureFault,
    named: Option<&str>,
) -> Response<Body> {
    signed(state, rid, fault, named, StatusCode::NO_CONTENT, Vec::new())
}

/// A signed answer. With a platform certificate, the key is the one the request's
/// `Wechatpay-Serial` names: the public key when it names its id, the platform certificate
/// otherwise (WeChat Pay during a merchant's migration, and in platform-certificate mode).
fn signed(
    state: &State,
    rid: &str,
    fault: SignatureFault,
    named: Option<&str>,
    status: StatusCode,
    body: Vec<u8>,
) -> Response<Body> {
    let platform = state
        .platform
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .signer
        .clone();
    let (signer, kind) = match platform {
        Some(platform) if named.map(str::trim) != Some(state.public_key_id.as_str()) => {
            (platform, "platform_certificate")
        }
        _ => (state.signer.clone(), "public_key"),
    };
    if status == StatusCode::NO_CONTENT {
        state.store.count_signed_with(kind);
    }
    let headers = signer.sign(&body, unix_now(), fault);
    let response = if body.is_empty() {
        empty(status)
    } else {
        json_response_bytes(status, body)
    };
    with_signature(response, rid, &headers)
}

fn with_signature(
    mut resp: Response<Body>,
    rid: &str,
    signed: &super::respond::SignedHeaders,
) -> Response<Body> {
    let h = resp.headers_mut();
    for (name, value) in [
        ("request-id", rid),
        ("wechatpay-timestamp", signed.timestamp.as_str()),
        ("wechatpay-nonce", signed.nonce.as_str()),
        ("wechatpay-serial", signed.serial.as_str()),
        ("wechatpay-signature", signed.signature.as_str()),
    ] {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    }
    resp
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A rule's field path (`dish_list[2].properties.taste`) as the JSON Pointer WeChat Pay writes in
/// `detail.field` (`/dish_list/2/properties/taste`; RFC 6901 escapes).
fn json_pointer(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        let name_end = rest.find('[').unwrap_or(rest.len());
        let (name, indices) = rest.split_at(name_end);
        out.push('/');
        out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        rest = indices;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']') else {
                break;
            };
            out.push('/');
            out.push_str(&rest[open + 1..open + close]);
            rest = &rest[open + close + 1..];
        }
    }
    out
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    json_response_bytes(status, value.to_string().into_bytes())
}

fn json_response_bytes(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// WeChat Pay's error JSON with a `Request-ID`.
fn error(status: StatusCode, code: &str, message: &str, detail: Option<Value>) -> Response<Body> {
    let mut body = json!({ "code": code, "message": message });
    if let Some(d) = detail {
        body["detail"] = d;
    }
    let mut r = json_response(status, &body);
    if let Ok(v) = request_id().parse() {
        r.headers_mut().insert("request-id", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::json_pointer;

    #[test]
    fn field_paths_become_json_pointers() {
        assert_eq!(json_pointer("pay_time"), "/pay_time");
        assert_eq!(
            json_pointer("dish_list[2].properties.taste"),
            "/dish_list/2/properties/taste"
        );
        assert_eq!(json_pointer("dish_list[0]"), "/dish_list/0");
        assert_eq!(json_pointer(""), "");
        assert_eq!(json_pointer("a/b~c"), "/a~1b~0c");
    }
}
