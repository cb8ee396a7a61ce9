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

pub use crate::app::auth::{DISABLED_PREFIX, account_disabled, disabled_key, resolve_user};
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

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?.to_owned();
        let user = resolve_user(state, &token).await?;
        tracing::Span::current().record("user_id", user.id);
        Ok(Self { user, token })
    }
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
            return Err(account_disabled().into());
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
        match state.db.admin(id).await? {
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
