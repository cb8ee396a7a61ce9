//! `/api/device/voice-chat/`: a Volcengine voice agent in the family's RTC
//! room, started, steered and stopped through the RTC OpenAPI; its callbacks
//! ([`callback`]) and the [`sweeper`] that stops abandoned agents.
//!
//! Every running agent is recorded twice: the legacy cache key
//! `rtc_room:{user_id}:{task_id}` (TTL = session limit; its expiry ends the
//! session) with the index `rtc_task:{task_id}` → user id, and a row in
//! `voice_chat_sessions`, which outlives restarts and cache flushes so the
//! sweeper on any instance can still stop the agent.

pub mod callback;
pub mod sweeper;

use std::time::Duration;

use axum::extract::State;
use chrono::Utc;
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use lty_vendors::volcengine::openapi::{OpenApiClient, OpenApiError};
use lty_vendors::volcengine::voice_chat::{
    AgentConfig, AsrConfig, AsrProviderParams, Command, LlmConfig, StartVoiceChat, StopVoiceChat,
    SubtitleConfig, TtsApp, TtsAudio, TtsConfig, TtsProviderParams, UpdateVoiceChat, VadConfig,
    VoiceChatConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::config::Config;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::http::rtc;
use crate::state::AppState;

pub use crate::app::voice_chat::{
    SessionRecord, agent_user_id, is_task_id, live_session, new_task_id, openapi_client,
    session_key, task_key,
};
pub use sweeper::{SweepReport, spawn_sweeper, sweep_once};

/// Voice-chat routes, callbacks included.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(update))
        .routes(routes!(stop))
        .merge(callback::router())
}

fn not_configured(provider: &'static str, missing: &str) -> ApiError {
    ApiError::from(lty_core::Error::ProviderNotConfigured { provider })
        .with_details(json!({ "provider": provider, "missing": missing }))
}

/// A failed OpenAPI call as `502 upstream_error`, with the vendor's code and
/// request id when it answered.
fn upstream(err: OpenApiError) -> ApiError {
    let mut details = json!({ "provider": "volcengine" });
    if let Some(code) = err.vendor_code() {
        details["vendor_code"] = json!(code);
    }
    if let Some(id) = err.request_id() {
        details["request_id"] = json!(id);
    }
    ApiError::from(lty_core::Error::Upstream {
        provider: "volcengine",
        message: err.to_string(),
    })
    .with_details(details)
}

/// The client and RTC AppId every agent action needs.
fn api(state: &AppState) -> ApiResult<(&OpenApiClient, &str)> {
    let client = state.volcengine.as_ref().ok_or_else(|| {
        not_configured("volcengine", "VOLCENGINE_ACCESS_KEY, VOLCENGINE_SECRET_KEY")
    })?;
    let app_id = state
        .config
        .volcengine
        .app_id
        .as_deref()
        .ok_or_else(|| not_configured("volcengine", "VOLCENGINE_APP_ID, VOLCENGINE_APP_KEY"))?;
    Ok((client, app_id))
}

