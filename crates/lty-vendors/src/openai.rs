//! OpenAI-compatible chat completions (`POST {base}/chat/completions`),
//! non-streaming and streamed over server-sent events, with Moonshot's
//! (Kimi's) quirks: usage inside `choices[0]`, temperature in [0, 1],
//! `{"error":{"message","type"}}` bodies, keep-alive comments.
//!
//! Function calling: [`ChatRequest::tools`] go out as
//! `tools: [{"type":"function","function":{…}}]` (no `tools` key when there
//! are none, no `tool_choice` unless it is `none`: Moonshot refuses forced
//! choices on its thinking models); assistant messages carry their
//! `tool_calls`, results go back as `role: "tool"` messages with their
//! `tool_call_id` (and, for Moonshot, the function's `name`, as its
//! tool-calls guide sends). Answers carry `message.tool_calls`, or
//! `delta.tool_calls` pieces in a stream: the id and name first, the
//! arguments in fragments, assembled by `index` (or by position in the
//! chunk's array when Moonshot leaves `index` out) and delivered whole as
//! one [`ChatEvent::ToolCalls`] before `Done`.
//!
//! Timeouts: connect, first byte (the response head), and idle (between
//! two pieces of a stream). One retry before the first byte for failures
//! that may pass (transport, timeout, 5xx, a short 429 wait); never after
//! content arrived. Dropping a [`ChatStream`] closes the connection, which
//! is how a caller that went away cancels the upstream request.

pub mod moderation;
pub mod sse;

use std::time::Duration;

use async_trait::async_trait;
use lty_core::chat::{
    ChatError, ChatEvent, ChatMessage, ChatModel, ChatReply, ChatRequest, ChatStream, Role,
    ToolCall, ToolChoice, ToolSpec, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::ClientOptions;

pub use moderation::{ModerationClient, ModerationConfig};
pub use sse::SseParser;

/// Which provider's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Moonshot / Kimi: temperature in [0, 1].
    Moonshot,
    /// Any other OpenAI-compatible server: temperature in [0, 2].
    OpenAi,
}

impl Flavor {
    /// The highest temperature this provider accepts.
    pub fn max_temperature(self) -> f32 {
        match self {
            Self::Moonshot => 1.0,
            Self::OpenAi => 2.0,
        }
    }

    /// The provider name in errors and metrics.
    pub fn provider(self) -> &'static str {
        match self {
            Self::Moonshot => "kimi",
            Self::OpenAi => "openai",
        }
    }
}

/// Settings of a [`ChatClient`].
#[derive(Clone)]
pub struct ChatClientConfig {
    /// Base URL including `/v1`, e.g. `https://api.moonshot.cn/v1`.
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub flavor: Flavor,
    /// Used when the request sets none; omitted from the body when `None`.
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub connect_timeout: Duration,
    /// Until the response head arrives.
    pub first_byte_timeout: Duration,
    /// Between two pieces of a stream, and for a whole non-streamed body.
    pub idle_timeout: Duration,
    /// A 429 asking to wait longer than this is not retried.
    pub max_retry_wait: Duration,
}

impl std::fmt::Debug for ChatClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatClientConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("flavor", &self.flavor)
            .finish_non_exhaustive()
    }
}

/// A chat completions client.
#[derive(Debug, Clone)]
pub struct ChatClient {
    config: ChatClientConfig,
    url: String,
    http: reqwest::Client,
}

