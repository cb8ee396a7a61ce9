//! Configuration: built-in defaults (embedded mode) → optional `lty.toml` →
//! the legacy environment variable names → `LTY_*` variables
//! (`LTY_HTTP__BODY_LIMIT` sets `http.body_limit`). Secrets never print.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Error as FigmentError, Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize, Serializer};

/// A secret value: usable by the code, `***` in every print and log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// How devices without a per-device secret may authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceAuthMode {
    /// MAC-only requests are accepted (the legacy fleet); warned at start.
    #[default]
    Legacy,
    /// Every device must sign its requests.
    Signed,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON unless stdout is a terminal.
    #[default]
    Auto,
    Json,
    Pretty,
}

/// The whole configuration. Defaults are embedded mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address `lty serve` listens on.
    pub bind: String,
    /// Public origin of this service (for URLs handed to devices and
    /// vendors); defaults to `http://{bind}`.
    pub public_base_url: Option<String>,
    /// Directory for the embedded database and media.
    pub data_dir: PathBuf,
    /// The legacy Django `SECRET_KEY`: keys the hashes of SMS login codes
    /// (without it, a random key kept in the cache is used).
    pub secret_key: Option<Secret>,
    /// The legacy `DEBUG` switch: debug-level logs.
    pub debug: bool,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub ws: WsConfig,
    /// `legacy` or `signed` (see docs/device-auth.md).
    pub device_auth: DeviceAuthMode,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub llm: LlmConfig,
    pub ai: AiConfig,
    pub volcengine: VolcengineConfig,
    pub audio: AudioConfig,
    pub storage: StorageConfig,
    pub aliyun: AliyunConfig,
    pub wechat: WechatConfig,
    pub image: ImageConfig,
}

/// Database selection: `url`, else PostgreSQL parts, else SQLite in `data_dir`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://...` or `sqlite://...` (`DATABASE_URL`).
    pub url: Option<Secret>,
    pub postgresql: PostgresParts,
    /// Most pooled connections.
    pub max_connections: u32,
    /// Seconds a request waits for a pooled connection.
    pub acquire_timeout_secs: u64,
}

/// The legacy `POSTGRESQL_DATABASE_*` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresParts {
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// Redis: set `location` for production mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://host:port/db` (`REDIS_LOCATION`); unset means in-process.
    pub location: Option<String>,
    pub password: Option<Secret>,
    /// Prepended to every key and channel (empty keeps legacy keys).
    pub key_prefix: String,
    /// Seconds allowed for connecting and for each command.
    pub timeout_secs: u64,
}

/// HTTP server limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `lty=debug,info` (`RUST_LOG` wins).
    pub level: String,
}

/// Device WebSocket channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WsConfig {
    /// Seconds between server pings on an idle socket.
    pub ping_interval_secs: u64,
    /// Messages queued per socket before it counts as too slow.
    pub queue_capacity: usize,
    /// Largest accepted frame, in bytes.
    pub max_frame_bytes: usize,
}

/// Login codes, admin lockout and device signatures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Seconds an SMS login code stays valid.
    pub sms_code_ttl_secs: u64,
    /// Wrong codes after which a code is locked (a new one must be sent).
    pub sms_code_max_attempts: u32,
    /// Consecutive failed admin logins that lock the account.
    pub admin_max_failures: u32,
    /// Seconds an admin account stays locked.
    pub admin_lockout_secs: u64,
    /// Largest accepted difference, in seconds, between a device's
    /// `X-Device-Timestamp` and the server clock.
    pub device_signature_skew_secs: u64,
}

/// A fixed-window rate limit: at most `max` requests per `window_secs`.
/// `max = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub max: u64,
    pub window_secs: u64,
}

impl RateLimit {
    const fn new(max: u64, window_secs: u64) -> Self {
        Self { max, window_secs }
    }

    /// Whether the limit is in force.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }
}

/// Rate limits (counted in the cache, so they hold across instances with
/// Redis). See docs/rate-limits.md for the reasoning behind the defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Per-IP limits do not apply to loopback clients (127.0.0.0/8, ::1):
    /// local tools and benchmarks. Turn off when lty sits behind a proxy on
    /// the same host without `trusted_proxies`.
    pub exempt_loopback: bool,
    /// Proxies whose `X-Forwarded-For` is believed: IP addresses or CIDR
    /// blocks, comma-separated in `LTY_LIMITS__TRUSTED_PROXIES`.
    pub trusted_proxies: crate::ratelimit::TrustedProxies,
    /// `POST /api/user/mac-login/` per MAC.
    pub mac_login_per_mac: RateLimit,
    /// `POST /api/user/mac-login/` per client IP.
    pub mac_login_per_ip: RateLimit,
    /// `POST /api/device/rtc-token/get_by_mac/` per MAC.
    pub rtc_token_per_mac: RateLimit,
    /// `POST /api/device/rtc-token/get_by_mac/` per client IP.
    pub rtc_token_per_ip: RateLimit,
    /// SMS codes sent to one phone, short window.
    pub sms_send_per_phone: RateLimit,
    /// SMS codes sent to one phone, daily.
    pub sms_send_per_phone_daily: RateLimit,
    /// SMS codes requested from one client IP.
    pub sms_send_per_ip: RateLimit,
    /// SMS login attempts from one client IP.
    pub sms_login_per_ip: RateLimit,
    /// WeChat logins and binds from one client IP.
    pub wechat_login_per_ip: RateLimit,
    /// Admin login attempts from one client IP.
    pub admin_login_per_ip: RateLimit,
    /// `POST /api/card/scan/` per device (MAC, or the user without one):
    /// stops code guessing.
    pub card_scan_per_device: RateLimit,
}

