//! `/api/ai/`: chat with a companion persona through the configured
//! OpenAI-compatible model, single-turn (`chat/`) or in a persisted
//! conversation (`multi-chat/`), as one JSON answer or streamed as
//! server-sent events; conversation history and personas.
//!
//! Every message passes the daily quota and the child-safety checks
//! (blocked terms, per language too, and the moderation API when one is
//! configured, on the child's message and on the model's reply; a safety
//! preamble before every persona prompt); a block answers with the
//! configured refusal instead of the content.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lty_core::chat::{
    ChatError, ChatEvent, ChatMessage, ChatModel, ChatReply, ChatRequest, Conversation, NewMessage,
    Persona, Role, StoredMessage, Usage, trim_history,
};
use lty_core::speech::TtsRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUserId;
use crate::chat::{
    Side, blocked_since, flagged_by_provider, moderate, record_block, take_message_quota,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::speech::{decode_off_runtime, read_upload};
use crate::speech::{default_format, synthesize_stored};
use crate::state::AppState;

/// AI routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat))
        .routes(routes!(multi_chat))
        // The recording has its own limit (`LTY_AUDIO__ASR_MAX_BYTES`).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(voice_chat))
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation, delete_conversation))
        .routes(routes!(list_personas))
}

/// Most stored messages read back as history, before the token budget.
const HISTORY_MAX_MESSAGES: u64 = 50;
/// Characters of the first message used as a conversation's title.
const TITLE_CHARS: usize = 30;

/// Tokens a reply used.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct UsageOut {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

/// A single-turn chat request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatIn {
    /// What the child said.
    pub message: String,
    /// The companion to answer as; the default persona when absent.
    pub persona_id: Option<i64>,
    /// Language of the message (`zh`, `en`, ...): only that language's
    /// blocked-term list applies; every language's list when absent.
    pub language: Option<String>,
    /// Stream the answer as server-sent events (as does
    /// `Accept: text/event-stream`).
    #[serde(default)]
    pub stream: bool,
    /// Also speak the reply (in the persona's voice when it has one) and
    /// return where the audio is.
    #[serde(default)]
    pub voice: bool,
}

/// A single-turn answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatOut {
    pub reply: String,
    /// `None` when the provider did not report it, or nothing was asked.
    pub usage: Option<UsageOut>,
    /// The reply is the refusal message (child safety).
    pub moderated: bool,
    /// `stop`, `length`, ... as the model reported it.
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub audio: ReplyAudio,
}

/// A conversation turn.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MultiChatIn {
    pub message: String,
    /// Continue this conversation; a new one is started when absent.
    pub conversation_id: Option<i64>,
    /// Persona of a new conversation (ignored when continuing one).
    pub persona_id: Option<i64>,
    /// Language of the message, as in `/api/ai/chat/`.
    pub language: Option<String>,
    #[serde(default)]
    pub stream: bool,
    /// Also speak the reply, as in `/api/ai/chat/`.
    #[serde(default)]
    pub voice: bool,
}

/// The answer of a conversation turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct MultiChatOut {
    pub conversation_id: i64,
    /// Id of the stored reply.
    pub message_id: i64,
    pub reply: String,
    pub usage: Option<UsageOut>,
    pub moderated: bool,
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub audio: ReplyAudio,
}

/// The spoken reply of a chat turn asked with `"voice": true`; every field
/// is omitted when voice was not asked for. When synthesis fails after the
/// reply was produced, the reply still stands: `audio_url` is omitted and
/// `audio_error` says why.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ReplyAudio {
    /// URL of the audio (under `/media/` in embedded mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    /// Encoding of the audio (`mp3`, `wav`, `pcm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_format: Option<String>,
    /// Playing time in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Error code of a failed synthesis (`upstream_error`,
    /// `provider_not_configured`, `validation_error`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_error: Option<String>,
}

impl ReplyAudio {
    /// Adds the fields that are set to a JSON object (an SSE `done` event).
    fn extend(&self, event: &mut Value) {
        if let (Ok(Value::Object(fields)), Some(target)) =
            (serde_json::to_value(self), event.as_object_mut())
        {
            target.extend(fields);
        }
    }
}

/// A companion character.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonaOut {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// What the companion says first.
    pub greeting: String,
    /// TTS voice of the companion.
    pub voice_id: Option<String>,
    pub age_min: i32,
    pub age_max: i32,
    pub is_default: bool,
}

impl From<Persona> for PersonaOut {
    fn from(p: Persona) -> Self {
        Self {
            id: p.id,
            slug: p.slug,
            name: p.name,
            greeting: p.greeting,
            voice_id: p.voice_id,
            age_min: p.age_min,
            age_max: p.age_max,
            is_default: p.is_default,
        }
    }
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    pub id: i64,
    pub persona_id: Option<i64>,
    /// The start of its first message.
    pub title: String,
    pub created_at: DateTime<Utc>,
    /// Time of the latest message.
    pub updated_at: DateTime<Utc>,
}

