//! The catalog: personas (list, create, change, deactivate), plans and
//! achievement definitions (list, change, deactivate; they are created by
//! `POST /api/v1/admin/plans/` and `POST /api/v1/admin/achievements/`).
//! Card batches have their own routes (`/api/v1/admin/card-batches/`).
//! Deleting deactivates: conversations, subscriptions and unlocks keep
//! pointing at the row.

use axum::extract::State;
use axum::http::StatusCode;
use lty_core::subscription::Plan;
use lty_store::admin_queries::{
    AchievementPatch, AdminPersona, NewPersona, PersonaPatch, PlanPatch,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, PageInfo, PageQuery, not_found};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::achievements::AchievementDefOut;
use crate::http::subscriptions::PlanOut;
use crate::state::AppState;

/// Catalog routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_personas, create_persona))
        .routes(routes!(update_persona, delete_persona))
        .routes(routes!(list_plans))
        .routes(routes!(update_plan, delete_plan))
        .routes(routes!(list_achievements))
        .routes(routes!(update_achievement, delete_achievement))
}

fn persona_not_found() -> ApiError {
    not_found("persona", "persona_not_found")
}

fn plan_not_found() -> ApiError {
    not_found("plan", "plan_not_found")
}

fn achievement_not_found() -> ApiError {
    not_found("achievement", "achievement_not_found")
}

/// Trims `v` and checks it is `min..=max` characters, printable unless
/// `multiline` (which allows newlines and tabs).
fn text(
    field: &'static str,
    v: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> ApiResult<String> {
    let v = v.trim();
    let n = v.chars().count();
    let bad_char = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
    if n < min || n > max || v.chars().any(bad_char) {
        return Err(lty_core::Error::validation(
            field,
            format!("must be {min} to {max} printable characters"),
        )
        .into());
    }
    Ok(v.to_owned())
}

// ---- personas ----

/// A persona with its catalog state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPersonaOut {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub system_prompt: String,
    pub greeting: String,
    pub voice_id: Option<String>,
    pub age_min: i32,
    pub age_max: i32,
    pub is_default: bool,
    /// Inactive personas are not offered to users.
    pub is_active: bool,
}

impl From<AdminPersona> for AdminPersonaOut {
    fn from(p: AdminPersona) -> Self {
        Self {
            id: p.id,
            slug: p.slug,
            name: p.name,
            system_prompt: p.system_prompt,
            greeting: p.greeting,
            voice_id: p.voice_id,
            age_min: p.age_min,
            age_max: p.age_max,
            is_default: p.is_default,
            is_active: p.is_active,
        }
    }
}

/// A page of personas.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPersonaListOut {
    pub personas: Vec<AdminPersonaOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// Every persona, inactive ones included, by id.
#[utoipa::path(get, path = "/api/v1/admin/personas/", tag = "admin", operation_id = "admin_personas_list",
    security(("admin_bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = AdminPersonaListOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_personas(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AdminPersonaListOut>> {
    let (offset, limit, page, size) = q.window()?;
    let found = state.db.admin_personas(offset, limit).await?;
    Ok(Json(AdminPersonaListOut {
        personas: found.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(found.total, page, size),
    }))
}

/// A new persona.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaIn {
    /// 1 to 32 lower-case letters, digits, `_` or `-`; unique.
    #[schema(example = "storyteller")]
    pub slug: String,
    /// 1 to 64 characters.
    pub name: String,
    /// 1 to 4000 characters.
    pub system_prompt: String,
    /// At most 500 characters.
    #[serde(default)]
    pub greeting: String,
    /// A TTS voice type.
    pub voice_id: Option<String>,
    /// Youngest age meant for, 0 to 18 (default 3).
    pub age_min: Option<i32>,
    /// Oldest age meant for, 0 to 18 (default 12).
    pub age_max: Option<i32>,
}

fn check_ages(min: i32, max: i32) -> ApiResult<()> {
    if !(0..=18).contains(&min) || !(0..=18).contains(&max) || min > max {
        return Err(lty_core::Error::validation(
            "age_min",
            "ages must be 0 to 18 with age_min <= age_max",
        )
        .into());
    }
    Ok(())
}

fn voice(v: Option<String>) -> ApiResult<Option<String>> {
    match v.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => text("voice_id", &v, 1, 64, false).map(Some),
    }
}

/// Creates an active persona (superadmin). Audited as `persona.create`.
#[utoipa::path(post, path = "/api/v1/admin/personas/", tag = "admin", operation_id = "admin_persona_create",
    security(("admin_bearer" = [])),
    request_body = PersonaIn,
    responses((status = 201, body = AdminPersonaOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, description = "`persona_exists`", body = ErrorBody)))]
