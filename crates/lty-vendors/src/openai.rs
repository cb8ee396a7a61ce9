//! OpenAI-compatible chat completions (`POST {base}/chat/completions`),
//! non-streaming and streamed over server-sent events, with Moonshot's
//! (Kimi's) quirks: usage inside `choices[0]`, temperature in [0, 1],
//! `{"error":{"message","type"}}` bodies, keep-alive comments.
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
use lty_core::chat::{ChatError, ChatEvent, ChatModel, ChatReply, ChatRequest, ChatStream, Usage};
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
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        let mut body = json!({ "model": self.config.model, "messages": messages });
        if let Some(t) = request.temperature.or(self.config.temperature) {
            let t = t.clamp(0.0, self.config.flavor.max_temperature());
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_tokens.or(self.config.max_tokens) {
            body["max_tokens"] = json!(n);
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
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
        parse_completion(&bytes)
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
            parser: SseParser::new(),
            pending: std::collections::VecDeque::new(),
            usage: None,
            finish_reason: None,
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
    parser: SseParser,
    pending: std::collections::VecDeque<Result<ChatEvent, ChatError>>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
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
        let bytes = match chunk {
            Ok(b) => b,
            Err(e) => {
                s.pending.push_back(Err(e));
                continue;
            }
        };
        for data in s.parser.push(&bytes) {
            if data.trim() == "[DONE]" {
                s.pending.push_back(Ok(ChatEvent::Done {
                    finish_reason: s.finish_reason.take(),
                    usage: s.usage,
                }));
                break;
            }
            match parse_chunk(&data) {
                Ok(parsed) => {
                    if parsed.usage.is_some() {
                        s.usage = parsed.usage;
                    }
                    if parsed.finish_reason.is_some() {
                        s.finish_reason = parsed.finish_reason;
                    }
                    if !parsed.content.is_empty() {
                        s.pending.push_back(Ok(ChatEvent::Delta(parsed.content)));
                    }
                }
                Err(e) => {
                    s.pending.push_back(Err(e));
                    break;
                }
            }
        }
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
    Ok(ChatReply {
        content: first.message.and_then(|m| m.content).unwrap_or_default(),
        finish_reason: first.finish_reason,
        usage,
    })
}

/// What one stream chunk adds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedChunk {
    pub content: String,
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
        out.content = first.delta.and_then(|d| d.content).unwrap_or_default();
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
    use lty_core::chat::{ChatMessage, Role};

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
            max_tokens: None,
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
