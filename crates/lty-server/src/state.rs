//! `AppState`: the ports and settings every handler needs, built once at
//! start-up from configuration (embedded or production adapters).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lty_core::ports::{BlobStore, Cache, PubSub};
use lty_core::token::{CacheTokenStore, TOKEN_TTL, TokenStore};
use lty_store::blob::{S3Options, S3Urls};
use lty_store::cache::{MemoryCache, RedisCache, RedisSettings};
use lty_store::pubsub::{Hub, LogSettings, MemoryPubSub, RedisPubSub};
use lty_store::{Database, OpendalBlobStore, OssBlobStore, OssOptions, OssUrls, PoolOptions};
use lty_vendors::volcengine::openapi::OpenApiClient;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Secret};
use crate::telemetry;

/// Which adapter backs the cache and pub/sub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    Memory,
    Redis,
}

/// Shared application state: one reference-counted [`Services`], so that
/// the clone every request and socket makes is one counter, not one per
/// field. Fields are read through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Services {
    pub config: Arc<Config>,
    pub db: Database,
    pub cache: Arc<dyn Cache>,
    pub cache_backend: CacheBackend,
    pub tokens: Arc<dyn TokenStore>,
    pub pubsub: Arc<dyn PubSub>,
    /// The local fan-out hub behind `pubsub`, for metrics.
    pub hub: Arc<Hub>,
    pub blobs: Arc<dyn BlobStore>,
    /// SMS login codes and the sender behind them.
    pub sms: Arc<crate::app::sms::SmsCodes>,
    /// WeChat login; `None` without `WECHAT_APP_ID` / `WECHAT_APP_SECRET`.
    pub wechat: Option<Arc<lty_vendors::wechat::WechatClient>>,
    /// WeChat mini-program login; `None` without `WECHAT_MINI_APP_ID` /
    /// `WECHAT_MINI_APP_SECRET`.
    pub wechat_mini: Option<Arc<lty_vendors::wechat::WechatClient>>,
    /// Volcengine RTC OpenAPI (voice agent); `None` without AK/SK.
    pub volcengine: Option<OpenApiClient>,
    /// The LLM behind the chat routes; `None` without `KIMI_API_KEY`.
    pub chat: Option<Arc<dyn lty_core::chat::ChatModel>>,
    /// The moderation API asked besides the blocked terms; `None` without
    /// `LTY_AI__MODERATION_URL`.
    pub moderator: Option<Arc<dyn lty_core::chat::Moderator>>,
    /// TTS and ASR adapters (`AUDIO_SERVICE_PROVIDER`).
    pub speech: Arc<crate::app::speech::Speech>,
    /// The vision provider of `/api/ai/image/` (`LTY_IMAGE__PROVIDER`).
    pub vision: Option<Arc<crate::app::vision::Vision>>,
    pub metrics: PrometheusHandle,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// The WebSocket sessions (device and xiaozhi channels), which outlive
    /// their HTTP connection: shutdown waits for them to send their close.
    pub socket_tasks: TaskTracker,
    /// Open device sockets per family and per IP on this instance.
    pub sockets: Arc<crate::server::connections::SocketCaps>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db.kind())
            .field("cache", &self.cache_backend)
            .finish_non_exhaustive()
    }
}

/// Connects to the configured database and migrates it.
pub async fn connect_database(config: &Config) -> anyhow::Result<Database> {
    let opts = PoolOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout_secs.max(1)),
        ..PoolOptions::default()
    };
    let db = Database::connect(&config.database_url(), &opts)
        .await
        .context("cannot connect to the database")?;
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

impl AppState {
    /// Connects every backend named by `config` and migrates the database.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics_handle();
        let db = connect_database(&config).await?;

        let log = LogSettings {
            max_len: config.ws.replay_len,
            window: Duration::from_secs(config.ws.replay_window_secs.max(1)),
        };
        let (cache, pubsub, hub, cache_backend): (Arc<dyn Cache>, Arc<dyn PubSub>, _, _) =
            match &config.redis.location {
                Some(url) => {
                    let settings = RedisSettings {
                        url: url.clone(),
                        password: config
                            .redis
                            .password
                            .as_ref()
                            .map(|p| p.expose().to_owned()),
                        key_prefix: config.redis.key_prefix.clone(),
                        timeout: config.redis_timeout(),
                    };
                    let cache = RedisCache::connect(&settings)
                        .await
                        .context("cannot connect to Redis (REDIS_LOCATION)")?;
                    let pubsub = RedisPubSub::connect_with_log(&settings, &cache, log)
                        .await
                        .context("cannot subscribe on Redis (REDIS_LOCATION)")?;
                    let hub = pubsub.hub().clone();
                    (Arc::new(cache), Arc::new(pubsub), hub, CacheBackend::Redis)
                }
                None => {
                    let pubsub = MemoryPubSub::with_log(log);
                    let hub = pubsub.hub().clone();
                    (
                        Arc::new(MemoryCache::new()),
                        Arc::new(pubsub),
                        hub,
                        CacheBackend::Memory,
                    )
                }
            };