/// Kimi or any OpenAI-compatible chat API (`KIMI_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    pub api_key: Option<Secret>,
    /// Base URL including `/v1` (`KIMI_BASE_URL`).
    pub base_url: String,
    pub model: String,
    /// `kimi` (temperature in [0, 1]) or `openai` (any other
    /// OpenAI-compatible server, temperature in [0, 2]).
    pub provider: String,
    /// Sampling temperature; unset sends none (the provider's default).
    pub temperature: Option<f32>,
    /// Most tokens of one reply.
    pub max_tokens: Option<u32>,
    /// Milliseconds allowed to connect.
    pub connect_timeout_ms: u64,
    /// Milliseconds allowed until the provider starts answering.
    pub first_byte_timeout_ms: u64,
    /// Milliseconds allowed between two pieces of a streamed answer.
    pub idle_timeout_ms: u64,
}

/// AI chat: quotas, history budget and child safety (`LTY_AI__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AiConfig {
    /// Server-wide ceiling on chat messages per user and UTC day (`0` = none);
    /// each user's plan sets the limit below it.
    pub daily_messages: u64,
    /// Estimated tokens of persona prompt + history + new message sent to
    /// the model; older turns are dropped to fit.
    pub history_token_budget: usize,
    /// Longest accepted message, in characters.
    pub max_message_chars: usize,
    /// Terms that block a child's message (any language, case-insensitive;
    /// comma-separated in the environment).
    pub blocked_input_terms: crate::chat::TermList,
    /// Terms that block a model's reply.
    pub blocked_output_terms: crate::chat::TermList,
    /// Terms per language (`zh`, `en`, ...) that block either side; a text
    /// is checked against every language's list unless the request names
    /// its language (`LTY_AI__BLOCKED_TERMS__ZH="a,b"`).
    pub blocked_terms: std::collections::BTreeMap<String, crate::chat::TermList>,
    /// An OpenAI-compatible moderation API asked about both sides: base URL
    /// including `/v1` (`/moderations` is appended) or the full endpoint;
    /// unset = blocked-term lists only.
    pub moderation_url: Option<String>,
    /// Bearer key of the moderation API.
    pub moderation_api_key: Option<Secret>,
    /// Moderation model to name in requests (omitted when unset).
    pub moderation_model: Option<String>,
    /// Block when the moderation API fails (fail closed); by default the
    /// text passes (fail open), logged and counted in
    /// `lty_moderation_errors_total`.
    pub moderation_fail_closed: bool,
    /// Milliseconds allowed for one moderation call.
    pub moderation_timeout_ms: u64,
    /// Said instead of blocked content.
    pub refusal_message: String,
    /// Spoken by the voice agent when the daily quota is used up.
    pub quota_message: String,
    /// Put before every persona's prompt to keep answers age-appropriate.
    pub safety_preamble: String,
    /// Seconds between SSE keep-alive comments on a streamed reply.
    pub sse_keep_alive_secs: u64,
}

/// Volcengine RTC and voice agent (`VOLCENGINE_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VolcengineConfig {
    pub app_id: Option<String>,
    pub app_key: Option<Secret>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub api_base_url: String,
    pub callback_secret: Option<Secret>,
    pub custom_llm_api_key: Option<Secret>,
    pub voice_chat_max_seconds: u64,
    /// Ark inference endpoint of the agent's LLM when CustomLLM is off
    /// (`LTY_VOLCENGINE__ARK_ENDPOINT_ID`).
    pub ark_endpoint_id: Option<String>,
    /// Milliseconds allowed for one OpenAPI attempt.
    pub api_timeout_ms: u64,
    /// Seconds between sweeps for abandoned voice-chat sessions.
    pub voice_chat_sweep_secs: u64,
    /// Seconds a session may go on with every device of the family offline.
    pub voice_chat_offline_grace_secs: u64,
}

/// Speech providers (`AUDIO_SERVICE_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioConfig {
    /// `huoshan` (default), `aliyun`, `tencent` or `local`.
    pub provider: String,
    pub huoshan: HuoshanConfig,
    pub tencent: TencentConfig,
    /// When the chosen provider has no credentials, synthesize with
    /// espeak-ng if it is installed (so embedded mode speaks offline).
    pub local_fallback: bool,
    /// The espeak-ng program (a name looked up in `PATH`, or a path).
    pub espeak_path: String,
    /// Default espeak-ng voice (`espeak-ng --voices`).
    pub local_voice: String,
    /// Longest text `/api/ai/tts/` accepts, in characters.
    pub tts_max_chars: usize,
    /// Seconds a synthesized text+voice stays cached (and its audio reused).
    pub tts_cache_ttl_secs: u64,
    /// Largest upload `/api/ai/asr/` accepts, in bytes.
    pub asr_max_bytes: usize,
    /// Longest recording `/api/ai/asr/` accepts, in seconds.
    pub asr_max_seconds: u64,
    /// Seconds allowed for one provider call (or one espeak-ng run).
    pub timeout_secs: u64,
    /// Days objects under `{base_dir}/temporary/` are kept (deleted by the
    /// sweeper on the `fs` and `s3` storage backends, by a lifecycle rule on
    /// OSS).
    pub temporary_days: u32,
}

