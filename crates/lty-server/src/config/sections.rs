//! The sections of [`Config`](super::Config) and their defaults (embedded
//! mode): the server's own here (database, cache, HTTP, logs, WebSocket,
//! authentication, rate limits), AI chat in `ai`, speech and media storage
//! in `media`, the other vendors' accounts in `vendors`, and xiaozhi-esp32
//! devices in `xiaozhi`.

use serde::{Deserialize, Serialize};

use crate::config::{Secret, TrustedProxies};

mod ai;
mod media;
mod vendors;
mod xiaozhi;

pub use ai::{AiConfig, ImageConfig, LlmConfig};
pub use media::{AudioConfig, HuoshanConfig, S3StorageConfig, StorageConfig, TencentConfig};
pub use vendors::{
    AliyunConfig, AliyunLogConfig, AliyunNlsConfig, AliyunOssConfig, AliyunSmsConfig,
    AliyunViConfig, VolcengineConfig, WechatConfig,
};
pub use xiaozhi::XiaozhiConfig;

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
    /// `redis://host:port/db` (`REDIS_LOCATION`), or
    /// `redis+cluster://host:port,host:port,...` for a Redis Cluster; unset
    /// means in-process.
    pub location: Option<String>,
    pub password: Option<Secret>,
    /// Prepended to every key and channel (empty keeps legacy keys).
    pub key_prefix: String,
    /// Seconds allowed for connecting and for each command.
    pub timeout_secs: u64,
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

/// HTTP server limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Seconds a draining server (SIGTERM) gives in-flight requests and
    /// WebSocket closes before it exits.
    pub shutdown_grace_secs: u64,
    /// Seconds a connection gets to send a complete request head, counted
    /// from when the server waits for one: on a new connection and on an
    /// idle keep-alive connection alike, so this is also the idle timeout.
    pub header_read_timeout_secs: u64,
    /// Open connections (WebSockets included) past which new ones get only
    /// `/healthz`, `/readyz` and `/metrics`; 0 derives it from the
    /// open-file limit.
    pub max_connections: usize,
    /// Connections past `max_connections` kept for those three routes;
    /// beyond them a new connection is closed at once.
    pub reserved_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            shutdown_grace_secs: 20,
            header_read_timeout_secs: 20,
            max_connections: 0,
            reserved_connections: 32,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `lty=debug,info` (`RUST_LOG` wins).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
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
    /// Messages each family's replay log keeps for clients that resume
    /// with `?since=` (about that many with Redis).
    pub replay_len: usize,
    /// Seconds after a family's last message that its replay log is kept.
    pub replay_window_secs: u64,
    /// Open device sockets and xiaozhi channels (together) per family on
    /// one instance; past it a new socket is refused with 429
    /// `too_many_connections`. 0: no cap.
    pub max_sockets_per_user: usize,
    /// Open device sockets and xiaozhi channels per client IP on one
    /// instance (loopback exempt only with `limits.exempt_loopback`). 0:
    /// no cap.
    pub max_sockets_per_ip: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            ping_interval_secs: 30,
            queue_capacity: 256,
            max_frame_bytes: 64 * 1024,
            replay_len: 128,
            replay_window_secs: 900,
            max_sockets_per_user: 50,
            max_sockets_per_ip: 1000,
        }
    }
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
    /// Until this time (RFC 3339), devices that hold a secret may still
    /// send unsigned requests: the grace period of a fleet migration
    /// (docs/device-auth.md). Unset: no grace.
    pub unsigned_grace_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            sms_code_ttl_secs: 300,
            sms_code_max_attempts: 5,
            admin_max_failures: 5,
            admin_lockout_secs: 900,
            device_signature_skew_secs: 300,
            unsigned_grace_until: None,
        }
    }
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
    /// Per-IP limits do not apply to loopback clients (127.0.0.0/8, ::1).
    /// Off by default: behind a proxy on the same host every client is
    /// loopback. Turn on only for load tests run from the same machine.
    pub exempt_loopback: bool,
    /// Proxies whose `X-Forwarded-For` is believed: IP addresses or CIDR
    /// blocks, comma-separated in `LTY_LIMITS__TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `POST /api/user/mac-login/` per MAC.
    pub mac_login_per_mac: RateLimit,
    /// `POST /api/user/mac-login/` per client IP.
    pub mac_login_per_ip: RateLimit,
    /// `POST /api/device/rtc-token/get_by_mac/` per MAC.
    pub rtc_token_per_mac: RateLimit,
    /// `POST /api/device/rtc-token/get_by_mac/` per client IP.
    pub rtc_token_per_ip: RateLimit,
    /// `GET /api/device/binding-status/` without a token, per client IP.
    pub binding_status_per_ip: RateLimit,
    /// `GET /api/device/binding-status/` without a token, per MAC.
    pub binding_status_per_mac: RateLimit,
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
    /// `POST /api/device/activate/` attempts per user (activation codes
    /// are 6 digits: guessing must stay hopeless).
    pub activate_per_user: RateLimit,
    /// `POST /api/device/activate/` attempts per client IP.
    pub activate_per_ip: RateLimit,
    /// xiaozhi OTA checks and activation polls per device.
    pub xiaozhi_ota_per_device: RateLimit,
}

impl LimitsConfig {
    /// How the client address of per-IP limits is found, for the start-up
    /// log line.
    pub fn client_ip_mode(&self) -> &'static str {
        match (self.trusted_proxies.is_empty(), self.exempt_loopback) {
            (true, false) => "peer address; per-IP limits apply to every client",
            (true, true) => "peer address; loopback clients exempt from per-IP limits",
            (false, false) => {
                "X-Forwarded-For from trusted proxies; per-IP limits apply to every client"
            }
            (false, true) => {
                "X-Forwarded-For from trusted proxies; loopback clients exempt from per-IP limits"
            }
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            exempt_loopback: false,
            trusted_proxies: Default::default(),
            mac_login_per_mac: RateLimit::new(120, 60),
            mac_login_per_ip: RateLimit::new(600, 60),
            rtc_token_per_mac: RateLimit::new(120, 60),
            rtc_token_per_ip: RateLimit::new(600, 60),
            binding_status_per_ip: RateLimit::new(60, 60),
            binding_status_per_mac: RateLimit::new(30, 60),
            sms_send_per_phone: RateLimit::new(1, 60),
            sms_send_per_phone_daily: RateLimit::new(10, 86_400),
            sms_send_per_ip: RateLimit::new(20, 3_600),
            sms_login_per_ip: RateLimit::new(30, 600),
            wechat_login_per_ip: RateLimit::new(60, 60),
            admin_login_per_ip: RateLimit::new(30, 600),
            card_scan_per_device: RateLimit::new(30, 60),
            activate_per_user: RateLimit::new(10, 600),
            activate_per_ip: RateLimit::new(30, 600),
            xiaozhi_ota_per_device: RateLimit::new(60, 60),
        }
    }
}
