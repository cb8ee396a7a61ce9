//! The backends each test runs against: always the embedded ones (a SQLite
//! file in a temporary directory, the in-process cache and pub/sub), and
//! PostgreSQL and Redis as well when `TEST_DATABASE_URL` / `TEST_REDIS_URL`
//! are set. Every run gets a SQLite file, PostgreSQL database
//! (`lty_test_<hex>`) or Redis key prefix (`test:<hex>:`) of its own, removed
//! afterwards whether the test passed or not. Tests that only make sense
//! on Redis are `#[ignore]`d and fail, rather than pass, without it: the
//! PostgreSQL + Redis leg of `.ci/run` runs them with `--include-ignored`.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use lty_core::ports::{Cache, PubSub, Subscription};
use lty_store::cache::{MemoryCache, RedisCache, RedisConnection, RedisSettings};
use lty_store::provision::{create_postgres_database, drop_postgres_database, with_database};
use lty_store::pubsub::{LogSettings, MemoryPubSub, RedisPubSub};
use lty_store::{Database, DatabaseKind, PoolOptions};

/// How long a receive may take before the test fails. It only turns a hang
/// into a failure: a healthy backend answers in milliseconds.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A short expiry for expiry tests, and a sleep comfortably past it.
pub const SHORT_TTL: Duration = Duration::from_millis(300);
pub const PAST_SHORT_TTL: Duration = Duration::from_secs(1);

fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// 64 random bits as 16 lowercase hex digits, to name per-test resources.
pub fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("lty_test_{}", random_hex()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {err}", self.0.display());
        }
    }
}

/// A backend one test runs against.
pub trait Backend {
    /// Named in failure messages.
    fn name(&self) -> &'static str;
    /// Removes what the backend created for the test.
    async fn cleanup(self);
}

/// Runs `test` against each backend in turn, cleaning each up afterwards
/// even when the test panicked, then fails naming every backend it failed on.
async fn run_each<B: Backend>(backends: Vec<B>, test: impl AsyncFn(&B)) {
    let mut failures = Vec::new();
    for backend in backends {
        let name = backend.name();
        let outcome = AssertUnwindSafe(test(&backend)).catch_unwind().await;
        backend.cleanup().await;
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("[{name}] {message}"));
        }
    }
    assert!(failures.is_empty(), "failed on:\n{}", failures.join("\n"));
}

// Small pools: tests run in parallel, each with databases of its own.
fn pool_options() -> PoolOptions {
    PoolOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        ..PoolOptions::default()
    }
}

/// A database of one test, on one engine.
pub struct TestDb {
    pub kind: DatabaseKind,
    pub db: Database,
    place: DbPlace,
}

enum DbPlace {
    Sqlite(TempDir),
    Postgres { admin_url: String, database: String },
}

impl Backend for TestDb {
    fn name(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        }
    }

    async fn cleanup(self) {
        self.db.close().await;
        match self.place {
            DbPlace::Sqlite(dir) => drop(dir),
            DbPlace::Postgres {
                admin_url,
                database,
            } => drop_postgres_database(&admin_url, &database)
                .await
                .unwrap_or_else(|e| panic!("could not drop database {database}: {e}")),
        }
    }
}

/// Fresh, empty (unmigrated) databases: SQLite, and PostgreSQL when
/// `TEST_DATABASE_URL` is set.
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_database().await];
    if let Some(admin_url) = env_url("TEST_DATABASE_URL") {
        dbs.push(postgres_database(admin_url).await);
    }
    dbs
}

async fn sqlite_database() -> TestDb {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("lty.db").display());
    let db = Database::connect(&url, &pool_options())
        .await
        .unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    TestDb {
        kind: DatabaseKind::Sqlite,
        db,
        place: DbPlace::Sqlite(dir),
    }
}