/// Stops `session` (StopVoiceChat, retried) and forgets it. On failure the
/// session keys are still deleted but the row stays, so the sweeper retries.
pub async fn stop_session(state: &AppState, session: &VoiceChatSession) -> ApiResult<()> {
    let (client, app_id) = api(state)?;
    let request = StopVoiceChat {
        app_id: app_id.to_owned(),
        room_id: session.room_id.clone(),
        task_id: session.task_id.clone(),
    };
    let result = client.stop_voice_chat(&request).await;
    state
        .cache
        .delete(&session_key(session.user_id, &session.task_id))
        .await?;
    state.cache.delete(&task_key(&session.task_id)).await?;
    result.map_err(upstream)?;
    state.voice_chats.delete_session(&session.task_id).await?;
    tracing::info!(task_id = %session.task_id, user_id = session.user_id, "voice chat stopped");
    Ok(())
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

fn checked_text(
    field: &'static str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, lty_core::Error> {
    let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max_chars {
        return Err(lty_core::Error::validation(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(Some(v))
}

/// The StartVoiceChat body for `user_id`'s room.
fn start_request(
    config: &Config,
    app_id: &str,
    user_id: i64,
    task_id: &str,
    body: VoiceChatStartIn,
) -> ApiResult<(StartVoiceChat, Option<String>)> {
    let persona = checked_text("persona", body.persona, 2000)?;
    let welcome = checked_text("welcome_message", body.welcome_message, 200)?;
    let voice = match checked_text("voice", body.voice, 64)? {
        Some(v) => v,
        None => config.audio.huoshan.voice_type.clone().ok_or_else(|| {
            lty_core::Error::validation(
                "voice",
                "is required when AUDIO_SERVICE_HUOSHAN_VOICE_TYPE is not set",
            )
        })?,
    };
    if !voice
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(lty_core::Error::validation("voice", "is not a voice type name").into());
    }
    let huoshan = &config.audio.huoshan;
    let (Some(speech_app), Some(speech_token)) = (&huoshan.appid, &huoshan.access_token) else {
        return Err(not_configured(
            "huoshan",
            "AUDIO_SERVICE_HUOSHAN_APPID, AUDIO_SERVICE_HUOSHAN_ACCESS_TOKEN",
        ));
    };
    let vc = &config.volcengine;
    let base = config.public_base();
    let query = format!("user_id={user_id}&task_id={task_id}");
    let llm_config = match (&vc.custom_llm_api_key, &vc.ark_endpoint_id) {
        // lty's own endpoint applies the persona, so it can change mid-session.
        (Some(key), _) => LlmConfig {
            mode: "CustomLLM".into(),
            url: Some(format!("{base}/api/ai/custom-llm/chat/completions?{query}")),
            api_key: Some(key.expose().to_owned()),
            model_name: Some("lty".into()),
            end_point_id: None,
            system_messages: Vec::new(),
            history_length: Some(10),
            max_tokens: Some(512),
            temperature: Some(0.7),
            top_p: Some(0.9),
        },
        (None, Some(endpoint)) => LlmConfig {
            mode: "ArkV3".into(),
            url: None,
            api_key: None,
            model_name: None,
            end_point_id: Some(endpoint.clone()),
            system_messages: persona.iter().cloned().collect(),
            history_length: Some(10),
            max_tokens: Some(512),
            temperature: Some(0.7),
            top_p: Some(0.9),
        },
        (None, None) => {
            return Err(not_configured(
                "volcengine",
                "LTY_CUSTOM_LLM_API_KEY or LTY_VOLCENGINE__ARK_ENDPOINT_ID",
            ));
        }
    };
    // Callbacks are registered only with a secret to check them by.
    let secret = vc
        .callback_secret
        .as_ref()
        .map(|s| s.expose().to_owned())
        .filter(|s| !s.is_empty());
    let callback_url = secret
        .as_ref()
        .map(|_| format!("{base}/api/device/volcengine/callback/?{query}"));
    let request = StartVoiceChat {
        app_id: app_id.to_owned(),
        room_id: rtc::room_id(user_id),
        task_id: task_id.to_owned(),
        config: VoiceChatConfig {
            asr_config: AsrConfig {
                provider: "volcano".into(),
                provider_params: AsrProviderParams {
                    mode: "bigmodel".into(),
                    app_id: speech_app.clone(),
                    access_token: Some(speech_token.expose().to_owned()),
                    cluster: None,
                },
                vad_config: Some(VadConfig { silence_time: 600 }),
                turn_detection_mode: 0,
            },
            tts_config: TtsConfig {
                provider: "volcano".into(),
                provider_params: TtsProviderParams {
                    app: TtsApp {
                        appid: speech_app.clone(),
                        token: speech_token.expose().to_owned(),
                        cluster: huoshan.cluster.clone(),
                    },
                    audio: TtsAudio {
                        voice_type: voice,
                        speed_ratio: 1.0,
                    },
                },
                ignore_bracket_text: vec![1, 2, 3, 4, 5],
            },
            llm_config,
            subtitle_config: Some(SubtitleConfig {
                disable_rts_subtitle: false,
                subtitle_mode: 1,
                server_message_url: callback_url.clone(),
                server_message_signature: secret.clone(),
            }),
            interrupt_mode: 0,
        },
        agent_config: AgentConfig {
            target_user_id: vec![user_id.to_string()],
            user_id: agent_user_id(user_id),
            welcome_message: welcome,
            enable_conversation_state_callback: callback_url.is_some(),
            server_message_url_for_rts: callback_url,
            server_message_signature_for_rts: secret,
        },
    };
    Ok((request, persona))
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
    let user_id = auth.user.id;
    let (client, app_id) = api(&state)?;
    let task_id = new_task_id();
    let (request, persona) = start_request(&state.config, app_id, user_id, &task_id, body)?;
    let token = rtc::mint(&state, user_id, user_id.to_string())?;

    for old in state.voice_chats.sessions_of_user(user_id).await? {
        stop_session(&state, &old).await?;
    }

    // Recorded before the call: if lty dies mid-start, the sweeper still
    // finds (and stops) an agent that may be running.
    let now = Utc::now();
    let session = VoiceChatSession {
        task_id: task_id.clone(),
        user_id,
        room_id: request.room_id.clone(),
        agent_user_id: request.agent_config.user_id.clone(),
        status: SessionStatus::Starting,
        started_at: now,
        offline_since: None,
        conversation_id: None,
    };
    state.voice_chats.insert_session(&session).await?;
    if let Err(err) = client.start_voice_chat(&request).await {
        // A definite refusal started nothing; after a timeout or 5xx the
        // agent may run, and the sweeper stops it.
        if !err.is_retryable() {
            state.voice_chats.delete_session(&task_id).await?;
        }
        return Err(upstream(err));
    }

    let ttl = state.config.volcengine.voice_chat_max_seconds.max(1);
    let record = SessionRecord {
        room_id: session.room_id.clone(),
        task_id: task_id.clone(),
        agent_user_id: session.agent_user_id.clone(),
        started_at: now.timestamp(),
        persona,
    };
    let stored = async {
        let value = serde_json::to_string(&record)
            .map_err(|e| lty_core::Error::Backend(lty_core::BackendError::new("cache", e)))?;
        let ttl = Some(Duration::from_secs(ttl));
        state
            .cache
            .set(&session_key(user_id, &task_id), &value, ttl)
            .await?;
        state
            .cache
            .set(&task_key(&task_id), &user_id.to_string(), ttl)
            .await?;
        state
            .voice_chats
            .set_session_status(&task_id, SessionStatus::Running)
            .await
    }
    .await;
    if let Err(err) = stored {
        // Do not leave a paid agent running that nobody can reach.
        let _ = stop_session(&state, &session).await;
        return Err(err.into());
    }
    tracing::info!(task_id, "voice chat started");
    Ok(Json(VoiceChatStartOut {
        room_id: token.room_id,
        task_id,
        token: token.token,
        app_id: token.app_id,
        user_id: token.user_id,
        agent_user_id: record.agent_user_id,
        expires_in: ttl,
    }))
}

/// A command for a running agent.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VoiceChatUpdateIn {
    /// The session, from start.
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

fn check_task_id(task_id: &str) -> Result<(), lty_core::Error> {
    if is_task_id(task_id) {
        Ok(())
    } else {
        Err(lty_core::Error::validation(
            "task_id",
            "must be the 32-character task id from start",
        ))
    }
}

fn session_not_found() -> ApiError {
    lty_core::Error::NotFound {
        what: "voice chat session",
        code: "voice_chat_not_found",
    }
    .into()
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
    let user_id = auth.user.id;
    check_task_id(&body.task_id)?;
    let text = checked_text("text", body.text, 2000)?;
    let is_persona = matches!(body.command.as_str(), "persona" | "system_prompt");
    let command = if is_persona {
        None
    } else {
        Some(Command::parse(&body.command).ok_or_else(|| {
            lty_core::Error::validation(
                "command",
                "must be interrupt, speak, prompt, ask, finish_speech, persona or a Volcengine command",
            )
        })?)
    };
    if (is_persona || command.is_some_and(Command::needs_message)) && text.is_none() {
        return Err(lty_core::Error::validation("text", "is required for this command").into());
    }
    if let Some(mode) = body.interrupt_mode
        && !(1..=3).contains(&mode)
    {
        return Err(lty_core::Error::validation("interrupt_mode", "must be 1, 2 or 3").into());
    }
    let (client, app_id) = api(&state)?;
    let Some(mut record) = live_session(&state, user_id, &body.task_id).await? else {
        return Err(session_not_found());
    };

    let Some(command) = command else {
        // The persona lives in the session; the CustomLLM endpoint reads it
        // each turn, so no vendor call is needed.
        let key = session_key(user_id, &body.task_id);
        let ttl = state.cache.ttl(&key).await?.filter(|t| *t != Duration::MAX);
        record.persona = text;
        let value = serde_json::to_string(&record)
            .map_err(|e| lty_core::Error::Backend(lty_core::BackendError::new("cache", e)))?;
        state.cache.set(&key, &value, ttl).await?;
        return Ok(Json(VoiceChatUpdateOut {
            task_id: body.task_id,
            command: "persona".into(),
            forwarded: false,
        }));
    };
    let request = UpdateVoiceChat {
        app_id: app_id.to_owned(),
        room_id: record.room_id,
        task_id: body.task_id.clone(),
        command: command.vendor_name().to_owned(),
        message: text.filter(|_| command.needs_message()),
        interrupt_mode: body.interrupt_mode.filter(|_| command.needs_message()),
    };
    client.update_voice_chat(&request).await.map_err(upstream)?;
    Ok(Json(VoiceChatUpdateOut {
        task_id: body.task_id,
        command: request.command,
        forwarded: true,
    }))
}

/// Which session to stop.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VoiceChatStopIn {
    /// The session, from start.
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
    check_task_id(&body.task_id)?;
    api(&state)?;
    let session = state
        .voice_chats
        .session(&body.task_id)
        .await?
        .filter(|s| s.user_id == auth.user.id)
        .ok_or_else(session_not_found)?;
    stop_session(&state, &session).await?;
    // Whole minutes, rounded up: a 10-second chat counts as a minute.
    let seconds = (chrono::Utc::now() - session.started_at)
        .num_seconds()
        .max(0);
    crate::app::achievements::record_quietly(
        &state,
        auth.user.id,
        lty_core::achievement::VOICE_MINUTES,
        (seconds + 59) / 60,
    )
    .await;
    Ok(Json(VoiceChatStopOut {
        task_id: body.task_id,
        stopped: true,
    }))
}
