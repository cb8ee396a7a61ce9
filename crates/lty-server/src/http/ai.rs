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

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lty_core::chat::{Conversation, Persona, StoredMessage, Usage};
use lty_core::speech::TtsRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::chat::turn::{
    self, Delivery, Outcome, Style, Thread, Turn, TurnEnd, TurnEvent, TurnRequest,
};
use crate::app::speech::{default_format, synthesize_stored};
use crate::auth::AuthUserId;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::speech::{audio_upload, decode_off_runtime};
use crate::http::upload::UploadedFile;
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
    /// `event` (a JSON object) with the fields that are set added.
    fn extended(&self, mut event: Value) -> Value {
        if let (Ok(Value::Object(fields)), Some(target)) =
            (serde_json::to_value(self), event.as_object_mut())
        {
            target.extend(fields);
        }
        event
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
    /// 1-based page number, 1 to 1000000 (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub page_size: Option<u64>,
}

impl PageQuery {
    fn resolve(&self) -> Result<(u64, u64), lty_core::Error> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(20);
        // Bounded so that `(page - 1) * page_size` cannot overflow.
        if !(1..=crate::http::admin::MAX_PAGE).contains(&page) {
            return Err(lty_core::Error::validation("page", "must be 1 to 1000000"));
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

fn wants_stream(flag: bool, headers: &HeaderMap) -> bool {
    flag || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

fn sse_event(name: &'static str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// A streamed turn as server-sent events: `delta` for every piece, then
/// `done`, or `error` (`content_blocked` when the reply hit a blocked term,
/// the provider's error code when it failed mid-answer). The stream owns
/// the turn: a client that goes away drops it, which cuts the reply (stored
/// as incomplete) and cancels the provider's request.
fn sse(state: &AppState, turn: Turn, speaker: Option<Speaker>) -> Response {
    let keep_alive = Duration::from_secs(state.config.ai.sse_keep_alive_secs);
    let relay = Relay {
        state: state.clone(),
        turn,
        speaker,
        pending: None,
    };
    let events = futures_util::stream::unfold(relay, |mut relay| async move {
        let event = relay.next().await?;
        Some((Ok::<_, Infallible>(event), relay))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response()
}

/// The state of [`sse`]'s event stream.
struct Relay {
    state: AppState,
    turn: Turn,
    speaker: Option<Speaker>,
    /// An event held back while another one goes out first.
    pending: Option<Event>,
}

impl Relay {
    async fn next(&mut self) -> Option<Event> {
        if let Some(event) = self.pending.take() {
            return Some(event);
        }
        match self.turn.next().await? {
            TurnEvent::Delta(text) => Some(sse_event("delta", &json!({ "text": text }))),
            TurnEvent::End(end) => Some(self.end(end).await),
        }
    }

    async fn end(&mut self, end: TurnEnd) -> Event {
        let conversation_id = self.turn.conversation_id;
        let audio = match &self.speaker {
            Some(speaker) if !matches!(end.outcome, Outcome::Failed(_)) => {
                Some(speak(&self.state, speaker, &end.reply).await)
            }
            _ => None,
        };
        let mut done = json!({
            "conversation_id": conversation_id,
            "message_id": end.message_id,
            "usage": end.usage.map(UsageOut::from),
            "finish_reason": end.finish_reason,
            "moderated": end.outcome.moderated(),
        });
        match end.outcome {
            Outcome::Answered => {}
            // Nothing was shown: the refusal is the whole reply.
            Outcome::Refused => {
                self.pending = Some(done_event(done, audio));
                return sse_event("delta", &json!({ "text": end.reply }));
            }
            Outcome::Flagged => done["refusal"] = json!(end.reply),
            Outcome::BlockedMidway => {
                let details =
                    json!({ "conversation_id": conversation_id, "message_id": end.message_id });
                let details = match &audio {
                    Some(audio) => audio.extended(details),
                    None => details,
                };
                return sse_event(
                    "error",
                    &json!({ "code": "content_blocked", "message": end.reply, "details": details }),
                );
            }
            Outcome::Failed(err) => {
                return sse_event(
                    "error",
                    &json!({
                        "code": err.code(),
                        "message": format!("{} failed mid-answer", self.turn.provider),
                    }),
                );
            }
        }
        done_event(done, audio)
    }
}

fn done_event(done: Value, audio: Option<ReplyAudio>) -> Event {
    let done = match audio {
        Some(audio) => audio.extended(done),
        None => done,
    };
    sse_event("done", &done)
}

/// A turn answered at once: its end, or the provider's failure as the
/// error response.
async fn finish(turn: Turn) -> ApiResult<TurnEnd> {
    let end = turn.finish().await?;
    if let Outcome::Failed(err) = end.outcome {
        return Err(err.into());
    }
    Ok(end)
}

/// The stored reply of a conversation turn.
fn stored_reply(end: &TurnEnd) -> ApiResult<i64> {
    end.message_id.ok_or_else(|| {
        ApiError::from(lty_core::Error::Backend(lty_core::BackendError::new(
            "database",
            "the reply was not stored",
        )))
    })
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
        Err(err) => return failed(err.code()),
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
            tracing::warn!(provider, code = err.code(), "cannot speak a chat reply");
            metrics::counter!("lty_ai_voice_failures_total", "provider" => provider).increment(1);
            failed(err.code())
        }
    }
}

/// A typed turn of `/api/ai/chat/` or `/api/ai/multi-chat/`.
struct TextTurn {
    message: String,
    language: Option<String>,
    thread: Thread,
    voice: bool,
    stream: bool,
}

/// Starts a typed turn, with who speaks it when `voice` is asked.
async fn start_text_turn(
    state: &AppState,
    user_id: i64,
    input: TextTurn,
) -> ApiResult<(Turn, Option<Speaker>)> {
    if input.voice {
        // Nothing can speak: refused before the model is asked anything.
        state.speech.tts()?;
    }
    let turn = turn::start(
        state,
        TurnRequest {
            user_id,
            message: input.message,
            language: input.language,
            thread: input.thread,
            style: Style::Written,
            delivery: if input.stream {
                Delivery::Stream
            } else {
                Delivery::Whole
            },
            temperature: None,
            max_tokens: None,
            tools: None,
        },
    )
    .await?;
    let speaker = input.voice.then(|| Speaker::of(turn.persona.as_ref()));
    Ok((turn, speaker))
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
    let stream = wants_stream(body.stream, &headers);
    let input = TextTurn {
        message: body.message,
        language: body.language,
        thread: Thread::Single {
            persona_id: body.persona_id,
        },
        voice: body.voice,
        stream,
    };
    let (turn, speaker) = start_text_turn(&state, auth.user_id, input).await?;
    if stream {
        return Ok(sse(&state, turn, speaker));
    }
    let end = finish(turn).await?;
    let audio = match &speaker {
        Some(speaker) => speak(&state, speaker, &end.reply).await,
        None => ReplyAudio::default(),
    };
    Ok(Json(ChatOut {
        moderated: end.outcome.moderated(),
        reply: end.reply,
        usage: end.usage.map(Into::into),
        finish_reason: end.finish_reason,
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
    let stream = wants_stream(body.stream, &headers);
    let input = TextTurn {
        message: body.message,
        language: body.language,
        thread: Thread::Conversation {
            id: body.conversation_id,
            persona_id: body.persona_id,
        },
        voice: body.voice,
        stream,
    };
    let (turn, speaker) = start_text_turn(&state, auth.user_id, input).await?;
    if stream {
        return Ok(sse(&state, turn, speaker));
    }
    let conversation_id = turn.conversation_id.unwrap_or_default();
    let end = finish(turn).await?;
    let message_id = stored_reply(&end)?;
    let audio = match &speaker {
        Some(speaker) => speak(&state, speaker, &end.reply).await,
        None => ReplyAudio::default(),
    };
    Ok(Json(MultiChatOut {
        conversation_id,
        message_id,
        moderated: end.outcome.moderated(),
        reply: end.reply,
        usage: end.usage.map(Into::into),
        finish_reason: end.finish_reason,
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
/// and `language` fields that override the query. Returns the audio and
/// where the turn goes.
async fn read_voice_upload(
    req: Request,
    max: usize,
    mut target: VoiceChatQuery,
) -> ApiResult<(UploadedFile, VoiceChatQuery)> {
    let fields = ["conversation_id", "persona_id", "language"];
    let file = audio_upload(max)
        .read_with_fields(req, &fields, |name, text| {
            match name {
                "conversation_id" => target.conversation_id = id_field(name, text)?,
                "persona_id" => target.persona_id = id_field(name, text)?,
                "language" => {
                    let text = text.trim();
                    target.language = (!text.is_empty()).then(|| text.to_owned());
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
    Ok((file, target))
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
    turn::model(&state)?;
    let asr = state.speech.asr()?.clone();
    state.speech.tts()?;
    let audio = &state.config.audio;
    let (file, target) = read_voice_upload(req, audio.asr_max_bytes, query).await?;
    let pcm = decode_off_runtime(file.data, file.content_type, audio.asr_max_seconds).await?;
    let transcript = asr.recognize(&pcm).await?.text.trim().to_owned();
    if transcript.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_speech",
            "no speech was recognized in the recording",
        ));
    }
    let turn = turn::start(
        &state,
        TurnRequest {
            user_id: auth.user_id,
            message: transcript.clone(),
            language: target.language,
            thread: Thread::Conversation {
                id: target.conversation_id,
                persona_id: target.persona_id,
            },
            style: Style::Spoken,
            delivery: Delivery::Whole,
            temperature: None,
            max_tokens: None,
            tools: None,
        },
    )
    .await?;
    let conversation_id = turn.conversation_id.unwrap_or_default();
    let speaker = Speaker::of(turn.persona.as_ref());
    let end = finish(turn).await?;
    let message_id = stored_reply(&end)?;
    let spoken = speak(&state, &speaker, &end.reply).await;
    Ok(Json(VoiceChatOut {
        transcript,
        moderated: end.outcome.moderated(),
        reply: end.reply,
        audio_url: spoken.audio_url,
        audio_format: spoken.audio_format,
        duration_ms: spoken.duration_ms,
        audio_error: spoken.audio_error,
        conversation_id,
        message_id,
        usage: end.usage.map(Into::into),
        finish_reason: end.finish_reason,
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
        .db
        .conversations_of_user(auth.user_id, (page - 1) * size, size)
        .await?;
    Ok(Json(ConversationPage {
        count: found.total,
        page,
        page_size: size,
        results: found.items.into_iter().map(Into::into).collect(),
    }))
}

/// One of the caller's conversations with a page of its messages.
#[utoipa::path(get, path = "/api/ai/conversations/{id}/", tag = "ai",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "conversation id"), PageQuery),
    responses(
        (status = 200, body = ConversationDetail),
        (status = 400, body = ErrorBody),
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
    let conversation = turn::owned_conversation(&state, auth.user_id, id).await?;
    let found = state.db.messages(id, (page - 1) * size, size).await?;
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
    turn::owned_conversation(&state, auth.user_id, id).await?;
    state.db.delete_conversation(id).await?;
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
            .db
            .personas()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