impl ChatClient {
    /// A client for `config`; fails when the base URL or the temperature is
    /// unusable, or TLS cannot be set up.
    pub fn new(config: ChatClientConfig) -> Result<Self, String> {
        let parsed = url::Url::parse(&config.base_url).map_err(|e| e.to_string())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("the base URL must be http(s)".into());
        }
        if let Some(t) = config.temperature
            && !(0.0..=config.flavor.max_temperature()).contains(&t)
        {
            return Err(format!(
                "temperature {t} is outside [0, {}] for this provider",
                config.flavor.max_temperature()
            ));
        }
        // No whole-request timeout: a streamed answer takes as long as the
        // model talks; the first byte and each chunk have their own below.
        let http = crate::http::client(ClientOptions {
            connect_timeout: Some(config.connect_timeout),
            ..ClientOptions::default()
        })
        .map_err(|e| e.to_string())?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Ok(Self { config, url, http })
    }

    /// The JSON body for `request`: only the fields that are set, the
    /// temperature clamped into the provider's range.
    pub fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        let names = ToolNames::new(&request.tools);
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| self.message_json(m, &request.messages, &names))
            .collect();
        let mut body = json!({ "model": self.config.model, "messages": messages });
        if let Some(t) = request.temperature.or(self.config.temperature) {
            let t = t.clamp(0.0, self.config.flavor.max_temperature());
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_tokens.or(self.config.max_tokens) {
            body["max_tokens"] = json!(n);
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    let mut function = json!({ "name": names.wire(&t.name) });
                    if !t.description.is_empty() {
                        function["description"] = json!(t.description);
                    }
                    if !t.parameters.is_null() {
                        function["parameters"] = t.parameters.clone();
                    }
                    json!({ "type": "function", "function": function })
                })
                .collect();
            body["tools"] = json!(tools);
            // `auto` is every provider's default; saying so adds nothing.
            if request.tool_choice == ToolChoice::None {
                body["tool_choice"] = json!("none");
            }
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    /// One message of the body; `all` is the whole conversation, where a
    /// tool result finds the name of the function it answers.
    fn message_json(&self, m: &ChatMessage, all: &[ChatMessage], names: &ToolNames) -> Value {
        let mut out = json!({ "role": m.role.as_str(), "content": m.content });
        if !m.tool_calls.is_empty() {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": { "name": names.wire(&c.name), "arguments": c.arguments },
                    })
                })
                .collect();
            out["tool_calls"] = json!(calls);
            // Each provider answers a call with its own empty content:
            // OpenAI `null`, Moonshot `""`; each gets back what it sends.
            if m.content.is_empty() && self.config.flavor == Flavor::OpenAi {
                out["content"] = Value::Null;
            }
        }
        if let Some(id) = &m.tool_call_id {
            out["tool_call_id"] = json!(id);
            if m.role == Role::Tool && self.config.flavor == Flavor::Moonshot {
                let name = all
                    .iter()
                    .flat_map(|m| &m.tool_calls)
                    .find(|c| &c.id == id)
                    .map(|c| names.wire(&c.name));
                if let Some(name) = name {
                    out["name"] = json!(name);
                }
            }
        }
        out
    }

    /// Sends `body` until a response head arrives, retrying once what may
    /// pass. Non-success statuses come back as errors.
    async fn send(&self, body: &Value, stream: bool) -> Result<reqwest::Response, ChatError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .post(&self.url)
                .bearer_auth(&self.config.api_key)
                .json(body);
            if stream {
                req = req.header(reqwest::header::ACCEPT, "text/event-stream");
            }
            let err = match tokio::time::timeout(self.config.first_byte_timeout, req.send()).await {
                Err(_) => ChatError::Timeout("no response from the provider"),
                Ok(Err(e)) => transport(e),
                Ok(Ok(res)) if res.status().is_success() => return Ok(res),
                Ok(Ok(res)) => self.error_response(res).await,
            };
            match retry_delay(&err, self.config.max_retry_wait) {
                Some(wait) if attempt == 1 => {
                    tracing::debug!(%err, ?wait, "retrying the chat request once");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(err),
            }
        }
    }

    async fn error_response(&self, res: reqwest::Response) -> ChatError {
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = tokio::time::timeout(self.config.idle_timeout, res.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        classify_error(status, retry_after, &body)
    }

    /// The whole answer to `request`.
    #[tracing::instrument(skip_all, err, fields(provider = self.config.flavor.provider()))]
    pub async fn complete(&self, request: &ChatRequest) -> Result<ChatReply, ChatError> {
        let res = self.send(&self.body(request, false), false).await?;
        log_request_id(&res);
        let bytes = tokio::time::timeout(self.config.idle_timeout, res.bytes())
            .await
            .map_err(|_| ChatError::Timeout("the provider's answer stalled"))?
            .map_err(transport)?;
        let mut reply = parse_completion(&bytes)?;
        ToolNames::new(&request.tools).restore(&mut reply.tool_calls);
        Ok(reply)
    }

    /// The answer to `request` as a stream of deltas and a final `Done`.
    #[tracing::instrument(skip_all, err, fields(provider = self.config.flavor.provider()))]
    pub async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        let res = self.send(&self.body(request, true), true).await?;
        log_request_id(&res);
        let is_sse = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !is_sse {
            return Err(failed(
                None,
                "the provider did not answer with an event stream",
            ));
        }
        let state = StreamState {
            res,
            decoder: StreamDecoder::new(ToolNames::new(&request.tools)),
            pending: std::collections::VecDeque::new(),
            idle: self.config.idle_timeout,
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(state, next_event)))
    }
}

/// A question about one image for a vision model: the system prompt,
/// the question and the image, sent as a user message whose content is a
/// `text` part and an `image_url` part carrying the image as a `data:` URL.
#[derive(Debug, Clone)]
pub struct VisionRequest {
    /// The system message, when there is one.
    pub system: Option<String>,
    /// What to ask about the image.
    pub prompt: String,
    /// The image's media type (`image/jpeg`, `image/png`, ...).
    pub media_type: String,
    /// The image file.
    pub image: bytes::Bytes,
}

impl ChatClient {
    /// The JSON body for `request`: the configured model, temperature and
    /// token limit as for chat, the image inlined as base64.
    pub fn vision_body(&self, request: &VisionRequest) -> Value {
        use base64::Engine;
        let data_url = format!(
            "data:{};base64,{}",
            request.media_type,
            base64::engine::general_purpose::STANDARD.encode(&request.image)
        );
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({ "role": "system", "content": system }));
        }
        messages.push(json!({
            "role": "user",
            "content": [
                { "type": "text", "text": request.prompt },
                { "type": "image_url", "image_url": { "url": data_url } },
            ],
        }));
        let mut body = json!({ "model": self.config.model, "messages": messages });
        if let Some(t) = self.config.temperature {
            body["temperature"] = json!(t.clamp(0.0, self.config.flavor.max_temperature()));
        }
        if let Some(n) = self.config.max_tokens {
            body["max_tokens"] = json!(n);
        }
        body
    }

    /// The model's whole answer about an image (not streamed), with the
    /// same retry and error rules as [`ChatClient::complete`].
    #[tracing::instrument(skip_all, err, fields(provider = self.config.flavor.provider()))]
    pub async fn describe_image(&self, request: &VisionRequest) -> Result<ChatReply, ChatError> {
        let res = self.send(&self.vision_body(request), false).await?;
        log_request_id(&res);
        let bytes = tokio::time::timeout(self.config.idle_timeout, res.bytes())
            .await
            .map_err(|_| ChatError::Timeout("the provider's answer stalled"))?
            .map_err(transport)?;
        parse_completion(&bytes)
    }
}