/// Huoshan (Volcengine) speech.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HuoshanConfig {
    pub appid: Option<String>,
    pub access_token: Option<Secret>,
    pub cluster: String,
    pub voice_type: Option<String>,
    pub storage_dir: Option<String>,
    pub base_url: String,
    pub ws_url: String,
    pub asr_resource_id: String,
}

/// Tencent Cloud speech.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TencentConfig {
    pub api_key: Option<String>,
    pub api_secret: Option<Secret>,
    pub tts_endpoint: String,
    pub asr_endpoint: String,
    /// `X-TC-Region` sent with TextToVoice.
    pub region: String,
    /// Default `VoiceType` (the provider's default when unset).
    pub voice_type: Option<i64>,
}

/// Object storage for media (generated audio, uploads).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// `fs` (a directory under `data_dir`, served under `/media/`), `oss`
    /// (Aliyun OSS, `ALIYUN_OSS_*`) or `s3` (an S3-compatible bucket,
    /// `storage.s3.*`); unset: `oss` when `ALIYUN_OSS_BUCKET` and its
    /// AccessKey pair are set, else `fs`.
    pub backend: Option<String>,
    /// The bucket is public-read: URLs are `{ALIYUN_OSS_HOST}/{key}` (OSS)
    /// or `{storage.s3.public_base}/{key}` (S3) without a signature.
    /// Otherwise they are presigned GET URLs (OSS V1, S3 SigV4).
    pub public_read: bool,
    /// Seconds a presigned URL stays valid (at most 604800 on S3).
    pub url_expiry_secs: u64,
    /// Seconds allowed for one object storage request.
    pub timeout_secs: u64,
    /// Seconds between two sweeps of expired temporary media (`fs`, `s3`).
    pub sweep_interval_secs: u64,
    pub s3: S3StorageConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: None,
            public_read: false,
            url_expiry_secs: 3_600,
            timeout_secs: 30,
            sweep_interval_secs: 3_600,
            s3: S3StorageConfig::default(),
        }
    }
}

/// An S3-compatible bucket (`LTY_STORAGE__S3__*`), used when
/// `storage.backend = s3`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct S3StorageConfig {
    /// Scheme and host of the S3 API (`http://minio:9000`); unset:
    /// `https://s3.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    /// The signing region.
    pub region: String,
    pub bucket: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Where public-read objects are fetched from (a CDN or the bucket's
    /// public address): URLs are `{public_base}/{key}`. Unset: the bucket's
    /// own address.
    pub public_base: Option<String>,
    /// Address the bucket as `{bucket}.{endpoint host}` (AWS's default)
    /// instead of path-style `{endpoint}/{bucket}` (MinIO and most
    /// self-hosted stores).
    pub virtual_host_style: bool,
}

impl Default for S3StorageConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: None,
            access_key_id: None,
            secret_access_key: None,
            public_base: None,
            virtual_host_style: false,
        }
    }
}

/// Aliyun services (`ALIYUN_*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AliyunConfig {
    pub sms: AliyunSmsConfig,
    pub nls: AliyunNlsConfig,
    pub oss: AliyunOssConfig,
    pub vi: AliyunViConfig,
    pub log: AliyunLogConfig,
}

/// Aliyun SMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AliyunSmsConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    pub sign_name: Option<String>,
    pub template_code: Option<String>,
    pub endpoint: String,
    /// The template variable that receives the code (`TemplateParam`
    /// `{"code": "123456"}`).
    pub code_param: String,
    /// Seconds allowed for one SendSms call.
    pub timeout_secs: u64,
}

/// Aliyun NLS speech.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AliyunNlsConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    pub app_id: Option<String>,
    pub meta_endpoint: String,
    pub gateway_url: String,
}

/// Aliyun OSS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AliyunOssConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub host: Option<String>,
    pub audio_base_dir: Option<String>,
}

/// Aliyun Visual Intelligence.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AliyunViConfig {
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// The openplatform API that grants temporary uploads
    /// (`LTY_ALIYUN__VI__OPENPLATFORM_ENDPOINT`); unset:
    /// `https://openplatform.aliyuncs.com`.
    pub openplatform_endpoint: Option<String>,
    /// Base URL that receives the temporary upload's OSS PostObject instead
    /// of `https://<Bucket>.<Endpoint>` (a proxy or a test endpoint;
    /// `LTY_ALIYUN__VI__UPLOAD_BASE_URL`). VI is still given the bucket's URL.
    pub upload_base_url: Option<String>,
}

/// Image understanding behind `/api/ai/image/` (`LTY_IMAGE__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `aliyun` (Visual Intelligence tagging), `openai` (the chat
    /// provider's vision model) or `none`. Unset: `aliyun` when the
    /// `ALIYUN_VI_*` key pair is set, else `openai` when the chat model is
    /// configured and `model` is set, else none (`503`).
    pub provider: Option<String>,
    /// Vision model asked through the OpenAI-compatible chat API (e.g.
    /// `moonshot-v1-8k-vision-preview`).
    pub model: Option<String>,
    /// Largest upload accepted, in bytes.
    pub max_bytes: usize,
    /// What the vision model is asked about the image.
    pub prompt: String,
    /// Most labels returned.
    pub max_labels: usize,
    /// Labels below this confidence (percent) are left out.
    pub min_confidence: f64,
    /// Seconds allowed for one provider call.
    pub timeout_secs: u64,
    /// When Aliyun VI gets the image through its temporary upload: `auto`
    /// (unless the image is stored on OSS in the VI region), `always` or
    /// `never` (VI is given the stored object's URL).
    pub vi_upload: String,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            provider: None,
            model: None,
            max_bytes: 5 * 1024 * 1024,
            prompt: "用一两句简单的话，向小朋友描述这张图片里有什么。".into(),
            max_labels: 10,
            min_confidence: 10.0,
            timeout_secs: 20,
            vi_upload: "auto".into(),
        }
    }
}

