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
//! Function calling: `tools` must be a non-empty list of functions whose
//! names both providers accept (`^[a-zA-Z_][a-zA-Z0-9_-]{2,63}$`), and
//! `tool_choice` only `auto` or `none` (Moonshot refuses forced choices).
//! A scripted call ([`Script::ToolCall`], [`Script::ToolCalls`]) answers
//! the next request that offers tools and allows calls, streamed or not
//! as asked, with `finish_reason: "tool_calls"`; the fake remembers the
//! ids it issued. A follow-up must carry the assistant's `tool_calls` as
//! issued, each answered by one `tool` message with its `tool_call_id`
//! right after; anything else is refused with a 400 as the real APIs do.
//!
//! Two flavours: Moonshot ([`FakeOpenAi::start`]: temperature in [0, 1],
//! usage inside `choices[0]`, a single streamed call without `index`, `""`
//! content beside calls, ids `name:N`) and OpenAI
//! ([`FakeOpenAi::start_openai`]: temperature in [0, 2], usage in a last
//! chunk of its own, `index` on every piece, `null` content, ids `call_N`).
//!
//! `POST /v1/moderations` answers like OpenAI's moderation API: it flags
//! every input containing the marker word ([`FLAG_MARKER`] unless changed),
//! or fails with a 500 when told to.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
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
    /// Call the function `name` (as the model sees it) with `arguments`.
    ToolCall {
        name: &'static str,
        arguments: &'static str,
    },
    /// Call several functions at once: `(name, arguments)`.
    ToolCalls(Vec<(&'static str, &'static str)>),
}

impl Script {
    /// The calls this script makes, if it is a tool-call script.
    fn calls(&self) -> Option<Vec<(&'static str, &'static str)>> {
        match self {
            Self::ToolCall { name, arguments } => Some(vec![(*name, *arguments)]),
            Self::ToolCalls(calls) => Some(calls.clone()),
            _ => None,
        }
    }
}

/// Which provider the fake behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Moonshot,
    OpenAi,
}

/// A call the fake issued: what a follow-up must repeat.
#[derive(Debug, Clone)]
struct Issued {
    name: String,
    arguments: String,
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
    /// Tool calls issued, by id.
    issued: HashMap<String, Issued>,
    /// Call tools even when `tool_choice` is `none`.
    ignores_tool_choice: bool,
}

/// A running fake; stopped when dropped.
pub struct FakeOpenAi {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
    disconnected: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    flavor: Flavor,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    disconnected: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    flavor: Flavor,
}

/// The default reply, in three deltas.
pub const REPLY_PARTS: [&str; 3] = ["你好，", "小朋友！", "今天想听故事吗？"];

/// Usage the fake reports for every answer.
pub const USAGE: (u32, u32) = (21, 9);

impl FakeOpenAi {
    /// A fake Moonshot.
    pub async fn start() -> Self {
        Self::start_flavor(Flavor::Moonshot).await
    }

    /// A fake of another OpenAI-compatible server.
    pub async fn start_openai() -> Self {
        Self::start_flavor(Flavor::OpenAi).await
    }

