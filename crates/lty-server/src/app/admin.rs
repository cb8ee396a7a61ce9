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
use chrono::Utc;
use lty_core::admin::{Admin, AdminRole, validate_admin_username};
use lty_core::token::TokenKind;
use lty_core::{Error, ErrorKind};
use rand::RngCore;
use serde_json::json;

use lty_store::Database;

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
    db: &Database,
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
    db.create_admin(&username, &hash, role).await
}

/// Logs a hint at start when there is no admin account yet.
pub async fn log_first_admin_hint(state: &AppState) {
    match state.db.count_admins().await {
        Ok(0) => tracing::warn!(
            "no admin account yet: create one with `lty admin create --username NAME` \
             (add --password-stdin to pipe the password)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot count admin accounts"),
    }
}

fn bad_credentials() -> Error {
    Error::coded(
        ErrorKind::Unauthenticated,
        "invalid_credentials",
        "wrong username or password",
    )
}

/// Too many failures: `admin_locked` (429) with the seconds to wait.
fn locked(retry_after: u64) -> Error {
    Error::coded(
        ErrorKind::Limited,
        "admin_locked",
        format!("too many failed logins; this account is locked for {retry_after} s"),
    )
    .with_details(json!({ "retry_after": retry_after }))
    .with_retry_after(retry_after)
}

/// Checks `username` and `password` and issues an admin token.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<(Admin, String), Error> {
    let auth = &state.config.auth;
    let lockout = chrono::Duration::seconds(i64::try_from(auth.admin_lockout_secs).unwrap_or(900));
    let Some((admin, hash)) = state.db.admin_by_username(username.trim()).await? else {
        verify_blocking(dummy_hash().to_owned(), password.to_owned()).await?;
        return Err(bad_credentials());
    };
    let now = Utc::now();
    let locked_for = |until: chrono::DateTime<Utc>| {
        locked(u64::try_from((until - Utc::now()).num_seconds().max(1)).unwrap_or(1))
    };
    if let Some(until) = admin.locked_until.filter(|u| *u > now) {
        return Err(locked_for(until));
    }
    let max = i32::try_from(auth.admin_max_failures).unwrap_or(5);
    let Some(attempt) = state.db.charge_admin_attempt(admin.id, now).await? else {
        return Err(locked_for(now + lockout));
    };
    if attempt > max {
        state.db.lock_admin(admin.id, now + lockout).await?;
        return Err(locked_for(now + lockout));
    }
    if !verify_blocking(hash, password.to_owned()).await? {
        if attempt >= max {
            tracing::warn!(
                admin_id = admin.id,
                "admin account locked after repeated failures"
            );
            state.db.lock_admin(admin.id, now + lockout).await?;
            return Err(locked_for(now + lockout));
        }
        return Err(bad_credentials());
    }
    if !admin.is_active {
        return Err(Error::Forbidden {
            message: "this admin account is disabled",
        });
    }
    state.db.admin_login_succeeded(admin.id, Utc::now()).await?;
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
