//! `/api/user/`: device MAC login, profile, logout.

use axum::extract::State;
use chrono::{DateTime, Utc};
use lty_core::MacAddress;
use lty_core::token::TokenKind;
use lty_core::user::{ProfilePatch, User, mask_phone};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, JsonOrForm};
use crate::state::AppState;

/// User routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mac_login))
        .routes(routes!(profile, update_profile))
        .routes(routes!(logout))
}

/// MAC login request (JSON or form-encoded, as the legacy API accepted).
#[derive(Debug, Deserialize, ToSchema)]
pub struct MacLoginIn {
    /// The device's MAC address; `:` or `-` separated, any case.
    #[schema(example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
}

/// A login token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    /// Bearer token, valid 30 days.
    pub token: String,
    /// The user the token acts as.
    pub user_id: i64,
}

/// Logs a device in as the user of its latest binding. Each call issues a
/// new token.
#[utoipa::path(post, path = "/api/user/mac-login/", tag = "user",
    request_body = MacLoginIn,
    responses(
        (status = 200, body = LoginOut),
        (status = 400, description = "missing or malformed MAC", body = ErrorBody),
        (status = 404, description = "the MAC is not bound", body = ErrorBody),
    ))]
pub async fn mac_login(
    State(state): State<AppState>,
    JsonOrForm(body): JsonOrForm<MacLoginIn>,
) -> ApiResult<Json<LoginOut>> {
    let mac = MacAddress::parse(body.mac_address.as_deref().unwrap_or(""))?;
    let binding = state
        .devices
        .latest_binding(&mac)
        .await?
        .ok_or(lty_core::Error::NotFound {
            what: "device binding",
            code: "device_not_bound",
        })?;
    let token = state.tokens.issue(TokenKind::User, binding.user_id).await?;
    Ok(Json(LoginOut {
        token,
        user_id: binding.user_id,
    }))
}

/// A user's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub id: i64,
    pub username: String,
    /// When the account was created (ISO-8601).
    pub date_joined: DateTime<Utc>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// The phone number, masked (`138****5678`).
    pub phone: Option<String>,
}

impl From<User> for ProfileOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            date_joined: u.date_joined,
            nickname: u.nickname,
            avatar_url: u.avatar_url,
            phone: u.phone.as_deref().map(mask_phone),
        }
    }
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/user/profile/", tag = "user",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProfileOut),
        (status = 401, body = ErrorBody),
    ))]
pub async fn profile(auth: AuthUser) -> Json<ProfileOut> {
    Json(auth.user.into())
}

/// Profile changes; absent fields stay as they are, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatchIn {
    /// 1–64 characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub nickname: Option<Option<String>>,
    /// An http(s) URL of at most 1024 characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn validate_patch(body: ProfilePatchIn) -> Result<ProfilePatch, lty_core::Error> {
    let nickname = match body.nickname {
        Some(Some(n)) => {
            let n = n.trim().to_owned();
            let len = n.chars().count();
            if !(1..=64).contains(&len) || n.chars().any(char::is_control) {
                return Err(lty_core::Error::validation(
                    "nickname",
                    "must be 1 to 64 printable characters",
                ));
            }
            Some(Some(n))
        }
        other => other,
    };
    let avatar_url = match body.avatar_url {
        Some(Some(u)) => {
            let ok = u.len() <= 1024
                && url::Url::parse(&u)
                    .map(|p| matches!(p.scheme(), "http" | "https") && p.has_host())
                    .unwrap_or(false);
            if !ok {
                return Err(lty_core::Error::validation(
                    "avatar_url",
                    "must be an http(s) URL of at most 1024 characters",
                ));
            }
            Some(Some(u))
        }
        other => other,
    };
    Ok(ProfilePatch {
        nickname,
        avatar_url,
    })
}

/// Changes the caller's nickname or avatar.
#[utoipa::path(patch, path = "/api/user/profile/", tag = "user",
    security(("bearer" = [])),
    request_body = ProfilePatchIn,
    responses(
        (status = 200, body = ProfileOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<ProfilePatchIn>,
) -> ApiResult<Json<ProfileOut>> {
    let patch = validate_patch(body)?;
    let user = state
        .users
        .update_profile(auth.user.id, patch)
        .await?
        .ok_or_else(|| ApiError::from(lty_core::token::invalid_token()))?;
    Ok(Json(user.into()))
}

/// Logout answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutOut {
    /// Always true: the token no longer works.
    pub logged_out: bool,
}

/// Deletes the caller's token.
#[utoipa::path(post, path = "/api/user/logout/", tag = "user",
    security(("bearer" = [])),
    responses(
        (status = 200, body = LogoutOut),
        (status = 401, body = ErrorBody),
    ))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<LogoutOut>> {
    state.tokens.revoke(TokenKind::User, &auth.token).await?;
    Ok(Json(LogoutOut { logged_out: true }))
}
