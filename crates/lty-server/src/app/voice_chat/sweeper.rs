//! The sweeper: stops every recorded voice agent whose session key expired
//! (or was never stored), or whose family's devices have all been offline
//! for longer than the grace period, so no paid agent runs on forever.
//!
//! It runs on every instance; a short cache lock lets one sweep per round.

use std::time::Duration;

use chrono::Utc;
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use tokio::task::JoinHandle;

use super::{session_key, stop_session};
use crate::state::AppState;
use crate::ws::protocol::last_seen_key;

/// Cache key that elects one instance per sweep round.
const LOCK_KEY: &str = "voice_chat:sweep_lock";

/// Why the sweeper stopped a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The session key expired or was deleted.
    Expired,
    /// `StartVoiceChat` never completed for it.
    NeverStarted,
    /// Every device of the family has been offline for the grace period.
    DevicesOffline,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions stopped, with the reason.
    pub stopped: Vec<(String, StopReason)>,
    /// Sessions whose stop failed (retried next round).
    pub failed: Vec<String>,
}

/// Starts the sweeper; it ends when `state.shutdown` is cancelled.
pub fn spawn_sweeper(state: AppState) -> JoinHandle<()> {
    let every = Duration::from_secs(state.config.volcengine.voice_chat_sweep_secs.max(1));
    if state.volcengine.is_some() && state.config.public_base_url.is_none() {
        tracing::warn!(
            base = %state.config.public_base(),
            "LTY_PUBLIC_BASE_URL is not set: Volcengine will be told to call back to the bind address"
        );
    }
    crate::app::rounds::spawn_exclusive(
        state,
        "voice-chat sweeper",
        LOCK_KEY,
        tokio::time::Instant::now(),
        every,
        |state| async move {
            let report = sweep_once(&state).await;
            if !report.stopped.is_empty() || !report.failed.is_empty() {
                tracing::info!(stopped = ?report.stopped, failed = ?report.failed, "voice-chat sweep");
            }
        },
    )
}

/// Runs one sweep over every recorded session.
pub async fn sweep_once(state: &AppState) -> SweepReport {
    let mut report = SweepReport::default();
    let sessions = match state.db.all_sessions().await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%err, "voice-chat sweeper cannot list sessions");
            return report;
        }
    };
    for session in sessions {
        match verdict(state, &session).await {
            Ok(None) => {}
            Ok(Some(reason)) => match stop_session(state, &session).await {
                Ok(()) => report.stopped.push((session.task_id, reason)),
                Err(err) => {
                    tracing::warn!(task_id = %session.task_id, ?err, "cannot stop an abandoned voice chat");
                    report.failed.push(session.task_id);
                }
            },
            Err(err) => {
                tracing::warn!(task_id = %session.task_id, %err, "cannot check a voice chat");
            }
        }
    }
    report
}

/// Whether `session` must be stopped, and why.
async fn verdict(
    state: &AppState,
    session: &VoiceChatSession,
) -> lty_core::Result<Option<StopReason>> {
    let now = Utc::now();
    let vc = &state.config.volcengine;
    if session.status == SessionStatus::Starting {
        // A start in flight may take two attempts of the API timeout.
        let window = chrono::Duration::milliseconds(
            i64::try_from(vc.api_timeout_ms.saturating_mul(2)).unwrap_or(i64::MAX / 2),
        ) + chrono::Duration::seconds(10);
        let stale = now - session.started_at > window;
        return Ok(stale.then_some(StopReason::NeverStarted));
    }
    let key = session_key(session.user_id, &session.task_id);
    if state.cache.get(&key).await?.is_none() {
        return Ok(Some(StopReason::Expired));
    }
    let mut online = false;
    for binding in state.db.bindings_of_user(session.user_id).await? {
        if state
            .cache
            .get(&last_seen_key(&binding.mac_address))
            .await?
            .is_some()
        {
            online = true;
            break;
        }
    }
    match (online, session.offline_since) {
        (true, None) => Ok(None),
        (true, Some(_)) => {
            state
                .db
                .set_session_offline_since(&session.task_id, None)
                .await?;
            Ok(None)
        }
        (false, None) if vc.voice_chat_offline_grace_secs > 0 => {
            state
                .db
                .set_session_offline_since(&session.task_id, Some(now))
                .await?;
            Ok(None)
        }
        (false, None) => Ok(Some(StopReason::DevicesOffline)),
        (false, Some(since)) => {
            let grace = i64::try_from(vc.voice_chat_offline_grace_secs).unwrap_or(i64::MAX);
            let over = (now - since).num_seconds() >= grace;
            Ok(over.then_some(StopReason::DevicesOffline))
        }
    }
}