    pub async fn start_flavor(flavor: Flavor) -> Self {
        let shared = Shared {
            inner: Arc::default(),
            disconnected: Arc::default(),
            calls: Arc::default(),
            flavor,
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
            flavor,
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL a client is given.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    /// Makes scripted calls go out even when `tool_choice` is `none`, as a
    /// provider that ignores it would.
    pub fn ignore_tool_choice(&self) {
        self.inner.lock().unwrap().ignores_tool_choice = true;
    }

    /// Points `config` at this fake with its key, and short timeouts.
    pub fn configure(&self, config: &mut Config) {
        config.llm.base_url = format!("http://{}/v1/", self.server.addr);
        config.llm.api_key = Some(Secret::new(API_KEY));
        config.llm.model = MODEL.into();
        config.llm.first_byte_timeout_ms = 1_000;
        config.llm.idle_timeout_ms = 1_000;
        config.llm.provider = match self.flavor {
            Flavor::Moonshot => "kimi",
            Flavor::OpenAi => "openai",
        }
        .into();
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

/// Moonshot's checks on the request (OpenAI's temperature range in that
/// flavour); `Some` is the error answer.
fn check(
    headers: &HeaderMap,
    body: &Value,
    flavor: Flavor,
    issued: &HashMap<String, Issued>,
) -> Option<Response> {
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
    if let Some(err) = check_tool_messages(messages, issued) {
        return Some(err);
    }
    if let Some(err) = check_tools(body) {
        return Some(err);
    }
    for m in messages {
        if !matches!(
            m["role"].as_str(),
            Some("system" | "user" | "assistant" | "tool")
        ) {
            return Some(invalid("unknown role"));
        }
        if m.get("tool_calls").is_some() && m["content"].as_str().is_none_or(str::is_empty) {
            // A call may come without words.
            continue;
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
    let max = match flavor {
        Flavor::Moonshot => 1.0,
        Flavor::OpenAi => 2.0,
    };
    if let Some(t) = body.get("temperature")
        && !t.as_f64().is_some_and(|t| (0.0..=max).contains(&t))
    {
        return Some(invalid(&format!("temperature must be in [0, {max}]")));
    }
    None
}

/// Whether `name` is a function name both providers accept.
fn function_name_ok(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `tools` and `tool_choice`.
fn check_tools(body: &Value) -> Option<Response> {
    let Some(tools) = body.get("tools") else {
        return body
            .get("tool_choice")
            .map(|_| invalid("tool_choice is only allowed when tools are specified"));
    };
    let Some(tools) = tools.as_array().filter(|t| !t.is_empty()) else {
        return Some(invalid("tools must be a non-empty array"));
    };
    for tool in tools {
        if tool["type"] != "function" {
            return Some(invalid("tools[].type must be function"));
        }
        let name = tool["function"]["name"].as_str().unwrap_or("");
        if !function_name_ok(name) {
            return Some(invalid(&format!(
                "function name {name:?} must match ^[a-zA-Z_][a-zA-Z0-9-_]{{2,63}}$"
            )));
        }
        if let Some(p) = tool["function"].get("parameters")
            && p["type"] != "object"
        {
            return Some(invalid("function parameters must be a JSON schema object"));
        }
    }
    match body.get("tool_choice").map(|c| c.as_str()) {
        None | Some(Some("auto" | "none")) => None,
        Some(_) => Some(invalid("tool_choice must be auto or none")),
    }
}

/// Assistant `tool_calls` as issued, each answered right after by one
/// `tool` message naming it.
fn check_tool_messages(messages: &[Value], issued: &HashMap<String, Issued>) -> Option<Response> {
    // Ids asked by the latest assistant message and not answered yet.
    let mut open: Vec<String> = Vec::new();
    for m in messages {
        if m["role"] == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            let Some(at) = open.iter().position(|o| o == id) else {
                return Some(invalid(&format!(
                    "Invalid parameter: tool_call_id {id:?} does not answer a call of the preceding assistant message"
                )));
            };
            open.remove(at);
            if m["content"].as_str().is_none_or(str::is_empty) {
                return Some(invalid("message content must not be empty"));
            }
            continue;
        }
        if !open.is_empty() {
            return Some(invalid(&format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                open.join(", ")
            )));
        }
        let Some(calls) = m.get("tool_calls") else {
            continue;
        };
        if m["role"] != "assistant" {
            return Some(invalid("only assistant messages may have tool_calls"));
        }
        let Some(calls) = calls.as_array().filter(|c| !c.is_empty()) else {
            return Some(invalid("tool_calls must be a non-empty array"));
        };
        for call in calls {
            let id = call["id"].as_str().unwrap_or("");
            let Some(was) = issued.get(id) else {
                return Some(invalid(&format!("tool call id {id:?} was never issued")));
            };
            if call["type"] != "function"
                || call["function"]["name"] != was.name.as_str()
                || call["function"]["arguments"] != was.arguments.as_str()
            {
                return Some(invalid(&format!(
                    "tool call {id:?} does not match the call that was issued"
                )));
            }
            open.push(id.to_owned());
        }
    }
    if !open.is_empty() {
        return Some(invalid(&format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            open.join(", ")
        )));
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
    let (vision_reply, calls) = {
        let mut inner = s.inner.lock().unwrap();
        if let Some(err) = check(&headers, &body, s.flavor, &inner.issued) {
            return err;
        }
        inner.requests.push(body.clone());
        // A scripted call goes out when calls are allowed, as a model
        // only calls what it is offered.
        let allowed = body.get("tools").is_some()
            && (body["tool_choice"] != "none" || inner.ignores_tool_choice);
        let calls = script
            .as_ref()
            .and_then(Script::calls)
            .filter(|_| allowed)
            .map(|calls| issue(&mut inner, s.flavor, calls));
        (inner.vision_reply.clone(), calls)
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
    if let Some(calls) = calls {
        return tool_calls(s.flavor, body["stream"] == true, &calls, usage);
    }
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

/// A scripted call as issued: `(id, name, arguments)`.
type Call = (String, String, String);

/// Gives `calls` their ids and remembers them.
fn issue(inner: &mut Inner, flavor: Flavor, calls: Vec<(&str, &str)>) -> Vec<Call> {
    calls
        .into_iter()
        .map(|(name, arguments)| {
            let n = inner.issued.len();
            let id = match flavor {
                Flavor::Moonshot => format!("{name}:{n}"),
                Flavor::OpenAi => format!("call_{n:08x}"),
            };
            inner.issued.insert(
                id.clone(),
                Issued {
                    name: name.to_owned(),
                    arguments: arguments.to_owned(),
                },
            );
            (id, name.to_owned(), arguments.to_owned())
        })
        .collect()
}

/// The answer asking for `calls`, whole or streamed.
fn tool_calls(flavor: Flavor, stream: bool, calls: &[Call], usage: Value) -> Response {
    let empty = match flavor {
        Flavor::Moonshot => json!(""),
        Flavor::OpenAi => Value::Null,
    };
    if !stream {
        let calls: Vec<Value> = calls
            .iter()
            .map(|(id, name, arguments)| {
                json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } })
            })
            .collect();
        return axum::Json(json!({
            "id": "cmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": empty, "tool_calls": calls },
                "finish_reason": "tool_calls",
            }],
            "usage": usage,
        }))
        .into_response();
    }
    // Moonshot names the index only when there are several calls.
    let indexed = flavor == Flavor::OpenAi || calls.len() > 1;
    let piece = |i: usize, mut call: Value| {
        if indexed {
            call["index"] = json!(i);
        }
        call
    };
    let mut writes: Vec<Vec<u8>> = vec![
        chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
            None,
        )
        .into_bytes(),
        b": keep-alive\n\n".to_vec(),
    ];
    for (i, (id, name, arguments)) in calls.iter().enumerate() {
        let head = piece(
            i,
            json!({ "id": id, "type": "function", "function": { "name": name, "arguments": "" } }),
        );
        writes.push(
            chunk(
                json!({ "content": empty, "tool_calls": [head] }),
                Value::Null,
                None,
            )
            .into_bytes(),
        );
        // The arguments in two fragments, split inside a character when
        // there is a multi-byte one.
        let mid = arguments
            .char_indices()
            .find(|(_, c)| !c.is_ascii())
            .map_or(arguments.len() / 2, |(at, _)| at);
        for fragment in [&arguments[..mid], &arguments[mid..]] {
            let rest = piece(i, json!({ "function": { "arguments": fragment } }));
            let bytes = chunk(json!({ "tool_calls": [rest] }), Value::Null, None).into_bytes();
            let cut = bytes.iter().position(|b| *b >= 0x80).map_or(1, |p| p + 1);
            writes.push(bytes[..cut].to_vec());
            writes.push(bytes[cut..].to_vec());
        }
    }
    match flavor {
        Flavor::Moonshot => {
            writes.push(chunk(json!({}), json!("tool_calls"), Some(&usage)).into_bytes());
        }
        Flavor::OpenAi => {
            writes.push(chunk(json!({}), json!("tool_calls"), None).into_bytes());
            let last = json!({ "id": "cmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": usage });
            writes.push(format!("data: {last}\n\n").into_bytes());
        }
    }
    writes.push(b"data: [DONE]\r\n\r\n".to_vec());
    let body = futures_util::stream::iter(writes).then(|w| async move {
        // A pause between writes keeps them separate TCP segments.
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, Infallible>(Bytes::from(w))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
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
        let ended = match s.flavor {
            Flavor::Moonshot => {
                send(chunk(json!({}), json!("stop"), Some(&usage)).into_bytes()).await
            }
            Flavor::OpenAi => {
                let last = json!({ "id": "cmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": usage });
                send(chunk(json!({}), json!("stop"), None).into_bytes()).await
                    && send(format!("data: {last}\n\n").into_bytes()).await
            }
        };
        let _ = ended && send(b"data: [DONE]\r\n\r\n".to_vec()).await;
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