impl From<Conversation> for ConversationOut {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            persona_id: c.persona_id,
            title: c.title,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A stored message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: i64,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// The reply was cut short (client gone or provider failed mid-stream).
    pub incomplete: bool,
    /// The content is the refusal message, or the child's message was blocked.
    pub moderated: bool,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<StoredMessage> for MessageOut {
    fn from(m: StoredMessage) -> Self {
        Self {
            id: m.id,
            role: m.role.as_str().to_owned(),
            content: m.content,
            incomplete: m.incomplete,
            moderated: m.moderated,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            created_at: m.created_at,
        }
    }
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub page_size: Option<u64>,
}

impl PageQuery {
    fn resolve(&self) -> Result<(u64, u64), lty_core::Error> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(20);
        if page == 0 {
            return Err(lty_core::Error::validation("page", "must be at least 1"));
        }
        if !(1..=100).contains(&size) {
            return Err(lty_core::Error::validation("page_size", "must be 1 to 100"));
        }
        Ok((page, size))
    }
}

/// A page of the caller's conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    /// Conversations over all pages.
    pub count: u64,
    pub page: u64,
    pub page_size: u64,
    pub results: Vec<ConversationOut>,
}

/// A conversation with a page of its messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: ConversationOut,
    /// Messages over all pages.
    pub count: u64,
    pub page: u64,
    pub page_size: u64,
    pub messages: Vec<MessageOut>,
}

fn conversation_not_found() -> lty_core::Error {
    lty_core::Error::NotFound {
        what: "conversation",
        code: "conversation_not_found",
    }
}

fn wants_stream(flag: bool, headers: &HeaderMap) -> bool {
    flag || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

fn model(state: &AppState) -> ApiResult<Arc<dyn ChatModel>> {
    state.chat.clone().ok_or_else(|| {
        ApiError::from(lty_core::Error::ProviderNotConfigured { provider: "llm" })
            .with_details(json!({ "provider": "llm", "missing": "KIMI_API_KEY" }))
    })
}

fn validate_message(state: &AppState, message: &str) -> ApiResult<String> {
    let message = message.trim();
    if message.is_empty() {
        return Err(lty_core::Error::validation("message", "must not be empty").into());
    }
    let max = state.config.ai.max_message_chars;
    if message.chars().count() > max {
        return Err(lty_core::Error::validation(
            "message",
            format!("must be at most {max} characters"),
        )
        .into());
    }
    Ok(message.to_owned())
}

async fn persona(state: &AppState, id: Option<i64>) -> ApiResult<Option<Persona>> {
    match id {
        Some(id) => Ok(Some(state.chat_repo.persona(id).await?.ok_or(
            lty_core::Error::NotFound {
                what: "persona",
                code: "persona_not_found",
            },
        )?)),
        None => Ok(state.chat_repo.default_persona().await?),
    }
}

/// The system message: the safety preamble, then the persona's prompt.
fn system_message(state: &AppState, persona: Option<&Persona>) -> ChatMessage {
    let preamble = state.config.ai.safety_preamble.trim();
    let content = match persona {
        Some(p) if preamble.is_empty() => p.system_prompt.clone(),
        Some(p) => format!("{preamble}\n\n{}", p.system_prompt),
        None => preamble.to_owned(),
    };
    ChatMessage::new(Role::System, content)
}

/// A failed model call as an API error: `429` when the provider asks us to
/// wait, `503 provider_unavailable` when it refuses us until an operator
/// acts, else `502 upstream_error`; the vendor's error type in details.
pub(crate) fn upstream(provider: &'static str, err: &ChatError) -> ApiError {
    let base = |details: Value| {
        ApiError::from(lty_core::Error::Upstream {
            provider,
            message: err.to_string(),
        })
        .with_details(details)
    };
    match err {
        ChatError::RateLimited {
            retry_after_secs,
            vendor_type,
        } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "upstream_rate_limited",
            format!("{provider} is busy; retry in {retry_after_secs} s"),
        )
        .with_retry_after(*retry_after_secs)
        .with_details(json!({
            "provider": provider,
            "vendor_type": vendor_type,
            "retry_after": retry_after_secs,
        })),
        ChatError::Unavailable {
            status,
            vendor_type,
            message,
        } => {
            tracing::error!(provider, status, vendor_type, %message, "chat provider refuses this server");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                format!("{provider} cannot be used right now"),
            )
            .with_details(
                json!({ "provider": provider, "status": status, "vendor_type": vendor_type }),
            )
        }
        ChatError::Timeout(_) => base(json!({ "provider": provider, "reason": "timeout" })),
        ChatError::Failed {
            status,
            vendor_type,
            ..
        } => base(json!({ "provider": provider, "status": status, "vendor_type": vendor_type })),
        ChatError::ContentFilter => {
            base(json!({ "provider": provider, "vendor_type": "content_filter" }))
        }
    }
}

