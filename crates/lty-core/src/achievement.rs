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
/// A UTC day with a chat message or a card scan, counted once a day.
pub const ACTIVE_DAY: &str = "active_day";

/// How a definition measures progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AchievementRule {
    /// The running total of the event kind.
    Total,
    /// The current run of consecutive UTC days with the event (only
    /// `active_day`, which is recorded at most once a day); a day without
    /// it resets the run.
    Streak,
}

impl AchievementRule {
    /// The stored name: `total` or `streak`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Streak => "streak",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "total" => Ok(Self::Total),
            "streak" => Ok(Self::Streak),
            _ => Err(Error::validation("rule", "must be total or streak")),
        }
    }
}

/// The streak after an active `today`, given the stored streak and the last
/// day it counted: `None` when today was counted already, one more after
/// yesterday, else a new run of 1.
pub fn next_streak(
    last: Option<(i64, chrono::NaiveDate)>,
    today: chrono::NaiveDate,
) -> Option<i64> {
    match last {
        Some((_, day)) if day >= today => None,
        Some((streak, day)) if day.succ_opt() == Some(today) => Some(streak + 1),
        _ => Some(1),
    }
}

/// The streak as of `today`: the stored one while it is alive (last
/// counted today or yesterday), else 0.
pub fn current_streak(streak: i64, last: chrono::NaiveDate, today: chrono::NaiveDate) -> i64 {
    if last.succ_opt().is_some_and(|d| d >= today) {
        streak
    } else {
        0
    }
}

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
    /// The total (or streak) that unlocks it (at least 1).
    pub threshold: i64,
    /// What `threshold` is compared with.
    pub rule: AchievementRule,
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

#[cfg(test)]
mod streak_tests {
    use chrono::NaiveDate;

    use super::{current_streak, next_streak};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn consecutive_days_grow_the_streak_and_a_gap_resets_it() {
        assert_eq!(next_streak(None, day(1)), Some(1));
        assert_eq!(next_streak(Some((1, day(1))), day(2)), Some(2));
        assert_eq!(next_streak(Some((2, day(2))), day(3)), Some(3));
        assert_eq!(next_streak(Some((3, day(3))), day(5)), Some(1));
    }

    #[test]
    fn a_second_event_on_the_same_day_counts_nothing() {
        assert_eq!(next_streak(Some((2, day(4))), day(4)), None);
    }

    #[test]
    fn a_streak_is_alive_until_a_whole_day_is_missed() {
        assert_eq!(current_streak(3, day(4), day(4)), 3);
        assert_eq!(current_streak(3, day(4), day(5)), 3);
        assert_eq!(current_streak(3, day(4), day(6)), 0);
    }
}
