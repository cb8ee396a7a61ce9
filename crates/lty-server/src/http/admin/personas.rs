//! `/api/v1/admin/personas/`: list, create, change and deactivate personas
//! (changes by superadmins). The default persona cannot be deactivated.

use axum::extract::State;
use axum::http::StatusCode;
use lty_core::chat::Page;
use lty_store::Database;
use lty_store::admin_queries::{AdminPersona, NewPersona, PersonaPatch};
use lty_store::sort::{PersonaSort, Sort};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::catalog::{self, Catalog, text};
use super::{AdminCtx, PageInfo, PageQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Persona routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_personas, create_persona))
        .routes(routes!(update_persona, delete_persona))
}

/// The persona table in the catalog.
pub(super) struct Personas;

impl Catalog for Personas {
    const KIND: &'static str = "persona";
    const NOT_FOUND: &'static str = "persona_not_found";
    type Row = AdminPersona;
    type Sort = PersonaSort;
    type Patch = PersonaPatch;

    async fn page(
        db: &Database,
        sort: Sort<PersonaSort>,
        offset: u64,
        limit: u64,
    ) -> lty_core::Result<Page<AdminPersona>> {
        db.admin_personas(sort, offset, limit).await
    }

    async fn get(db: &Database, id: i64) -> lty_core::Result<Option<AdminPersona>> {
        db.admin_persona(id).await
    }

    async fn update(
        db: &Database,
        id: i64,
        patch: PersonaPatch,
    ) -> lty_core::Result<Option<AdminPersona>> {
        db.update_persona(id, patch).await
    }

    fn deactivate() -> PersonaPatch {
        PersonaPatch {
            is_active: Some(false),
            ..PersonaPatch::default()
        }
    }

    fn check_deactivate(row: &AdminPersona) -> ApiResult<()> {
        if row.is_default {
            return Err(default_stays_active());
        }
        Ok(())
    }
}

/// `409 persona_is_default`: the request is well formed, the persona's
/// state refuses it.
fn default_stays_active() -> ApiError {
    lty_core::Error::Conflict {
        code: "persona_is_default",
        message: "the default persona cannot be deactivated".to_owned(),
    }
    .into()
}

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

/// `?page=&page_size=&sort=&order=` of the persona list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PersonaListQuery {
    /// 1-based page number, 1 to 1000000 (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub page_size: Option<u64>,
    /// Sort key: `id`, `slug`, `name`, `ages` (the youngest age), `active` (default `id` ascending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<PersonaSort>()
}

/// Every persona, inactive ones included, by id unless `sort` and
/// `order` say otherwise.
#[utoipa::path(get, path = "/api/v1/admin/personas/", tag = "admin", operation_id = "admin_personas_list",
    security(("admin_bearer" = [])),
    params(PersonaListQuery),
    responses((status = 200, body = AdminPersonaListOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_personas(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<PersonaListQuery>,
) -> ApiResult<Json<AdminPersonaListOut>> {
    let (personas, page) = catalog::list::<Personas, _>(
        &state,
        PageQuery {
            page: q.page,
            page_size: q.page_size,
        },
        q.sort.as_deref(),
        q.order.as_deref(),
    )
    .await?;
    Ok(Json(AdminPersonaListOut { personas, page }))
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
    #[schema(minimum = 0, maximum = 18)]
    pub age_min: Option<i32>,
    /// Oldest age meant for, 0 to 18 (default 12), at least `age_min`.
    #[schema(minimum = 0, maximum = 18)]
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
    /// 0 to 18.
    #[schema(minimum = 0, maximum = 18)]
    pub age_min: Option<i32>,
    /// 0 to 18, at least `age_min`.
    #[schema(minimum = 0, maximum = 18)]
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
              (status = 404, description = "`persona_not_found`", body = ErrorBody),
              (status = 409, description = "`persona_is_default`: the default persona stays active", body = ErrorBody)))]
pub async fn update_persona(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Json(body): Json<PersonaPatchIn>,
) -> ApiResult<Json<AdminPersonaOut>> {
    let current = catalog::get::<Personas>(&state, id).await?;
    check_ages(
        body.age_min.unwrap_or(current.age_min),
        body.age_max.unwrap_or(current.age_max),
    )?;
    if current.is_default && body.is_active == Some(false) {
        return Err(default_stays_active());
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
    let details = json!({ "changed": changed_fields(&patch) });
    let persona = catalog::update::<Personas>(&state, &ctx, id, details, patch).await?;
    Ok(Json(persona.into()))
}

fn changed_fields(p: &PersonaPatch) -> Value {
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
              (status = 404, description = "`persona_not_found`", body = ErrorBody),
              (status = 409, description = "`persona_is_default`: the default persona stays active", body = ErrorBody)))]
pub async fn delete_persona(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
) -> ApiResult<Json<AdminPersonaOut>> {
    let persona = catalog::deactivate::<Personas>(&state, &ctx, id).await?;
    Ok(Json(persona.into()))
}