fn count_tokens(provider: &'static str, usage: Option<Usage>) {
    if let Some(u) = usage {
        metrics::counter!("lty_ai_tokens_total", "provider" => provider, "kind" => "prompt")
            .increment(u64::from(u.prompt_tokens));
        metrics::counter!("lty_ai_tokens_total", "provider" => provider, "kind" => "completion")
            .increment(u64::from(u.completion_tokens));
    }
}

/// What a turn ends up with before it is answered.
struct Turn {
    model: Arc<dyn ChatModel>,
    request: ChatRequest,
    /// The child's message was blocked: answer with the refusal, ask nothing.
    input_blocked: bool,
    /// Language of the turn, for the blocked-term lists.
    language: Option<String>,
    /// Achievement events of the turn, recorded meanwhile; awaited before
    /// the answer completes.
    recording: Option<tokio::task::JoinHandle<()>>,
}

impl Turn {
    /// Waits for the turn's side work (achievement events) to finish.
    async fn settle(&mut self) {
        if let Some(handle) = self.recording.take() {
            let _ = handle.await;
        }
    }
}

/// A complete answer: the model's, or the refusal.
struct Answer {
    reply: String,
    usage: Option<Usage>,
    moderated: bool,
    finish_reason: Option<String>,
}

async fn answer_once(state: &AppState, user_id: i64, turn: &Turn) -> ApiResult<Answer> {
    let refusal = || Answer {
        reply: state.config.ai.refusal_message.clone(),
        usage: None,
        moderated: true,
        finish_reason: None,
    };
    if turn.input_blocked {
        return Ok(refusal());
    }
    let provider = turn.model.provider();
    let reply: ChatReply = match turn.model.complete(&turn.request).await {
        Ok(r) => r,
        Err(ChatError::ContentFilter) => {
            record_block("provider", user_id);
            return Ok(refusal());
        }
        Err(e) => return Err(upstream(provider, &e)),
    };
    count_tokens(provider, reply.usage);
    if moderate(
        state,
        Side::Output,
        user_id,
        turn.language.as_deref(),
        &reply.content,
    )
    .await
    {
        return Ok(Answer {
            usage: reply.usage,
            ..refusal()
        });
    }
    Ok(Answer {
        reply: reply.content,
        usage: reply.usage,
        moderated: false,
        finish_reason: reply.finish_reason,
    })
}

/// Where a streamed reply is stored.
#[derive(Debug, Clone, Copy)]
struct StreamTarget {
    user_id: i64,
    conversation_id: Option<i64>,
}

