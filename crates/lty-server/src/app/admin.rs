//! Operator accounts: argon2id password hashes, login with lockout, and
//! creation (`lty admin create`).
//!
//! Login charges an attempt in the database before the password is
//! checked; after `auth.admin_max_failures` consecutive failures the account
//! is locked for `auth.admin_lockout_secs`. An unknown username costs the
//! same hash verification as a known one, so timing does not tell them
//! apart.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use lty_core::Error;
use lty_core::admin::{Admin, AdminRepo, AdminRole, validate_admin_username};
use lty_core::token::TokenKind;
use rand::RngCore;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Shortest accepted admin password.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Checks a new admin password: 10 to 1024 characters, not all spaces.
pub fn validate_password(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=1024).contains(&n) || password.trim().is_empty() {
        return Err(Error::validation(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to 1024 characters"),
        ));
    }
    Ok(())
}

/// An argon2id PHC hash of `password` with a random salt (the crate's
/// default, OWASP-recommended parameters).
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(hash_err)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(hash_err)
}

fn hash_err(e: impl std::fmt::Display) -> Error {
    Error::Backend(lty_core::BackendError::new("argon2", e))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

// Verified against when the username is unknown, so both cases cost one
// argon2 run.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&lty_core::token::generate_token()).unwrap_or_default())
}

async fn verify_blocking(hash: String, password: String) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .map_err(hash_err)
}

/// Creates an admin after validating the username and password.
pub async fn create_admin(
    repo: &dyn AdminRepo,
    username: &str,
    password: &str,
    role: AdminRole,
) -> Result<Admin, Error> {
    let username = validate_admin_username(username)?.to_owned();
    validate_password(password)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(hash_err)??;
    repo.create(&username, &hash, role).await
}

/// Logs a hint at start when there is no admin account yet.
pub async fn log_first_admin_hint(state: &AppState) {
    match state.admins.count().await {
        Ok(0) => tracing::warn!(
            "no admin account yet: create one with `lty admin create --username NAME` \
             (add --password-stdin to pipe the password)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot count admin accounts"),
    }
}

/// A failed admin login.
#[derive(Debug)]
pub enum LoginError {
    /// Any error with the usual shape.
    Api(ApiError),
    /// Too many failures: `429 {"code":"admin_locked"}` with `Retry-After`.
    Locked { retry_after: u64 },
}

impl From<ApiError> for LoginError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<Error> for LoginError {
    fn from(e: Error) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for LoginError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Locked { retry_after } => {
                let mut res = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "admin_locked",
                    format!("too many failed logins; this account is locked for {retry_after} s"),
                )
                .with_details(json!({ "retry_after": retry_after }))
                .into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                res
            }
        }
    }
}

fn bad_credentials() -> LoginError {
    LoginError::Api(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong username or password",
    ))
}

/// Checks `username` and `password` and issues an admin token.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<(Admin, String), LoginError> {
    let auth = &state.config.auth;
    let lockout = chrono::Duration::seconds(i64::try_from(auth.admin_lockout_secs).unwrap_or(900));
    let Some((admin, hash)) = state.admins.by_username(username.trim()).await? else {
        verify_blocking(dummy_hash().to_owned(), password.to_owned()).await?;
        return Err(bad_credentials());
    };
    let now = Utc::now();
    let locked_for = |until: chrono::DateTime<Utc>| LoginError::Locked {
        retry_after: u64::try_from((until - Utc::now()).num_seconds().max(1)).unwrap_or(1),
    };
    if let Some(until) = admin.locked_until.filter(|u| *u > now) {
        return Err(locked_for(until));
    }
    let max = i32::try_from(auth.admin_max_failures).unwrap_or(5);
    let Some(attempt) = state.admins.charge_attempt(admin.id, now).await? else {
        return Err(locked_for(now + lockout));
    };
    if attempt > max {
        state.admins.lock(admin.id, now + lockout).await?;
        return Err(locked_for(now + lockout));
    }
    if !verify_blocking(hash, password.to_owned()).await? {
        if attempt >= max {
            tracing::warn!(
                admin_id = admin.id,
                "admin account locked after repeated failures"
            );
            state.admins.lock(admin.id, now + lockout).await?;
            return Err(locked_for(now + lockout));
        }
        return Err(bad_credentials());
    }
    if !admin.is_active {
        return Err(LoginError::Api(
            Error::Forbidden {
                message: "this admin account is disabled",
            }
            .into(),
        ));
    }
    state.admins.login_succeeded(admin.id, Utc::now()).await?;
    let token = state.tokens.issue(TokenKind::Admin, admin.id).await?;
    Ok((admin, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate_password("123456789").is_err());
        assert!(validate_password("          ").is_err());
        assert!(validate_password("1234567890").is_ok());
    }
}
