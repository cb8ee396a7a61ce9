//! `/api/device/voice-chat/`: a Volcengine voice agent in the family's RTC
//! room, started, steered and stopped ([`crate::app::voice_chat`]), and its
//! callbacks ([`callback`]).

pub mod callback;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::voice_chat::{self, StartOptions, Steer};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

/// Voice-chat routes, callbacks included.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(update))
        .routes(routes!(stop))
        .merge(callback::router())
}

/// Start options; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VoiceChatStartIn {
    /// System prompt / persona the agent answers with (at most 2000
    /// characters). Also accepted as `system_prompt`.
    #[serde(default, alias = "system_prompt")]
    pub persona: Option<String>,
    /// TTS voice (`voice_type`, e.g. `BV700_streaming`); default
    /// `AUDIO_SERVICE_HUOSHAN_VOICE_TYPE`.
    #[serde(default)]
    pub voice: Option<String>,
    /// Spoken when the agent joins (at most 200 characters).
    #[serde(default)]
    pub welcome_message: Option<String>,
}

/// A started voice chat: join `room_id` as `user_id` with `token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceChatStartOut {
    /// `room_{user_id}`.
    pub room_id: String,
    /// The session, for update and stop.
    pub task_id: String,
    /// RTC token for the caller (24 hours).
    pub token: String,
    /// RTC AppId.
    pub app_id: String,
    /// RTC user id to join as (the family's user id).
    pub user_id: String,
    /// The agent's RTC user id in the room.
    pub agent_user_id: String,
    /// Seconds until the session ends on its own.
    pub expires_in: u64,
}

/// Starts a voice agent in the caller's family room.
///
/// One agent per room: a session the family already runs is stopped first.
/// The answer carries the caller's RTC token; the agent joins as
/// `agent_user_id` and talks to `user_id`.
#[utoipa::path(post, path = "/api/device/voice-chat/start/", tag = "voice-chat",
    security(("bearer" = [])),
    request_body = VoiceChatStartIn,
    responses(
        (status = 200, body = VoiceChatStartOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 502, description = "`upstream_error`: Volcengine refused or did not answer", body = ErrorBody),
        (status = 503, description = "`provider_not_configured`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user.id))]
pub async fn start(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<VoiceChatStartIn>,
) -> ApiResult<Json<VoiceChatStartOut>> {
    let started = voice_chat::start(
        &state,
        auth.user.id,
        StartOptions {
            persona: body.persona,
            voice: body.voice,
            welcome_message: body.welcome_message,
        },
    )
    .await?;
    Ok(Json(VoiceChatStartOut {
        room_id: started.grant.room_id,
        task_id: started.task_id,
        token: started.grant.token,
        app_id: started.grant.app_id,
        user_id: started.grant.user_id,
        agent_user_id: started.agent_user_id,
        expires_in: started.expires_in,
    }))
}

/// A command for a running agent.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VoiceChatUpdateIn {
    /// The session, from start.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub task_id: String,
    /// `interrupt`, `speak` (say `text`), `prompt` (add `text` to the
    /// child's next question), `ask` (`text` is the question),
    /// `finish_speech`, `persona` (`text` becomes the system prompt from the
    /// next turn), or a Volcengine command name verbatim.
    #[schema(example = "speak")]
    pub command: String,
    /// The text of `speak`, `prompt`, `ask`, `persona`, `function`.
    #[serde(default)]
    pub text: Option<String>,
    /// For `speak`/`prompt`/`ask`: 1 now, 2 after the current turn, 3 only
    /// if idle.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3)]
    pub interrupt_mode: Option<u8>,
}

/// What an update did.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceChatUpdateOut {
    /// The session.
    pub task_id: String,
    /// The command as sent to Volcengine, or `persona`.
    pub command: String,
    /// Whether Volcengine was called (`persona` is stored by lty only).
    pub forwarded: bool,
}

/// Steers the caller's running agent: interrupt it, make it say or ask
/// something, or change its persona.
#[utoipa::path(post, path = "/api/device/voice-chat/update/", tag = "voice-chat",
    security(("bearer" = [])),
    request_body = VoiceChatUpdateIn,
    responses(
        (status = 200, body = VoiceChatUpdateOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`voice_chat_not_found`: no such running session of the caller", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user.id))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<VoiceChatUpdateIn>,
) -> ApiResult<Json<VoiceChatUpdateOut>> {
    let steered = voice_chat::update(
        &state,
        auth.user.id,
        Steer {
            task_id: body.task_id.clone(),
            command: body.command,
            text: body.text,
            interrupt_mode: body.interrupt_mode,
        },
    )
    .await?;
    Ok(Json(VoiceChatUpdateOut {
        task_id: body.task_id,
        command: steered.command,
        forwarded: steered.forwarded,
    }))
}

/// Which session to stop.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VoiceChatStopIn {
    /// The session, from start.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub task_id: String,
}

/// A stopped session.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceChatStopOut {
    /// The session.
    pub task_id: String,
    /// Always true: the agent has left the room.
    pub stopped: bool,
}

/// Stops the caller's agent and ends the session.
///
/// When Volcengine fails to answer, the session still ends for the caller
/// (502), and the sweeper keeps trying to stop the agent.
#[utoipa::path(post, path = "/api/device/voice-chat/stop/", tag = "voice-chat",
    security(("bearer" = [])),
    request_body = VoiceChatStopIn,
    responses(
        (status = 200, body = VoiceChatStopOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`voice_chat_not_found`: not a session of the caller", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user.id))]
pub async fn stop(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<VoiceChatStopIn>,
) -> ApiResult<Json<VoiceChatStopOut>> {
    voice_chat::stop(&state, auth.user.id, &body.task_id).await?;
    Ok(Json(VoiceChatStopOut {
        task_id: body.task_id,
        stopped: true,
    }))
}