struct StreamState {
    res: reqwest::Response,
    decoder: StreamDecoder,
    pending: std::collections::VecDeque<Result<ChatEvent, ChatError>>,
    idle: Duration,
    ended: bool,
}

async fn next_event(mut s: StreamState) -> Option<(Result<ChatEvent, ChatError>, StreamState)> {
    loop {
        if let Some(item) = s.pending.pop_front() {
            if item.is_err() || matches!(item, Ok(ChatEvent::Done { .. })) {
                s.ended = true;
                s.pending.clear();
            }
            return Some((item, s));
        }
        if s.ended {
            return None;
        }
        let chunk = match tokio::time::timeout(s.idle, s.res.chunk()).await {
            Err(_) => Err(ChatError::Timeout("the provider's stream stalled")),
            Ok(Err(e)) => Err(transport(e)),
            Ok(Ok(None)) => Err(failed(None, "the stream ended without [DONE]")),
            Ok(Ok(Some(bytes))) => Ok(bytes),
        };
        match chunk {
            Ok(bytes) => s.pending.extend(s.decoder.push(&bytes)),
            Err(e) => s.pending.push_back(Err(e)),
        }
    }
}

/// The bytes of a streamed answer as [`ChatEvent`]s: SSE framing, chunks,
/// usage wherever the provider puts it, tool-call pieces assembled. Ends
/// at `[DONE]` or the first error; bytes after that are ignored.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    names: ToolNames,
    parser: SseParser,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    calls: ToolCallAssembler,
    ended: bool,
}

impl StreamDecoder {
    /// A decoder for the answer to a request that offered the tools named
    /// by `names`.
    pub fn new(names: ToolNames) -> Self {
        Self {
            names,
            ..Self::default()
        }
    }

    /// The events completed by `bytes`, which may end anywhere.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<ChatEvent, ChatError>> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        for data in self.parser.push(bytes) {
            if data.trim() == "[DONE]" {
                self.ended = true;
                match std::mem::take(&mut self.calls).finish() {
                    Ok(calls) if calls.is_empty() => {}
                    Ok(mut calls) => {
                        self.names.restore(&mut calls);
                        out.push(Ok(ChatEvent::ToolCalls(calls)));
                        if self.finish_reason.is_none() {
                            self.finish_reason = Some("tool_calls".into());
                        }
                    }
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
                out.push(Ok(ChatEvent::Done {
                    finish_reason: self.finish_reason.take(),
                    usage: self.usage,
                }));
                return out;
            }
            match parse_chunk(&data) {
                Ok(parsed) => {
                    if parsed.usage.is_some() {
                        self.usage = parsed.usage;
                    }
                    if parsed.finish_reason.is_some() {
                        self.finish_reason = parsed.finish_reason;
                    }
                    if !parsed.content.is_empty() {
                        out.push(Ok(ChatEvent::Delta(parsed.content)));
                    }
                    for piece in parsed.tool_calls {
                        self.calls.push(piece);
                    }
                }
                Err(e) => {
                    self.ended = true;
                    out.push(Err(e));
                    return out;
                }
            }
        }
        out
    }
}

/// Tool names as the provider sees them. OpenAI accepts
/// `^[a-zA-Z0-9_-]{1,64}$`, Moonshot `^[a-zA-Z_][a-zA-Z0-9_-]{2,63}$`; MCP
/// names such as `self.audio_speaker.set_volume` fit neither. A name that
/// fits both is sent as it is; any other in a form that does
/// (`self_audio_speaker_set_volume`, made unique among the request's
/// tools), and calls of that form are given back the tool's own name.
#[derive(Debug, Default, Clone)]
pub struct ToolNames {
    to_wire: std::collections::HashMap<String, String>,
    from_wire: std::collections::HashMap<String, String>,
}

/// Longest function name either provider accepts.
const MAX_TOOL_NAME: usize = 64;

impl ToolNames {
    /// The names for a request offering `tools`.
    pub fn new(tools: &[ToolSpec]) -> Self {
        let mut names = Self::default();
        // Names that fit keep them; the others take what is left.
        let (fitting, others): (Vec<_>, Vec<_>) =
            tools.iter().map(|t| &t.name).partition(|n| fits(n));
        for name in fitting {
            names.to_wire.insert(name.clone(), name.clone());
            names.from_wire.insert(name.clone(), name.clone());
        }
        for name in others {
            if names.to_wire.contains_key(name) {
                continue;
            }
            let base = sanitized(name);
            let mut wire = base.clone();
            let mut n = 2;
            while names.from_wire.contains_key(&wire) {
                let suffix = format!("_{n}");
                let keep = base.len().min(MAX_TOOL_NAME - suffix.len());
                wire = format!("{}{suffix}", &base[..keep]);
                n += 1;
            }
            names.to_wire.insert(name.clone(), wire.clone());
            names.from_wire.insert(wire, name.clone());
        }
        names
    }

