//! Voice-chat sessions: a Volcengine voice agent in a family's RTC room.
//! Every running agent is recorded twice: the legacy cache key
//! `rtc_room:{user_id}:{task_id}` (TTL = session limit; its expiry ends the
//! session) with the index `rtc_task:{task_id}` → user id, and a row in
//! `voice_chat_sessions`, which outlives restarts and cache flushes so the
//! sweeper on any instance can still stop the agent.

use std::time::Duration;

use lty_core::Result;
use lty_vendors::volcengine::openapi::{ClientConfig, OpenApiClient};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::state::AppState;

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