/// Aliyun Log Service: log lines are also shipped to SLS when project,
/// store, endpoint and the key pair are all set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AliyunLogConfig {
    pub project: Option<String>,
    pub store: Option<String>,
    /// Region endpoint (`cn-hangzhou.log.aliyuncs.com`), or a base URL with
    /// scheme used as is.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<Secret>,
    /// Log lines held in memory while SLS is slow or unreachable; past it
    /// the oldest are dropped (and counted).
    pub buffer_size: usize,
    /// Most log lines per `PutLogs` request.
    pub batch_size: usize,
    /// Milliseconds between flushes of a partial batch.
    pub flush_interval_ms: u64,
    /// Milliseconds allowed for one `PutLogs` request.
    pub timeout_ms: u64,
    /// Longest wait between retries of a failed batch, in milliseconds.
    pub max_backoff_ms: u64,
    /// Retries of one batch before it is dropped.
    pub max_retries: u32,
    /// Send bodies deflate-compressed.
    pub compress: bool,
    /// `Topic` of every shipped log group.
    pub topic: String,
}

impl Default for AliyunLogConfig {
    fn default() -> Self {
        Self {
            project: None,
            store: None,
            endpoint: None,
            access_key_id: None,
            access_key_secret: None,
            buffer_size: 10_000,
            batch_size: 1_000,
            flush_interval_ms: 1_000,
            timeout_ms: 5_000,
            max_backoff_ms: 30_000,
            max_retries: 8,
            compress: true,
            topic: "lty".into(),
        }
    }
}

/// WeChat login (`WECHAT_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WechatConfig {
    /// AppID of the Open Platform app (mobile app or website) behind
    /// `/api/user/wechat-login/`.
    pub app_id: Option<String>,
    pub app_secret: Option<Secret>,
    /// AppID of the mini program behind `/api/user/wechat-mini-login/`: a
    /// separate WeChat app with its own secret.
    pub mini_app_id: Option<String>,
    pub mini_app_secret: Option<Secret>,
    /// Shared by both apps.
    pub api_base_url: String,
    /// Seconds allowed for each WeChat call.
    pub timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8000".into(),
            public_base_url: None,
            data_dir: PathBuf::from("./data"),
            secret_key: None,
            debug: false,
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            ws: WsConfig::default(),
            device_auth: DeviceAuthMode::Legacy,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            llm: LlmConfig::default(),
            ai: AiConfig::default(),
            volcengine: VolcengineConfig::default(),
            audio: AudioConfig::default(),
            storage: StorageConfig::default(),
            aliyun: AliyunConfig::default(),
            wechat: WechatConfig::default(),
            image: ImageConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            sms_code_ttl_secs: 300,
            sms_code_max_attempts: 5,
            admin_max_failures: 5,
            admin_lockout_secs: 900,
            device_signature_skew_secs: 300,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            exempt_loopback: true,
            trusted_proxies: Default::default(),
            mac_login_per_mac: RateLimit::new(120, 60),
            mac_login_per_ip: RateLimit::new(600, 60),
            rtc_token_per_mac: RateLimit::new(120, 60),
            rtc_token_per_ip: RateLimit::new(600, 60),
            sms_send_per_phone: RateLimit::new(1, 60),
            sms_send_per_phone_daily: RateLimit::new(10, 86_400),
            sms_send_per_ip: RateLimit::new(20, 3_600),
            sms_login_per_ip: RateLimit::new(30, 600),
            wechat_login_per_ip: RateLimit::new(60, 60),
            admin_login_per_ip: RateLimit::new(30, 600),
            card_scan_per_device: RateLimit::new(30, 60),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            postgresql: PostgresParts::default(),
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            location: None,
            password: None,
            key_prefix: String::new(),
            timeout_secs: 3,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            shutdown_grace_secs: 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            ping_interval_secs: 30,
            queue_capacity: 256,
            max_frame_bytes: 64 * 1024,
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: "https://api.moonshot.cn/v1".into(),
            model: "moonshot-v1-8k".into(),
            provider: "kimi".into(),
            temperature: Some(0.3),
            max_tokens: Some(512),
            connect_timeout_ms: 3_000,
            first_byte_timeout_ms: 30_000,
            idle_timeout_ms: 30_000,
        }
    }
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            daily_messages: 200,
            history_token_budget: 3_000,
            max_message_chars: 2_000,
            blocked_input_terms: crate::chat::TermList::from_str_list(&[
                "色情", "porn", "赌博", "毒品",
            ]),
            blocked_output_terms: crate::chat::TermList::from_str_list(&[
                "色情", "porn", "赌博", "毒品", "自杀", "suicide",
            ]),
            blocked_terms: std::collections::BTreeMap::new(),
            moderation_url: None,
            moderation_api_key: None,
            moderation_model: None,
            moderation_fail_closed: false,
            moderation_timeout_ms: 2_000,
            refusal_message: "这个问题我们换一个话题聊吧，有不明白的可以去问问爸爸妈妈哦。".into(),
            quota_message: "今天我们已经聊了很多啦，明天再来找我玩吧！".into(),
            safety_preamble:
                "你在和一个小朋友说话。只说适合儿童的内容：不谈暴力、色情、赌博、毒品、\
自我伤害和其他危险行为，不索要住址、学校、电话等个人信息，不假装是真人。\
遇到这类话题，温和地换个话题，并建议小朋友去问爸爸妈妈或老师。"
                    .into(),
            sse_keep_alive_secs: 15,
        }
    }
}

