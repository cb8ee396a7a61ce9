//! Plans and what they allow. Other features ask for a user's
//! [`PlanLimits`] rather than for the plan itself.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The code of the plan everyone has without a subscription.
pub const FREE_PLAN: &str = "free";

/// A plan users can hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: i64,
    /// Stable short name, e.g. `free`, `premium`.
    pub code: String,
    pub name: String,
    pub limits: PlanLimits,
    /// Price for display, in the smallest currency unit (fen).
    pub price_cents: i64,
    pub currency: String,
    pub is_active: bool,
}

/// What a plan allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    /// The plan's code.
    pub plan: String,
    /// AI chat messages per day (UTC days).
    pub daily_ai_messages: u32,
    /// Voice-chat minutes per day.
    pub daily_voice_minutes: u32,
    /// Personas available; empty means only the default persona.
    pub personas: Vec<String>,
}

/// One period of a plan held by a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: i64,
    pub user_id: i64,
    pub plan_id: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `card` or `admin`.
    pub source: String,
    /// The membership card redeemed for it, if any.
    pub card_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    /// Whether the period covers `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}
