//! A user's plan as other features see it: [`limits_for`] answers what the
//! user may do today. Without a running subscription, the `free` plan
//! applies.

use chrono::{DateTime, Utc};
use lty_core::subscription::{FREE_PLAN, Plan, PlanLimits, Subscription};
use lty_core::{BackendError, Error, Result};

use crate::state::AppState;

/// The plan in force for `user_id` at `now`, and the period giving it
/// (`None` for the free plan).
///
/// When periods of several plans overlap, the dearest plan wins.
pub async fn current_plan(
    state: &AppState,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<(Plan, Option<Subscription>)> {
    let mut best: Option<(Plan, Subscription)> = None;
    for sub in state.db.subscriptions_of_user(user_id).await? {
        if !sub.is_active(now) {
            continue;
        }
        let Some(plan) = state.db.plan(sub.plan_id).await? else {
            continue;
        };
        let better = best
            .as_ref()
            .is_none_or(|(p, s)| (plan.price_cents, sub.ends_at) > (p.price_cents, s.ends_at));
        if better {
            best = Some((plan, sub));
        }
    }
    match best {
        Some((plan, sub)) => Ok((plan, Some(sub))),
        None => Ok((free_plan(state).await?, None)),
    }
}

/// The seeded `free` plan.
pub async fn free_plan(state: &AppState) -> Result<Plan> {
    state
        .db
        .plan_by_code(FREE_PLAN)
        .await?
        .ok_or_else(|| Error::Backend(BackendError::new("database", "the free plan is missing")))
}

/// What `user_id` may do under the plan in force now: the one function the
/// AI-chat quota and the voice-chat limit read.
pub async fn limits_for(state: &AppState, user_id: i64) -> Result<PlanLimits> {
    Ok(current_plan(state, user_id, Utc::now()).await?.0.limits)
}
