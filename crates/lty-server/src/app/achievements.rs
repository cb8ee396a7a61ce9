//! Recording achievement events: features call [`record`] when something
//! countable happens (`card_scanned`, `chat_message`, `voice_minutes`). The
//! user's total grows, and every achievement of that kind whose threshold is
//! reached unlocks once and is pushed to the family's devices as
//! `{"type":"achievement_unlocked","achievement":{...}}`. A chat message or
//! a card scan also counts the UTC day as an `active_day`, once a day, for
//! the streak rules.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lty_core::Result;
use lty_core::achievement::{
    ACTIVE_DAY, Achievement, AchievementRule, CARD_SCANNED, CHAT_MESSAGE, validate_event_kind,
};
use serde_json::json;

use crate::state::AppState;
use crate::ws::protocol::device_group;

/// Adds `amount` events of `kind` for `user_id` and returns the
/// achievements this unlocked (each at most once per user, ever).
pub async fn record(
    state: &AppState,
    user_id: i64,
    kind: &str,
    amount: i64,
) -> Result<Vec<Achievement>> {
    record_at(state, user_id, kind, amount, Utc::now()).await
}

/// [`record`] as of `now` (the UTC day that counts as active).
pub async fn record_at(
    state: &AppState,
    user_id: i64,
    kind: &str,
    amount: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Achievement>> {
    validate_event_kind(kind)?;
    if amount <= 0 {
        return Ok(Vec::new());
    }
    let mut unlocked = Vec::new();
    if kind != ACTIVE_DAY {
        let total = state.db.add_progress(user_id, kind, amount, now).await?;
        unlocked = unlock_reached(state, user_id, kind, total, 0, now).await?;
    }
    if [CHAT_MESSAGE, CARD_SCANNED, ACTIVE_DAY].contains(&kind)
        && let Some(streak) = state.db.count_streak_day(user_id, ACTIVE_DAY, now).await?
    {
        // Only the day's first event gets here, so `active_day` grows once a day.
        let days = state.db.add_progress(user_id, ACTIVE_DAY, 1, now).await?;
        unlocked.extend(unlock_reached(state, user_id, ACTIVE_DAY, days, streak, now).await?);
    }
    Ok(unlocked)
}

/// Unlocks (and pushes) each achievement of `kind` whose rule's value,
/// `total` or `streak`, reaches its threshold.
async fn unlock_reached(
    state: &AppState,
    user_id: i64,
    kind: &str,
    total: i64,
    streak: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Achievement>> {
    let mut unlocked = Vec::new();
    for a in state.db.achievements().await? {
        let value = match a.rule {
            AchievementRule::Total => total,
            AchievementRule::Streak => streak,
        };
        if a.event_kind != kind || a.threshold > value {
            continue;
        }
        if !state.db.unlock_achievement(user_id, a.id, now).await? {
            continue;
        }
        let message = json!({
            "type": "achievement_unlocked",
            "achievement": {
                "code": a.code,
                "name": a.name,
                "description": a.description,
                "icon": a.icon,
            },
            "unlocked_at": now,
        });
        if let Err(err) = state
            .pubsub
            .publish(&device_group(user_id), Bytes::from(message.to_string()))
            .await
        {
            tracing::warn!(%err, code = %a.code, "cannot push an achievement unlock");
        }
        tracing::info!(user_id, code = %a.code, "achievement unlocked");
        unlocked.push(a);
    }
    Ok(unlocked)
}

/// [`record_quietly`] on a task of its own, so that a caller on a latency
/// path (a chat turn before its first token) does not wait for the writes;
/// it awaits the handle before it answers, so the events are recorded by
/// the time the response completes.
pub fn spawn_record(
    state: &AppState,
    user_id: i64,
    kind: &'static str,
    amount: i64,
) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move { record_quietly(&state, user_id, kind, amount).await })
}

/// [`record`] for callers that must not fail because of achievements: a
/// failure is logged and otherwise ignored.
pub async fn record_quietly(state: &AppState, user_id: i64, kind: &str, amount: i64) {
    if let Err(err) = record(state, user_id, kind, amount).await {
        tracing::warn!(%err, kind, "cannot record an achievement event");
    }
}
