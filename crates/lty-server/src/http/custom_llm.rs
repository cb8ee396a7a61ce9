//! `POST /api/ai/custom-llm/chat/completions`: the "brain" of a Volcengine
//! voice agent (vendors/volcengine.md §5). Volcengine sends an OpenAI-style
//! streaming request for every turn; lty answers with its own model, the
//! session's persona, the child-safety rules and the family's quota, as
//! `chat.completion.chunk` SSE events ending with `data: [DONE]`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use lty_core::chat::{ChatEvent, ChatMessage, ChatRequest, Role, Usage};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::{Side, blocked_since, flagged_by_provider, moderate, take_message_quota};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::http::voice_chat::live_session;
use crate::state::AppState;

/// CustomLLM route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(completions))
}

/// The query lty registered in the agent's `LLMConfig.Url`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CustomLlmQuery {
    /// The family whose agent is asking.
    pub user_id: Option<i64>,
    /// The voice-chat session.
    pub task_id: Option<String>,
}

/// One message as Volcengine sends it; `content` may be a string or, with
/// vision, an array of parts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IncomingMessage {
    pub role: String,
    #[schema(value_type = Object)]
    #[serde(default)]
    pub content: Value,
}

/// The request body (an OpenAI chat-completions subset; unknown fields are
/// ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomLlmIn {
    /// The recent turns, the child's current words last.
    #[serde(default)]
    pub messages: Vec<IncomingMessage>,
    pub temperature: Option<f32>,
    /// Either spelling is sent.
    #[serde(alias = "maxTokens")]
    pub max_tokens: Option<u32>,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Markdown is read aloud literally by TTS: drop its markers.
fn speakable(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '*' | '#' | '`'))
        .collect()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(key) = state
        .config
        .volcengine
        .custom_llm_api_key
        .as_ref()
        .map(|k| k.expose())
        .filter(|k| !k.is_empty())
    else {
        return Err(lty_core::Error::ProviderNotConfigured {
            provider: "custom_llm",
        }
        .into());
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if lty_core::secret::constant_time_eq(given.as_bytes(), key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid CustomLLM API key is required",
        ))
    }
}

/// Builds `chat.completion.chunk` events of one response.
struct Chunks {
    id: String,
    created: i64,
    first: bool,
}

impl Chunks {
    fn new() -> Self {
        let mut raw = [0u8; 12];
        rand::rng().fill_bytes(&mut raw);
        Self {
            id: format!("chatcmpl-{}", hex_string(&raw)),
            created: chrono::Utc::now().timestamp(),
            first: true,
        }
    }

    fn delta(&mut self, text: &str) -> Event {
        let delta = if std::mem::take(&mut self.first) {
            json!({ "role": "assistant", "content": text })
        } else {
            json!({ "content": text })
        };
        self.event(delta, Value::Null, None)
    }

    fn finish(&mut self, reason: &str, usage: Option<Usage>) -> Event {
        self.event(json!({}), json!(reason), usage)
    }

