//! The Redis cache. Keys keep the legacy formats; an optional prefix (empty
//! in production) isolates test runs sharing one Redis. Redis is one server
//! (`redis://`) or a Redis Cluster (`redis+cluster://` and its seed nodes),
//! behind one [`RedisConnection`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lty_core::ports::Cache;
use lty_core::{BackendError, Error, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncCommands, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Script,
    Value,
};

/// The URL scheme that names a Redis Cluster by its seed nodes:
/// `redis+cluster://[user:password@]host:port,host:port,...`.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db` (the legacy `REDIS_LOCATION`), or
    /// `redis+cluster://host:port,host:port` for a Redis Cluster.
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
            .field("cluster", &self.is_cluster())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// Whether the URL names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        is_cluster_url(&self.url)
    }

    /// The nodes to connect to: the one server, or the cluster's seed
    /// nodes, with the password applied.
    pub fn nodes(&self) -> Result<Vec<ConnectionInfo>> {
        let urls = if self.is_cluster() {
            cluster_node_urls(self.url.trim())?
        } else {
            vec![self.url.clone()]
        };
        urls.into_iter().map(|url| self.node(&url)).collect()
    }

    /// `url` as connection info, with the password applied.
    pub(crate) fn node(&self, url: &str) -> Result<ConnectionInfo> {
        let mut info = url.into_connection_info().map_err(redis_err)?;
        if let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) {
            let redis = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(redis);
        }
        Ok(info)
    }
}

/// Whether `url` names a Redis Cluster (`redis+cluster://`).
pub fn is_cluster_url(url: &str) -> bool {
    url.trim_start()
        .get(..CLUSTER_SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(CLUSTER_SCHEME))
}

/// `redis+cluster://[auth@]a:1,b:2[/]` as `redis://[auth@]a:1` and
/// `redis://[auth@]b:2`. A cluster has only database 0.
fn cluster_node_urls(url: &str) -> Result<Vec<String>> {
    let invalid = |why: &str| Error::validation("redis_url", why.to_owned());
    let rest = &url[CLUSTER_SCHEME.len()..];
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !(path.is_empty() || path == "0") {
        return Err(invalid("a Redis Cluster has only database 0"));
    }
    let (auth, hosts) = match authority.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| format!("redis://{auth}{host}"))
        .collect();
    if nodes.is_empty() {
        return Err(invalid(
            "redis+cluster:// needs at least one host:port of the cluster",
        ));
    }
    Ok(nodes)
}

pub(crate) fn redis_err(err: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::new("redis", err))
}

/// A Redis client for one server of `settings` (the first node of a
/// cluster), with the password applied.
pub fn redis_client(settings: &RedisSettings) -> Result<Client> {
    let node = settings
        .nodes()?
        .into_iter()
        .next()
        .ok_or_else(|| redis_err("no Redis node configured"))?;
    Client::open(node).map_err(redis_err)
}

/// A shared, reconnecting connection to Redis: one server through a
/// connection manager, or a cluster through a connection that routes each
/// command to the node serving its key (and follows `MOVED`).
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Connects to the Redis of `settings`; fails when it cannot be reached
    /// within the timeout.
    pub async fn connect(settings: &RedisSettings) -> Result<Self> {
        let nodes = settings.nodes()?;
        let connecting = async {
            if settings.is_cluster() {
                let client = ClusterClientBuilder::new(nodes)
                    .connection_timeout(settings.timeout)
                    .response_timeout(settings.timeout)
                    .build()?;
                client.get_async_connection().await.map(Self::Cluster)
            } else {
                let node = nodes.into_iter().next().ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no node"))
                })?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.timeout))
                    .set_response_timeout(Some(settings.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_with_config(Client::open(node)?, config)
                    .await
                    .map(Self::Single)
            }
        };
        tokio::time::timeout(settings.timeout * 3, connecting)
            .await
            .map_err(|_| redis_err("timed out connecting"))?
            .map_err(redis_err)
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
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
// is not declared in KEYS: fine on one Redis server (or a replica set).
// Both are legacy keys that cannot share a hash tag, so on a cluster the
// two are read one after the other instead.
const GET_MARKED_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('EXISTS', ARGV[1] .. v)}
";

/// Every this many presence marks, the index's expired marks are dropped
/// too, so that an index nobody lists stays the size of its live members.
const PRUNE_EVERY_MARKS: u64 = 1024;