impl Default for VolcengineConfig {
    fn default() -> Self {
        Self {
            app_id: None,
            app_key: None,
            access_key: None,
            secret_key: None,
            api_base_url: "https://rtc.volcengineapi.com".into(),
            callback_secret: None,
            custom_llm_api_key: None,
            voice_chat_max_seconds: 1800,
            ark_endpoint_id: None,
            api_timeout_ms: 10_000,
            voice_chat_sweep_secs: 30,
            voice_chat_offline_grace_secs: 180,
        }
    }
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            provider: "huoshan".into(),
            huoshan: HuoshanConfig::default(),
            tencent: TencentConfig::default(),
            local_fallback: true,
            espeak_path: "espeak-ng".into(),
            local_voice: "cmn".into(),
            tts_max_chars: 500,
            tts_cache_ttl_secs: 86_400,
            asr_max_bytes: 4 * 1024 * 1024,
            asr_max_seconds: 60,
            timeout_secs: 15,
            temporary_days: 7,
        }
    }
}

impl Default for HuoshanConfig {
    fn default() -> Self {
        Self {
            appid: None,
            access_token: None,
            cluster: "volcano_tts".into(),
            voice_type: None,
            storage_dir: None,
            base_url: "https://openspeech.bytedance.com".into(),
            ws_url: "wss://openspeech.bytedance.com".into(),
            asr_resource_id: "volc.bigasr.sauc.duration".into(),
        }
    }
}

impl Default for TencentConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            api_secret: None,
            tts_endpoint: "https://tts.tencentcloudapi.com".into(),
            asr_endpoint: "https://asr.tencentcloudapi.com".into(),
            region: "ap-guangzhou".into(),
            voice_type: None,
        }
    }
}

impl Default for AliyunSmsConfig {
    fn default() -> Self {
        Self {
            access_key_id: None,
            access_key_secret: None,
            sign_name: None,
            template_code: None,
            endpoint: "https://dysmsapi.aliyuncs.com".into(),
            code_param: "code".into(),
            timeout_secs: 5,
        }
    }
}

impl Default for AliyunNlsConfig {
    fn default() -> Self {
        Self {
            access_key_id: None,
            access_key_secret: None,
            app_id: None,
            meta_endpoint: "https://nls-meta.cn-shanghai.aliyuncs.com".into(),
            gateway_url: "https://nls-gateway-cn-shanghai.aliyuncs.com".into(),
        }
    }
}

impl Default for WechatConfig {
    fn default() -> Self {
        Self {
            app_id: None,
            app_secret: None,
            mini_app_id: None,
            mini_app_secret: None,
            api_base_url: "https://api.weixin.qq.com".into(),
            timeout_secs: 5,
        }
    }
}

/// A legacy (or fixed-name) environment variable and the setting it feeds.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name, as the legacy deployment spells it.
    pub name: &'static str,
    /// The dotted config path it sets.
    pub path: &'static str,
    /// Whether this version of lty acts on it yet (otherwise it is accepted
    /// and shown by `lty config print`).
    pub used: bool,
}

const fn var(name: &'static str, path: &'static str, used: bool) -> EnvVar {
    EnvVar { name, path, used }
}

