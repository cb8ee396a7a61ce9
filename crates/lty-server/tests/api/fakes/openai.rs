//! A fake OpenAI-compatible chat completions API in Moonshot's flavour
//! (`POST /v1/chat/completions`): checks the bearer key and validates the
//! body like Moonshot (known model, non-empty contents, temperature in
//! [0, 1]), records every request, and answers deterministically, streamed
//! or not. Streams exercise the parser: a role-only first chunk, `:
//! keep-alive` comments, `\r\n` line ends, writes split inside UTF-8
//! sequences, usage inside `choices[0]`. Scripts make it fail: vendor error
//! bodies with any status (and `Retry-After`), an error event mid-stream, a
//! stream without `[DONE]`, a stall before the first byte or mid-stream,
//! and a stream that waits for the client to go away (recorded).
//!
//! Vision: a user message of the vision model ([`VISION_MODEL`]) may be a
//! list of `text` and `image_url` parts; the image must be a `data:` URL
//! whose base64 decodes to an image of the named type (checked by its
//! leading bytes), and image parts sent to the text model are refused like
//! Moonshot does. A request with an image is answered with the vision
//! reply ([`VISION_REPLY`] unless changed).
//!
//! `POST /v1/moderations` answers like OpenAI's moderation API: it flags
//! every input containing the marker word ([`FLAG_MARKER`] unless changed),
//! or fails with a 500 when told to.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::FakeServer;

/// The key the fake accepts (fictional).
pub const API_KEY: &str = "sk-fake-moonshot-key-0001";
/// The text model it serves.
pub const MODEL: &str = "moonshot-v1-8k";
/// The vision model it serves.
pub const VISION_MODEL: &str = "moonshot-v1-8k-vision-preview";
/// What it says about any image by default.
pub const VISION_REPLY: &str = "图片里有一只橘色的小猫在晒太阳。";

/// A scripted answer for the next call.
#[derive(Debug, Clone)]
pub enum Script {
    /// A vendor error body `{"error":{"message","type"}}` with this status.
    Error {
        status: u16,
        kind: &'static str,
        message: &'static str,
        retry_after: Option<u64>,
    },
    /// An HTML page, as a proxy in front of the vendor would send.
    Html(u16),
    /// Wait this long before answering at all.
    StallBeforeHead(Duration),
    /// Stream the first deltas, then send an error event.
    ErrorMidStream,
    /// Stream the first deltas, then close without `[DONE]`.
    CutMidStream,
    /// Stream the first deltas, then go silent (no bytes at all).
    StallMidStream,
    /// Stream the first deltas, then wait until the client goes away.
    HoldUntilDisconnect,
}

/// The word the fake moderation API flags by default.
pub const FLAG_MARKER: &str = "flagme";

#[derive(Default)]
struct Inner {
    script: VecDeque<Script>,
    requests: Vec<Value>,
    /// Flagged by `/moderations`; [`FLAG_MARKER`] when `None`.
    marker: Option<String>,
    moderation_fails: bool,
    /// Inputs `/moderations` received.
    moderated: Vec<String>,
    /// The answer about images; [`VISION_REPLY`] when `None`.
    vision_reply: Option<String>,
}

/// A running fake; stopped when dropped.
pub struct FakeOpenAi {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
    disconnected: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    disconnected: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

/// The default reply, in three deltas.
pub const REPLY_PARTS: [&str; 3] = ["你好，", "小朋友！", "今天想听故事吗？"];

/// Usage the fake reports for every answer.
pub const USAGE: (u32, u32) = (21, 9);

impl FakeOpenAi {
    pub async fn start() -> Self {
        let shared = Shared {
            inner: Arc::default(),
            disconnected: Arc::default(),
            calls: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(handle))
            .route("/v1/moderations", axum::routing::post(moderations))
            .with_state(shared.clone());
        Self {
            server: FakeServer::start(app).await,
            inner: shared.inner,
            disconnected: shared.disconnected,
            calls: shared.calls,
        }
    }

    /// Points `config` at this fake with its key, and short timeouts.
    pub fn configure(&self, config: &mut Config) {
        config.llm.base_url = format!("http://{}/v1/", self.server.addr);
        config.llm.api_key = Some(Secret::new(API_KEY));
        config.llm.model = MODEL.into();
        config.llm.first_byte_timeout_ms = 1_000;
        config.llm.idle_timeout_ms = 1_000;
        config.ai.sse_keep_alive_secs = 1;
    }

