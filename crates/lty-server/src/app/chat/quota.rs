//! The daily chat-message quota: the user's plan's `daily_ai_messages`
//! under the server-wide ceiling, counted per UTC day in the cache
//! (`ai:quota:{user_id}:{YYYYMMDD}`), so every instance counts together.

use std::time::Duration;

use chrono::{DateTime, Days, Utc};
use lty_core::{Error, ErrorKind, Result};

use crate::state::AppState;

/// The daily message limit of `user_id` (`0` = unlimited): the user's
/// plan's `daily_ai_messages` (`0` = unlimited), capped by the server-wide
/// ceiling `ai.daily_messages` (`0` = no ceiling).
pub async fn daily_message_limit(state: &AppState, user_id: i64) -> Result<u64> {
    let plan = u64::from(
        crate::app::subscriptions::limits_for(state, user_id)
            .await?
            .daily_ai_messages,
    );
    let ceiling = state.config.ai.daily_messages;
    Ok(match (plan, ceiling) {
        (0, c) => c,
        (p, 0) => p,
        (p, c) => p.min(c),
    })
}

/// The cache key counting `user_id`'s chat messages on the UTC day of `now`.
pub fn quota_key(user_id: i64, now: DateTime<Utc>) -> String {
    format!("ai:quota:{user_id}:{}", now.format("%Y%m%d"))
}

/// The next UTC midnight after `now`, when daily quotas reset.
pub fn quota_reset_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or(now)
}

/// Counts one message of `user_id` against today's quota, or refuses with
/// `quota_exceeded` (429) and the reset time. Attempts count, whatever the
/// model then answers, so a failing provider cannot be hammered for free.
pub async fn take_message_quota(state: &AppState, user_id: i64) -> Result<()> {
    let limit = daily_message_limit(state, user_id).await?;
    if limit == 0 {
        return Ok(());
    }
    let now = Utc::now();
    let reset_at = quota_reset_at(now);
    let window = (reset_at - now).to_std().unwrap_or(Duration::from_secs(1));
    let (count, _) = state
        .cache
        .incr(&quota_key(user_id, now), window.max(Duration::from_secs(1)))
        .await?;
    if u64::try_from(count).unwrap_or(0) <= limit {
        return Ok(());
    }
    let retry = window.as_secs().max(1);
    Err(Error::coded(
        ErrorKind::Limited,
        "quota_exceeded",
        format!("the daily limit of {limit} chat messages is reached"),
    )
    .with_retry_after(retry)
    .with_details(serde_json::json!({
        "limit": limit,
        "reset_at": reset_at,
        "retry_after": retry,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_reset_at_the_next_utc_midnight() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T23:59:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            quota_reset_at(now).to_rfc3339(),
            "2026-11-26T00:00:00+00:00"
        );
    }
}
