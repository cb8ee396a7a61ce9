//! The Redis cache. Keys keep the legacy formats; an optional prefix (empty
//! in production) isolates test runs sharing one Redis.

use std::time::Duration;

use async_trait::async_trait;
use lty_core::ports::Cache;
use lty_core::{BackendError, Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, IntoConnectionInfo, Script};

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db` (the legacy `REDIS_LOCATION`).
    pub url: String,
    /// Password, when not in the URL (the legacy `REDIS_PASSWORD`).
    pub password: Option<String>,
    /// Prepended to every key and channel name.
    pub key_prefix: String,
    /// Bound on connecting and on each command.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub(crate) fn redis_err(err: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::new("redis", err))
}

/// A Redis client for `settings`, with the password applied.
pub fn redis_client(settings: &RedisSettings) -> Result<Client> {
    let mut info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(redis_err)?;
    if let Some(password) = settings.password.as_deref().filter(|p| !p.is_empty()) {
        let redis = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(redis);
    }
    Client::open(info).map_err(redis_err)
}

// Increments and starts the window in one round trip, atomically, so a
// crash between INCR and PEXPIRE can never leave a counter without expiry.
const INCR_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

// A value and whether the marker key named by it exists, in one round
// trip. The marker key is built from the value inside the script, so it
// is not declared in KEYS: fine on one Redis server (or a replica set),
// not on Redis Cluster, which lty does not use.
const GET_MARKED_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('EXISTS', ARGV[1] .. v)}
";

/// The production cache.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    incr: Script,
    get_marked: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects; fails when Redis cannot be reached within the timeout.
    pub async fn connect(settings: &RedisSettings) -> Result<Self> {
        let client = redis_client(settings)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            settings.timeout * 3,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| redis_err("timed out connecting"))?
        .map_err(redis_err)?;
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            incr: Script::new(INCR_SCRIPT),
            get_marked: Script::new(GET_MARKED_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    /// The shared connection, for other Redis adapters of this instance.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        conn.get(self.key(key)).await.map_err(redis_err)
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let mut conn = self.conn.clone();
        match ttl {
            Some(ttl) => conn
                .pset_ex::<_, _, ()>(self.key(key), value, millis(ttl))
                .await
                .map_err(redis_err),
            None => conn
                .set::<_, _, ()>(self.key(key), value)
                .await
                .map_err(redis_err),
        }
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = conn.del(self.key(key)).await.map_err(redis_err)?;
        Ok(n > 0)
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<(i64, Duration)> {
        let mut conn = self.conn.clone();
        let (n, ttl_ms): (i64, i64) = self
            .incr
            .key(self.key(key))
            .arg(millis(window))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok((n, Duration::from_millis(ttl_ms.max(0).unsigned_abs())))
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        let mut conn = self.conn.clone();
        let ms: i64 = conn.pttl(self.key(key)).await.map_err(redis_err)?;
        // PTTL: -2 = no such key, -1 = no expiry.
        Ok(match ms {
            -2 => None,
            -1 => Some(Duration::MAX),
            ms => Some(Duration::from_millis(ms.max(0).unsigned_abs())),
        })
    }

    async fn get_marked(&self, key: &str, marker_prefix: &str) -> Result<Option<(String, bool)>> {
        let mut conn = self.conn.clone();
        let reply: Option<(String, i64)> = self
            .get_marked
            .key(self.key(key))
            .arg(self.key(marker_prefix))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(reply.map(|(value, marked)| (value, marked > 0)))
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }
}