fn sse_event(name: &'static str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// Starts the model's stream (errors before the first byte are ordinary
/// JSON errors) and relays it as `delta`, `done` and `error` events from a
/// task that also stores the reply, complete or not, whatever the client
/// does meanwhile. The client going away drops the upstream stream, which
/// cancels the provider's request.
async fn answer_streamed(
    state: &AppState,
    mut turn: Turn,
    target: StreamTarget,
    speaker: Option<Speaker>,
) -> ApiResult<Response> {
    let (tx, rx) = mpsc::channel::<Event>(64);
    let keep_alive = Duration::from_secs(state.config.ai.sse_keep_alive_secs);
    let provider = turn.model.provider();
    let refusal = state.config.ai.refusal_message.clone();
    let upstream_stream = if turn.input_blocked {
        None
    } else {
        match turn.model.stream(&turn.request).await {
            Ok(s) => Some(s),
            Err(ChatError::ContentFilter) => {
                record_block("provider", target.user_id);
                None
            }
            Err(e) => return Err(upstream(provider, &e)),
        }
    };
    let state = state.clone();
    tokio::spawn(async move {
        let Some(mut upstream_stream) = upstream_stream else {
            turn.settle().await;
            // Blocked before asking: the refusal is the whole reply.
            let message_id = store_reply(&state, target, &refusal, None, false, true).await;
            let _ = tx
                .send(sse_event("delta", &json!({ "text": refusal })))
                .await;
            let mut done = json!({
                "conversation_id": target.conversation_id,
                "message_id": message_id,
                "usage": Value::Null,
                "finish_reason": Value::Null,
                "moderated": true,
            });
            if let Some(speaker) = &speaker {
                speak(&state, speaker, &refusal).await.extend(&mut done);
            }
            let _ = tx.send(sse_event("done", &done)).await;
            return;
        };
        let mut text = String::new();
        let outcome = loop {
            let item = tokio::select! {
                _ = tx.closed() => break Outcome::Disconnected,
                item = upstream_stream.next() => item,
            };
            match item {
                Some(Ok(ChatEvent::Delta(piece))) => {
                    let from = text.len();
                    text.push_str(&piece);
                    if blocked_since(
                        &state.config,
                        Side::Output,
                        target.user_id,
                        turn.language.as_deref(),
                        &text,
                        from,
                    ) {
                        text.truncate(from);
                        break Outcome::Blocked;
                    }
                    if tx
                        .send(sse_event("delta", &json!({ "text": piece })))
                        .await
                        .is_err()
                    {
                        break Outcome::Disconnected;
                    }
                }
                Some(Ok(ChatEvent::Done {
                    finish_reason,
                    usage,
                })) => break Outcome::Done(finish_reason, usage),
                Some(Err(e)) => break Outcome::Failed(e),
                None => {
                    break Outcome::Failed(ChatError::Failed {
                        status: None,
                        vendor_type: None,
                        message: "the stream ended early".into(),
                    });
                }
            }
        };
        // Cancels the provider's request when it is still running.
        drop(upstream_stream);
        turn.settle().await;
        match outcome {
            Outcome::Done(finish_reason, usage) => {
                count_tokens(provider, usage);
                // The moderation API sees the whole reply once: the deltas
                // are already out, so a flagged reply is stored as the
                // refusal and `done` tells the client to show that instead.
                let moderated =
                    flagged_by_provider(&state, Side::Output, target.user_id, &text).await;
                let stored = if moderated { &refusal } else { &text };
                let message_id = store_reply(&state, target, stored, usage, false, moderated).await;
                let mut done = json!({
                    "conversation_id": target.conversation_id,
                    "message_id": message_id,
                    "usage": usage.map(UsageOut::from),
                    "finish_reason": finish_reason,
                    "moderated": moderated,
                });
                if moderated {
                    done["refusal"] = json!(refusal);
                }
                if let Some(speaker) = &speaker {
                    speak(&state, speaker, stored).await.extend(&mut done);
                }
                let _ = tx.send(sse_event("done", &done)).await;
            }
            Outcome::Blocked => {
                let message_id = store_reply(&state, target, &refusal, None, false, true).await;
                let mut details =
                    json!({ "conversation_id": target.conversation_id, "message_id": message_id });
                if let Some(speaker) = &speaker {
                    speak(&state, speaker, &refusal).await.extend(&mut details);
                }
                let _ = tx
                    .send(sse_event(
                        "error",
                        &json!({
                            "code": "content_blocked",
                            "message": refusal,
                            "details": details,
                        }),
                    ))
                    .await;
            }
            Outcome::Failed(err) => {
                tracing::warn!(provider, %err, "chat stream failed");
                store_reply(&state, target, &text, None, true, false).await;
                let api = upstream(provider, &err);
                let _ = tx
                    .send(sse_event(
                        "error",
                        &json!({ "code": api.code(), "message": format!("{provider} failed mid-answer") }),
                    ))
                    .await;
            }
            Outcome::Disconnected => {
                tracing::info!(
                    provider,
                    chars = text.chars().count(),
                    "chat client went away mid-stream"
                );
                store_reply(&state, target, &text, None, true, false).await;
            }
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response())
}

enum Outcome {
    Done(Option<String>, Option<Usage>),
    Blocked,
    Failed(ChatError),
    Disconnected,
}

/// Stores a streamed reply in its conversation (multi-chat only); an empty
/// incomplete reply is not worth a row. Returns the message id.
async fn store_reply(
    state: &AppState,
    target: StreamTarget,
    text: &str,
    usage: Option<Usage>,
    incomplete: bool,
    moderated: bool,
) -> Option<i64> {
    let conversation_id = target.conversation_id?;
    if incomplete && text.is_empty() {
        return None;
    }
    match state
        .chat_repo
        .add_message(NewMessage {
            conversation_id,
            role: Role::Assistant,
            content: text.to_owned(),
            incomplete,
            moderated,
            usage,
        })
        .await
    {
        Ok(m) => Some(m.id),
        Err(err) => {
            tracing::error!(%err, conversation_id, "cannot store a chat reply");
            None
        }
    }
}

/// Who speaks a reply asked for with `"voice": true`.
#[derive(Debug, Clone, Default)]
struct Speaker {
    /// The persona's TTS voice; the provider's default when `None`.
    voice: Option<String>,
}

impl Speaker {
    fn of(persona: Option<&Persona>) -> Self {
        Self {
            voice: persona.and_then(|p| p.voice_id.clone()),
        }
    }
}

/// Fails with `503 provider_not_configured` when nothing can speak, so a
/// voice request is refused before the model is asked anything.
fn require_tts(state: &AppState) -> ApiResult<()> {
    state.speech.tts()?;
    Ok(())
}

/// Speaks `text` through the TTS cache ([`synthesize_stored`]): identical
/// text and voice reuse the stored audio without a new synthesis. A failure
/// is logged and reported in `audio_error`; the reply stands either way.
async fn speak(state: &AppState, speaker: &Speaker, text: &str) -> ReplyAudio {
    let failed = |code: &str| ReplyAudio {
        audio_error: Some(code.to_owned()),
        ..ReplyAudio::default()
    };
    let provider = match state.speech.tts() {
        Ok(tts) => tts.provider(),
        Err(err) => return failed(ApiError::from(err).code()),
    };
    let req = TtsRequest {
        text: text.trim().to_owned(),
        voice: speaker.voice.clone(),
        format: default_format(provider),
    };
    match synthesize_stored(state, &req).await {
        Ok(stored) => ReplyAudio {
            audio_url: Some(state.blobs.url(&stored.key)),
            audio_format: Some(stored.format),
            duration_ms: Some(stored.duration_ms),
            audio_error: None,
        },
        Err(err) => {
            let err = ApiError::from(err);
            tracing::warn!(provider, code = err.code(), "cannot speak a chat reply");
            metrics::counter!("lty_ai_voice_failures_total", "provider" => provider).increment(1);
            failed(err.code())
        }
    }
}

/// A conversation turn as asked, by `/api/ai/multi-chat/` or
/// `/api/ai/voice-chat/`.
struct TurnInput {
    /// The child's message, already validated.
    message: String,
    conversation_id: Option<i64>,
    persona_id: Option<i64>,
    language: Option<String>,
}

/// A conversation turn ready to be answered, the child's message stored.
struct ConversationTurn {
    turn: Turn,
    conversation_id: i64,
    /// The companion answering.
    persona: Option<Persona>,
}

/// The shared start of a conversation turn: finds (or starts) the
/// conversation and its persona, takes the quota, checks the child's
/// message, stores it and puts the newest history that fits the token
/// budget in front of it.
async fn begin_conversation_turn(
    state: &AppState,
    user_id: i64,
    model: Arc<dyn ChatModel>,
    input: TurnInput,
) -> ApiResult<ConversationTurn> {
    let TurnInput {
        message,
        conversation_id,
        persona_id,
        language,
    } = input;
    let (conversation, persona) = match conversation_id {
        Some(id) => {
            let c = state
                .chat_repo
                .conversation(id)
                .await?
                .filter(|c| c.user_id == user_id)
                .ok_or_else(conversation_not_found)?;
            let p = match c.persona_id {
                Some(pid) => state.chat_repo.persona(pid).await?,
                None => None,
            };
            let p = match p {
                Some(p) => Some(p),
                None => state.chat_repo.default_persona().await?,
            };
            (Some(c), p)
        }
        None => (None, persona(state, persona_id).await?),
    };
    take_message_quota(state, user_id).await?;
    let recording =
        crate::achievements::spawn_record(state, user_id, lty_core::achievement::CHAT_MESSAGE, 1);
    let conversation = match conversation {
        Some(c) => c,
        None => {
            let title: String = message.chars().take(TITLE_CHARS).collect();
            state
                .chat_repo
                .create_conversation(user_id, persona.as_ref().map(|p| p.id), &title)
                .await?
        }
    };
    let history: Vec<ChatMessage> = state
        .chat_repo
        .recent_messages(conversation.id, HISTORY_MAX_MESSAGES)
        .await?
        .into_iter()
        .filter(|m| !m.moderated && m.role != Role::System)
        .map(|m| ChatMessage::new(m.role, m.content))
        .collect();
    let input_blocked = moderate(state, Side::Input, user_id, language.as_deref(), &message).await;
    state
        .chat_repo
        .add_message(NewMessage {
            conversation_id: conversation.id,
            role: Role::User,
            content: message.clone(),
            incomplete: false,
            moderated: input_blocked,
            usage: None,
        })
        .await?;
    let messages = trim_history(
        system_message(state, persona.as_ref()),
        &history,
        ChatMessage::new(Role::User, message),
        state.config.ai.history_token_budget,
    );
    Ok(ConversationTurn {
        turn: Turn {
            model,
            request: ChatRequest {
                messages,
                ..Default::default()
            },
            input_blocked,
            language,
            recording: Some(recording),
        },
        conversation_id: conversation.id,
        persona,
    })
}

/// The shared end of a non-streamed conversation turn: the answer (the
/// model's or the refusal), stored. Returns it with the stored message id.
async fn answer_conversation_turn(
    state: &AppState,
    user_id: i64,
    ct: &mut ConversationTurn,
) -> ApiResult<(Answer, i64)> {
    let answer = answer_once(state, user_id, &ct.turn).await;
    ct.turn.settle().await;
    let a = answer?;
    let stored = state
        .chat_repo
        .add_message(NewMessage {
            conversation_id: ct.conversation_id,
            role: Role::Assistant,
            content: a.reply.clone(),
            incomplete: false,
            moderated: a.moderated,
            usage: a.usage,
        })
        .await?;
    Ok((a, stored.id))
}

/// One question, one answer, nothing stored but the quota count.
///
/// With `"stream": true` or `Accept: text/event-stream` the answer is a
/// `text/event-stream` of `delta` (`{"text"}`), then `done` (`{"usage",
/// "finish_reason", "moderated"}`; when the moderation API flags the
/// finished reply, `moderated` is true and `refusal` is what to show
/// instead) or `error` (`{"code","message"}`; `content_blocked` carries the
/// refusal as its message).
///
/// With `"voice": true` the reply is also spoken (the persona's voice when
/// it has one) through the TTS cache: `audio_url`, `audio_format` and
/// `duration_ms` join the JSON answer or the `done` event (the
/// `content_blocked` event's `details` for a refusal mid-stream). A
/// synthesis that fails leaves the reply as it is, with `audio_error`
/// instead of `audio_url`; no TTS provider at all is `503
/// provider_not_configured` before anything is asked.
#[utoipa::path(post, path = "/api/ai/chat/", tag = "ai",
    security(("bearer" = [])),
    request_body = ChatIn,
    responses(
        (status = 200, body = ChatOut, description = "the answer (JSON), or the SSE stream"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "unknown persona", body = ErrorBody),
        (status = 429, description = "`quota_exceeded` (with `reset_at`) or `upstream_rate_limited`", body = ErrorBody),
        (status = 502, description = "the model failed", body = ErrorBody),
        (status = 503, description = "`provider_not_configured` or `provider_unavailable`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user_id))]
pub async fn chat(
    State(state): State<AppState>,
    auth: AuthUserId,
    headers: HeaderMap,
    Json(body): Json<ChatIn>,
) -> ApiResult<Response> {
    let message = validate_message(&state, &body.message)?;
    let model = model(&state)?;
    if body.voice {
        require_tts(&state)?;
    }
    let persona = persona(&state, body.persona_id).await?;
    let speaker = body.voice.then(|| Speaker::of(persona.as_ref()));
    take_message_quota(&state, auth.user_id).await?;
    let recording = crate::achievements::spawn_record(
        &state,
        auth.user_id,
        lty_core::achievement::CHAT_MESSAGE,
        1,
    );
    let language = body.language;
    let input_blocked = moderate(
        &state,
        Side::Input,
        auth.user_id,
        language.as_deref(),
        &message,
    )
    .await;
    let request = ChatRequest {
        messages: vec![
            system_message(&state, persona.as_ref()),
            ChatMessage::new(Role::User, message),
        ],
        ..Default::default()
    };
    let mut turn = Turn {
        model,
        request,
        input_blocked,
        language,
        recording: Some(recording),
    };
    if wants_stream(body.stream, &headers) {
        let target = StreamTarget {
            user_id: auth.user_id,
            conversation_id: None,
        };
        return answer_streamed(&state, turn, target, speaker).await;
    }
    let answer = answer_once(&state, auth.user_id, &turn).await;
    turn.settle().await;
    let a = answer?;
    let audio = match &speaker {
        Some(speaker) => speak(&state, speaker, &a.reply).await,
        None => ReplyAudio::default(),
    };
    Ok(Json(ChatOut {
        reply: a.reply,
        usage: a.usage.map(Into::into),
        moderated: a.moderated,
        finish_reason: a.finish_reason,
        audio,
    })
    .into_response())
}

/// One turn of a stored conversation: the child's message and the reply
/// are persisted, with the newest history that fits the token budget sent
/// along. Streams like `/api/ai/chat/`; `done` then also carries
/// `conversation_id` and `message_id`, and a reply cut short (client gone,
/// provider failed) is stored marked `incomplete`.
#[utoipa::path(post, path = "/api/ai/multi-chat/", tag = "ai",
    security(("bearer" = [])),
    request_body = MultiChatIn,
    responses(
        (status = 200, body = MultiChatOut, description = "the answer (JSON), or the SSE stream"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "unknown conversation or persona", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user_id))]
pub async fn multi_chat(
    State(state): State<AppState>,
    auth: AuthUserId,
    headers: HeaderMap,
    Json(body): Json<MultiChatIn>,
) -> ApiResult<Response> {
    let message = validate_message(&state, &body.message)?;
    let model = model(&state)?;
    if body.voice {
        require_tts(&state)?;
    }
    let input = TurnInput {
        message,
        conversation_id: body.conversation_id,
        persona_id: body.persona_id,
        language: body.language,
    };
    let mut ct = begin_conversation_turn(&state, auth.user_id, model, input).await?;
    let speaker = body.voice.then(|| Speaker::of(ct.persona.as_ref()));
    if wants_stream(body.stream, &headers) {
        let target = StreamTarget {
            user_id: auth.user_id,
            conversation_id: Some(ct.conversation_id),
        };
        return answer_streamed(&state, ct.turn, target, speaker).await;
    }
    let (a, message_id) = answer_conversation_turn(&state, auth.user_id, &mut ct).await?;
    let audio = match &speaker {
        Some(speaker) => speak(&state, speaker, &a.reply).await,
        None => ReplyAudio::default(),
    };
    Ok(Json(MultiChatOut {
        conversation_id: ct.conversation_id,
        message_id,
        reply: a.reply,
        usage: a.usage.map(Into::into),
        moderated: a.moderated,
        finish_reason: a.finish_reason,
        audio,
    })
    .into_response())
}

/// Where a voice-chat turn goes, as query parameters (or as fields of the
/// multipart form, which win).
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct VoiceChatQuery {
    /// Continue this conversation; a new one is started when absent.
    pub conversation_id: Option<i64>,
    /// Persona of a new conversation (ignored when continuing one).
    pub persona_id: Option<i64>,
    /// Language of the speech, for the blocked-term lists.
    pub language: Option<String>,
}

/// The answer of a spoken conversation turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceChatOut {
    /// What the child said, as recognized.
    pub transcript: String,
    pub reply: String,
    /// URL of the spoken reply; `null` when synthesis failed (the reply and
    /// the conversation stand; `audio_error` says why).
    pub audio_url: Option<String>,
    /// Encoding of the audio.
    pub audio_format: Option<String>,
    /// Playing time in milliseconds.
    pub duration_ms: Option<u64>,
    /// Error code of a failed synthesis; omitted on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_error: Option<String>,
    pub conversation_id: i64,
    /// Id of the stored reply.
    pub message_id: i64,
    pub usage: Option<UsageOut>,
    /// The reply is the refusal message (child safety).
    pub moderated: bool,
    pub finish_reason: Option<String>,
}

fn upload_too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the audio is larger than {max} bytes"),
    )
}

/// A form field as a number, or 400 naming it.
fn id_field(name: &'static str, text: &str) -> ApiResult<Option<i64>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| lty_core::Error::validation(name, "must be an integer").into())
}

/// Reads a voice-chat upload: a raw audio body, or a multipart form with a
/// `file` (or `audio`) part and optional `conversation_id`, `persona_id`
/// and `language` fields that override the query. Returns the audio, its
/// content type and where the turn goes.
async fn read_voice_upload(
    req: Request,
    max: usize,
    mut target: VoiceChatQuery,
) -> ApiResult<(bytes::Bytes, String, VoiceChatQuery)> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_form {
        let (data, content_type) = read_upload(req, max).await?;
        return Ok((data, content_type, target));
    }
    // Room for the fields, part headers and boundaries around the audio.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, max + 16 * 1024)));
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            upload_too_large(max)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    };
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    let mut audio = None;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("file" | "audio") if audio.is_none() => {
                let part_type = field.content_type().unwrap_or("").to_owned();
                let data = field.bytes().await.map_err(bad_form)?;
                if data.len() > max {
                    return Err(upload_too_large(max));
                }
                audio = Some((data, part_type));
            }
            Some("conversation_id") => {
                let text = field.text().await.map_err(bad_form)?;
                target.conversation_id = id_field("conversation_id", &text)?;
            }
            Some("persona_id") => {
                let text = field.text().await.map_err(bad_form)?;
                target.persona_id = id_field("persona_id", &text)?;
            }
            Some("language") => {
                let text = field.text().await.map_err(bad_form)?;
                let text = text.trim();
                target.language = (!text.is_empty()).then(|| text.to_owned());
            }
            _ => {}
        }
    }
    let (data, content_type) = audio.ok_or_else(|| {
        ApiError::from(lty_core::Error::validation(
            "audio",
            "no `file` or `audio` part in the form",
        ))
    })?;
    Ok((data, content_type, target))
}