async fn postgres_database(admin_url: String) -> TestDb {
    let database = format!("lty_test_{}", random_hex());
    create_postgres_database(&admin_url, &database)
        .await
        .unwrap_or_else(|e| panic!("could not create database {database}: {e}"));
    let url = with_database(&admin_url, &database).expect("TEST_DATABASE_URL is a URL");
    let db = match Database::connect(&url, &pool_options()).await {
        Ok(db) => db,
        Err(e) => {
            let _ = drop_postgres_database(&admin_url, &database).await;
            panic!("could not connect to {database}: {e}");
        }
    };
    TestDb {
        kind: DatabaseKind::Postgres,
        db,
        place: DbPlace::Postgres {
            admin_url,
            database,
        },
    }
}

/// Runs `test` on each fresh, unmigrated database.
pub async fn each_empty_database(test: impl AsyncFn(&TestDb)) {
    run_each(databases().await, test).await;
}

/// Runs `test` on each fresh database with every migration applied.
pub async fn each_database(test: impl AsyncFn(&TestDb)) {
    run_each(databases().await, async |t: &TestDb| {
        t.db.migrate().await.expect("migrations apply");
        test(t).await;
    })
    .await;
}

/// The keys of one test in a shared Redis: a unique prefix, and a plain
/// connection (to one server or a cluster) to look at (and finally delete)
/// them without the adapters.
pub struct RedisKeys {
    prefix: String,
    conn: RedisConnection,
}

impl RedisKeys {
    /// Settings with a new `test:<hex>:` prefix, and a cache connected with
    /// them.
    async fn connect(url: &str) -> (RedisSettings, RedisCache, Self) {
        let settings = RedisSettings {
            url: url.to_owned(),
            password: None,
            key_prefix: format!("test:{}:", random_hex()),
            timeout: Duration::from_secs(2),
        };
        let cache = RedisCache::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("could not connect to {url}: {e}"));
        let keys = Self {
            prefix: settings.key_prefix.clone(),
            conn: cache.connection(),
        };
        (settings, cache, keys)
    }

    async fn get(&self, key: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("GET")
    }

    /// Deletes every key under the prefix (`KEYS` reaches every master of
    /// a cluster; `DEL` one key at a time, as keys may be on any slot).
    async fn delete_all(self) {
        let mut conn = self.conn;
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        for key in keys {
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
    }
}

/// A cache of one test.
pub struct TestCache {
    pub name: &'static str,
    pub cache: Arc<dyn Cache>,
    redis: Option<RedisKeys>,
}

impl TestCache {
    /// The value stored under exactly `key`, read past the adapter: a plain
    /// Redis GET of the prefixed key (the production prefix is empty), or
    /// the in-process map.
    pub async fn stored(&self, key: &str) -> Option<String> {
        match &self.redis {
            Some(redis) => redis.get(key).await,
            None => self.cache.get(key).await.expect("get"),
        }
    }
}

impl TestCache {
    /// Members of the sorted set `key` held in Redis, expired marks
    /// included: a plain `ZCARD` of the prefixed key.
    pub async fn stored_members(&self, key: &str) -> usize {
        let redis = self.redis.as_ref().expect("a Redis cache");
        let mut conn = redis.conn.clone();
        redis::cmd("ZCARD")
            .arg(format!("{}{key}", redis.prefix))
            .query_async(&mut conn)
            .await
            .expect("ZCARD")
    }
}

/// Runs `test` on Redis under a fresh key prefix: a test using this is
/// `#[ignore]`d (run by the PostgreSQL + Redis leg) and fails when
/// `TEST_REDIS_URL` is unset.
pub async fn with_redis_cache(test: impl AsyncFn(&TestCache)) {
    let url = env_url("TEST_REDIS_URL")
        .expect("this test needs Redis: set TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)");
    let (_, cache, keys) = RedisKeys::connect(&url).await;
    let cache = TestCache {
        name: "redis",
        cache: Arc::new(cache),
        redis: Some(keys),
    };
    run_each(vec![cache], test).await;
}

impl Backend for TestCache {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn cleanup(self) {
        if let Some(redis) = self.redis {
            redis.delete_all().await;
        }
    }
}

