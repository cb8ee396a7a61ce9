//! Bearer authentication: `Authorization: Bearer {token}` → `token:{token}`
//! in the token store → an active user ([`AuthUser`], or [`AuthUserId`]
//! when the handler loads the user itself). Admin tokens live in their own
//! key space (`admin_token:{token}`) and authenticate only as
//! [`AuthAdmin`]; neither kind is ever accepted as the other.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use lty_core::admin::{Admin, AdminRole};
use lty_core::token::{TokenKind, invalid_token};
use lty_core::user::User;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated user of a request, and the token it presented.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub token: String,
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::from(lty_core::Error::Unauthenticated {
            message: "missing bearer token: send Authorization: Bearer {token}",
        })
    };
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| ApiError::from(invalid_token()))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// Resolves a user token to an active user.
pub async fn resolve_user(state: &AppState, token: &str) -> Result<User, ApiError> {
    let id = state
        .tokens
        .resolve(TokenKind::User, token)
        .await?
        .ok_or_else(invalid_token)?;
    match state.users.get(id).await? {
        Some(user) if user.is_active => Ok(user),
        Some(_) => Err(account_disabled()),
        None => Err(invalid_token().into()),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?.to_owned();
        let user = resolve_user(state, &token).await?;
        tracing::Span::current().record("user_id", user.id);
        Ok(Self { user, token })
    }
}

/// The cache key marking a disabled user. Set when an operator disables
/// the account and deleted when it is enabled again, so token-only routes
/// ([`AuthUserId`]), which do not load the user, refuse it without a
/// database query (device logins read the account with the binding).
pub fn disabled_key(user_id: i64) -> String {
    format!("{DISABLED_PREFIX}{user_id}")
}

/// The prefix of [`disabled_key`].
pub const DISABLED_PREFIX: &str = "user:disabled:";

/// The `403` a disabled account gets.
pub fn account_disabled() -> ApiError {
    lty_core::Error::Forbidden {
        message: "this account is disabled",
    }
    .into()
}

/// Sets (`disabled`) or clears the disabled marker of `user_id`.
pub async fn mark_disabled(state: &AppState, user_id: i64, disabled: bool) -> Result<(), ApiError> {
    let key = disabled_key(user_id);
    if disabled {
        state.cache.set(&key, "1", None).await?;
    } else {
        state.cache.delete(&key).await?;
    }
    Ok(())
}

/// A valid user token and its user id, without loading the user: for
/// handlers that read the user in a query of their own.
#[derive(Debug, Clone)]
pub struct AuthUserId {
    pub user_id: i64,
    pub token: String,
}

impl FromRequestParts<AppState> for AuthUserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?.to_owned();
        // The token and the disabled marker in one cache round trip.
        let (user_id, disabled) = state
            .tokens
            .resolve_marked(TokenKind::User, &token, DISABLED_PREFIX)
            .await?
            .ok_or_else(invalid_token)?;
        tracing::Span::current().record("user_id", user_id);
        if disabled {
            return Err(account_disabled());
        }
        Ok(Self { user_id, token })
    }
}

/// The authenticated admin of a request (`admin_token:{token}`), and the
/// token it presented.
#[derive(Debug, Clone)]
pub struct AuthAdmin {
    pub admin: Admin,
    pub token: String,
}

impl AuthAdmin {
    /// `403 forbidden` unless the admin's role includes `role`
    /// (`superadmin` includes `operator`).
    pub fn require(&self, role: AdminRole) -> Result<(), ApiError> {
        if self.admin.role.includes(role) {
            Ok(())
        } else {
            Err(lty_core::Error::Forbidden {
                message: "this needs a higher admin role",
            }
            .into())
        }
    }
}

impl FromRequestParts<AppState> for AuthAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?.to_owned();
        let id = state
            .tokens
            .resolve(TokenKind::Admin, &token)
            .await?
            .ok_or_else(invalid_token)?;
        match state.admins.get(id).await? {
            Some(admin) if admin.is_active => {
                tracing::Span::current().record("admin_id", admin.id);
                crate::http::admin::policy::enforce(state, &admin, parts).await?;
                Ok(Self { admin, token })
            }
            Some(_) => Err(lty_core::Error::Forbidden {
                message: "this admin account is disabled",
            }
            .into()),
            None => Err(invalid_token().into()),
        }
    }
}
