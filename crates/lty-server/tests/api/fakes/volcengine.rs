//! A fake Volcengine RTC OpenAPI: checks every request's HMAC-SHA256
//! signature as the real service does (from the request as received: Host
//! with its port, raw body, decoded query), answers the vendor's error
//! shapes (optionally all in HTTP 200), keeps the voice-chat tasks it was
//! asked to run, and records every call.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use lty_vendors::volcengine::openapi::{
    RTC_REGION, RTC_SERVICE, canonical_headers, canonical_query_string, canonical_request,
    canonical_uri, credential_scope, hex_encode_hash, signature, signing_key, string_to_sign,
};
use lty_vendors::volcengine::voice_chat::Command;
use serde_json::{Value, json};

use super::FakeServer;

/// The fake's credentials and RTC AppId (fictional, from the vendor notes).
pub const AK: &str = "AKLTexampleAccessKeyForLtyDocs0001";
pub const SK: &str = "ExampleSecretKeyForLtyDocsDoNotUse==";
pub const APP_ID: &str = "5f3c0e1d2b4a69788796a5b4";
pub const APP_KEY: &str = "lty-docs-example-app-key-0001";

/// One request that passed authentication.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: String,
    pub body: Value,
    /// The error code answered, `None` on success.
    pub error: Option<String>,
}

/// A scripted answer for the next authenticated call.
#[derive(Debug, Clone)]
pub enum Script {
    /// Answer `status` with this `Error.Code`.
    Fail(u16, &'static str),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer a body that is not JSON.
    Garbage(u16),
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    rejected: Vec<String>,
    running: HashSet<(String, String)>,
    errors_in_200: bool,
    script: VecDeque<Script>,
    next_request_id: u64,
}

/// A running fake; dropped with the test.
pub struct FakeVolcengine {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeVolcengine {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let server = FakeServer::start_handler(handle, inner.clone()).await;
        Self { server, inner }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`, for `VOLCENGINE_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// Every authenticated call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The authenticated calls of one action.
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.action == action)
            .collect()
    }

    /// Error codes of the requests refused before reaching an action.
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }

    /// `(RoomId, TaskId)` of every agent running now.
    pub fn running(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().running.iter().cloned().collect()
    }

    /// Scripts the answer to the next authenticated call.
    pub fn then(&self, script: Script) {
        self.inner.lock().unwrap().script.push_back(script);
    }

    /// Answers every error with HTTP 200 (as the service sometimes does).
    pub fn errors_in_200(&self, on: bool) {
        self.inner.lock().unwrap().errors_in_200 = on;
    }
}

struct Fail {
    status: u16,
    code: &'static str,
    message: String,
}