    fn event(&self, delta: Value, finish: Value, usage: Option<Usage>) -> Event {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": "lty",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        if let Some(u) = usage {
            chunk["usage"] = json!({
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            });
        }
        Event::default().data(chunk.to_string())
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A whole answer of fixed text (a refusal or the quota sentence).
fn spoken(text: &str, reason: &str) -> Response {
    let mut chunks = Chunks::new();
    let events = vec![
        chunks.delta(text),
        chunks.finish(reason, None),
        Event::default().data("[DONE]"),
    ];
    Sse::new(futures_util::stream::iter(
        events.into_iter().map(Ok::<_, Infallible>),
    ))
    .into_response()
}

/// Answers one turn of a voice agent as an SSE stream of
/// `chat.completion.chunk` events, then `data: [DONE]`.
///
/// Authenticated by `Authorization: Bearer {LTY_CUSTOM_LLM_API_KEY}`
/// (constant-time). A blocked or over-quota turn is a short spoken sentence,
/// not an error; a finished reply the moderation API flags is followed by
/// the refusal with `finish_reason: "content_filter"`. An upstream failure before the first byte is a 502 JSON
/// error; after streaming began, the answer ends with `finish_reason:
/// "stop"` and `[DONE]`.
#[utoipa::path(post, path = "/api/ai/custom-llm/chat/completions", tag = "voice-chat",
    params(CustomLlmQuery),
    request_body = CustomLlmIn,
    responses(
        (status = 200, description = "SSE stream of chat.completion.chunk events", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, description = "`provider_not_configured`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = query.user_id))]
pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CustomLlmQuery>,
    Json(body): Json<CustomLlmIn>,
) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    let user_id = query
        .user_id
        .ok_or_else(|| lty_core::Error::validation("user_id", "is required in the query"))?;
    let turns: Vec<ChatMessage> = body
        .messages
        .iter()
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                // lty's own system message (safety + persona) comes first and
                // is the only one.
                _ => return None,
            };
            let text = text_of(&m.content);
            (!text.trim().is_empty()).then(|| ChatMessage::new(role, text))
        })
        .collect();
    let Some(last) = turns.last().filter(|m| m.role == Role::User) else {
        return Err(
            lty_core::Error::validation("messages", "must end with the child's words").into(),
        );
    };
    let Some(model) = state.chat.clone() else {
        return Err(lty_core::Error::ProviderNotConfigured { provider: "llm" }.into());
    };

    let ai = &state.config.ai;
    if moderate(&state, Side::Input, user_id, None, &last.content).await {
        return Ok(spoken(&ai.refusal_message, "content_filter"));
    }
    if let Err(err) = take_message_quota(&state, user_id).await {
        if err.code() == "quota_exceeded" {
            return Ok(spoken(&ai.quota_message, "stop"));
        }
        return Err(err);
    }
    crate::achievements::record_quietly(&state, user_id, lty_core::achievement::CHAT_MESSAGE, 1)
        .await;

    // The session's persona (changeable mid-session), else the default one.
    let session_persona = match query.task_id.as_deref() {
        Some(task) => live_session(&state, user_id, task)
            .await?
            .and_then(|r| r.persona),
        None => None,
    };
    let persona = match session_persona {
        Some(p) => p,
        None => state
            .chat_repo
            .default_persona()
            .await?
            .map(|p| p.system_prompt)
            .unwrap_or_default(),
    };
    let system = format!(
        "{}\n\n{}\n\n你的回答会被朗读出来：用简短口语，不要用列表、表情或 Markdown。",
        ai.safety_preamble.trim(),
        persona.trim()
    );
    let mut messages = Vec::with_capacity(turns.len() + 1);
    messages.push(ChatMessage::new(Role::System, system));
    messages.extend(turns);
    let request = ChatRequest {
        messages,
        temperature: body.temperature,
        max_tokens: body.max_tokens,
    };

    let stream = model.stream(&request).await.map_err(|err| {
        ApiError::from(lty_core::Error::Upstream {
            provider: model.provider(),
            message: err.to_string(),
        })
    })?;

    // A task relays the model's stream; when Volcengine hangs up, the
    // channel closes, the task ends and dropping the stream cancels the
    // upstream request.
    let (tx, rx) = mpsc::channel::<Event>(32);
    let state2 = state.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let mut chunks = Chunks::new();
        let mut said = String::new();
        let send = |e: Event| tx.send(e);
        loop {
            match stream.next().await {
                Some(Ok(ChatEvent::Delta(piece))) => {
                    let from = said.len();
                    said.push_str(&piece);
                    if blocked_since(&state2.config, Side::Output, user_id, None, &said, from) {
                        let refusal = state2.config.ai.refusal_message.clone();
                        let _ = send(chunks.delta(&refusal)).await;
                        let _ = send(chunks.finish("content_filter", None)).await;
                        break;
                    }
                    let piece = speakable(&piece);
                    if !piece.is_empty() && send(chunks.delta(&piece)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(ChatEvent::Done {
                    finish_reason,
                    usage,
                })) => {
                    // The moderation API judges the whole reply; what was
                    // already spoken cannot be taken back, so a flagged
                    // reply ends with the refusal.
                    if flagged_by_provider(&state2, Side::Output, user_id, &said).await {
                        let refusal = state2.config.ai.refusal_message.clone();
                        let _ = send(chunks.delta(&refusal)).await;
                        let _ = send(chunks.finish("content_filter", usage)).await;
                        break;
                    }
                    let reason = finish_reason.as_deref().unwrap_or("stop");
                    let _ = send(chunks.finish(reason, usage)).await;
                    break;
                }
                Some(Err(err)) => {
                    tracing::warn!(%err, "the model failed mid-answer");
                    let _ = send(chunks.finish("stop", None)).await;
                    break;
                }
                None => {
                    let _ = send(chunks.finish("stop", None)).await;
                    break;
                }
            }
        }
        let _ = send(Event::default().data("[DONE]")).await;
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut res = Sse::new(events).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    Ok(res)
}
