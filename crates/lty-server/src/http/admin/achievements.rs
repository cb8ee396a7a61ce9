//! `/api/v1/admin/achievements/`: list, change and deactivate achievement
//! definitions. They are created by `POST /api/v1/admin/achievements/` in
//! [`crate::http::achievements`]; the code, event kind and rule never
//! change, and unlocks stay when a definition is deactivated.

use axum::extract::State;
use lty_core::achievement::Achievement;
use lty_core::chat::Page;
use lty_store::Database;
use lty_store::admin_queries::AchievementPatch;
use lty_store::sort::{AchievementSort, Sort};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::catalog::{self, Catalog, text};
use super::{AdminCtx, PageInfo, PageQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::achievements::AchievementDefOut;
use crate::state::AppState;

/// Achievement definition routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_achievements))
        .routes(routes!(update_achievement, delete_achievement))
}

/// The achievement definition table in the catalog.
pub(super) struct Achievements;

impl Catalog for Achievements {
    const KIND: &'static str = "achievement";
    const NOT_FOUND: &'static str = "achievement_not_found";
    type Row = Achievement;
    type Sort = AchievementSort;
    type Patch = AchievementPatch;

    async fn page(
        db: &Database,
        sort: Sort<AchievementSort>,
        offset: u64,
        limit: u64,
    ) -> lty_core::Result<Page<Achievement>> {
        db.admin_achievements(sort, offset, limit).await
    }

    async fn get(db: &Database, id: i64) -> lty_core::Result<Option<Achievement>> {
        db.admin_achievement(id).await
    }

    async fn update(
        db: &Database,
        id: i64,
        patch: AchievementPatch,
    ) -> lty_core::Result<Option<Achievement>> {
        db.update_achievement(id, patch).await
    }

    fn deactivate() -> AchievementPatch {
        AchievementPatch {
            is_active: Some(false),
            ..AchievementPatch::default()
        }
    }
}

/// An achievement definition with its catalog state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminAchievementOut {
    #[serde(flatten)]
    pub achievement: AchievementDefOut,
    /// Inactive achievements are not shown or unlocked.
    pub is_active: bool,
}

impl From<Achievement> for AdminAchievementOut {
    fn from(a: Achievement) -> Self {
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

/// `?page=&page_size=&sort=&order=` of the achievement list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AchievementListQuery {
    /// 1-based page number, 1 to 1000000 (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub page_size: Option<u64>,
    /// Sort key: `id`, `code`, `name`, `event`, `threshold`, `active` (default `id` ascending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<AchievementSort>()
}

/// Every achievement definition, inactive ones included, by id unless
/// `sort` and `order` say otherwise.
#[utoipa::path(get, path = "/api/v1/admin/achievements/", tag = "admin", operation_id = "admin_achievements_list",
    security(("admin_bearer" = [])),
    params(AchievementListQuery),
    responses((status = 200, body = AdminAchievementListOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_achievements(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<AchievementListQuery>,
) -> ApiResult<Json<AdminAchievementListOut>> {
    let (achievements, page) = catalog::list::<Achievements, _>(
        &state,
        PageQuery {
            page: q.page,
            page_size: q.page_size,
        },
        q.sort.as_deref(),
        q.order.as_deref(),
    )
    .await?;
    Ok(Json(AdminAchievementListOut { achievements, page }))
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
    #[schema(minimum = 1)]
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
    // Checked after the fields: a bad field is a 400 even for an unknown id.
    catalog::get::<Achievements>(&state, id).await?;
    let details = json!({
        "name": patch.name,
        "threshold": patch.threshold,
        "is_active": patch.is_active,
        "icon": patch.icon,
        "description_changed": patch.description.is_some(),
    });
    let a = catalog::update::<Achievements>(&state, &ctx, id, details, patch).await?;
    Ok(Json(a.into()))
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
    let a = catalog::deactivate::<Achievements>(&state, &ctx, id).await?;
    Ok(Json(a.into()))
}