    /// Also points `config`'s moderation API at this fake.
    pub fn configure_moderation(&self, config: &mut Config) {
        config.ai.moderation_url = Some(format!("http://{}/v1", self.server.addr));
        config.ai.moderation_api_key = Some(Secret::new(API_KEY));
    }

    /// Makes `/moderations` flag texts containing `word` instead.
    pub fn flag_word(&self, word: &str) {
        self.inner.lock().unwrap().marker = Some(word.to_owned());
    }

    /// Makes requests with an image answered with `text` from now on.
    pub fn set_vision_reply(&self, text: &str) {
        self.inner.lock().unwrap().vision_reply = Some(text.to_owned());
    }

    /// Makes `/moderations` answer 500 from now on.
    pub fn fail_moderation(&self) {
        self.inner.lock().unwrap().moderation_fails = true;
    }

    /// Texts `/moderations` was asked about, oldest first.
    pub fn moderated(&self) -> Vec<String> {
        self.inner.lock().unwrap().moderated.clone()
    }

    /// Scripts the answer to the next call.
    pub fn script(&self, s: Script) {
        self.inner.lock().unwrap().script.push_back(s);
    }

    /// Request bodies received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Calls received, valid or not.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether a held stream saw its client go away.
    pub fn saw_disconnect(&self) -> bool {
        self.disconnected.load(Ordering::SeqCst)
    }

    /// The default full reply.
    pub fn reply() -> String {
        REPLY_PARTS.concat()
    }
}

fn vendor_error(status: u16, kind: &str, message: &str, retry_after: Option<u64>) -> Response {
    let mut res = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "error": { "message": message, "type": kind } })),
    )
        .into_response();
    if let Some(s) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, s.to_string().parse().unwrap());
    }
    res
}

fn invalid(message: &str) -> Response {
    vendor_error(400, "invalid_request_error", message, None)
}

/// Moonshot's checks on the request; `Some` is the error answer.
fn check(headers: &HeaderMap, body: &Value) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {API_KEY}")) {
        return Some(vendor_error(
            401,
            "invalid_authentication_error",
            "Invalid Authentication",
            None,
        ));
    }
    if body["model"] != MODEL && body["model"] != VISION_MODEL {
        return Some(vendor_error(
            404,
            "resource_not_found_error",
            "Not found the model or Permission denied",
            None,
        ));
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Some(invalid("messages must not be empty"));
    };
    for m in messages {
        if !matches!(m["role"].as_str(), Some("system" | "user" | "assistant")) {
            return Some(invalid("unknown role"));
        }
        if let Some(parts) = m["content"].as_array() {
            if m["role"] != "user" {
                return Some(invalid("only user messages may have content parts"));
            }
            if let Some(err) = check_parts(body["model"] == VISION_MODEL, parts) {
                return Some(err);
            }
            continue;
        }
        if m["content"].as_str().is_none_or(str::is_empty) {
            return Some(invalid("message content must not be empty"));
        }
    }
    if let Some(t) = body.get("temperature")
        && !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))
    {
        return Some(invalid("temperature must be in [0, 1]"));
    }
    None
}

/// Whether `bytes` start like an image of the media type `mime`.
fn looks_like(mime: &str, bytes: &[u8]) -> bool {
    match mime {
        "image/jpeg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/gif" => bytes.starts_with(b"GIF8"),
        "image/webp" => bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP",
        _ => false,
    }
}

/// Checks the content parts of a user message.
fn check_parts(vision: bool, parts: &[Value]) -> Option<Response> {
    use base64::Engine;
    if parts.is_empty() {
        return Some(invalid("message content must not be empty"));
    }
    for part in parts {
        match part["type"].as_str() {
            Some("text") if part["text"].as_str().is_some_and(|t| !t.is_empty()) => {}
            Some("image_url") => {
                if !vision {
                    return Some(invalid(
                        "Image input not supported for model moonshot-v1-8k",
                    ));
                }
                let url = part["image_url"]["url"].as_str().unwrap_or("");
                let Some((mime, data)) = url
                    .strip_prefix("data:")
                    .and_then(|rest| rest.split_once(";base64,"))
                else {
                    return Some(invalid("image_url must be a base64 data URL"));
                };
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
                    return Some(invalid("image_url is not valid base64"));
                };
                if !looks_like(mime, &bytes) {
                    return Some(invalid("the image does not match its media type"));
                }
            }
            _ => return Some(invalid("unknown or empty content part")),
        }
    }
    None
}

fn has_image(body: &Value) -> bool {
    body["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["type"] == "image_url"))
        })
    })
}

