//! Configuration: built-in defaults (embedded mode) → optional `lty.toml` →
//! the legacy environment variable names → `LTY_*` variables
//! (`LTY_HTTP__BODY_LIMIT` sets `http.body_limit`). Secrets never print.
//!
//! This module owns the [`Config`] root, [`Secret`] and loading. The
//! sections and their defaults are in `sections`, the environment variable
//! names in `legacy`, the checks run at load in `validate`, and the value
//! types settings parse into (term lists, trusted proxies) in `values`.
//! It is a leaf: it imports nothing from the rest of the server.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::{Error as FigmentError, Figment};
use serde::{Deserialize, Serialize, Serializer};

mod legacy;
mod sections;
mod validate;
mod values;

pub use legacy::{ENV_VARS, EnvProvider, EnvVar, env_name_for};
pub use sections::{
    AiConfig, AliyunConfig, AliyunLogConfig, AliyunNlsConfig, AliyunOssConfig, AliyunSmsConfig,
    AliyunViConfig, AudioConfig, AuthConfig, DatabaseConfig, DeviceAuthMode, HttpConfig,
    HuoshanConfig, ImageConfig, LimitsConfig, LlmConfig, LogConfig, LogFormat, PostgresParts,
    RateLimit, RedisConfig, S3StorageConfig, StorageConfig, TencentConfig, VolcengineConfig,
    WechatConfig, WsConfig, XiaozhiConfig,
};
pub use values::{IpNet, TermList, TrustedProxies};

use validate::invalid;

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
    pub xiaozhi: XiaozhiConfig,
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
            xiaozhi: XiaozhiConfig::default(),
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

    /// The URL xiaozhi devices open their voice channel on:
    /// `xiaozhi.websocket_url`, else `public_base_url` as `ws`/`wss` with
    /// `/xiaozhi/v1/`; `None` when neither is set.
    pub fn xiaozhi_websocket_url(&self) -> Option<String> {
        if let Some(url) = self.xiaozhi.websocket_url.as_deref().map(str::trim) {
            return (!url.is_empty()).then(|| url.to_owned());
        }
        let base = self.public_base_url.as_deref()?.trim_end_matches('/');
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", base.strip_prefix("http://").unwrap_or(base))
        };
        Some(format!("{ws}/xiaozhi/v1/"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Config {
        let env =
            EnvProvider::from_vars(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Config::load(None, env).unwrap()
    }

    #[test]
    fn redis_location_takes_a_cluster_url_and_names_the_variable_of_a_bad_one() {
        let config = load(&[(
            "REDIS_LOCATION",
            "redis+cluster://10.0.0.1:7001,10.0.0.2:7002",
        )]);
        assert!(
            config
                .redis
                .location
                .unwrap()
                .starts_with("redis+cluster://")
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://10.0.0.1",
            "redis+cluster://10.0.0.1:7001/2",
            "http://10.0.0.1:6379",
        ] {
            let env = EnvProvider::from_vars([("REDIS_LOCATION".to_owned(), bad.to_owned())]);
            let err = Config::load(None, env).unwrap_err().to_string();
            assert!(err.contains("REDIS_LOCATION"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_spoken_style_defaults_to_short_plain_speech_and_is_set_by_its_variable() {
        let spoken = "你的回答会被朗读出来：用简短口语，不要用列表、表情或 Markdown。";
        let config = load(&[]);
        assert_eq!(config.ai.spoken_style, spoken);
        // `lty config print` shows it.
        let printed: toml::Value = toml::from_str(&config.to_redacted_toml()).unwrap();
        assert_eq!(printed["ai"]["spoken_style"].as_str(), Some(spoken));

        let config = load(&[("LTY_AI__SPOKEN_STYLE", "Answer in one short sentence.")]);
        assert_eq!(config.ai.spoken_style, "Answer in one short sentence.");
    }

    #[test]
    fn tool_rounds_default_to_three_and_are_set_by_their_variable() {
        assert_eq!(load(&[]).ai.max_tool_rounds, 3);
        let config = load(&[("LTY_AI__MAX_TOOL_ROUNDS", "0")]);
        assert_eq!(config.ai.max_tool_rounds, 0);
        let printed: toml::Value = toml::from_str(&config.to_redacted_toml()).unwrap();
        assert_eq!(printed["ai"]["max_tool_rounds"].as_integer(), Some(0));
    }
}
