//! `POST /api/ai/custom-llm/chat/completions`: the "brain" of a Volcengine
//! voice agent (vendors/volcengine.md §5), an adapter over the one chat
//! turn ([`crate::app::chat::turn`]). Volcengine sends an OpenAI-style
//! streaming request for every turn; lty answers with its own model, the
//! session's persona, the child-safety rules and the family's quota, as
//! `chat.completion.chunk` SSE events ending with `data: [DONE]`, or as one
//! `chat.completion` when the request does not ask for a stream.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use lty_core::chat::{ChatMessage, Role, Usage};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::chat::turn::{
    self, Delivery, Outcome, Style, Thread, Turn, TurnEnd, TurnEvent, TurnRequest,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
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
    /// `true` for an SSE stream of chunks (what Volcengine sends); a JSON
    /// `chat.completion` otherwise.
    pub stream: Option<bool>,
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

/// One answer's `chat.completion` or `chat.completion.chunk`s: the same
/// id and creation time in each.
struct Completion {
    id: String,
    created: i64,
    first: bool,
}

impl Completion {
    fn new() -> Self {
        let mut raw = [0u8; 12];
        rand::rng().fill_bytes(&mut raw);
        Self {
            id: format!("chatcmpl-{}", hex::encode(raw)),
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
        self.chunk(delta, Value::Null, None)
    }

    fn finish(&mut self, reason: &str, usage: Option<Usage>) -> Event {
        self.chunk(json!({}), json!(reason), usage)
    }

    fn chunk(&self, delta: Value, finish: Value, usage: Option<Usage>) -> Event {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": MODEL,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        if let Some(u) = usage {
            chunk["usage"] = json!(usage_out(u));
        }
        Event::default().data(chunk.to_string())
    }

    /// The whole answer as one `chat.completion`.
    fn whole(&self, content: &str, reason: &str, usage: Option<Usage>) -> ChatCompletionOut {
        ChatCompletionOut {
            id: self.id.clone(),
            object: "chat.completion",
            created: self.created,
            model: MODEL,
            choices: vec![CompletionChoice {
                index: 0,
                message: CompletionMessage {
                    role: "assistant",
                    content: content.to_owned(),
                },
                finish_reason: reason.to_owned(),
            }],
            usage: usage.map(usage_out),
        }
    }
}

/// The model name lty answers with.
const MODEL: &str = "lty";

fn usage_out(u: Usage) -> CompletionUsage {
    CompletionUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
    }
}

/// A whole answer (`"stream"` not `true`), as OpenAI's chat completions
/// API gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionOut {
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    pub model: &'static str,
    pub choices: Vec<CompletionChoice>,
    /// Tokens used, when the provider reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
}

/// The one choice of a [`ChatCompletionOut`].
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    pub index: u32,
    pub message: CompletionMessage,
    /// `stop`, `length`, or `content_filter` when the answer is the refusal.
    pub finish_reason: String,
}

/// The assistant's message.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionMessage {
    /// Always `assistant`.
    pub role: &'static str,
    pub content: String,
}

/// Token counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

fn no_cache(mut res: Response) -> Response {
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    res
}

/// A whole answer of fixed text (a refusal or the quota sentence).
fn spoken(text: &str, reason: &str) -> Response {
    let mut chunks = Completion::new();
    let events = vec![
        chunks.delta(text),
        chunks.finish(reason, None),
        Event::default().data("[DONE]"),
    ];
    no_cache(
        Sse::new(futures_util::stream::iter(
            events.into_iter().map(Ok::<_, Infallible>),
        ))
        .into_response(),
    )
}