async fn handle(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    let script = s.inner.lock().unwrap().script.pop_front();
    if let Some(Script::StallBeforeHead(d)) = &script {
        tokio::time::sleep(*d).await;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("body is not JSON");
    };
    if let Some(err) = check(&headers, &body) {
        return err;
    }
    let vision_reply = {
        let mut inner = s.inner.lock().unwrap();
        inner.requests.push(body.clone());
        inner.vision_reply.clone()
    };
    let parts: Vec<String> = if has_image(&body) {
        vec![vision_reply.unwrap_or_else(|| VISION_REPLY.to_owned())]
    } else {
        REPLY_PARTS.iter().map(|p| (*p).to_owned()).collect()
    };
    match script {
        Some(Script::Error {
            status,
            kind,
            message,
            retry_after,
        }) => return vendor_error(status, kind, message, retry_after),
        Some(Script::Html(status)) => {
            return (
                StatusCode::from_u16(status).unwrap(),
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response();
        }
        _ => {}
    }
    let usage = json!({
        "prompt_tokens": USAGE.0,
        "completion_tokens": USAGE.1,
        "total_tokens": USAGE.0 + USAGE.1,
    });
    if body["stream"] != true {
        return axum::Json(json!({
            "id": "cmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": parts.concat() },
                "finish_reason": "stop",
            }],
            "usage": usage,
        }))
        .into_response();
    }
    stream(s, script, parts, usage)
}

async fn moderations(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {API_KEY}")) {
        return vendor_error(
            401,
            "invalid_authentication_error",
            "Invalid Authentication",
            None,
        );
    }
    let Some(input) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["input"].as_str().map(str::to_owned))
    else {
        return invalid("input must be a string");
    };
    let (fails, marker) = {
        let mut inner = s.inner.lock().unwrap();
        inner.moderated.push(input.clone());
        let marker = inner.marker.clone().unwrap_or_else(|| FLAG_MARKER.into());
        (inner.moderation_fails, marker)
    };
    if fails {
        return vendor_error(500, "server_error", "moderation is down", None);
    }
    let flagged = input.contains(&marker);
    axum::Json(json!({
        "id": "modr-fake",
        "model": "omni-moderation-latest",
        "results": [{
            "flagged": flagged,
            "categories": { "violence": flagged },
            "category_scores": { "violence": if flagged { 0.97 } else { 0.01 } },
        }],
    }))
    .into_response()
}

fn chunk(delta: Value, finish: Value, usage: Option<&Value>) -> String {
    let mut choice = json!({ "index": 0, "delta": delta, "finish_reason": finish });
    if let Some(u) = usage {
        choice["usage"] = u.clone();
    }
    let c = json!({
        "id": "cmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp-fake",
        "choices": [choice],
    });
    format!("data: {c}\r\n\r\n")
}

fn stream(s: Shared, script: Option<Script>, parts: Vec<String>, usage: Value) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let send = |b: Vec<u8>| {
            let tx = tx.clone();
            async move {
                // A pause between writes keeps them separate TCP segments.
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.send(Bytes::from(b)).await.is_ok()
            }
        };
        let first = chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
            None,
        );
        if !send(first.into_bytes()).await || !send(b": keep-alive\n\n".to_vec()).await {
            return;
        }
        let early_end = matches!(
            script,
            Some(
                Script::ErrorMidStream
                    | Script::CutMidStream
                    | Script::StallMidStream
                    | Script::HoldUntilDisconnect
            )
        );
        let count = if early_end { 1 } else { parts.len() };
        for part in parts.iter().take(count) {
            let bytes = chunk(json!({ "content": part }), Value::Null, None).into_bytes();
            // Split inside the first multi-byte character.
            let cut = bytes.iter().position(|b| *b >= 0x80).map_or(1, |p| p + 1);
            if !send(bytes[..cut].to_vec()).await || !send(bytes[cut..].to_vec()).await {
                return;
            }
        }
        match script {
            Some(Script::ErrorMidStream) => {
                let e = json!({ "error": { "message": "server overloaded", "type": "engine_overloaded_error" } });
                let _ = send(format!("data: {e}\n\n").into_bytes()).await;
                return;
            }
            Some(Script::CutMidStream) => return,
            Some(Script::StallMidStream) => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Some(Script::HoldUntilDisconnect) => {
                tx.closed().await;
                s.disconnected.store(true, Ordering::SeqCst);
                return;
            }
            _ => {}
        }
        let last = chunk(json!({}), json!("stop"), Some(&usage));
        let _ = send(last.into_bytes()).await && send(b"data: [DONE]\r\n\r\n".to_vec()).await;
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
