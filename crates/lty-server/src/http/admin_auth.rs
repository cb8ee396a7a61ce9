//! `/api/v1/admin/`: operator login and logout, and who the caller is.
//! The admin API proper authenticates with [`crate::auth::AuthAdmin`].

use axum::extract::State;
use chrono::{DateTime, Utc};
use lty_core::admin::{Admin, AdminRole};
use lty_core::token::TokenKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::admin;
use crate::app::ratelimit::{self, ClientIp};
use crate::auth::AuthAdmin;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

/// Admin authentication routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Admin login request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AdminLoginIn {
    #[schema(value_type = String, required = true, example = "ops")]
    pub username: Option<String>,
    #[schema(value_type = String, required = true, min_length = 1)]
    pub password: Option<String>,
}

/// An admin token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminLoginOut {
    /// Bearer token for the admin API (`admin_token:{token}`), valid 30
    /// days. It is not a user token.
    pub token: String,
    pub admin_id: i64,
    #[schema(value_type = String, example = "superadmin")]
    pub role: AdminRole,
}

/// Logs an operator in. After 5 consecutive failures the account is locked
/// for 15 minutes (`429 admin_locked` with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/admin/login/", tag = "admin", operation_id = "admin_login",
    request_body = AdminLoginIn,
    responses(
        (status = 200, body = AdminLoginOut),
        (status = 400, description = "missing username or password", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "the admin account is disabled", body = ErrorBody),
        (status = 429, description = "`admin_locked`, or `rate_limited` per IP", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<AdminLoginIn>,
) -> ApiResult<Json<AdminLoginOut>> {
    let (admin, token) = authenticate(
        &state,
        &ip,
        body.username.as_deref(),
        body.password.as_deref(),
    )
    .await?;
    tracing::info!(admin_id = admin.id, "admin logged in");
    Ok(Json(AdminLoginOut {
        token,
        admin_id: admin.id,
        role: admin.role,
    }))
}

/// An operator login from `ip`, for the API and the console's form: the
/// per-IP rate limit, both fields required, then [`admin::login`] (with
/// its lockout).
pub async fn authenticate(
    state: &AppState,
    ip: &ClientIp,
    username: Option<&str>,
    password: Option<&str>,
) -> ApiResult<(lty_core::admin::Admin, String)> {
    ratelimit::check_ip(
        state,
        "admin_login_ip",
        ip,
        state.config.limits.admin_login_per_ip,
    )
    .await?;
    let username = username.map(str::trim).unwrap_or("");
    if username.is_empty() {
        return Err(lty_core::Error::validation("username", "is required").into());
    }
    let password = password.unwrap_or("");
    if password.is_empty() {
        return Err(lty_core::Error::validation("password", "is required").into());
    }
    Ok(admin::login(state, username, password).await?)
}

/// Logout answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminLogoutOut {
    /// Always true: the token no longer works.
    pub logged_out: bool,
}

/// Deletes the caller's admin token.
#[utoipa::path(post, path = "/api/v1/admin/logout/", tag = "admin", operation_id = "admin_logout",
    security(("admin_bearer" = [])),
    responses(
        (status = 200, body = AdminLogoutOut),
        (status = 401, body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    auth: AuthAdmin,
) -> ApiResult<Json<AdminLogoutOut>> {
    state.tokens.revoke(TokenKind::Admin, &auth.token).await?;
    Ok(Json(AdminLogoutOut { logged_out: true }))
}

/// The signed-in admin.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminOut {
    pub id: i64,
    pub username: String,
    /// `superadmin` or `operator`.
    #[schema(value_type = String, example = "operator")]
    pub role: AdminRole,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Admin> for AdminOut {
    fn from(a: Admin) -> Self {
        Self {
            id: a.id,
            username: a.username,
            role: a.role,
            last_login_at: a.last_login_at,
            created_at: a.created_at,
        }
    }
}

/// Who the admin token belongs to.
#[utoipa::path(get, path = "/api/v1/admin/me/", tag = "admin", operation_id = "admin_me",
    security(("admin_bearer" = [])),
    responses(
        (status = 200, body = AdminOut),
        (status = 401, body = ErrorBody),
    ))]
pub async fn me(auth: AuthAdmin) -> Json<AdminOut> {
    Json(auth.admin.into())
}