        let blobs = blob_store(&config)?;
        // Embedded mode keeps tokens in the database so a restart logs
        // nobody out; with Redis they live there, as in the legacy system.
        let tokens: Arc<dyn lty_core::token::TokenStore> = match cache_backend {
            CacheBackend::Redis => Arc::new(CacheTokenStore::new(cache.clone(), TOKEN_TTL)),
            CacheBackend::Memory => Arc::new(lty_store::tokens::DbTokenStore::new(
                db.clone(),
                cache.clone(),
                TOKEN_TTL,
            )),
        };
        let volcengine = crate::app::voice_chat::openapi_client(&config)?;
        let sms = Arc::new(crate::app::sms::SmsCodes::build(&config, cache.clone())?);
        let wechat = crate::app::wechat::client(&config)?;
        let wechat_mini = crate::app::wechat::mini_client(&config)?;
        let chat = crate::app::chat::chat_model(&config)?;
        let moderator = crate::app::chat::moderator(&config)?;
        let speech = Arc::new(crate::app::speech::build(&config)?);
        let vision = crate::app::vision::vision(&config)?;

        Ok(Self(Arc::new(Services {
            config: Arc::new(config),
            db,
            cache,
            cache_backend,
            tokens,
            pubsub,
            hub,
            blobs,
            volcengine,
            chat,
            moderator,
            speech,
            vision,
            sms,
            wechat,
            wechat_mini,
            metrics,
            shutdown: CancellationToken::new(),
            socket_tasks: TaskTracker::new(),
            sockets: Arc::default(),
        })))
    }
}

/// Where media objects are kept (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// `data_dir/media`, served under `/media/`.
    Fs,
    /// Aliyun OSS.
    Oss,
    /// An S3-compatible bucket (`storage.s3`).
    S3,
}

/// The configured storage backend: `storage.backend`, else OSS when its
/// bucket and AccessKey pair are set, else the local directory.
pub fn storage_backend(config: &Config) -> anyhow::Result<StorageBackend> {
    let oss = &config.aliyun.oss;
    let has_oss = oss.bucket.as_deref().is_some_and(|b| !b.is_empty())
        && oss.access_key_id.as_deref().is_some_and(|k| !k.is_empty())
        && oss.access_key_secret.is_some();
    match config.storage.backend.as_deref().map(str::trim) {
        None | Some("") => Ok(if has_oss {
            StorageBackend::Oss
        } else {
            StorageBackend::Fs
        }),
        Some("fs") => Ok(StorageBackend::Fs),
        Some("oss") if has_oss => Ok(StorageBackend::Oss),
        Some("oss") => anyhow::bail!(
            "storage.backend = oss needs ALIYUN_OSS_BUCKET, ALIYUN_OSS_ACCESS_KEY_ID and ALIYUN_OSS_ACCESS_KEY_SECRET"
        ),
        Some("s3") => {
            let s3 = &config.storage.s3;
            let missing: Vec<&str> = [
                ("LTY_STORAGE__S3__BUCKET", s3.bucket.as_deref()),
                (
                    "LTY_STORAGE__S3__ACCESS_KEY_ID",
                    s3.access_key_id.as_deref(),
                ),
                (
                    "LTY_STORAGE__S3__SECRET_ACCESS_KEY",
                    s3.secret_access_key.as_ref().map(Secret::expose),
                ),
            ]
            .into_iter()
            .filter(|(_, value)| value.is_none_or(|v| v.trim().is_empty()))
            .map(|(name, _)| name)
            .collect();
            if missing.is_empty() {
                Ok(StorageBackend::S3)
            } else {
                anyhow::bail!("storage.backend = s3 needs {}", missing.join(", "))
            }
        }
        Some(other) => {
            anyhow::bail!("storage.backend must be `fs`, `oss` or `s3`, not `{other}`")
        }
    }
}

/// `https://` added when there is no scheme, trailing `/` dropped.
fn normalize_base(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    }
}

/// Where OSS requests go. `ALIYUN_OSS_ENDPOINT` is a region endpoint
/// (`oss-cn-hangzhou.aliyuncs.com`, addressed virtual-hosted as
/// `<bucket>.<endpoint>`) or already a host bound to the bucket (its domain,
/// a CNAME); without it, requests go to `ALIYUN_OSS_HOST`.
fn oss_endpoint(
    bucket: &str,
    endpoint: Option<&str>,
    host: Option<&str>,
) -> anyhow::Result<String> {
    let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) else {
        let host = host.context("the OSS backend needs ALIYUN_OSS_ENDPOINT or ALIYUN_OSS_HOST")?;
        return Ok(normalize_base(host));
    };
    let base = normalize_base(endpoint);
    let url = url::Url::parse(&base).context("ALIYUN_OSS_ENDPOINT is not a URL")?;
    let host_name = url.host_str().unwrap_or("");
    if host_name.starts_with("oss-") {
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(format!("{}://{bucket}.{host_name}{port}", url.scheme()))
    } else {
        Ok(base)
    }
}

