//! Plans and subscriptions: `GET /api/plans/`, `GET /api/user/subscription/`,
//! and the admin routes that define plans and grant periods.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lty_core::admin::AdminRole;
use lty_core::subscription::{Plan, Subscription};
use lty_store::subscriptions::{Grant, NewPlan};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::subscriptions::current_plan;
use crate::auth::{AuthAdmin, AuthUserId};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Subscription routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plans))
        .routes(routes!(mine))
        .routes(routes!(create_plan))
        .routes(routes!(grant))
}

/// A plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanOut {
    pub id: i64,
    /// Stable short name (`free`, `premium`, ...).
    pub code: String,
    pub name: String,
    /// AI chat messages per day.
    pub daily_ai_messages: u32,
    /// Voice-chat minutes per day.
    pub daily_voice_minutes: u32,
    /// Personas available; empty means the default persona only.
    pub personas: Vec<String>,
    /// Price for display, in fen (1/100 of the currency unit).
    pub price_cents: i64,
    pub currency: String,
}

impl From<Plan> for PlanOut {
    fn from(p: Plan) -> Self {
        Self {
            id: p.id,
            code: p.code,
            name: p.name,
            daily_ai_messages: p.limits.daily_ai_messages,
            daily_voice_minutes: p.limits.daily_voice_minutes,
            personas: p.limits.personas,
            price_cents: p.price_cents,
            currency: p.currency,
        }
    }
}

/// The plans on offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanListOut {
    pub plans: Vec<PlanOut>,
}

/// Lists the active plans, cheapest first. No token needed.
#[utoipa::path(get, path = "/api/plans/", tag = "subscription",
    responses((status = 200, body = PlanListOut)))]
pub async fn plans(State(state): State<AppState>) -> ApiResult<Json<PlanListOut>> {
    let plans = state.db.plans(false).await?;
    Ok(Json(PlanListOut {
        plans: plans.into_iter().map(PlanOut::from).collect(),
    }))
}

/// One period of a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodOut {
    pub id: i64,
    pub plan_id: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `card` (a redeemed membership card) or `admin`.
    pub source: String,
    pub card_id: Option<i64>,
}

impl From<Subscription> for PeriodOut {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id,
            plan_id: s.plan_id,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            source: s.source,
            card_id: s.card_id,
        }
    }
}

/// The caller's subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionOut {
    /// The plan in force now (`free` without a running period).
    pub plan: PlanOut,
    /// The period giving it; `null` on the free plan.
    pub current: Option<PeriodOut>,
    /// When the plan in force ends, counting queued periods of the same
    /// plan; `null` on the free plan.
    pub ends_at: Option<DateTime<Utc>>,
    /// Every period, newest end first.
    pub history: Vec<PeriodOut>,
}

/// The caller's plan now, and its subscription history.
pub async fn subscription_of(state: &AppState, user_id: i64) -> ApiResult<SubscriptionOut> {
    let now = Utc::now();
    let (plan, current) = current_plan(state, user_id, now).await?;
    let history = state.db.subscriptions_of_user(user_id).await?;
    let ends_at = current.as_ref().map(|c| {
        history
            .iter()
            .filter(|s| s.plan_id == c.plan_id && s.ends_at > now)
            .map(|s| s.ends_at)
            .max()
            .unwrap_or(c.ends_at)
    });
    Ok(SubscriptionOut {
        plan: plan.into(),
        current: current.map(PeriodOut::from),
        ends_at,
        history: history.into_iter().map(PeriodOut::from).collect(),
    })
}

/// The caller's plan in force, its end, and the history of periods.
#[utoipa::path(get, path = "/api/user/subscription/", tag = "subscription",
    security(("bearer" = [])),
    responses((status = 200, body = SubscriptionOut), (status = 401, body = ErrorBody)))]
pub async fn mine(
    State(state): State<AppState>,
    auth: AuthUserId,
) -> ApiResult<Json<SubscriptionOut>> {
    Ok(Json(subscription_of(&state, auth.user_id).await?))
}