pub async fn create_persona(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Json(body): Json<PersonaIn>,
) -> ApiResult<(StatusCode, Json<AdminPersonaOut>)> {
    let slug = body.slug.trim().to_owned();
    if slug.is_empty()
        || slug.len() > 32
        || !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(lty_core::Error::validation(
            "slug",
            "must be 1 to 32 lower-case letters, digits, _ or -",
        )
        .into());
    }
    let (age_min, age_max) = (body.age_min.unwrap_or(3), body.age_max.unwrap_or(12));
    check_ages(age_min, age_max)?;
    let new = NewPersona {
        slug,
        name: text("name", &body.name, 1, 64, false)?,
        system_prompt: text("system_prompt", &body.system_prompt, 1, 4000, true)?,
        greeting: text("greeting", &body.greeting, 0, 500, true)?,
        voice_id: voice(body.voice_id)?,
        age_min,
        age_max,
    };
    let details = json!({ "slug": new.slug, "name": new.name });
    let slug = new.slug.clone();
    let persona = ctx
        .audited(&state, "persona.create", "persona", &slug, details, async {
            Ok(state.db.create_persona(new).await?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(persona.into())))
}

/// Persona changes; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaPatchIn {
    pub name: Option<String>,
    pub system_prompt: Option<String>,
    pub greeting: Option<String>,
    /// An empty string clears it.
    pub voice_id: Option<String>,
    pub age_min: Option<i32>,
    pub age_max: Option<i32>,
    pub is_active: Option<bool>,
}

/// Changes a persona (superadmin). Audited as `persona.update` with the
/// fields changed.
#[utoipa::path(patch, path = "/api/v1/admin/personas/{id}/", tag = "admin", operation_id = "admin_persona_update",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "persona id")),
    request_body = PersonaPatchIn,
    responses((status = 200, body = AdminPersonaOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "`persona_not_found`", body = ErrorBody)))]
pub async fn update_persona(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Json(body): Json<PersonaPatchIn>,
) -> ApiResult<Json<AdminPersonaOut>> {
    let current = state
        .db
        .admin_persona(id)
        .await?
        .ok_or_else(persona_not_found)?;
    check_ages(
        body.age_min.unwrap_or(current.age_min),
        body.age_max.unwrap_or(current.age_max),
    )?;
    if current.is_default && body.is_active == Some(false) {
        return Err(lty_core::Error::validation(
            "is_active",
            "the default persona cannot be deactivated",
        )
        .into());
    }
    let patch = PersonaPatch {
        name: body
            .name
            .map(|v| text("name", &v, 1, 64, false))
            .transpose()?,
        system_prompt: body
            .system_prompt
            .map(|v| text("system_prompt", &v, 1, 4000, true))
            .transpose()?,
        greeting: body
            .greeting
            .map(|v| text("greeting", &v, 0, 500, true))
            .transpose()?,
        voice_id: match body.voice_id {
            Some(v) => Some(voice(Some(v))?),
            None => None,
        },
        age_min: body.age_min,
        age_max: body.age_max,
        is_active: body.is_active,
    };
    let details = json!({ "changed": changed_persona_fields(&patch) });
    let persona = ctx
        .audited(&state, "persona.update", "persona", id, details, async {
            state
                .db
                .update_persona(id, patch)
                .await?
                .ok_or_else(persona_not_found)
        })
        .await?;
    Ok(Json(persona.into()))
}

fn changed_persona_fields(p: &PersonaPatch) -> Value {
    let mut names = Vec::new();
    let pairs: [(&str, bool); 7] = [
        ("name", p.name.is_some()),
        ("system_prompt", p.system_prompt.is_some()),
        ("greeting", p.greeting.is_some()),
        ("voice_id", p.voice_id.is_some()),
        ("age_min", p.age_min.is_some()),
        ("age_max", p.age_max.is_some()),
        ("is_active", p.is_active.is_some()),
    ];
    for (name, set) in pairs {
        if set {
            names.push(name);
        }
    }
    json!(names)
}

/// Deactivates a persona (superadmin); it stays readable here and in old
/// conversations. Audited as `persona.deactivate`.
#[utoipa::path(delete, path = "/api/v1/admin/personas/{id}/", tag = "admin", operation_id = "admin_persona_delete",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "persona id")),
    responses((status = 200, body = AdminPersonaOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "`persona_not_found`", body = ErrorBody)))]
