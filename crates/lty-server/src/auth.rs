//! Bearer authentication: `Authorization: Bearer {token}` → `token:{token}`
//! in the token store → an active user. Admin tokens live in their own key
//! space and never authenticate here.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
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
        Some(_) => Err(lty_core::Error::Forbidden {
            message: "this account is disabled",
        }
        .into()),
        None => Err(invalid_token().into()),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?.to_owned();
        let user = resolve_user(state, &token).await?;
        Ok(Self { user, token })
    }
}
