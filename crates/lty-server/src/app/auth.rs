//! Who a user token belongs to, and the disabled-account marker that lets
//! token-only checks refuse a disabled family without a database query.
//! The HTTP extractors over these are in [`crate::auth`]; the WebSocket
//! handshake uses them too.

use lty_core::token::{TokenKind, invalid_token};
use lty_core::user::User;
use lty_core::{Error, Result};

use crate::state::AppState;

/// Resolves a user token to an active user.
pub async fn resolve_user(state: &AppState, token: &str) -> Result<User> {
    let id = state
        .tokens
        .resolve(TokenKind::User, token)
        .await?
        .ok_or_else(invalid_token)?;
    match state.db.user(id).await? {
        Some(user) if user.is_active => Ok(user),
        Some(_) => Err(account_disabled()),
        None => Err(invalid_token()),
    }
}

/// The cache key marking a disabled user. Set when an operator disables
/// the account and deleted when it is enabled again, so token-only routes
/// ([`crate::auth::AuthUserId`]), which do not load the user, refuse it without a
/// database query (device logins read the account with the binding).
pub fn disabled_key(user_id: i64) -> String {
    format!("{DISABLED_PREFIX}{user_id}")
}

/// The prefix of [`disabled_key`].
pub const DISABLED_PREFIX: &str = "user:disabled:";

/// The `403` a disabled account gets.
pub fn account_disabled() -> Error {
    Error::Forbidden {
        message: "this account is disabled",
    }
}

/// Sets (`disabled`) or clears the disabled marker of `user_id`.
pub async fn mark_disabled(state: &AppState, user_id: i64, disabled: bool) -> Result<()> {
    let key = disabled_key(user_id);
    if disabled {
        state.cache.set(&key, "1", None).await?;
    } else {
        state.cache.delete(&key).await?;
    }
    Ok(())
}

/// Sets the disabled marker ([`disabled_key`]) of every
/// disabled user, e.g. at start after the cache lost its data, so token-only
/// routes keep refusing them (device logins read the account itself).
/// Returns how many were set.
pub async fn restore_disabled_markers(state: &AppState) -> Result<usize> {
    let ids = state.db.disabled_user_ids().await?;
    for &id in &ids {
        mark_disabled(state, id, true).await?;
    }
    Ok(ids.len())
}

/// Logs out `token` of `user_id`: the token stops working, and the device
/// sockets it opened are closed (4002) on every instance, through a control
/// message on the family's group that names the token by its fingerprint.
pub async fn logout(state: &AppState, user_id: i64, token: &str) -> Result<()> {
    state.tokens.revoke(TokenKind::User, token).await?;
    let fingerprint = crate::ws::protocol::token_fingerprint(token);
    // A control message: not kept in the family's replay log.
    state
        .pubsub
        .publish_control(
            &crate::ws::protocol::device_group(user_id),
            crate::ws::protocol::kick_token_message(&fingerprint),
        )
        .await?;
    Ok(())
}