pub async fn delete_persona(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
) -> ApiResult<Json<AdminPersonaOut>> {
    let current = state
        .db
        .admin_persona(id)
        .await?
        .ok_or_else(persona_not_found)?;
    if current.is_default {
        return Err(
            lty_core::Error::validation("id", "the default persona cannot be deactivated").into(),
        );
    }
    let patch = PersonaPatch {
        is_active: Some(false),
        ..PersonaPatch::default()
    };
    let persona = ctx
        .audited(
            &state,
            "persona.deactivate",
            "persona",
            id,
            json!({}),
            async {
                state
                    .db
                    .update_persona(id, patch)
                    .await?
                    .ok_or_else(persona_not_found)
            },
        )
        .await?;
    Ok(Json(persona.into()))
}

// ---- plans ----

/// A plan with its catalog state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPlanOut {
    #[serde(flatten)]
    pub plan: PlanOut,
    /// Inactive plans are not offered; running periods keep them.
    pub is_active: bool,
}

impl From<Plan> for AdminPlanOut {
    fn from(p: Plan) -> Self {
        let is_active = p.is_active;
        Self {
            plan: p.into(),
            is_active,
        }
    }
}

/// A page of plans.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPlanListOut {
    pub plans: Vec<AdminPlanOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// Every plan, inactive ones included, by id.
#[utoipa::path(get, path = "/api/v1/admin/plans/", tag = "admin", operation_id = "admin_plans_list",
    security(("admin_bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = AdminPlanListOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_plans(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AdminPlanListOut>> {
    let (offset, limit, page, size) = q.window()?;
    // A handful of plans: sorted and paged here.
    let mut plans = state.db.plans(true).await?;
    plans.sort_by_key(|p| p.id);
    let total = plans.len() as u64;
    let plans = plans
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(Into::into)
        .collect();
    Ok(Json(AdminPlanListOut {
        plans,
        page: PageInfo::new(total, page, size),
    }))
}

/// Plan changes; absent fields stay as they are. The code is fixed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatchIn {
    pub name: Option<String>,
    pub daily_ai_messages: Option<u32>,
    pub daily_voice_minutes: Option<u32>,
    pub personas: Option<Vec<String>>,
    pub price_cents: Option<i64>,
    /// Three upper-case letters.
    pub currency: Option<String>,
    pub is_active: Option<bool>,
}

/// Changes a plan (superadmin). Audited as `plan.update` with the new
/// values.
#[utoipa::path(patch, path = "/api/v1/admin/plans/{id}/", tag = "admin", operation_id = "admin_plan_update",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "plan id")),
    request_body = PlanPatchIn,
    responses((status = 200, body = AdminPlanOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "`plan_not_found`", body = ErrorBody)))]
pub async fn update_plan(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Json(body): Json<PlanPatchIn>,
) -> ApiResult<Json<AdminPlanOut>> {
    state.db.plan(id).await?.ok_or_else(plan_not_found)?;
    if body.price_cents.is_some_and(|p| p < 0) {
        return Err(lty_core::Error::validation("price_cents", "must not be negative").into());
    }
    if let Some(c) = &body.currency
        && (c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(
            lty_core::Error::validation("currency", "must be three upper-case letters").into(),
        );
    }
    if let Some(personas) = &body.personas
        && (personas.len() > 50 || personas.iter().any(|p| p.is_empty() || p.len() > 32))
    {
        return Err(lty_core::Error::validation(
            "personas",
            "must be at most 50 persona slugs of 1 to 32 characters",
        )
        .into());
    }
    let name = body
        .name
        .map(|v| text("name", &v, 1, 64, false))
        .transpose()?;
    let details = json!({
        "name": name,
        "daily_ai_messages": body.daily_ai_messages,
        "daily_voice_minutes": body.daily_voice_minutes,
        "personas": body.personas,
        "price_cents": body.price_cents,
        "currency": body.currency,
        "is_active": body.is_active,
    });
    let patch = PlanPatch {
        name,
        daily_ai_messages: body.daily_ai_messages,
        daily_voice_minutes: body.daily_voice_minutes,
        personas: body.personas,
        price_cents: body.price_cents,
        currency: body.currency,
        is_active: body.is_active,
    };
    let plan = ctx
        .audited(&state, "plan.update", "plan", id, details, async {
            state
                .db
                .update_plan(id, patch)
                .await?
                .ok_or_else(plan_not_found)
        })
        .await?;
    Ok(Json(plan.into()))
}

/// Deactivates a plan (superadmin): no longer offered; running periods
/// keep it. Audited as `plan.deactivate`.
#[utoipa::path(delete, path = "/api/v1/admin/plans/{id}/", tag = "admin", operation_id = "admin_plan_delete",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "plan id")),
    responses((status = 200, body = AdminPlanOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "`plan_not_found`", body = ErrorBody)))]