/// One spoken turn of a stored conversation.
///
/// The recording is recognized, the transcript goes through the same
/// pipeline as `/api/ai/multi-chat/` (persona, history, quota, moderation
/// of both sides, persistence), and the reply is spoken in the persona's
/// voice through the TTS cache.
///
/// Send the audio as the body (`audio/wav`, or `audio/pcm` / `audio/L16`)
/// with `conversation_id` / `persona_id` / `language` in the query, or as
/// the `file` (or `audio`) part of a multipart form with those as fields;
/// formats and limits as `/api/ai/asr/`. Silence (an empty transcript) is
/// `422 no_speech`, and nothing is stored or counted. When synthesis fails
/// after the reply was produced, the reply is stored and returned with
/// `audio_url: null` and `audio_error`.
#[utoipa::path(post, path = "/api/ai/voice-chat/", tag = "ai",
    security(("bearer" = [])),
    params(VoiceChatQuery),
    request_body(content = Vec<u8>, content_type = "audio/wav",
        description = "WAV or raw PCM (16 kHz, 16-bit, mono), or a multipart form with a `file` part and optional `conversation_id`, `persona_id`, `language` fields"),
    responses(
        (status = 200, body = VoiceChatOut),
        (status = 400, description = "empty, malformed or too long audio, bad field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "unknown conversation or persona", body = ErrorBody),
        (status = 413, description = "larger than `LTY_AUDIO__ASR_MAX_BYTES`", body = ErrorBody),
        (status = 415, description = "`unsupported_audio_format`", body = ErrorBody),
        (status = 422, description = "`no_speech`: nothing was recognized", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, description = "`provider_not_configured` (model, ASR or TTS) or `provider_unavailable`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user_id))]
pub async fn voice_chat(
    State(state): State<AppState>,
    auth: AuthUserId,
    Query(query): Query<VoiceChatQuery>,
    req: Request,
) -> ApiResult<Json<VoiceChatOut>> {
    let model = model(&state)?;
    let asr = state.speech.asr()?.clone();
    require_tts(&state)?;
    let audio = &state.config.audio;
    let (data, content_type, target) = read_voice_upload(req, audio.asr_max_bytes, query).await?;
    let pcm = decode_off_runtime(data, content_type, audio.asr_max_seconds).await?;
    let transcript = asr.recognize(&pcm).await?.text.trim().to_owned();
    if transcript.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_speech",
            "no speech was recognized in the recording",
        ));
    }
    let message = validate_message(&state, &transcript)?;
    let input = TurnInput {
        message,
        conversation_id: target.conversation_id,
        persona_id: target.persona_id,
        language: target.language,
    };
    let mut ct = begin_conversation_turn(&state, auth.user_id, model, input).await?;
    let (a, message_id) = answer_conversation_turn(&state, auth.user_id, &mut ct).await?;
    let spoken = speak(&state, &Speaker::of(ct.persona.as_ref()), &a.reply).await;
    Ok(Json(VoiceChatOut {
        transcript,
        reply: a.reply,
        audio_url: spoken.audio_url,
        audio_format: spoken.audio_format,
        duration_ms: spoken.duration_ms,
        audio_error: spoken.audio_error,
        conversation_id: ct.conversation_id,
        message_id,
        usage: a.usage.map(Into::into),
        moderated: a.moderated,
        finish_reason: a.finish_reason,
    }))
}