/// A new plan.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanIn {
    /// 1 to 32 lower-case letters, digits, `_` or `-`.
    #[schema(example = "premium")]
    pub code: String,
    pub name: String,
    #[schema(maximum = 2147483647)]
    pub daily_ai_messages: u32,
    #[schema(maximum = 2147483647)]
    pub daily_voice_minutes: u32,
    #[serde(default)]
    pub personas: Vec<String>,
    #[schema(minimum = 0)]
    pub price_cents: i64,
    #[serde(default = "default_currency")]
    pub currency: String,
}

/// The daily limits a plan can hold (the database keeps 32-bit integers).
pub(crate) fn check_daily_limits(
    ai_messages: Option<u32>,
    voice_minutes: Option<u32>,
) -> Result<(), lty_core::Error> {
    const MAX: u32 = i32::MAX as u32;
    for (field, value) in [
        ("daily_ai_messages", ai_messages),
        ("daily_voice_minutes", voice_minutes),
    ] {
        if value.is_some_and(|v| v > MAX) {
            return Err(lty_core::Error::validation(
                field,
                "must be at most 2147483647",
            ));
        }
    }
    Ok(())
}

fn default_currency() -> String {
    "CNY".into()
}

/// Defines a plan (superadmin).
#[utoipa::path(post, path = "/api/v1/admin/plans/", tags = ["admin", "subscription"],
    security(("admin_bearer" = [])),
    request_body = PlanIn,
    responses(
        (status = 201, body = PlanOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`plan_exists`", body = ErrorBody),
    ))]
pub async fn create_plan(
    State(state): State<AppState>,
    admin: AuthAdmin,
    Json(body): Json<PlanIn>,
) -> ApiResult<(StatusCode, Json<PlanOut>)> {
    admin.require(AdminRole::Superadmin)?;
    check_daily_limits(Some(body.daily_ai_messages), Some(body.daily_voice_minutes))?;
    let code = body.code.trim().to_owned();
    if code.is_empty()
        || code.len() > 32
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(lty_core::Error::validation(
            "code",
            "must be 1 to 32 lower-case letters, digits, _ or -",
        )
        .into());
    }
    // The same rules as a change of the plan.
    let name = crate::http::admin::text("name", &body.name, 1, 64, false)?;
    crate::http::admin::plans::check_personas(&body.personas)?;
    crate::http::admin::plans::check_currency(&body.currency)?;
    if body.price_cents < 0 {
        return Err(lty_core::Error::validation("price_cents", "must not be negative").into());
    }
    let plan = state
        .db
        .create_plan(NewPlan {
            code,
            name,
            daily_ai_messages: body.daily_ai_messages,
            daily_voice_minutes: body.daily_voice_minutes,
            personas: body.personas,
            price_cents: body.price_cents,
            currency: body.currency,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(plan.into())))
}

/// Days of a plan to give.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantIn {
    pub plan_id: i64,
    /// 1 to 3660.
    #[schema(minimum = 1, maximum = 3660)]
    pub days: u32,
}

/// Gives a user days of a plan, after any running period of the same plan.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/subscription/", tags = ["admin", "subscription"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body = GrantIn,
    responses(
        (status = 201, body = PeriodOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not_found`: no such user or plan", body = ErrorBody),
    ))]
pub async fn grant(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Path(user_id): Path<i64>,
    Json(body): Json<GrantIn>,
) -> ApiResult<(StatusCode, Json<PeriodOut>)> {
    if !(1..=3660).contains(&body.days) {
        return Err(lty_core::Error::validation("days", "must be 1 to 3660").into());
    }
    state
        .db
        .user(user_id)
        .await?
        .ok_or_else(|| lty_core::Error::not_found("user"))?;
    state
        .db
        .plan(body.plan_id)
        .await?
        .ok_or_else(|| lty_core::Error::not_found("plan"))?;
    let period = state
        .db
        .grant_subscription(user_id, body.plan_id, body.days, Grant::Admin, Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(period.into())))
}