    /// The name sent for the tool `name` (itself when it is not offered).
    pub fn wire<'a>(&'a self, name: &'a str) -> &'a str {
        self.to_wire.get(name).map_or(name, String::as_str)
    }

    /// Gives `calls` of offered tools the tools' own names back.
    pub fn restore(&self, calls: &mut [ToolCall]) {
        for call in calls {
            if let Some(name) = self.from_wire.get(&call.name) {
                call.name.clone_from(name);
            }
        }
    }
}

/// Whether `name` is a function name both providers accept.
fn fits(name: &str) -> bool {
    (3..=MAX_TOOL_NAME).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `name` made to fit: other characters become `_`, a leading digit or
/// dash gets `f_` before it, short names are padded, long ones cut.
fn sanitized(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        out.insert_str(0, "f_");
    }
    while out.len() < 3 {
        out.push('_');
    }
    out.truncate(MAX_TOOL_NAME);
    out
}

/// Tool calls being assembled from stream pieces, by index.
#[derive(Debug, Default)]
struct ToolCallAssembler {
    calls: std::collections::BTreeMap<usize, ToolCallPiece>,
}

impl ToolCallAssembler {
    fn push(&mut self, piece: ToolCallPiece) {
        let call = self
            .calls
            .entry(piece.index)
            .or_insert_with(|| ToolCallPiece {
                index: piece.index,
                ..ToolCallPiece::default()
            });
        // The id and name come once, in the first piece; later pieces may
        // repeat them (or send them empty): the first non-empty one stays.
        if call.id.is_empty() {
            call.id = piece.id;
        }
        if call.name.is_empty() {
            call.name = piece.name;
        }
        call.arguments.push_str(&piece.arguments);
    }

    /// The calls in index order; a call without a name is an error.
    fn finish(self) -> Result<Vec<ToolCall>, ChatError> {
        self.calls
            .into_values()
            .map(ToolCallPiece::into_call)
            .collect()
    }
}

