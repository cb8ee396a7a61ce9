//! Voice-chat sessions: a Volcengine voice agent in a family's RTC room.
//! Every running agent is recorded twice: the legacy cache key
//! `rtc_room:{user_id}:{task_id}` (TTL = session limit; its expiry ends the
//! session) with the index `rtc_task:{task_id}` → user id, and a row in
//! `voice_chat_sessions`, which outlives restarts and cache flushes so the
//! sweeper on any instance can still stop the agent.

pub mod sweeper;

use std::time::Duration;

use chrono::Utc;
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use lty_core::{BackendError, Error, ErrorKind, Result};
use lty_vendors::volcengine::openapi::{ClientConfig, OpenApiClient, OpenApiError};
use lty_vendors::volcengine::voice_chat::{
    AgentConfig, AsrConfig, AsrProviderParams, Command, LlmConfig, StartVoiceChat, StopVoiceChat,
    SubtitleConfig, TtsApp, TtsAudio, TtsConfig, TtsProviderParams, UpdateVoiceChat, VadConfig,
    VoiceChatConfig,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::rtc::{self, RtcGrant};
use crate::config::Config;
use crate::state::AppState;

pub use sweeper::{SweepReport, spawn_sweeper, sweep_once};

/// The OpenAPI client for `config`, when the AK/SK are set.
pub fn openapi_client(config: &Config) -> anyhow::Result<Option<OpenApiClient>> {
    let vc = &config.volcengine;
    let (Some(ak), Some(sk)) = (&vc.access_key, &vc.secret_key) else {
        return Ok(None);
    };
    let mut client = ClientConfig::new(vc.api_base_url.as_str(), ak.as_str(), sk.expose());
    client.timeout = Duration::from_millis(vc.api_timeout_ms.max(1));
    client.connect_timeout = client.connect_timeout.min(client.timeout);
    Ok(Some(OpenApiClient::new(client).map_err(|e| {
        anyhow::anyhow!("VOLCENGINE_API_BASE_URL: {e}")
    })?))
}

/// The session key of a running agent (legacy format).
pub fn session_key(user_id: i64, task_id: &str) -> String {
    format!("rtc_room:{user_id}:{task_id}")
}

/// The index from a task to its user.
pub fn task_key(task_id: &str) -> String {
    format!("rtc_task:{task_id}")
}

/// The agent's RTC user id in a family's room.
pub fn agent_user_id(user_id: i64) -> String {
    format!("bot_{user_id}")
}

/// Whether `s` has the shape of lty's task ids (32 lower-case hex digits),
/// checked before it goes into a cache key.
pub fn is_task_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new task id: a random UUIDv4 without dashes.
pub fn new_task_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    hex::encode(b)
}

/// The value of the session key: what the CustomLLM endpoint and the
/// callbacks need to know about a running session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// `room_{user_id}`.
    pub room_id: String,
    /// The vendor `TaskId`.
    pub task_id: String,
    /// `bot_{user_id}`.
    pub agent_user_id: String,
    /// Unix seconds.
    pub started_at: i64,
    /// The persona (system prompt) the agent answers with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
}

/// The running session `task_id` of `user_id`, if its key is live.
pub async fn live_session(
    state: &AppState,
    user_id: i64,
    task_id: &str,
) -> Result<Option<SessionRecord>> {
    let Some(raw) = state.cache.get(&session_key(user_id, task_id)).await? else {
        return Ok(None);
    };
    match serde_json::from_str(&raw) {
        Ok(record) => Ok(Some(record)),
        Err(err) => {
            tracing::warn!(%err, task_id, "unreadable voice-chat session key");
            Ok(None)
        }
    }
}

fn not_configured(provider: &'static str, missing: &str) -> Error {
    Error::coded(
        ErrorKind::Unavailable,
        "provider_not_configured",
        format!("{provider} is not configured on this server"),
    )
    .with_details(json!({ "provider": provider, "missing": missing }))
}

