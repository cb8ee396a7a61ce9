//! Achievements: definitions are data (an event kind and a threshold), not
//! code. Features record events; an achievement unlocks, once, when the
//! user's running total of its event kind reaches the threshold.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, Result};

/// A card was scanned (recorded by `POST /api/card/scan/`).
pub const CARD_SCANNED: &str = "card_scanned";
/// A chat message was sent to the AI.
pub const CHAT_MESSAGE: &str = "chat_message";
/// Minutes of voice chat.
pub const VOICE_MINUTES: &str = "voice_minutes";

/// An achievement definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Achievement {
    pub id: i64,
    /// Stable short name, e.g. `first_card`.
    pub code: String,
    pub name: String,
    pub description: String,
    /// Icon URL or asset name.
    pub icon: Option<String>,
    /// The event kind counted.
    pub event_kind: String,
    /// The total that unlocks it (at least 1).
    pub threshold: i64,
    pub is_active: bool,
}

/// A user's unlock of an achievement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unlock {
    pub achievement_id: i64,
    pub unlocked_at: DateTime<Utc>,
}

/// Checks an event kind: 1 to 32 lower-case letters, digits or `_`.
pub fn validate_event_kind(kind: &str) -> Result<&str> {
    let ok = (1..=32).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(kind)
    } else {
        Err(Error::validation(
            "event_kind",
            "must be 1 to 32 lower-case letters, digits or _",
        ))
    }
}