/// Every fixed-name variable lty reads. `LTY_*` variables not listed here map
/// by name: `LTY_A__B` sets `a.b`.
pub const ENV_VARS: &[EnvVar] = &[
    var("SECRET_KEY", "secret_key", true),
    var("DEBUG", "debug", true),
    var("DATABASE_URL", "database.url", true),
    var("POSTGRESQL_DATABASE_NAME", "database.postgresql.name", true),
    var("POSTGRESQL_DATABASE_USER", "database.postgresql.user", true),
    var(
        "POSTGRESQL_DATABASE_PASSWORD",
        "database.postgresql.password",
        true,
    ),
    var("POSTGRESQL_DATABASE_HOST", "database.postgresql.host", true),
    var("POSTGRESQL_DATABASE_PORT", "database.postgresql.port", true),
    var("REDIS_LOCATION", "redis.location", true),
    var("REDIS_PASSWORD", "redis.password", true),
    var("KIMI_API_KEY", "llm.api_key", true),
    var("KIMI_BASE_URL", "llm.base_url", true),
    var("VOLCENGINE_APP_ID", "volcengine.app_id", true),
    var("VOLCENGINE_APP_KEY", "volcengine.app_key", true),
    var("VOLCENGINE_ACCESS_KEY", "volcengine.access_key", true),
    var("VOLCENGINE_SECRET_KEY", "volcengine.secret_key", true),
    var("VOLCENGINE_API_BASE_URL", "volcengine.api_base_url", true),
    var(
        "VOLCENGINE_CALLBACK_SECRET",
        "volcengine.callback_secret",
        true,
    ),
    var(
        "LTY_CUSTOM_LLM_API_KEY",
        "volcengine.custom_llm_api_key",
        true,
    ),
    var(
        "LTY_VOICE_CHAT_MAX_SECONDS",
        "volcengine.voice_chat_max_seconds",
        true,
    ),
    var("AUDIO_SERVICE_PROVIDER", "audio.provider", true),
    var("AUDIO_SERVICE_HUOSHAN_APPID", "audio.huoshan.appid", true),
    var(
        "AUDIO_SERVICE_HUOSHAN_ACCESS_TOKEN",
        "audio.huoshan.access_token",
        true,
    ),
    var(
        "AUDIO_SERVICE_HUOSHAN_CLUSTER",
        "audio.huoshan.cluster",
        true,
    ),
    var(
        "AUDIO_SERVICE_HUOSHAN_VOICE_TYPE",
        "audio.huoshan.voice_type",
        true,
    ),
    var(
        "AUDIO_SERVICE_HUOSHAN_STORAGE_DIR",
        "audio.huoshan.storage_dir",
        false,
    ),
    var(
        "AUDIO_SERVICE_HUOSHAN_BASE_URL",
        "audio.huoshan.base_url",
        true,
    ),
    var("AUDIO_SERVICE_HUOSHAN_WS_URL", "audio.huoshan.ws_url", true),
    var(
        "LTY_HUOSHAN_ASR_RESOURCE_ID",
        "audio.huoshan.asr_resource_id",
        true,
    ),
    var(
        "AUDIO_SERVICE_TENCENT_API_KEY",
        "audio.tencent.api_key",
        true,
    ),
    var(
        "AUDIO_SERVICE_TENCENT_API_SECRET",
        "audio.tencent.api_secret",
        true,
    ),
    var(
        "AUDIO_SERVICE_TENCENT_TTS_ENDPOINT",
        "audio.tencent.tts_endpoint",
        true,
    ),
    var(
        "AUDIO_SERVICE_TENCENT_ASR_ENDPOINT",
        "audio.tencent.asr_endpoint",
        true,
    ),
    var("ALIYUN_SMS_ACCESS_KEY_ID", "aliyun.sms.access_key_id", true),
    var(
        "ALIYUN_SMS_ACCESS_KEY_SECRET",
        "aliyun.sms.access_key_secret",
        true,
    ),
    var("ALIYUN_SMS_SIGN_NAME", "aliyun.sms.sign_name", true),
    var("ALIYUN_SMS_TEMPLATE_CODE", "aliyun.sms.template_code", true),
    var("ALIYUN_SMS_ENDPOINT", "aliyun.sms.endpoint", true),
    var("ALIYUN_NLS_ACCESS_KEY_ID", "aliyun.nls.access_key_id", true),
    var(
        "ALIYUN_NLS_ACCESS_KEY_SECRET",
        "aliyun.nls.access_key_secret",
        true,
    ),
    var("ALIYUN_NLS_APP_ID", "aliyun.nls.app_id", true),
    var("ALIYUN_NLS_META_ENDPOINT", "aliyun.nls.meta_endpoint", true),
    var("ALIYUN_NLS_GATEWAY_URL", "aliyun.nls.gateway_url", true),
    var("ALIYUN_OSS_ACCESS_KEY_ID", "aliyun.oss.access_key_id", true),
    var(
        "ALIYUN_OSS_ACCESS_KEY_SECRET",
        "aliyun.oss.access_key_secret",
        true,
    ),
    var("ALIYUN_OSS_BUCKET", "aliyun.oss.bucket", true),
    var("ALIYUN_OSS_ENDPOINT", "aliyun.oss.endpoint", true),
    var("ALIYUN_OSS_HOST", "aliyun.oss.host", true),
    var(
        "ALIYUN_OSS_AUDIO_BASE_DIR",
        "aliyun.oss.audio_base_dir",
        true,
    ),
    var("ALIYUN_VI_ACCESS_KEY_ID", "aliyun.vi.access_key_id", true),
    var(
        "ALIYUN_VI_ACCESS_KEY_SECRET",
        "aliyun.vi.access_key_secret",
        true,
    ),
    var("ALIYUN_VI_ENDPOINT", "aliyun.vi.endpoint", true),
    var("ALIYUN_VI_REGION", "aliyun.vi.region", true),
    var("ALIYUN_LOG_PROJECT", "aliyun.log.project", true),
    var("ALIYUN_LOG_STORE", "aliyun.log.store", true),
    var("ALIYUN_LOG_ENDPOINT", "aliyun.log.endpoint", true),
    var("ALIYUN_LOG_ACCESS_KEY_ID", "aliyun.log.access_key_id", true),
    var(
        "ALIYUN_LOG_ACCESS_KEY_SECRET",
        "aliyun.log.access_key_secret",
        true,
    ),
    var("WECHAT_APP_ID", "wechat.app_id", true),
    var("WECHAT_APP_SECRET", "wechat.app_secret", true),
    var("WECHAT_API_BASE_URL", "wechat.api_base_url", true),
    var("WECHAT_MINI_APP_ID", "wechat.mini_app_id", true),
    var("WECHAT_MINI_APP_SECRET", "wechat.mini_app_secret", true),
];