fn fail(status: u16, code: &'static str, message: impl Into<String>) -> Fail {
    Fail {
        status,
        code,
        message: message.into(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The service's signature checks, in its order (vendor notes §7).
fn authenticate(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Fail> {
    let auth = header(headers, "authorization")
        .ok_or_else(|| fail(401, "MissingAuthenticationToken", "no Authorization"))?;
    let bad_auth = || fail(401, "InvalidAuthorization", "malformed Authorization");
    let rest = auth.strip_prefix("HMAC-SHA256 ").ok_or_else(bad_auth)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut sig = None;
    for part in rest.split(", ") {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => sig = Some(v),
            _ => return Err(bad_auth()),
        }
    }
    let (Some(credential), Some(signed_headers), Some(sig)) = (credential, signed_headers, sig)
    else {
        return Err(bad_auth());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let &[ak, date, region, service, terminator] = &scope[..] else {
        return Err(fail(401, "InvalidCredential", "credential scope"));
    };
    if terminator != "request" {
        return Err(fail(401, "InvalidCredential", "credential scope"));
    }
    if ak != AK {
        return Err(fail(401, "InvalidAccessKey", "unknown access key"));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-date") {
        return Err(fail(
            401,
            "InvalidAuthorization",
            "host and x-date must be signed",
        ));
    }
    let mut signed: Vec<(&str, &str)> = Vec::new();
    for name in &names {
        let value = header(headers, name).ok_or_else(|| {
            fail(
                401,
                "InvalidAuthorization",
                format!("{name} is signed but absent"),
            )
        })?;
        signed.push((name, value));
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    if sorted != names {
        return Err(fail(
            401,
            "SignatureDoesNotMatch",
            "SignedHeaders not sorted",
        ));
    }
    let x_date = header(headers, "x-date").unwrap_or_default();
    let when = chrono::NaiveDateTime::parse_from_str(x_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| fail(401, "InvalidTimestamp", "X-Date unreadable"))?
        .and_utc();
    if (chrono::Utc::now() - when).num_seconds().abs() > 900 {
        return Err(fail(401, "InvalidTimestamp", "X-Date too far from now"));
    }
    if date != &x_date[..8] || region != RTC_REGION || service != RTC_SERVICE {
        return Err(fail(
            401,
            "InvalidCredential",
            "scope date, region or service",
        ));
    }
    let body_hash = hex_encode_hash(body);
    if header(headers, "x-content-sha256").is_some_and(|h| h != body_hash) {
        return Err(fail(
            401,
            "SignatureDoesNotMatch",
            "X-Content-Sha256 is not the body's",
        ));
    }
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (canonical, signed_names) = canonical_headers(&signed);
    let request = canonical_request(
        method,
        &canonical_uri(path),
        &canonical_query_string(&query),
        &canonical,
        &signed_names,
        &body_hash,
    );
    let scope = credential_scope(date, region, service);
    let key = signing_key(SK, date, region, service);
    let expected = signature(&key, &string_to_sign(x_date, &scope, &request));
    let same = expected.len() == sig.len()
        && expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(fail(401, "SignatureDoesNotMatch", "signature mismatch"));
    }
    Ok(())
}

fn str_field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The action itself, once authenticated.
fn act(inner: &mut Inner, action: &str, body: &Value) -> Result<(), Fail> {
    let invalid = |m: &str| fail(400, "InvalidParameter", m);
    let (Some(app), Some(room), Some(task)) = (
        str_field(body, "AppId"),
        str_field(body, "RoomId"),
        str_field(body, "TaskId"),
    ) else {
        return Err(fail(
            400,
            "MissingParameter",
            "AppId, RoomId and TaskId are required",
        ));
    };
    if app != APP_ID {
        return Err(invalid("AppId is not this account's"));
    }
    let key = (room.to_owned(), task.to_owned());
    match action {
        "StartVoiceChat" => {
            let config = &body["Config"];
            for part in ["ASRConfig", "TTSConfig", "LLMConfig"] {
                if !config[part].is_object() {
                    return Err(fail(400, "MissingParameter", format!("Config.{part}")));
                }
            }
            if str_field(&config["LLMConfig"], "Mode").is_none() {
                return Err(fail(400, "MissingParameter", "LLMConfig.Mode"));
            }
            let targets = body["AgentConfig"]["TargetUserId"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let agent = str_field(&body["AgentConfig"], "UserId").unwrap_or_default();
            if targets.len() != 1 || targets[0].as_str().is_none_or(str::is_empty) {
                return Err(invalid("TargetUserId must hold exactly one user"));
            }
            if targets[0].as_str() == Some(agent) {
                return Err(invalid("the agent cannot be its own target"));
            }
            inner.running.insert(key);
            Ok(())
        }
        "UpdateVoiceChat" => {
            let command = str_field(body, "Command")
                .and_then(Command::parse)
                .filter(|c| {
                    // Only vendor spellings, in any case, as the service.
                    str_field(body, "Command")
                        .is_some_and(|s| s.eq_ignore_ascii_case(c.vendor_name()))
                })
                .ok_or_else(|| invalid("unknown Command"))?;
            if command.needs_message() && str_field(body, "Message").is_none() {
                return Err(fail(400, "MissingParameter", "Message"));
            }
            if !inner.running.contains(&key) {
                return Err(invalid("the task is not running"));
            }
            Ok(())
        }
        // Stopping an unknown task is fine.
        _ => {
            inner.running.remove(&key);
            Ok(())
        }
    }
}

fn answer(inner: &mut Inner, action: &str, version: &str, result: Result<(), Fail>) -> Response {
    inner.next_request_id += 1;
    let mut metadata = json!({
        "RequestId": format!("fake-{}", inner.next_request_id),
        "Action": action,
        "Version": version,
        "Service": "rtc",
        "Region": "cn-north-1",
    });
    match result {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({ "ResponseMetadata": metadata, "Result": "ok" })),
        )
            .into_response(),
        Err(f) => {
            metadata["Error"] = json!({ "Code": f.code, "Message": f.message });
            let status = if inner.errors_in_200 { 200 } else { f.status };
            (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(json!({ "ResponseMetadata": metadata })),
            )
                .into_response()
        }
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (action, version) = (get("Action"), get("Version"));
    if let Err(f) = authenticate(
        parts.method.as_str(),
        parts.uri.path(),
        &query,
        &parts.headers,
        &body,
    ) {
        let mut inner = inner.lock().unwrap();
        inner.rejected.push(f.code.to_owned());
        return answer(&mut inner, &action, &version, Err(f));
    }
    let script = inner.lock().unwrap().script.pop_front();
    match script {
        Some(Script::Delay(d)) => tokio::time::sleep(d).await,
        Some(Script::Garbage(status)) => {
            return (
                StatusCode::from_u16(status).unwrap(),
                "<html>bad gateway</html>",
            )
                .into_response();
        }
        _ => {}
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = inner.lock().unwrap();
    let result = if action.is_empty() || version.is_empty() {
        Err(fail(
            400,
            "MissingParameter",
            "Action and Version are required",
        ))
    } else if !matches!(
        action.as_str(),
        "StartVoiceChat" | "UpdateVoiceChat" | "StopVoiceChat"
    ) || version != "2024-12-01"
    {
        Err(fail(
            404,
            "InvalidActionOrVersion",
            "unknown action or version",
        ))
    } else if let Some(Script::Fail(status, code)) = script {
        Err(fail(status, code, "scripted failure"))
    } else {
        act(&mut inner, &action, &json)
    };
    inner.calls.push(Call {
        action: action.clone(),
        body: json,
        error: result.as_ref().err().map(|f| f.code.to_owned()),
    });
    answer(&mut inner, &action, &version, result)
}