/// The production cache.
#[derive(Clone)]
pub struct RedisCache {
    conn: RedisConnection,
    prefix: String,
    incr: Script,
    get_marked: Script,
    /// Presence marks made through this cache (all its clones).
    marks: Arc<AtomicU64>,
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
        Ok(Self {
            conn: RedisConnection::connect(settings).await?,
            prefix: settings.key_prefix.clone(),
            incr: Script::new(INCR_SCRIPT),
            get_marked: Script::new(GET_MARKED_SCRIPT),
            marks: Arc::default(),
        })
    }

    fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    /// The shared connection, for other Redis adapters of this instance.
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }
}

/// Unix time in milliseconds, the score of presence marks (instances
/// share it, so their clocks are expected to agree, as NTP keeps them).
fn unix_millis() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
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
        if conn.is_cluster() {
            let Some(value): Option<String> = conn.get(self.key(key)).await.map_err(redis_err)?
            else {
                return Ok(None);
            };
            let marker = format!("{}{value}", self.key(marker_prefix));
            let marked: bool = conn.exists(marker).await.map_err(redis_err)?;
            return Ok(Some((value, marked)));
        }
        let reply: Option<(String, i64)> = self
            .get_marked
            .key(self.key(key))
            .arg(self.key(marker_prefix))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(reply.map(|(value, marked)| (value, marked > 0)))
    }

    async fn mark_present(&self, index: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut conn = self.conn.clone();
        let key = self.key(index);
        let now = unix_millis();
        conn.zadd::<_, _, _, ()>(&key, member, now.saturating_add(millis(ttl)))
            .await
            .map_err(redis_err)?;
        if self.marks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY_MARKS == PRUNE_EVERY_MARKS - 1 {
            let _: i64 = conn
                .zrembyscore(&key, "-inf", now)
                .await
                .map_err(redis_err)?;
        }
        Ok(())
    }

    async fn present(&self, index: &str) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let key = self.key(index);
        let now = unix_millis();
        let _: i64 = conn
            .zrembyscore(&key, "-inf", now)
            .await
            .map_err(redis_err)?;
        conn.zrangebyscore(&key, format!("({now}"), "+inf")
            .await
            .map_err(redis_err)
    }

    async fn count_present(&self, index: &str) -> Result<u64> {
        let mut conn = self.conn.clone();
        let now = unix_millis();
        conn.zcount(self.key(index), format!("({now}"), "+inf")
            .await
            .map_err(redis_err)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, password: Option<&str>) -> RedisSettings {
        RedisSettings {
            url: url.to_owned(),
            password: password.map(str::to_owned),
            key_prefix: String::new(),
            timeout: Duration::from_secs(1),
        }
    }

    fn addr(info: &ConnectionInfo) -> String {
        info.addr().to_string()
    }

    #[test]
    fn a_cluster_url_names_each_seed_node_with_the_credentials() {
        let s = settings("redis+cluster://:secret@10.0.0.1:7001,10.0.0.2:7002/", None);
        assert!(s.is_cluster());
        let nodes = s.nodes().unwrap();
        assert_eq!(
            nodes.iter().map(addr).collect::<Vec<_>>(),
            ["10.0.0.1:7001", "10.0.0.2:7002"]
        );
        assert!(
            nodes
                .iter()
                .all(|n| n.redis_settings().password() == Some("secret"))
        );
    }

    #[test]
    fn redis_password_applies_to_every_node_and_a_plain_url_is_one_server() {
        let s = settings("REDIS+CLUSTER://a:1,b:2", Some("pw"));
        assert!(s.is_cluster());
        assert!(
            s.nodes()
                .unwrap()
                .iter()
                .all(|n| n.redis_settings().password() == Some("pw"))
        );
        let single = settings("redis://127.0.0.1:6379/2", None);
        assert!(!single.is_cluster());
        let nodes = single.nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].redis_settings().db(), 2);
    }

    #[test]
    fn a_cluster_url_without_hosts_or_with_a_database_is_refused() {
        assert!(settings("redis+cluster://", None).nodes().is_err());
        assert!(settings("redis+cluster://a:1,b:2/3", None).nodes().is_err());
        assert!(settings("redis+cluster://a:1/0", None).nodes().is_ok());
    }
}
