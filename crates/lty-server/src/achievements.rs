//! Recording achievement events: features call [`record`] when something
//! countable happens (`card_scanned`, `chat_message`, `voice_minutes`). The
//! user's total grows, and every achievement of that kind whose threshold is
//! reached unlocks once and is pushed to the family's devices as
//! `{"type":"achievement_unlocked","achievement":{...}}`.

use bytes::Bytes;
use chrono::Utc;
use lty_core::Result;
use lty_core::achievement::{Achievement, validate_event_kind};
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
    validate_event_kind(kind)?;
    if amount <= 0 {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let total = state.db.add_progress(user_id, kind, amount, now).await?;
    let mut unlocked = Vec::new();
    for a in state.db.achievements().await? {
        if a.event_kind != kind || a.threshold > total {
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

/// [`record`] for callers that must not fail because of achievements: a
/// failure is logged and otherwise ignored.
pub async fn record_quietly(state: &AppState, user_id: i64, kind: &str, amount: i64) {
    if let Err(err) = record(state, user_id, kind, amount).await {
        tracing::warn!(%err, kind, "cannot record an achievement event");
    }
}
