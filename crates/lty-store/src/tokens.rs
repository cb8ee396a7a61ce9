//! The embedded mode's token store: login tokens persisted in the database
//! (`login_tokens`, by SHA-256, never the token itself) with the same
//! 30-day expiry, so a restart or an upgrade logs nobody out. The
//! in-process cache stays in front: a token seen once resolves without a
//! query until it expires or is revoked, and the disabled-account markers
//! live there as in production. Production keeps tokens in Redis
//! ([`lty_core::token::CacheTokenStore`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use lty_core::Result;
use lty_core::ports::Cache;
use lty_core::token::{TokenKind, TokenStore, generate_token, is_plausible_token};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::Database;
use crate::db::db_err;
use crate::entity::login_token;

/// How often expired rows are deleted, at most.
const SWEEP_EVERY_SECS: i64 = 3600;

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::User => "user",
        TokenKind::Admin => "admin",
    }
}

/// Tokens in the database, with the cache in front.
#[derive(Clone)]
pub struct DbTokenStore {
    db: Database,
    cache: Arc<dyn Cache>,
    ttl: Duration,
    last_sweep: Arc<AtomicI64>,
}

impl std::fmt::Debug for DbTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTokenStore").finish_non_exhaustive()
    }
}

impl DbTokenStore {
    /// A store keeping tokens in `db` for `ttl`, cached in `cache`.
    pub fn new(db: Database, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self {
            db,
            cache,
            ttl,
            last_sweep: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Deletes expired tokens, at most once an hour.
    async fn sweep(&self) -> Result<()> {
        let now = Utc::now();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.timestamp() - last < SWEEP_EVERY_SECS
            || self
                .last_sweep
                .compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        login_token::Entity::delete_many()
            .filter(login_token::Column::ExpiresAt.lte(now))
            .exec(self.db.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The subject of `token` from the database, caching it for the rest
    /// of its life.
    async fn load(&self, kind: TokenKind, token: &str) -> Result<Option<i64>> {
        let now = Utc::now();
        let Some(row) = login_token::Entity::find_by_id(hash(token))
            .filter(login_token::Column::Kind.eq(kind_name(kind)))
            .filter(login_token::Column::ExpiresAt.gt(now))
            .one(self.db.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let left = (row.expires_at - now).to_std().unwrap_or_default();
        if !left.is_zero() {
            self.cache
                .set(&kind.key(token), &row.subject.to_string(), Some(left))
                .await?;
        }
        Ok(Some(row.subject))
    }
}

#[async_trait]
impl TokenStore for DbTokenStore {
    async fn issue(&self, kind: TokenKind, subject: i64) -> Result<String> {
        self.sweep().await?;
        let token = generate_token();
        let expires_at =
            Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(30));
        login_token::Entity::insert(login_token::ActiveModel {
            token_hash: Set(hash(&token)),
            kind: Set(kind_name(kind).to_owned()),
            subject: Set(subject),
            expires_at: Set(expires_at),
        })
        .exec(self.db.conn())
        .await
        .map_err(db_err)?;
        self.cache
            .set(&kind.key(&token), &subject.to_string(), Some(self.ttl))
            .await?;
        Ok(token)
    }

    async fn resolve(&self, kind: TokenKind, token: &str) -> Result<Option<i64>> {
        if !is_plausible_token(token) {
            return Ok(None);
        }
        if let Some(value) = self.cache.get(&kind.key(token)).await? {
            return Ok(value.trim().parse::<i64>().ok());
        }
        self.load(kind, token).await
    }

    async fn revoke(&self, kind: TokenKind, token: &str) -> Result<bool> {
        if !is_plausible_token(token) {
            return Ok(false);
        }
        let cached = self.cache.delete(&kind.key(token)).await?;
        let deleted = login_token::Entity::delete_many()
            .filter(login_token::Column::TokenHash.eq(hash(token)))
            .filter(login_token::Column::Kind.eq(kind_name(kind)))
            .exec(self.db.conn())
            .await
            .map_err(db_err)?;
        Ok(cached || deleted.rows_affected > 0)
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
        if let Some((value, marked)) = self
            .cache
            .get_marked(&kind.key(token), marker_prefix)
            .await?
        {
            return Ok(value.trim().parse::<i64>().ok().map(|id| (id, marked)));
        }
        let Some(subject) = self.load(kind, token).await? else {
            return Ok(None);
        };
        let marked = self
            .cache
            .get(&format!("{marker_prefix}{subject}"))
            .await?
            .is_some();
        Ok(Some((subject, marked)))
    }
}
