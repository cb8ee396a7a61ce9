//! `/api/v1/admin/plans/`: list, change and deactivate plans (changes by
//! superadmins). Plans are created by `POST /api/v1/admin/plans/` in
//! [`crate::http::subscriptions`]; a plan's code never changes, and running
//! periods keep a deactivated plan.

use axum::extract::State;
use lty_core::chat::Page;
use lty_core::subscription::Plan;
use lty_store::Database;
use lty_store::admin_queries::PlanPatch;
use lty_store::sort::{PlanSort, Sort};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::catalog::{self, Catalog, text};
use super::{AdminCtx, PageInfo, PageQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::subscriptions::PlanOut;
use crate::state::AppState;

/// Plan routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans))
        .routes(routes!(update_plan, delete_plan))
}

/// The plan table in the catalog.
pub(super) struct Plans;

impl Catalog for Plans {
    const KIND: &'static str = "plan";
    const NOT_FOUND: &'static str = "plan_not_found";
    type Row = Plan;
    type Sort = PlanSort;
    type Patch = PlanPatch;

    async fn page(
        db: &Database,
        sort: Sort<PlanSort>,
        offset: u64,
        limit: u64,
    ) -> lty_core::Result<Page<Plan>> {
        db.admin_plans(sort, offset, limit).await
    }

    async fn get(db: &Database, id: i64) -> lty_core::Result<Option<Plan>> {
        db.plan(id).await
    }

    async fn update(db: &Database, id: i64, patch: PlanPatch) -> lty_core::Result<Option<Plan>> {
        db.update_plan(id, patch).await
    }

    fn deactivate() -> PlanPatch {
        PlanPatch {
            is_active: Some(false),
            ..PlanPatch::default()
        }
    }
}

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

/// `?page=&page_size=&sort=&order=` of the plan list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanListQuery {
    /// 1-based page number, 1 to 1000000 (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub page_size: Option<u64>,
    /// Sort key: `id`, `code`, `name`, `messages`, `minutes`, `price`, `active` (default `id` ascending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<PlanSort>()
}

/// Every plan, inactive ones included, by id unless `sort` and `order`
/// say otherwise.
#[utoipa::path(get, path = "/api/v1/admin/plans/", tag = "admin", operation_id = "admin_plans_list",
    security(("admin_bearer" = [])),
    params(PlanListQuery),
    responses((status = 200, body = AdminPlanListOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_plans(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<PlanListQuery>,
) -> ApiResult<Json<AdminPlanListOut>> {
    let (plans, page) = catalog::list::<Plans, _>(
        &state,
        PageQuery {
            page: q.page,
            page_size: q.page_size,
        },
        q.sort.as_deref(),
        q.order.as_deref(),
    )
    .await?;
    Ok(Json(AdminPlanListOut { plans, page }))
}

/// Plan changes; absent fields stay as they are. The code is fixed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatchIn {
    pub name: Option<String>,
    #[schema(maximum = 2147483647)]
    pub daily_ai_messages: Option<u32>,
    #[schema(maximum = 2147483647)]
    pub daily_voice_minutes: Option<u32>,
    pub personas: Option<Vec<String>>,
    #[schema(minimum = 0)]
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
    catalog::get::<Plans>(&state, id).await?;
    crate::http::subscriptions::check_daily_limits(
        body.daily_ai_messages,
        body.daily_voice_minutes,
    )?;
    if body.price_cents.is_some_and(|p| p < 0) {
        return Err(lty_core::Error::validation("price_cents", "must not be negative").into());
    }
    if let Some(c) = &body.currency {
        check_currency(c)?;
    }
    if let Some(personas) = &body.personas {
        check_personas(personas)?;
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
    let plan = catalog::update::<Plans>(&state, &ctx, id, details, patch).await?;
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
    let plan = catalog::deactivate::<Plans>(&state, &ctx, id).await?;
    Ok(Json(plan.into()))
}

/// A currency code: three upper-case letters.
pub(crate) fn check_currency(c: &str) -> ApiResult<()> {
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(
            lty_core::Error::validation("currency", "must be three upper-case letters").into(),
        );
    }
    Ok(())
}

/// A plan's personas: at most 50 slugs of 1 to 32 characters.
pub(crate) fn check_personas(personas: &[String]) -> ApiResult<()> {
    let slug = |p: &String| (1..=32).contains(&p.chars().count());
    if personas.len() > 50 || !personas.iter().all(slug) {
        return Err(lty_core::Error::validation(
            "personas",
            "must be at most 50 persona slugs of 1 to 32 characters",
        )
        .into());
    }
    Ok(())
}
