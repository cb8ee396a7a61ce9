//! Login tokens: 160-bit random, stored in the cache under the legacy key
//! formats `token:{token}` (users) and `admin_token:{token}` (admins) with
//! the user's decimal id as the value and a 30-day expiry.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;

use crate::ports::Cache;
use crate::{Error, Result};

/// How long a token lives: 30 days, as in the legacy system.
pub const TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The key space a token belongs to. User and admin tokens never resolve in
/// each other's space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Parent app and device tokens: `token:{token}`.
    User,
    /// Operator tokens: `admin_token:{token}`.
    Admin,
}

impl TokenKind {
    /// The cache key for `token` in this key space.
    pub fn key(self, token: &str) -> String {
        match self {
            Self::User => format!("token:{token}"),
            Self::Admin => format!("admin_token:{token}"),
        }
    }
}

/// A new random token: 20 bytes as 40 lowercase hex characters (URL-path
/// safe, the legacy format).
pub fn generate_token() -> String {
    let mut raw = [0u8; 20];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Whether `token` could be a token at all. Anything else is refused before
/// it reaches the backend.
pub fn is_plausible_token(token: &str) -> bool {
    (1..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Issues, resolves and revokes login tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates a new token for `subject` (a user or admin id).
    async fn issue(&self, kind: TokenKind, subject: i64) -> Result<String>;
    /// The subject of `token`, if it exists and has not expired.
    async fn resolve(&self, kind: TokenKind, token: &str) -> Result<Option<i64>>;
    /// Deletes `token`; `true` when it existed.
    async fn revoke(&self, kind: TokenKind, token: &str) -> Result<bool>;
    /// The subject of `token`, as [`TokenStore::resolve`], and whether the
    /// cache key `{marker_prefix}{subject}` exists (e.g. a disabled-account
    /// marker), looked up in one round trip.
    async fn resolve_marked(
        &self,
        kind: TokenKind,
        token: &str,
        marker_prefix: &str,
    ) -> Result<Option<(i64, bool)>>;
}

/// The token store over any [`Cache`]: one implementation for the in-process
/// and Redis backends, so both keep the same formats.
#[derive(Clone)]
pub struct CacheTokenStore {
    cache: Arc<dyn Cache>,
    ttl: Duration,
}

impl CacheTokenStore {
    /// A token store keeping tokens in `cache` for `ttl`.
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self { cache, ttl }
    }
}

#[async_trait]
impl TokenStore for CacheTokenStore {
    async fn issue(&self, kind: TokenKind, subject: i64) -> Result<String> {
        let token = generate_token();
        self.cache
            .set(&kind.key(&token), &subject.to_string(), Some(self.ttl))
            .await?;
        Ok(token)
    }

    async fn resolve(&self, kind: TokenKind, token: &str) -> Result<Option<i64>> {
        if !is_plausible_token(token) {
            return Ok(None);
        }
        let Some(value) = self.cache.get(&kind.key(token)).await? else {
            return Ok(None);
        };
        // A value that is not a decimal id was not written by lty or the
        // legacy system: treat the token as unknown rather than failing.
        Ok(value.trim().parse::<i64>().ok())
    }

    async fn revoke(&self, kind: TokenKind, token: &str) -> Result<bool> {
        if !is_plausible_token(token) {
            return Ok(false);
        }
        self.cache.delete(&kind.key(token)).await
    }

    async fn resolve_marked(
        &self,
        kind: TokenKind,
        token: &str,
        marker_prefix: &str,
    ) -> Result<Option<(i64, bool)>> {
        if !is_plausible_token(token) {
            return Ok(None);
        }
        let Some((value, marked)) = self
            .cache
            .get_marked(&kind.key(token), marker_prefix)
            .await?
        else {
            return Ok(None);
        };
        let Ok(subject) = value.trim().parse::<i64>() else {
            return Ok(None);
        };
        if subject.to_string() == value {
            return Ok(Some((subject, marked)));
        }
        // A value not in canonical form (padded, leading zeros) named a
        // marker key that is never written; look up the subject's own one.
        let marked = self
            .cache
            .get(&format!("{marker_prefix}{subject}"))
            .await?
            .is_some();
        Ok(Some((subject, marked)))
    }
}

impl std::fmt::Debug for CacheTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheTokenStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Convenience: the unauthenticated error every bad token gets.
pub fn invalid_token() -> Error {
    Error::Unauthenticated {
        message: "invalid or expired token",
    }
}
