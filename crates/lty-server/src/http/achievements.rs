//! `/api/achievement/`: every achievement with the caller's progress, the
//! caller's unlocks, and admin-defined achievements.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lty_core::achievement::{
    ACTIVE_DAY, Achievement, AchievementRule, current_streak, validate_event_kind,
};
use lty_store::achievements::NewAchievement;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthAdmin, AuthUserId};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Json;
use crate::http::admin::text;
use crate::state::AppState;

/// Achievement routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mine))
        .routes(routes!(create))
}

/// An achievement and the caller's progress towards it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AchievementOut {
    pub code: String,
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
    /// The event kind counted (`card_scanned`, `chat_message`,
    /// `voice_minutes`, ...).
    pub event_kind: String,
    /// The total (or streak) that unlocks it.
    pub threshold: i64,
    /// `total` (the running total of `event_kind`) or `streak` (consecutive
    /// UTC days, `active_day` only).
    #[schema(value_type = String, example = "total")]
    pub rule: AchievementRule,
    /// The caller's total, or current streak, capped at the threshold.
    pub progress: i64,
    pub unlocked: bool,
    pub unlocked_at: Option<DateTime<Utc>>,
}

/// Achievements with progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct AchievementListOut {
    pub achievements: Vec<AchievementOut>,
}

async fn with_progress(state: &AppState, user_id: i64) -> ApiResult<Vec<AchievementOut>> {
    let totals = state.db.progress_of_user(user_id).await?;
    let streak = match state.db.streak_of_user(user_id, ACTIVE_DAY).await? {
        Some((streak, last)) => current_streak(streak, last.date_naive(), Utc::now().date_naive()),
        None => 0,
    };
    let unlocks: HashMap<i64, DateTime<Utc>> = state
        .db
        .unlocks_of_user(user_id)
        .await?
        .into_iter()
        .map(|u| (u.achievement_id, u.unlocked_at))
        .collect();
    Ok(state
        .db
        .achievements()
        .await?
        .into_iter()
        .map(|a| {
            let total = match a.rule {
                AchievementRule::Total => totals.get(&a.event_kind).copied().unwrap_or(0),
                AchievementRule::Streak => streak,
            };
            let unlocked_at = unlocks.get(&a.id).copied();
            AchievementOut {
                progress: total.min(a.threshold),
                unlocked: unlocked_at.is_some(),
                unlocked_at,
                code: a.code,
                name: a.name,
                description: a.description,
                icon: a.icon,
                event_kind: a.event_kind,
                threshold: a.threshold,
                rule: a.rule,
            }
        })
        .collect())
}

/// Every achievement with the caller's progress.
#[utoipa::path(get, path = "/api/achievement/", tag = "achievement",
    security(("bearer" = [])),
    responses((status = 200, body = AchievementListOut), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUserId,
) -> ApiResult<Json<AchievementListOut>> {
    Ok(Json(AchievementListOut {
        achievements: with_progress(&state, auth.user_id).await?,
    }))
}

/// The achievements the caller has unlocked, oldest first.
#[utoipa::path(get, path = "/api/achievement/mine/", tag = "achievement",
    security(("bearer" = [])),
    responses((status = 200, body = AchievementListOut), (status = 401, body = ErrorBody)))]
pub async fn mine(
    State(state): State<AppState>,
    auth: AuthUserId,
) -> ApiResult<Json<AchievementListOut>> {
    let mut achievements: Vec<_> = with_progress(&state, auth.user_id)
        .await?
        .into_iter()
        .filter(|a| a.unlocked)
        .collect();
    achievements.sort_by_key(|a| a.unlocked_at);
    Ok(Json(AchievementListOut { achievements }))
}

/// A new achievement.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AchievementIn {
    /// 1 to 32 lower-case letters, digits or `_`.
    #[schema(example = "story_lover")]
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub icon: Option<String>,
    #[schema(example = "card_scanned")]
    pub event_kind: String,
    /// At least 1.
    #[schema(minimum = 1)]
    pub threshold: i64,
    /// `total` (default) or `streak`; `streak` needs `event_kind`
    /// `active_day`.
    #[schema(value_type = Option<String>, example = "total")]
    pub rule: Option<AchievementRule>,
}

/// An achievement definition.
#[derive(Debug, Serialize, ToSchema)]
pub struct AchievementDefOut {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
    pub event_kind: String,
    pub threshold: i64,
    #[schema(value_type = String, example = "total")]
    pub rule: AchievementRule,
}

impl From<Achievement> for AchievementDefOut {
    fn from(a: Achievement) -> Self {
        Self {
            id: a.id,
            code: a.code,
            name: a.name,
            description: a.description,
            icon: a.icon,
            event_kind: a.event_kind,
            threshold: a.threshold,
            rule: a.rule,
        }
    }
}

/// Defines an achievement (operator). It counts totals from before it was
/// defined once the next event of its kind is recorded.
#[utoipa::path(post, path = "/api/v1/admin/achievements/", tags = ["admin", "achievement"],
    security(("admin_bearer" = [])),
    request_body = AchievementIn,
    responses(
        (status = 201, body = AchievementDefOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`achievement_exists`", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Json(body): Json<AchievementIn>,
) -> ApiResult<(StatusCode, Json<AchievementDefOut>)> {
    use lty_core::Error;
    validate_event_kind(&body.code).map_err(|_| {
        Error::validation("code", "must be 1 to 32 lower-case letters, digits or _")
    })?;
    validate_event_kind(&body.event_kind)?;
    // The same text rules as a change of the definition.
    let name = text("name", &body.name, 1, 64, false)?;
    let description = text("description", &body.description, 0, 500, true)?;
    let icon = match body.icon.map(|v| v.trim().to_owned()) {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => Some(text("icon", &v, 1, 1024, false)?),
    };
    if body.threshold < 1 {
        return Err(Error::validation("threshold", "must be at least 1").into());
    }
    let rule = body.rule.unwrap_or(AchievementRule::Total);
    if rule == AchievementRule::Streak && body.event_kind != ACTIVE_DAY {
        return Err(Error::validation("rule", "streak rules count active_day only").into());
    }
    let a = state
        .db
        .create_achievement(NewAchievement {
            code: body.code,
            name,
            description,
            icon,
            event_kind: body.event_kind,
            threshold: body.threshold,
            rule,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(a.into())))
}
