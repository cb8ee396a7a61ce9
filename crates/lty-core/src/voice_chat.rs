//! Voice-chat sessions: lty's own record of every Volcengine voice agent it
//! started, so a sweeper on any instance, after any restart, can stop the
//! agents nobody stopped (each one is billed while it runs).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Recorded before `StartVoiceChat` was sent; may or may not be running.
    Starting,
    /// `StartVoiceChat` succeeded and the session key was stored.
    Running,
}

impl SessionStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
        }
    }

    /// Reads a stored name; anything unknown counts as `Starting`, which the
    /// sweeper stops once it is old enough.
    pub fn parse(s: &str) -> Self {
        if s == "running" {
            Self::Running
        } else {
            Self::Starting
        }
    }
}

/// One voice agent lty started and has not yet stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceChatSession {
    /// `TaskId`: 32 lower-case hex characters.
    pub task_id: String,
    /// The family whose room the agent is in.
    pub user_id: i64,
    /// `room_{user_id}`.
    pub room_id: String,
    /// The agent's RTC user id, `bot_{user_id}`.
    pub agent_user_id: String,
    /// See [`SessionStatus`].
    pub status: SessionStatus,
    /// When the session was recorded.
    pub started_at: DateTime<Utc>,
    /// Since when every device of the family has been offline, as first seen
    /// by the sweeper; `None` while one is online.
    pub offline_since: Option<DateTime<Utc>>,
    /// The conversation the agent's turns are stored in, from its first
    /// turn on.
    pub conversation_id: Option<i64>,
}

/// Persistence of voice-chat sessions.
#[async_trait]
pub trait VoiceChatSessionRepo: Send + Sync {
    /// Records a new session.
    async fn insert_session(&self, session: &VoiceChatSession) -> Result<()>;
    /// The session with `task_id`.
    async fn session(&self, task_id: &str) -> Result<Option<VoiceChatSession>>;
    /// The sessions of `user_id`, oldest first.
    async fn sessions_of_user(&self, user_id: i64) -> Result<Vec<VoiceChatSession>>;
    /// Every recorded session, oldest first.
    async fn all_sessions(&self) -> Result<Vec<VoiceChatSession>>;
    /// Sets the status of `task_id`.
    async fn set_session_status(&self, task_id: &str, status: SessionStatus) -> Result<()>;
    /// Sets or clears the offline mark of `task_id`.
    async fn set_session_offline_since(
        &self,
        task_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// Makes `conversation_id` the conversation of `task_id` unless it
    /// already has one; returns the conversation in force.
    async fn attach_conversation(&self, task_id: &str, conversation_id: i64) -> Result<i64>;
    /// Forgets `task_id`; `true` when it was recorded.
    async fn delete_session(&self, task_id: &str) -> Result<bool>;
}