/// The S3 store of `storage.s3` (see [`storage_backend`]).
fn s3_store(config: &Config) -> anyhow::Result<OpendalBlobStore> {
    let s3 = &config.storage.s3;
    let (Some(bucket), Some(id), Some(secret)) =
        (&s3.bucket, &s3.access_key_id, &s3.secret_access_key)
    else {
        anyhow::bail!("the S3 backend needs a bucket and an access key pair");
    };
    let region = s3.region.trim();
    anyhow::ensure!(!region.is_empty(), "LTY_STORAGE__S3__REGION is empty");
    let endpoint = match s3.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(endpoint) => normalize_base(endpoint),
        None => format!("https://s3.{region}.amazonaws.com"),
    };
    url::Url::parse(&endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .with_context(|| format!("LTY_STORAGE__S3__ENDPOINT `{endpoint}` is not an http(s) URL"))?;
    let urls = if config.storage.public_read {
        // Without a public base, objects are read from the bucket itself.
        let base = match s3.public_base.as_deref().filter(|b| !b.trim().is_empty()) {
            Some(base) => normalize_base(base),
            None if s3.virtual_host_style => {
                let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", &endpoint));
                format!("{scheme}://{bucket}.{host}")
            }
            None => format!("{endpoint}/{bucket}"),
        };
        S3Urls::Public { base }
    } else {
        S3Urls::Presigned {
            expiry: Duration::from_secs(config.storage.url_expiry_secs.max(1)),
        }
    };
    let store = OpendalBlobStore::s3(S3Options {
        endpoint,
        region: region.to_owned(),
        bucket: bucket.clone(),
        access_key_id: id.clone(),
        secret_access_key: secret.expose().to_owned(),
        virtual_host_style: s3.virtual_host_style,
        urls,
        timeout: Duration::from_secs(config.storage.timeout_secs.max(1)),
    })?;
    Ok(store)
}

/// The blob store for `config` (see [`storage_backend`]).
fn blob_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    match storage_backend(config)? {
        StorageBackend::Fs => {
            let media = config.data_dir.join("media");
            let blobs = OpendalBlobStore::fs(&media, &format!("{}/media", config.public_base()))
                .context("cannot open the media directory")?;
            return Ok(Arc::new(blobs));
        }
        StorageBackend::S3 => return Ok(Arc::new(s3_store(config)?)),
        StorageBackend::Oss => {}
    }
    let oss = &config.aliyun.oss;
    let (Some(bucket), Some(id), Some(secret)) =
        (&oss.bucket, &oss.access_key_id, &oss.access_key_secret)
    else {
        anyhow::bail!("the OSS backend needs a bucket and an AccessKey pair");
    };
    let host = oss.host.as_deref().filter(|h| !h.trim().is_empty());
    let endpoint = oss_endpoint(bucket, oss.endpoint.as_deref(), host)?;
    let url_base = host.map_or_else(|| endpoint.clone(), normalize_base);
    let urls = if config.storage.public_read {
        OssUrls::Public { base: url_base }
    } else {
        OssUrls::Presigned {
            base: url_base,
            expiry: Duration::from_secs(config.storage.url_expiry_secs.max(1)),
        }
    };
    let store = OssBlobStore::new(OssOptions {
        bucket: bucket.clone(),
        endpoint,
        key: lty_vendors::aliyun::AccessKey::new(id, secret.expose()),
        urls,
        timeout: Duration::from_secs(config.storage.timeout_secs.max(1)),
    })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oss_requests_go_to_the_bucket_host() {
        let ep = |e: Option<&str>, h: Option<&str>| oss_endpoint("b", e, h).unwrap();
        assert_eq!(
            ep(Some("oss-cn-hangzhou.aliyuncs.com"), None),
            "https://b.oss-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            ep(
                Some("http://oss-cn-shanghai-internal.aliyuncs.com/"),
                Some("x")
            ),
            "http://b.oss-cn-shanghai-internal.aliyuncs.com"
        );
        assert_eq!(
            ep(Some("https://media.example.com"), None),
            "https://media.example.com"
        );
        assert_eq!(
            ep(None, Some("b.oss-cn-hangzhou.aliyuncs.com/")),
            "https://b.oss-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            ep(Some(" "), Some("http://127.0.0.1:9000")),
            "http://127.0.0.1:9000"
        );
        assert!(oss_endpoint("b", None, None).is_err());
    }
}