pub async fn delete_plan(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
) -> ApiResult<Json<AdminPlanOut>> {
    state.db.plan(id).await?.ok_or_else(plan_not_found)?;
    let patch = PlanPatch {
        is_active: Some(false),
        ..PlanPatch::default()
    };
    let plan = ctx
        .audited(&state, "plan.deactivate", "plan", id, json!({}), async {
            state
                .db
                .update_plan(id, patch)
                .await?
                .ok_or_else(plan_not_found)
        })
        .await?;
    Ok(Json(plan.into()))
}

// ---- achievements ----

/// An achievement definition with its catalog state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAchievementOut {
    #[serde(flatten)]
    pub achievement: AchievementDefOut,
    /// Inactive achievements are not shown or unlocked.
    pub is_active: bool,
}

impl From<lty_core::achievement::Achievement> for AdminAchievementOut {
    fn from(a: lty_core::achievement::Achievement) -> Self {
        let is_active = a.is_active;
        Self {
            achievement: a.into(),
            is_active,
        }
    }
}

/// A page of achievement definitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAchievementListOut {
    pub achievements: Vec<AdminAchievementOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// Every achievement definition, inactive ones included, by id.
#[utoipa::path(get, path = "/api/v1/admin/achievements/", tag = "admin", operation_id = "admin_achievements_list",
    security(("admin_bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = AdminAchievementListOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_achievements(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AdminAchievementListOut>> {
    let (offset, limit, page, size) = q.window()?;
    let found = state.db.admin_achievements(offset, limit).await?;
    Ok(Json(AdminAchievementListOut {
        achievements: found.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(found.total, page, size),
    }))
}

/// Achievement changes; absent fields stay as they are. The code, event
/// kind and rule are fixed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AchievementPatchIn {
    pub name: Option<String>,
    pub description: Option<String>,
    /// An empty string clears it.
    pub icon: Option<String>,
    /// At least 1.
    pub threshold: Option<i64>,
    pub is_active: Option<bool>,
}

/// Changes an achievement definition. Audited as `achievement.update`.
#[utoipa::path(patch, path = "/api/v1/admin/achievements/{id}/", tag = "admin", operation_id = "admin_achievement_update",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "achievement id")),
    request_body = AchievementPatchIn,
    responses((status = 200, body = AdminAchievementOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "`achievement_not_found`", body = ErrorBody)))]
pub async fn update_achievement(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Json(body): Json<AchievementPatchIn>,
) -> ApiResult<Json<AdminAchievementOut>> {
    if body.threshold.is_some_and(|t| t < 1) {
        return Err(lty_core::Error::validation("threshold", "must be at least 1").into());
    }
    let patch = AchievementPatch {
        name: body
            .name
            .map(|v| text("name", &v, 1, 64, false))
            .transpose()?,
        description: body
            .description
            .map(|v| text("description", &v, 0, 500, true))
            .transpose()?,
        icon: match body.icon.map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => Some(None),
            Some(v) => Some(Some(text("icon", &v, 1, 1024, false)?)),
        },
        threshold: body.threshold,
        is_active: body.is_active,
    };
    exists_achievement(&state, id).await?;
    let details = json!({
        "name": patch.name,
        "threshold": patch.threshold,
        "is_active": patch.is_active,
        "icon": patch.icon,
        "description_changed": patch.description.is_some(),
    });
    let a = ctx
        .audited(
            &state,
            "achievement.update",
            "achievement",
            id,
            details,
            async {
                state
                    .db
                    .update_achievement(id, patch)
                    .await?
                    .ok_or_else(achievement_not_found)
            },
        )
        .await?;
    Ok(Json(a.into()))
}

async fn exists_achievement(state: &AppState, id: i64) -> ApiResult<()> {
    state
        .db
        .admin_achievement(id)
        .await?
        .map(|_| ())
        .ok_or_else(achievement_not_found)
}

/// Deactivates an achievement definition: no longer shown or unlocked;
/// existing unlocks stay. Audited as `achievement.deactivate`.
#[utoipa::path(delete, path = "/api/v1/admin/achievements/{id}/", tag = "admin", operation_id = "admin_achievement_delete",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "achievement id")),
    responses((status = 200, body = AdminAchievementOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "`achievement_not_found`", body = ErrorBody)))]
pub async fn delete_achievement(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
) -> ApiResult<Json<AdminAchievementOut>> {
    exists_achievement(&state, id).await?;
    let patch = AchievementPatch {
        is_active: Some(false),
        ..AchievementPatch::default()
    };
    let a = ctx
        .audited(
            &state,
            "achievement.deactivate",
            "achievement",
            id,
            json!({}),
            async {
                state
                    .db
                    .update_achievement(id, patch)
                    .await?
                    .ok_or_else(achievement_not_found)
            },
        )
        .await?;
    Ok(Json(a.into()))
}
