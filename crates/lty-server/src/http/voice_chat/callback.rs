//! `POST /api/device/volcengine/callback/`: the voice agent's state (`conv`)
//! and subtitle (`subv`) callbacks, checked against
//! `VOLCENGINE_CALLBACK_SECRET` before anything is decoded, then forwarded
//! to the family's device group as `conversation_status` /
//! `conversation_subtitle` messages.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use lty_vendors::volcengine::callback::{self as frame, Frame, Magic};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::rtc::room_id;
use crate::app::voice_chat::{agent_user_id, is_task_id, task_key};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::ws::protocol::device_group;

/// Largest callback body accepted.
pub const MAX_BODY: usize = 256 * 1024;

/// Callback routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

/// What lty put in the callback URL when it started the agent.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackQuery {
    /// The family the agent talks to.
    pub user_id: Option<String>,
    /// The session.
    pub task_id: Option<String>,
}

/// The envelope Volcengine POSTs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CallbackIn {
    /// Standard Base64 of one binary frame: `conv`/`subv`, u32 big-endian
    /// length, JSON.
    pub message: String,
    /// The `ServerMessageSignature` lty registered, echoed back.
    pub signature: String,
}

/// How many messages went to the family's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackOut {
    /// Messages published (0 when the callback could not be routed).
    pub forwarded: usize,
}

fn invalid_signature() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "the callback signature does not match",
    )
}

fn invalid_frame(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_frame",
        format!("the callback message is malformed: {err}"),
    )
}

/// Receives an agent callback and forwards it to the family's devices.
///
/// Nothing is decoded or forwarded unless `signature` equals
/// `VOLCENGINE_CALLBACK_SECRET` (constant-time comparison).
#[utoipa::path(post, path = "/api/device/volcengine/callback/", tag = "voice-chat",
    params(CallbackQuery),
    request_body = CallbackIn,
    responses(
        (status = 200, body = CallbackOut),
        (status = 400, description = "`invalid_frame`", body = ErrorBody),
        (status = 401, description = "`invalid_signature`", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, description = "`provider_not_configured`: VOLCENGINE_CALLBACK_SECRET unset", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    Query(query): Query<CallbackQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<CallbackOut>> {
    let Some(secret) = state
        .config
        .volcengine
        .callback_secret
        .as_ref()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty())
    else {
        return Err(lty_core::Error::ProviderNotConfigured {
            provider: "volcengine",
        }
        .into());
    };
    let body = body.map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "callback bodies are at most 256 KiB",
        ));
    }
    // Whatever the Content-Type: the vendor's is not guaranteed.
    let envelope: serde_json::Map<String, Value> =
        serde_json::from_slice(&body).map_err(|_| invalid_signature())?;
    let signature = envelope
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(invalid_signature)?;
    if !frame::signature_matches(signature, secret) {
        return Err(invalid_signature());
    }
    let message = envelope
        .get("message")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_frame("message is missing"))?;
    let frame = frame::decode_message(message).map_err(invalid_frame)?;
    let messages = device_messages(&state, &query, &frame).await?;
    let Some((user_id, messages)) = messages else {
        tracing::warn!(magic = ?frame.magic, "voice-chat callback for no known family; dropped");
        return Ok(Json(CallbackOut { forwarded: 0 }));
    };
    let group = device_group(user_id);
    for m in &messages {
        state
            .pubsub
            .publish(&group, Bytes::from(m.to_string()))
            .await?;
    }
    Ok(Json(CallbackOut {
        forwarded: messages.len(),
    }))
}

/// The family a callback is for and the messages for its devices; `None`
/// when it cannot be routed.
async fn device_messages(
    state: &AppState,
    query: &CallbackQuery,
    frame: &Frame,
) -> ApiResult<Option<(i64, Vec<Value>)>> {
    let query_user = query.user_id.as_deref().and_then(|s| s.parse::<i64>().ok());
    let query_task = query.task_id.clone().filter(|t| is_task_id(t));
    match frame.magic {
        Magic::Conv => {
            let conv = frame.conv().map_err(invalid_frame)?;
            let task = query_task.or(conv.task_id.clone().filter(|t| is_task_id(t)));
            let user = match query_user {
                Some(u) => Some(u),
                None => user_of_task(state, task.as_deref()).await?,
            };
            let Some(user) = user else { return Ok(None) };
            let code = conv.stage.code;
            Ok(Some((
                user,
                vec![json!({
                    "type": "conversation_status",
                    "room_id": room_id(user),
                    "task_id": task,
                    "user_id": conv.user_id,
                    "round_id": conv.round_id,
                    "stage": frame::stage_name(code),
                    "stage_code": code,
                    "description": conv.stage.description,
                    "event_time": conv.event_time,
                    "data": Value::Object(frame.payload.clone()),
                })],
            )))
        }
        Magic::Subv => {
            let subs = frame.subtitles().map_err(invalid_frame)?;
            let raw = frame
                .payload
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let user = match query_user {
                Some(u) => Some(u),
                None => match user_of_task(state, query_task.as_deref()).await? {
                    Some(u) => Some(u),
                    None => user_of_speaker(state, &subs.data).await?,
                },
            };
            let Some(user) = user else { return Ok(None) };
            let task = match query_task {
                Some(t) => Some(t),
                None => state
                    .db
                    .sessions_of_user(user)
                    .await?
                    .pop()
                    .map(|s| s.task_id),
            };
            let agent = agent_user_id(user);
            let messages = subs
                .data
                .iter()
                .zip(raw)
                .map(|(s, data)| {
                    let role = if s.user_id.as_deref() == Some(agent.as_str()) {
                        "assistant"
                    } else {
                        "user"
                    };
                    json!({
                        "type": "conversation_subtitle",
                        "room_id": room_id(user),
                        "task_id": task,
                        "user_id": s.user_id,
                        "role": role,
                        "text": s.text,
                        "definite": s.definite,
                        "paragraph": s.paragraph,
                        "sequence": s.sequence,
                        "language": s.language,
                        "data": data,
                    })
                })
                .collect();
            Ok(Some((user, messages)))
        }
    }
}

/// The family of a live task, through the `rtc_task:{task_id}` index.
async fn user_of_task(state: &AppState, task: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(task) = task else { return Ok(None) };
    Ok(state
        .cache
        .get(&task_key(task))
        .await?
        .and_then(|v| v.trim().parse().ok()))
}

/// The family of a subtitle's speaker: `bot_{n}` is family n's agent; a
/// decimal id counts when that family has a session.
async fn user_of_speaker(
    state: &AppState,
    subs: &[lty_vendors::volcengine::callback::Subtitle],
) -> ApiResult<Option<i64>> {
    let speakers = || subs.iter().filter_map(|s| s.user_id.as_deref());
    if let Some(n) = speakers().find_map(|s| s.strip_prefix("bot_")?.parse().ok()) {
        return Ok(Some(n));
    }
    for n in speakers().filter_map(|s| s.parse::<i64>().ok()) {
        if !state.db.sessions_of_user(n).await?.is_empty() {
            return Ok(Some(n));
        }
    }
    Ok(None)
}