/// A failed OpenAPI call as `502 upstream_error`, with the vendor's code and
/// request id when it answered.
fn upstream(err: OpenApiError) -> Error {
    let mut details = json!({ "provider": "volcengine" });
    if let Some(code) = err.vendor_code() {
        details["vendor_code"] = json!(code);
    }
    if let Some(id) = err.request_id() {
        details["request_id"] = json!(id);
    }
    tracing::warn!(provider = "volcengine", %err, "upstream provider failed");
    Error::coded(
        ErrorKind::Upstream,
        "upstream_error",
        "volcengine did not answer correctly",
    )
    .with_details(details)
}

/// The client and RTC AppId every agent action needs.
fn api(state: &AppState) -> Result<(&OpenApiClient, &str)> {
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
pub async fn stop_session(state: &AppState, session: &VoiceChatSession) -> Result<()> {
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
    state.db.delete_session(&session.task_id).await?;
    tracing::info!(task_id = %session.task_id, user_id = session.user_id, "voice chat stopped");
    Ok(())
}

fn checked_text(
    field: &'static str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>> {
    let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max_chars {
        return Err(Error::validation(
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
    options: StartOptions,
) -> Result<(StartVoiceChat, Option<String>)> {
    let persona = checked_text("persona", options.persona, 2000)?;
    let welcome = checked_text("welcome_message", options.welcome_message, 200)?;
    let voice = match checked_text("voice", options.voice, 64)? {
        Some(v) => v,
        None => config.audio.huoshan.voice_type.clone().ok_or_else(|| {
            Error::validation(
                "voice",
                "is required when AUDIO_SERVICE_HUOSHAN_VOICE_TYPE is not set",
            )
        })?,
    };
    if !voice
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Error::validation("voice", "is not a voice type name"));
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

fn check_task_id(task_id: &str) -> Result<()> {
    if is_task_id(task_id) {
        Ok(())
    } else {
        Err(Error::validation(
            "task_id",
            "must be the 32-character task id from start",
        ))
    }
}

fn session_not_found() -> Error {
    Error::NotFound {
        what: "voice chat session",
        code: "voice_chat_not_found",
    }
}

/// Start options; every one is optional.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// System prompt the agent answers with (at most 2000 characters).
    pub persona: Option<String>,
    /// TTS voice type; default `AUDIO_SERVICE_HUOSHAN_VOICE_TYPE`.
    pub voice: Option<String>,
    /// Spoken when the agent joins (at most 200 characters).
    pub welcome_message: Option<String>,
}

/// A started session.
#[derive(Debug, Clone)]
pub struct Started {
    /// The session, for update and stop.
    pub task_id: String,
    /// The caller's token to join the room.
    pub grant: RtcGrant,
    /// The agent's RTC user id in the room.
    pub agent_user_id: String,
    /// Seconds until the session ends on its own.
    pub expires_in: u64,
}

/// Starts a voice agent in `user_id`'s family room. One agent per room: a
/// session the family already runs is stopped first.
pub async fn start(state: &AppState, user_id: i64, options: StartOptions) -> Result<Started> {
    let (client, app_id) = api(state)?;
    let task_id = new_task_id();
    let (request, persona) = start_request(&state.config, app_id, user_id, &task_id, options)?;
    let grant = rtc::mint(state, user_id, user_id.to_string())?;

    for old in state.db.sessions_of_user(user_id).await? {
        stop_session(state, &old).await?;
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
    state.db.insert_session(&session).await?;
    if let Err(err) = client.start_voice_chat(&request).await {
        // A definite refusal started nothing; after a timeout or 5xx the
        // agent may run, and the sweeper stops it.
        if !err.is_retryable() {
            state.db.delete_session(&task_id).await?;
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
            .map_err(|e| Error::Backend(BackendError::new("cache", e)))?;
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
            .db
            .set_session_status(&task_id, SessionStatus::Running)
            .await
    }
    .await;
    if let Err(err) = stored {
        // Do not leave a paid agent running that nobody can reach.
        let _ = stop_session(state, &session).await;
        return Err(err);
    }
    tracing::info!(task_id, "voice chat started");
    Ok(Started {
        task_id,
        grant,
        agent_user_id: record.agent_user_id,
        expires_in: ttl,
    })
}

/// A command for a running agent.
#[derive(Debug, Clone)]
pub struct Steer {
    pub task_id: String,
    /// `interrupt`, `speak`, `prompt`, `ask`, `finish_speech`, `persona`,
    /// or a Volcengine command name verbatim.
    pub command: String,
    pub text: Option<String>,
    /// For `speak`/`prompt`/`ask`: 1 now, 2 after the current turn, 3 only
    /// if idle.
    pub interrupt_mode: Option<u8>,
}

/// What [`update`] did: the command as sent, and whether Volcengine was
/// called (`persona` is kept by lty alone).
#[derive(Debug, Clone)]
pub struct Steered {
    pub command: String,
    pub forwarded: bool,
}

/// Steers `user_id`'s running agent: interrupt it, make it say or ask
/// something, or change its persona (read by the CustomLLM endpoint every
/// turn, so no vendor call is needed).
pub async fn update(state: &AppState, user_id: i64, steer: Steer) -> Result<Steered> {
    check_task_id(&steer.task_id)?;
    let text = checked_text("text", steer.text, 2000)?;
    let is_persona = matches!(steer.command.as_str(), "persona" | "system_prompt");
    let command = if is_persona {
        None
    } else {
        Some(Command::parse(&steer.command).ok_or_else(|| {
            Error::validation(
                "command",
                "must be interrupt, speak, prompt, ask, finish_speech, persona or a Volcengine command",
            )
        })?)
    };
    if (is_persona || command.is_some_and(Command::needs_message)) && text.is_none() {
        return Err(Error::validation("text", "is required for this command"));
    }
    if let Some(mode) = steer.interrupt_mode
        && !(1..=3).contains(&mode)
    {
        return Err(Error::validation("interrupt_mode", "must be 1, 2 or 3"));
    }
    let (client, app_id) = api(state)?;
    let Some(mut record) = live_session(state, user_id, &steer.task_id).await? else {
        return Err(session_not_found());
    };

    let Some(command) = command else {
        let key = session_key(user_id, &steer.task_id);
        let ttl = state.cache.ttl(&key).await?.filter(|t| *t != Duration::MAX);
        record.persona = text;
        let value = serde_json::to_string(&record)
            .map_err(|e| Error::Backend(BackendError::new("cache", e)))?;
        state.cache.set(&key, &value, ttl).await?;
        return Ok(Steered {
            command: "persona".into(),
            forwarded: false,
        });
    };
    let request = UpdateVoiceChat {
        app_id: app_id.to_owned(),
        room_id: record.room_id,
        task_id: steer.task_id.clone(),
        command: command.vendor_name().to_owned(),
        message: text.filter(|_| command.needs_message()),
        interrupt_mode: steer.interrupt_mode.filter(|_| command.needs_message()),
    };
    client.update_voice_chat(&request).await.map_err(upstream)?;
    Ok(Steered {
        command: request.command,
        forwarded: true,
    })
}

/// Stops `user_id`'s agent `task_id` and ends the session; its whole
/// minutes, rounded up, count as `voice_minutes`. When Volcengine fails to
/// answer, the session still ends for the caller (`upstream_error`), and
/// the sweeper keeps trying to stop the agent.
pub async fn stop(state: &AppState, user_id: i64, task_id: &str) -> Result<()> {
    check_task_id(task_id)?;
    api(state)?;
    let session = state
        .db
        .session(task_id)
        .await?
        .filter(|s| s.user_id == user_id)
        .ok_or_else(session_not_found)?;
    stop_session(state, &session).await?;
    count_minutes(state, &session).await;
    Ok(())
}

/// Counts a stopped session's whole minutes, rounded up (a 10-second chat
/// counts as a minute), as `voice_minutes` of its family.
pub async fn count_minutes(state: &AppState, session: &VoiceChatSession) {
    let seconds = (Utc::now() - session.started_at).num_seconds().max(0);
    crate::app::achievements::record_quietly(
        state,
        session.user_id,
        lty_core::achievement::VOICE_MINUTES,
        (seconds + 59) / 60,
    )
    .await;
}