/// Runs `test` on a fresh in-process cache, and on Redis under a fresh key
/// prefix when `TEST_REDIS_URL` is set.
pub async fn each_cache(test: impl AsyncFn(&TestCache)) {
    let mut caches = vec![TestCache {
        name: "memory",
        cache: Arc::new(MemoryCache::new()),
        redis: None,
    }];
    if let Some(url) = env_url("TEST_REDIS_URL") {
        let (_, cache, keys) = RedisKeys::connect(&url).await;
        caches.push(TestCache {
            name: "redis",
            cache: Arc::new(cache),
            redis: Some(keys),
        });
    }
    run_each(caches, test).await;
}

/// A pub/sub of one test.
pub struct TestPubSub {
    pub name: &'static str,
    pub pubsub: Arc<dyn PubSub>,
    redis: Option<RedisKeys>,
}

impl TestPubSub {
    /// Whether this is the Redis adapter (whose publishes report instances).
    pub fn is_redis(&self) -> bool {
        self.redis.is_some()
    }
}

impl Backend for TestPubSub {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn cleanup(self) {
        if let Some(redis) = self.redis {
            redis.delete_all().await;
        }
    }
}

/// Runs `test` on a fresh in-process pub/sub, and on Redis under a fresh
/// channel prefix when `TEST_REDIS_URL` is set.
pub async fn each_pubsub(test: impl AsyncFn(&TestPubSub)) {
    each_pubsub_with_log(LogSettings::default(), test).await;
}

/// [`each_pubsub`] with replay logs of `log`.
pub async fn each_pubsub_with_log(log: LogSettings, test: impl AsyncFn(&TestPubSub)) {
    let mut pubsubs = vec![TestPubSub {
        name: "memory",
        pubsub: Arc::new(MemoryPubSub::with_log(log)),
        redis: None,
    }];
    if let Some(url) = env_url("TEST_REDIS_URL") {
        let (settings, cache, keys) = RedisKeys::connect(&url).await;
        let pubsub = RedisPubSub::connect_with_log(&settings, &cache, log)
            .await
            .expect("Redis subscriber connects");
        pubsubs.push(TestPubSub {
            name: "redis",
            pubsub: Arc::new(pubsub),
            redis: Some(keys),
        });
    }
    run_each(pubsubs, test).await;
}

/// Two lty instances ("servers") sharing one Redis under one prefix.
pub struct RedisInstances {
    pub a: RedisPubSub,
    pub b: RedisPubSub,
    keys: RedisKeys,
}

impl Backend for RedisInstances {
    fn name(&self) -> &'static str {
        "redis, two instances"
    }

    async fn cleanup(self) {
        self.keys.delete_all().await;
    }
}

/// Runs `test` on two Redis pub/sub instances. Only Redis has instances to
/// speak of, so a test using this is `#[ignore]`d (run by the PostgreSQL +
/// Redis leg) and fails when `TEST_REDIS_URL` is unset.
pub async fn with_two_redis_instances(test: impl AsyncFn(&RedisInstances)) {
    let url = env_url("TEST_REDIS_URL")
        .expect("this test needs Redis: set TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)");
    let (settings, cache_a, keys) = RedisKeys::connect(&url).await;
    // Instance B has a connection of its own, as another process would.
    let cache_b = RedisCache::connect(&settings).await.expect("connect B");
    let a = RedisPubSub::connect(&settings, &cache_a)
        .await
        .expect("instance A subscribes");
    let b = RedisPubSub::connect(&settings, &cache_b)
        .await
        .expect("instance B subscribes");
    run_each(vec![RedisInstances { a, b, keys }], test).await;
}

/// The next message of `sub` (`None` once it ended), failing the test
/// rather than hanging when nothing comes.
pub async fn recv(sub: &mut Subscription) -> Option<Bytes> {
    tokio::time::timeout(RECV_TIMEOUT, sub.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing received within {RECV_TIMEOUT:?}"))
}
