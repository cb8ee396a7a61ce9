//! Voice-chat sessions: lty's own record of every Volcengine voice agent it
//! started, so a sweeper on any instance, after any restart, can stop the
//! agents nobody stopped (each one is billed while it runs).

use chrono::{DateTime, Utc};

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