#[async_trait]
impl ChatModel for ChatClient {
    fn provider(&self) -> &'static str {
        self.config.flavor.provider()
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatReply, ChatError> {
        ChatClient::complete(self, request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        ChatClient::stream(self, request).await
    }
}

fn log_request_id(res: &reqwest::Response) {
    let h = res.headers();
    if let Some(id) = h
        .get("msh-request-id")
        .or_else(|| h.get("x-msh-trace-id"))
        .or_else(|| h.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
    {
        tracing::debug!(request_id = id, "chat completion answered");
    }
}

fn failed(status: Option<u16>, message: impl Into<String>) -> ChatError {
    ChatError::Failed {
        status,
        vendor_type: None,
        message: message.into(),
    }
}

fn transport(e: reqwest::Error) -> ChatError {
    if e.is_timeout() {
        ChatError::Timeout("the provider did not answer in time")
    } else {
        failed(None, e.without_url().to_string())
    }
}

/// How long to wait before the one retry of `err`, or `None` when it must
/// not be retried.
fn retry_delay(err: &ChatError, max_wait: Duration) -> Option<Duration> {
    match err {
        ChatError::Timeout(_) => Some(Duration::ZERO),
        ChatError::Failed { status, .. } => match status {
            None => Some(Duration::ZERO),
            Some(s) if *s >= 500 => Some(Duration::from_millis(200)),
            Some(_) => None,
        },
        ChatError::RateLimited {
            retry_after_secs, ..
        } => {
            let wait = Duration::from_secs(*retry_after_secs);
            (wait <= max_wait).then_some(wait)
        }
        ChatError::Unavailable { .. } | ChatError::ContentFilter => None,
    }
}

#[derive(Debug, Default, Deserialize)]
struct WireError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: WireError,
}

/// The error an HTTP `status` answer means: the vendor's `error.type`
/// decides, then the status; a `Retry-After` header or "after N seconds"
/// in the message sets the wait of a 429.
pub fn classify_error(status: u16, retry_after: Option<u64>, body: &[u8]) -> ChatError {
    let err = serde_json::from_slice::<ErrorEnvelope>(body)
        .map(|e| e.error)
        .unwrap_or_default();
    let kind = err
        .kind
        .clone()
        .or_else(|| {
            err.code
                .as_ref()
                .and_then(|c| c.as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    let message = err
        .message
        .unwrap_or_else(|| format!("HTTP {status} without an error body"));
    if kind == "content_filter" {
        return ChatError::ContentFilter;
    }
    if kind == "exceeded_current_quota_error" || matches!(status, 401 | 403 | 404) {
        return ChatError::Unavailable {
            status,
            vendor_type: kind,
            message,
        };
    }
    if status == 429 {
        let secs = retry_after.or_else(|| seconds_in(&message)).unwrap_or(1);
        return ChatError::RateLimited {
            retry_after_secs: secs,
            vendor_type: kind,
        };
    }
    ChatError::Failed {
        status: Some(status),
        vendor_type: (!kind.is_empty()).then_some(kind),
        message,
    }
}

/// N from "... after N seconds" in a rate-limit message.
fn seconds_in(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    let rest = &lower[lower.find("after")? + 5..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    total_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Default, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Default, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    /// JSON text; a server that sends an object instead is forgiven.
    #[serde(default)]
    arguments: Option<Value>,
}

impl WireToolCall {
    /// The piece, at its `index` or else at `position` in its array.
    fn into_piece(self, position: usize) -> ToolCallPiece {
        let function = self.function.unwrap_or_default();
        let arguments = match function.arguments {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        ToolCallPiece {
            index: self.index.unwrap_or(position),
            id: self.id.unwrap_or_default(),
            name: function.name.unwrap_or_default(),
            arguments,
        }
    }
}

/// One `tool_calls` entry of a message, or a piece of one in a stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolCallPiece {
    /// Which call it belongs to: the `index` sent, else the position in the
    /// chunk's array.
    pub index: usize,
    pub id: String,
    pub name: String,
    /// A fragment of the arguments' JSON text.
    pub arguments: String,
}

impl ToolCallPiece {
    /// The finished call: an id made up from the index when the provider
    /// sent none, `{}` for no arguments.
    fn into_call(self) -> Result<ToolCall, ChatError> {
        if self.name.is_empty() {
            return Err(failed(None, "a tool call without a function name"));
        }
        let id = if self.id.is_empty() {
            format!("call_{}", self.index)
        } else {
            self.id
        };
        let arguments = if self.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            self.arguments
        };
        Ok(ToolCall {
            id,
            name: self.name,
            arguments,
        })
    }
}

fn pieces(calls: Option<Vec<WireToolCall>>) -> Vec<ToolCallPiece> {
    calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.into_piece(i))
        .collect()
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    delta: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

/// A non-streamed answer body.
pub fn parse_completion(body: &[u8]) -> Result<ChatReply, ChatError> {
    let c: WireCompletion = serde_json::from_slice(body)
        .map_err(|e| failed(None, format!("unreadable completion: {e}")))?;
    if let Some(err) = c.error {
        return Err(mid_stream_error(err));
    }
    let mut choices = c.choices.into_iter();
    let first = choices
        .next()
        .ok_or_else(|| failed(None, "a completion without choices"))?;
    let usage = c.usage.or(first.usage).map(Usage::from);
    let message = first.message.unwrap_or_default();
    let tool_calls = pieces(message.tool_calls)
        .into_iter()
        .map(ToolCallPiece::into_call)
        .collect::<Result<_, _>>()?;
    Ok(ChatReply {
        content: message.content.unwrap_or_default(),
        tool_calls,
        finish_reason: first.finish_reason,
        usage,
    })
}

/// What one stream chunk adds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedChunk {
    pub content: String,
    /// Pieces of tool calls, to assemble by their index.
    pub tool_calls: Vec<ToolCallPiece>,
    pub finish_reason: Option<String>,
    /// Top-level usage, else `choices[0].usage` (Moonshot).
    pub usage: Option<Usage>,
}

/// One `data:` payload of a stream.
pub fn parse_chunk(data: &str) -> Result<ParsedChunk, ChatError> {
    let c: WireCompletion = serde_json::from_str(data)
        .map_err(|e| failed(None, format!("unreadable stream chunk: {e}")))?;
    if let Some(err) = c.error {
        return Err(mid_stream_error(err));
    }
    let mut out = ParsedChunk::default();
    let mut choice_usage = None;
    if let Some(first) = c.choices.into_iter().next() {
        let delta = first.delta.unwrap_or_default();
        out.content = delta.content.unwrap_or_default();
        out.tool_calls = pieces(delta.tool_calls);
        out.finish_reason = first.finish_reason;
        choice_usage = first.usage;
    }
    out.usage = c.usage.or(choice_usage).map(Usage::from);
    Ok(out)
}

fn mid_stream_error(err: WireError) -> ChatError {
    ChatError::Failed {
        status: None,
        vendor_type: err.kind,
        message: err
            .message
            .unwrap_or_else(|| "the provider reported an error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(flavor: Flavor) -> ChatClient {
        ChatClient::new(ChatClientConfig {
            base_url: "http://127.0.0.1:9/v1/".into(),
            api_key: "k".into(),
            model: "moonshot-v1-8k".into(),
            flavor,
            temperature: None,
            max_tokens: None,
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_retry_wait: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn the_body_carries_only_set_fields_and_clamps_temperature_per_provider() {
        let req = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hi")],
            temperature: Some(1.7),
            ..ChatRequest::default()
        };
        let kimi = client(Flavor::Moonshot);
        assert_eq!(kimi.url, "http://127.0.0.1:9/v1/chat/completions");
        let body = kimi.body(&req, true);
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["stream"], true);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(
            client(Flavor::OpenAi).body(&req, false)["temperature"],
            1.7f32
        );
        assert!(
            client(Flavor::OpenAi)
                .body(&req, false)
                .get("stream")
                .is_none()
        );
        assert!(body.get("tools").is_none(), "no tools, no tools key");
        assert!(body.get("tool_choice").is_none());
    }

    fn set_volume() -> ToolSpec {
        ToolSpec {
            name: "self.audio_speaker.set_volume".into(),
            description: "Set the speaker volume (0-100).".into(),
            parameters: json!({
                "type": "object",
                "properties": { "volume": { "type": "integer", "minimum": 0, "maximum": 100 } },
                "required": ["volume"],
            }),
        }
    }

    fn call(id: &str, volume: u32) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "self.audio_speaker.set_volume".into(),
            arguments: format!(r#"{{"volume":{volume}}}"#),
        }
    }

    /// A follow-up: the question, the assistant's call, its result.
    fn follow_up() -> ChatRequest {
        ChatRequest {
            messages: vec![
                ChatMessage::new(Role::User, "小声一点"),
                ChatMessage::assistant_calls(vec![call("call_7", 30)]),
                ChatMessage::tool_result("call_7", "true"),
            ],
            tools: vec![set_volume()],
            ..ChatRequest::default()
        }
    }

    #[test]
    fn offered_tools_go_out_as_functions_and_a_follow_up_carries_the_call_and_its_result() {
        for flavor in [Flavor::Moonshot, Flavor::OpenAi] {
            let body = client(flavor).body(&follow_up(), true);
            assert_eq!(
                body["tools"],
                json!([{
                    "type": "function",
                    "function": {
                        "name": "self_audio_speaker_set_volume",
                        "description": "Set the speaker volume (0-100).",
                        "parameters": set_volume().parameters,
                    },
                }]),
                "{flavor:?}"
            );
            assert!(
                body.get("tool_choice").is_none(),
                "{flavor:?}: auto is implied"
            );
            let asked = &body["messages"][1];
            assert_eq!(asked["role"], "assistant");
            assert_eq!(
                asked["tool_calls"],
                json!([{
                    "id": "call_7",
                    "type": "function",
                    "function": {
                        "name": "self_audio_speaker_set_volume",
                        "arguments": "{\"volume\":30}",
                    },
                }])
            );
            let result = &body["messages"][2];
            assert_eq!(result["role"], "tool");
            assert_eq!(result["tool_call_id"], "call_7");
            assert_eq!(result["content"], "true");
            assert!(body["messages"][0].get("tool_call_id").is_none());
            assert!(body["messages"][0].get("tool_calls").is_none());
        }
        // Empty content of a call: what each provider itself sends back.
        let kimi = client(Flavor::Moonshot).body(&follow_up(), false);
        assert_eq!(kimi["messages"][1]["content"], "");
        assert_eq!(kimi["messages"][2]["name"], "self_audio_speaker_set_volume");
        let openai = client(Flavor::OpenAi).body(&follow_up(), false);
        assert!(openai["messages"][1]["content"].is_null());
        assert!(openai["messages"][2].get("name").is_none());
        // Text said alongside the call goes with it.
        let mut req = follow_up();
        req.messages[1].content = "好的".into();
        let body = client(Flavor::OpenAi).body(&req, false);
        assert_eq!(body["messages"][1]["content"], "好的");
    }

    #[test]
    fn tool_names_that_a_provider_would_refuse_are_sent_in_a_form_it_takes_and_mapped_back() {
        let spec = |name: &str| ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: Value::Null,
        };
        let long = "x".repeat(70);
        let tools = [
            spec("self.audio_speaker.set_volume"),
            spec("self_audio_speaker_set_volume"),
            spec("get_time"),
            spec("9lives"),
            spec("a"),
            spec(&long),
            spec(&format!("{long}.y")),
        ];
        let names = ToolNames::new(&tools);
        let wire: Vec<&str> = tools.iter().map(|t| names.wire(&t.name)).collect();
        assert_eq!(
            wire[0], "self_audio_speaker_set_volume_2",
            "the fitting name keeps its own"
        );
        assert_eq!(wire[1], "self_audio_speaker_set_volume");
        assert_eq!(wire[2], "get_time");
        assert_eq!(wire[3], "f_9lives");
        assert_eq!(wire[4], "a__");
        for w in &wire {
            assert!(fits(w), "{w}");
        }
        let unique: std::collections::HashSet<_> = wire.iter().collect();
        assert_eq!(unique.len(), wire.len(), "{wire:?}");

        let mut calls: Vec<ToolCall> = wire
            .iter()
            .map(|w| ToolCall {
                id: "c".into(),
                name: (*w).to_owned(),
                arguments: "{}".into(),
            })
            .chain([ToolCall {
                id: "d".into(),
                name: "never.offered".into(),
                arguments: "{}".into(),
            }])
            .collect();
        names.restore(&mut calls);
        let back: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        let mut expected: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        expected.push("never.offered");
        assert_eq!(back, expected);
        // No tools offered: nothing is renamed.
        assert_eq!(ToolNames::default().wire("a.b"), "a.b");
    }

    #[test]
    fn tool_choice_none_is_sent_only_with_tools() {
        let mut req = follow_up();
        req.tool_choice = ToolChoice::None;
        assert_eq!(
            client(Flavor::Moonshot).body(&req, false)["tool_choice"],
            "none"
        );
        req.tools.clear();
        let body = client(Flavor::Moonshot).body(&req, false);
        assert!(body.get("tool_choice").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn a_whole_answer_with_tool_calls_is_parsed_in_either_flavour() {
        // Moonshot: empty content, no index.
        let kimi = br#"{"id":"cmpl-1","object":"chat.completion","created":1,"model":"moonshot-v1-8k","choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"self.audio_speaker.set_volume:0","type":"function","function":{"name":"self.audio_speaker.set_volume","arguments":"{\"volume\": 30}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":80,"completion_tokens":12,"total_tokens":92}}"#;
        let reply = parse_completion(kimi).unwrap();
        assert_eq!(reply.content, "");
        assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            reply.tool_calls,
            [ToolCall {
                id: "self.audio_speaker.set_volume:0".into(),
                name: "self.audio_speaker.set_volume".into(),
                arguments: r#"{"volume": 30}"#.into(),
            }]
        );
        assert_eq!(reply.usage.unwrap().total_tokens, 92);
        // OpenAI: null content, two parallel calls, one without arguments.
        let openai = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}},{"id":"call_b","type":"function","function":{"name":"b","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}]}"#;
        let reply = parse_completion(openai).unwrap();
        let got: Vec<_> = reply
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(got, [("call_a", "a", r#"{"x":1}"#), ("call_b", "b", "{}")]);
        // Arguments sent as an object are forgiven; a call without a name
        // is not.
        let object = br#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"n","arguments":{"v":2}}}]}}]}"#;
        assert_eq!(
            parse_completion(object).unwrap().tool_calls[0].arguments,
            r#"{"v":2}"#
        );
        let nameless = br#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}}]}"#;
        assert!(parse_completion(nameless).is_err());
        // A plain answer has no calls, `"tool_calls": null` included.
        let plain = br#"{"choices":[{"message":{"content":"hi","tool_calls":null},"finish_reason":"stop"}]}"#;
        assert!(parse_completion(plain).unwrap().tool_calls.is_empty());
    }

    /// Every event of `body` fed in the pieces `cuts` splits it into.
    fn decode(body: &[u8], cuts: &[usize]) -> Vec<Result<ChatEvent, ChatError>> {
        let mut decoder = StreamDecoder::new(ToolNames::new(&[set_volume()]));
        let mut events = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&body.len())) {
            events.extend(decoder.push(&body[from..to]));
            from = to;
        }
        events
    }

    /// Decodes `body` whole, cut once at every byte, and byte by byte, and
    /// checks every way gives the same events.
    fn decode_every_way(body: &str) -> Vec<Result<ChatEvent, ChatError>> {
        let body = body.as_bytes();
        let whole = decode(body, &[]);
        for cut in 1..body.len() {
            assert_eq!(decode(body, &[cut]), whole, "cut at byte {cut}");
        }
        let every: Vec<usize> = (1..body.len()).collect();
        assert_eq!(decode(body, &every), whole, "byte by byte");
        whole
    }

    /// A Moonshot stream as it is recorded: a role-only chunk, a sentence,
    /// then one call without `index`, of the offered tool by the name it
    /// was sent under (id and name first, the arguments in
    /// fragments, one cut inside a Chinese character's bytes), usage in
    /// `choices[0]` of the finishing chunk, `\r\n` line ends and a
    /// keep-alive comment.
    const KIMI_STREAM: &str = concat!(
        "data: {\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"好的，\"},\"finish_reason\":null}]}\r\n\r\n",
        ": keep-alive\r\n\r\n",
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"tool_calls\":[{\"id\":\"self_audio_speaker_set_volume:0\",\"type\":\"function\",\"function\":{\"name\":\"self_audio_speaker_set_volume\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"volume\\\": \"}}]},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"30, \\\"note\\\": \\\"小声\\\"}\"}}]},\"finish_reason\":null}]}\r\n\r\n",
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\",\"usage\":{\"prompt_tokens\":80,\"completion_tokens\":12,\"total_tokens\":92}}]}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    );

    #[test]
    fn a_streamed_tool_call_without_index_is_assembled_wherever_the_stream_is_cut() {
        let events = decode_every_way(KIMI_STREAM);
        assert_eq!(
            events,
            [
                Ok(ChatEvent::Delta("好的，".into())),
                Ok(ChatEvent::ToolCalls(vec![ToolCall {
                    id: "self_audio_speaker_set_volume:0".into(),
                    name: "self.audio_speaker.set_volume".into(),
                    arguments: r#"{"volume": 30, "note": "小声"}"#.into(),
                }])),
                Ok(ChatEvent::Done {
                    finish_reason: Some("tool_calls".into()),
                    usage: Some(Usage {
                        prompt_tokens: 80,
                        completion_tokens: 12,
                        total_tokens: 92,
                    }),
                }),
            ]
        );
    }

    /// An OpenAI stream with two parallel calls whose pieces interleave,
    /// each piece naming its `index`, and usage in a last chunk of its own.
    const OPENAI_STREAM: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"set_volume\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"set_light\",\"arguments\":\"{\\\"on\\\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"volume\\\":\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\":true}\"}},{\"index\":0,\"function\":{\"arguments\":\"80}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":20,\"total_tokens\":70}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn two_parallel_streamed_calls_are_assembled_by_index_wherever_the_stream_is_cut() {
        let events = decode_every_way(OPENAI_STREAM);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0],
            Ok(ChatEvent::ToolCalls(vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "set_volume".into(),
                    arguments: r#"{"volume":80}"#.into(),
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "set_light".into(),
                    arguments: r#"{"on":true}"#.into(),
                },
            ]))
        );
        let Ok(ChatEvent::Done {
            finish_reason,
            usage,
        }) = &events[1]
        else {
            panic!("{events:?}")
        };
        assert_eq!(finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(usage.unwrap().total_tokens, 70);
    }

    #[test]
    fn a_stream_without_tool_calls_ends_as_before_and_a_nameless_call_is_an_error() {
        let plain = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            decode_every_way(plain),
            [
                Ok(ChatEvent::Delta("hi".into())),
                Ok(ChatEvent::Done {
                    finish_reason: Some("stop".into()),
                    usage: None,
                }),
            ]
        );
        let nameless = concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: [DONE]\n\n",
        );
        let events = decode(nameless.as_bytes(), &[]);
        assert!(
            matches!(events.as_slice(), [Err(ChatError::Failed { .. })]),
            "{events:?}"
        );
        // Nothing after the end counts.
        let mut decoder = StreamDecoder::default();
        assert_eq!(decoder.push(plain.as_bytes()).len(), 2);
        assert!(decoder.push(plain.as_bytes()).is_empty());
    }