/// Answers one turn of a voice agent: as an SSE stream of
/// `chat.completion.chunk` events ending with `data: [DONE]` when the body
/// says `"stream": true` (as Volcengine's does), else as one JSON
/// `chat.completion` (as the OpenAI SDKs expect without `stream`).
///
/// Authenticated by `Authorization: Bearer {LTY_CUSTOM_LLM_API_KEY}`
/// (constant-time). The turn goes through the same rules as the app's chat
/// (quota, moderation both ways, achievements), in the session's persona
/// with the spoken-style instruction (`LTY_AI__SPOKEN_STYLE`). With a
/// `task_id` of a session lty started, the turns are stored in that
/// session's conversation (a reply cut short when Volcengine hangs up is
/// stored as incomplete). A blocked or over-quota turn is a short spoken
/// sentence, not an error (`finish_reason: "content_filter"` for a
/// refusal); a finished reply the moderation API flags is followed by the
/// refusal with `finish_reason: "content_filter"`. An upstream failure
/// before the first byte is a 502 JSON error; after streaming began, the
/// answer ends with `finish_reason: "stop"` and `[DONE]`.
#[utoipa::path(post, path = "/api/ai/custom-llm/chat/completions", tag = "voice-chat",
    params(CustomLlmQuery),
    request_body = CustomLlmIn,
    responses(
        (status = 200, description = "`chat.completion` JSON, or with `\"stream\": true` an SSE stream of `chat.completion.chunk` events", body = ChatCompletionOut),
        (status = 400, body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 429, description = "`upstream_rate_limited`", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, description = "`provider_not_configured` or `provider_unavailable`", body = ErrorBody),
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
    let mut turns: Vec<ChatMessage> = body
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
    let Some(last) = turns.pop().filter(|m| m.role == Role::User) else {
        return Err(
            lty_core::Error::validation("messages", "must end with the child's words").into(),
        );
    };
    let stream = body.stream == Some(true);
    let started = turn::start(
        &state,
        TurnRequest {
            user_id,
            message: last.content,
            language: None,
            thread: Thread::Agent {
                task_id: query.task_id,
                earlier: turns,
            },
            style: Style::Spoken,
            delivery: if stream {
                Delivery::Stream
            } else {
                Delivery::Whole
            },
            temperature: body.temperature,
            max_tokens: body.max_tokens,
            tools: None,
        },
    )
    .await;
    let turn = match started {
        Ok(turn) => turn,
        Err(err) if err.code() == "quota_exceeded" => {
            let quota = &state.config.ai.quota_message;
            return Ok(if stream {
                spoken(quota, "stop")
            } else {
                Json(Completion::new().whole(quota, "stop", None)).into_response()
            });
        }
        Err(err) => return Err(err.into()),
    };
    if !stream {
        let end = turn.finish().await?;
        let (content, reason) = match end.outcome {
            Outcome::Answered => (
                end.reply,
                end.finish_reason.unwrap_or_else(|| "stop".into()),
            ),
            Outcome::Failed(err) => return Err(err.into()),
            Outcome::Refused | Outcome::BlockedMidway | Outcome::Flagged => {
                (end.reply, "content_filter".into())
            }
        };
        return Ok(Json(Completion::new().whole(&content, &reason, end.usage)).into_response());
    }
    let relay = Relay {
        turn,
        chunks: Completion::new(),
        queue: VecDeque::new(),
        ended: false,
    };
    let events = futures_util::stream::unfold(relay, |mut relay| async move {
        let event = relay.next().await?;
        Some((Ok::<_, Infallible>(event), relay))
    });
    Ok(no_cache(Sse::new(events).into_response()))
}

/// The state of a streamed answer: the turn's events become chunks.
struct Relay {
    turn: Turn,
    chunks: Completion,
    /// Events ready to go out, in order.
    queue: VecDeque<Event>,
    ended: bool,
}

impl Relay {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            match self.turn.next().await {
                Some(TurnEvent::Delta(piece)) => return Some(self.chunks.delta(&piece)),
                Some(TurnEvent::End(end)) => self.end(end),
                None => self.ended = true,
            }
        }
    }

    fn end(&mut self, end: TurnEnd) {
        let events = match end.outcome {
            Outcome::Answered => {
                let reason = end.finish_reason.as_deref().unwrap_or("stop");
                vec![self.chunks.finish(reason, end.usage)]
            }
            // What was already spoken cannot be taken back: the refusal
            // follows it.
            Outcome::Refused | Outcome::BlockedMidway | Outcome::Flagged => vec![
                self.chunks.delta(&end.reply),
                self.chunks.finish("content_filter", end.usage),
            ],
            Outcome::Failed(err) => {
                tracing::warn!(code = err.code(), "the model failed mid-answer");
                vec![self.chunks.finish("stop", None)]
            }
        };
        self.queue.extend(events);
        self.queue.push_back(Event::default().data("[DONE]"));
        self.ended = true;
    }
}