/// The caller's conversations, most recently active first.
#[utoipa::path(get, path = "/api/ai/conversations/", tag = "ai",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = ConversationPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list_conversations(
    State(state): State<AppState>,
    auth: AuthUserId,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ConversationPage>> {
    let (page, size) = q.resolve()?;
    let found = state
        .chat_repo
        .conversations_of_user(auth.user_id, (page - 1) * size, size)
        .await?;
    Ok(Json(ConversationPage {
        count: found.total,
        page,
        page_size: size,
        results: found.items.into_iter().map(Into::into).collect(),
    }))
}

async fn owned_conversation(state: &AppState, user_id: i64, id: i64) -> ApiResult<Conversation> {
    Ok(state
        .chat_repo
        .conversation(id)
        .await?
        .filter(|c| c.user_id == user_id)
        .ok_or_else(conversation_not_found)?)
}

/// One of the caller's conversations with a page of its messages.
#[utoipa::path(get, path = "/api/ai/conversations/{id}/", tag = "ai",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "conversation id"), PageQuery),
    responses(
        (status = 200, body = ConversationDetail),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such conversation of the caller", body = ErrorBody),
    ))]
pub async fn get_conversation(
    State(state): State<AppState>,
    auth: AuthUserId,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ConversationDetail>> {
    let (page, size) = q.resolve()?;
    let conversation = owned_conversation(&state, auth.user_id, id).await?;
    let found = state
        .chat_repo
        .messages(id, (page - 1) * size, size)
        .await?;
    Ok(Json(ConversationDetail {
        conversation: conversation.into(),
        count: found.total,
        page,
        page_size: size,
        messages: found.items.into_iter().map(Into::into).collect(),
    }))
}

/// Deletes one of the caller's conversations with its messages.
#[utoipa::path(delete, path = "/api/ai/conversations/{id}/", tag = "ai",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "conversation id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn delete_conversation(
    State(state): State<AppState>,
    auth: AuthUserId,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    owned_conversation(&state, auth.user_id, id).await?;
    state.chat_repo.delete_conversation(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The companions a child can talk to, the default first.
#[utoipa::path(get, path = "/api/ai/personas/", tag = "ai",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PersonaOut>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list_personas(
    State(state): State<AppState>,
    _auth: AuthUserId,
) -> ApiResult<Json<Vec<PersonaOut>>> {
    Ok(Json(
        state
            .chat_repo
            .personas()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