    #[test]
    fn a_vision_body_carries_a_text_part_and_the_image_as_a_data_url() {
        let req = VisionRequest {
            system: Some("be kind".into()),
            prompt: "what is this?".into(),
            media_type: "image/png".into(),
            image: bytes::Bytes::from_static(b"\x89PNG"),
        };
        let body = client(Flavor::Moonshot).vision_body(&req);
        assert_eq!(body["messages"][0]["role"], "system");
        let parts = &body["messages"][1]["content"];
        assert_eq!(parts[0]["type"], "text");
        assert_eq!(parts[0]["text"], "what is this?");
        assert_eq!(parts[1]["type"], "image_url");
        assert_eq!(
            parts[1]["image_url"]["url"],
            "data:image/png;base64,iVBORw=="
        );
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn a_configured_temperature_outside_the_range_is_refused() {
        let mut c = client(Flavor::Moonshot).config;
        c.temperature = Some(1.5);
        assert!(ChatClient::new(c).is_err());
    }

    #[test]
    fn usage_is_read_from_choices_or_top_level_and_top_level_wins() {
        let moonshot = r#"{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}],"system_fingerprint":"y"}"#;
        let c = parse_chunk(moonshot).unwrap();
        assert_eq!(c.usage.unwrap().total_tokens, 7);
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        let both = r#"{"choices":[{"delta":{"content":null},"usage":{"total_tokens":1}}],"usage":{"total_tokens":9}}"#;
        assert_eq!(parse_chunk(both).unwrap().usage.unwrap().total_tokens, 9);
        let usage_only = r#"{"choices":[],"usage":{"prompt_tokens":1}}"#;
        assert_eq!(
            parse_chunk(usage_only)
                .unwrap()
                .usage
                .unwrap()
                .prompt_tokens,
            1
        );
        assert!(parse_chunk(r#"{"error":{"message":"boom","type":"server_error"}}"#).is_err());
    }

    #[test]
    fn errors_are_classified_by_vendor_type_then_status() {
        let body = br#"{"error":{"message":"rate limit, please try again after 7 seconds","type":"rate_limit_reached_error"}}"#;
        assert_eq!(
            classify_error(429, None, body),
            ChatError::RateLimited {
                retry_after_secs: 7,
                vendor_type: "rate_limit_reached_error".into()
            }
        );
        assert!(matches!(
            classify_error(429, Some(3), b"{}"),
            ChatError::RateLimited {
                retry_after_secs: 3,
                ..
            }
        ));
        let quota = br#"{"error":{"message":"no balance","type":"exceeded_current_quota_error"}}"#;
        assert!(matches!(
            classify_error(429, None, quota),
            ChatError::Unavailable { status: 429, .. }
        ));
        assert!(matches!(
            classify_error(401, None, b"{}"),
            ChatError::Unavailable { .. }
        ));
        let filter = br#"{"error":{"message":"high risk","type":"content_filter"}}"#;
        assert_eq!(classify_error(400, None, filter), ChatError::ContentFilter);
        assert!(matches!(
            classify_error(502, None, b"<html>bad gateway</html>"),
            ChatError::Failed {
                status: Some(502),
                ..
            }
        ));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let max = Duration::from_secs(2);
        assert!(retry_delay(&failed(Some(500), "x"), max).is_some());
        assert!(retry_delay(&failed(None, "reset"), max).is_some());
        assert!(retry_delay(&failed(Some(400), "x"), max).is_none());
        let wait = |s| ChatError::RateLimited {
            retry_after_secs: s,
            vendor_type: String::new(),
        };
        assert!(retry_delay(&wait(1), max).is_some());
        assert!(retry_delay(&wait(60), max).is_none());
        assert!(retry_delay(&ChatError::ContentFilter, max).is_none());
    }
}