/// The environment variable that sets `path`: its fixed name, or `LTY_...`.
pub fn env_name_for(path: &str) -> String {
    ENV_VARS
        .iter()
        .find(|v| v.path == path)
        .map(|v| v.name.to_owned())
        .unwrap_or_else(|| format!("LTY_{}", path.replace('.', "__").to_ascii_uppercase()))
}

/// Reads configuration from environment variables: the fixed names of
/// [`ENV_VARS`], then `LTY_*`. Every value is a string; numbers and
/// booleans are coerced on extraction, so a numeric-looking secret stays a
/// string.
#[derive(Debug, Clone)]
pub struct EnvProvider {
    vars: Vec<(String, String)>,
}

impl EnvProvider {
    /// Snapshot of the process environment.
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// Snapshot of the given variables (for tests and `lty config print`).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            vars: vars.into_iter().collect(),
        }
    }

    fn path_of(name: &str) -> Option<String> {
        if let Some(v) = ENV_VARS.iter().find(|v| v.name == name) {
            return Some(v.path.to_owned());
        }
        let rest = name.strip_prefix("LTY_")?;
        // LTY_CONFIG names the file; it is not a setting.
        if rest.is_empty() || rest == "CONFIG" {
            return None;
        }
        Some(rest.to_ascii_lowercase().replace("__", "."))
    }

    /// `(variable, path)` for every variable of this snapshot that lty reads.
    pub fn recognised(&self) -> Vec<(String, String)> {
        let mut out: Vec<_> = self
            .vars
            .iter()
            .filter_map(|(k, _)| Self::path_of(k).map(|p| (k.clone(), p)))
            .collect();
        out.sort();
        out
    }
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_: &Profile, keys: &[&str]| env_name_for(&keys.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, FigmentError> {
        let mut dict = Dict::new();
        // Fixed names first, then LTY_*, so LTY_ wins where both are set.
        let mut vars: Vec<_> = self
            .vars
            .iter()
            .filter_map(|(k, v)| Self::path_of(k).map(|p| (k.starts_with("LTY_"), p, v)))
            .collect();
        vars.sort_by_key(|(lty, _, _)| *lty);
        for (_, path, value) in vars {
            insert_path(&mut dict, &path, Value::from(value.clone()));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Sets `a.b.c` in `dict`, creating the intermediate tables.
fn insert_path(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// A configuration error, naming the setting and the variable behind it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Figment(#[from] Box<FigmentError>),
    #[error("invalid value for {var} ({path}): {message}")]
    Invalid {
        path: &'static str,
        var: String,
        message: String,
    },
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

fn invalid(path: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path,
        var: env_name_for(path),
        message: message.into(),
    }
}

impl Config {
    /// Loads the configuration: defaults, then `file` (or `lty.toml` when it
    /// exists), then the environment snapshot `env`.
    pub fn load(file: Option<&Path>, env: EnvProvider) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::File {
                        path: path.to_owned(),
                        message: "no such file".into(),
                    });
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("lty.toml")),
        }
        let config: Config = figment
            .merge(env)
            .extract_lossy()
            .map_err(|e| ConfigError::Figment(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Loads from the process environment, honouring `LTY_CONFIG`.
    pub fn from_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        let from_var = std::env::var_os("LTY_CONFIG").map(PathBuf::from);
        Self::load(file.or(from_var.as_deref()), EnvProvider::from_process())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        // An RTC token carries the AppId at a fixed width; another length
        // would mint tokens nobody can parse.
        if let Some(app_id) = &self.volcengine.app_id
            && (app_id.len() != 24 || !app_id.is_ascii())
        {
            return Err(invalid(
                "volcengine.app_id",
                "must be the 24-character RTC AppId",
            ));
        }
        if let Some(base) = &self.public_base_url {
            check_http_url("public_base_url", base)?;
        }
        if let Some(loc) = &self.redis.location {
            let ok = url::Url::parse(loc)
                .map(|u| matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix"))
                .unwrap_or(false);
            if !ok {
                return Err(invalid(
                    "redis.location",
                    "must be a redis:// URL such as redis://127.0.0.1:6379/0",
                ));
            }
        }
        if let Some(url) = &self.database.url {
            let u = url.expose();
            if !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || u.starts_with("sqlite:"))
            {
                return Err(invalid(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        if self.http.body_limit < 1024 {
            return Err(invalid("http.body_limit", "must be at least 1024 bytes"));
        }
        if self.ws.queue_capacity == 0 {
            return Err(invalid("ws.queue_capacity", "must be at least 1"));
        }
        if self.ws.ping_interval_secs == 0 {
            return Err(invalid("ws.ping_interval_secs", "must be at least 1"));
        }
        self.validate_auth()?;
        self.validate_ai()?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if !["huoshan", "aliyun", "tencent", "local"].contains(&self.audio.provider.as_str()) {
            return Err(invalid(
                "audio.provider",
                "must be one of huoshan, aliyun, tencent, local",
            ));
        }
        for (path, url) in [
            ("llm.base_url", &self.llm.base_url),
            ("volcengine.api_base_url", &self.volcengine.api_base_url),
            ("audio.huoshan.base_url", &self.audio.huoshan.base_url),
            (
                "audio.tencent.tts_endpoint",
                &self.audio.tencent.tts_endpoint,
            ),
            (
                "audio.tencent.asr_endpoint",
                &self.audio.tencent.asr_endpoint,
            ),
            ("aliyun.sms.endpoint", &self.aliyun.sms.endpoint),
            ("aliyun.nls.meta_endpoint", &self.aliyun.nls.meta_endpoint),
            ("aliyun.nls.gateway_url", &self.aliyun.nls.gateway_url),
            ("wechat.api_base_url", &self.wechat.api_base_url),
        ] {
            check_http_url(path, url)?;
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        for (path, value) in [
            ("auth.sms_code_ttl_secs", a.sms_code_ttl_secs),
            (
                "auth.sms_code_max_attempts",
                u64::from(a.sms_code_max_attempts),
            ),
            ("auth.admin_max_failures", u64::from(a.admin_max_failures)),
            ("auth.admin_lockout_secs", a.admin_lockout_secs),
            (
                "auth.device_signature_skew_secs",
                a.device_signature_skew_secs,
            ),
            ("aliyun.sms.timeout_secs", self.aliyun.sms.timeout_secs),
            ("wechat.timeout_secs", self.wechat.timeout_secs),
        ] {
            if value == 0 {
                return Err(invalid(path, "must be at least 1"));
            }
        }
        let l = &self.limits;
        for (path, limit) in [
            ("limits.mac_login_per_mac.window_secs", l.mac_login_per_mac),
            ("limits.mac_login_per_ip.window_secs", l.mac_login_per_ip),
            ("limits.rtc_token_per_mac.window_secs", l.rtc_token_per_mac),
            ("limits.rtc_token_per_ip.window_secs", l.rtc_token_per_ip),
            (
                "limits.sms_send_per_phone.window_secs",
                l.sms_send_per_phone,
            ),
            (
                "limits.sms_send_per_phone_daily.window_secs",
                l.sms_send_per_phone_daily,
            ),
            ("limits.sms_send_per_ip.window_secs", l.sms_send_per_ip),
            ("limits.sms_login_per_ip.window_secs", l.sms_login_per_ip),
            (
                "limits.wechat_login_per_ip.window_secs",
                l.wechat_login_per_ip,
            ),
            (
                "limits.admin_login_per_ip.window_secs",
                l.admin_login_per_ip,
            ),
            (
                "limits.card_scan_per_device.window_secs",
                l.card_scan_per_device,
            ),
        ] {
            if limit.enabled() && limit.window_secs == 0 {
                return Err(invalid(path, "must be at least 1 when max is set"));
            }
        }
        if self.aliyun.sms.code_param.trim().is_empty() {
            return Err(invalid("aliyun.sms.code_param", "must not be empty"));
        }
        Ok(())
    }

    fn validate_ai(&self) -> Result<(), ConfigError> {
        let max = match self.llm.provider.as_str() {
            "kimi" => 1.0,
            "openai" => 2.0,
            _ => return Err(invalid("llm.provider", "must be kimi or openai")),
        };
        if let Some(t) = self.llm.temperature
            && !(0.0..=max).contains(&t)
        {
            return Err(invalid(
                "llm.temperature",
                format!("must be within [0, {max}] for this provider"),
            ));
        }
        for (path, value) in [
            ("llm.connect_timeout_ms", self.llm.connect_timeout_ms),
            ("llm.first_byte_timeout_ms", self.llm.first_byte_timeout_ms),
            ("llm.idle_timeout_ms", self.llm.idle_timeout_ms),
            ("ai.sse_keep_alive_secs", self.ai.sse_keep_alive_secs),
            ("ai.max_message_chars", self.ai.max_message_chars as u64),
            ("ai.moderation_timeout_ms", self.ai.moderation_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(path, "must be at least 1"));
            }
        }
        if self.ai.refusal_message.trim().is_empty() {
            return Err(invalid("ai.refusal_message", "must not be empty"));
        }
        Ok(())
    }

    /// The socket address to listen on.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind
            .parse()
            .map_err(|_| invalid("bind", "must be an address such as 0.0.0.0:8000"))
    }

    /// The database URL in effect: `database.url`, else one built from the
    /// PostgreSQL parts, else the embedded SQLite file.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database.url {
            return url.expose().to_owned();
        }
        let pg = &self.database.postgresql;
        if pg.name.is_some() || pg.host.is_some() {
            // Built through `Url` so user names and passwords are escaped.
            let mut url =
                url::Url::parse("postgres://localhost").unwrap_or_else(|_| unreachable!());
            let _ = url.set_host(Some(pg.host.as_deref().unwrap_or("localhost")));
            let _ = url.set_port(Some(pg.port.unwrap_or(5432)));
            let _ = url.set_username(pg.user.as_deref().unwrap_or("postgres"));
            if let Some(pw) = &pg.password {
                let _ = url.set_password(Some(pw.expose()));
            }
            url.set_path(pg.name.as_deref().unwrap_or("postgres"));
            return url.into();
        }
        format!("sqlite://{}", self.data_dir.join("lty.db").display())
    }

    /// Whether this configuration runs in production mode (external
    /// database or Redis).
    pub fn is_production(&self) -> bool {
        self.redis.location.is_some() || !self.database_url().starts_with("sqlite:")
    }

    /// The public origin, without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_base_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind.replace("0.0.0.0", "127.0.0.1")),
        }
    }

    /// Redis command and connect timeout.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_secs(self.redis.timeout_secs.max(1))
    }

    /// The configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn check_http_url(path: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = url::Url::parse(value)
        .map(|u| matches!(u.scheme(), "http" | "https" | "ws" | "wss") && u.has_host())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(invalid(path, format!("{value:?} is not an http(s) URL")))
    }
}
