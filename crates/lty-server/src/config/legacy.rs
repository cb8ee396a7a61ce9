//! Configuration from environment variables: the fixed names the legacy
//! deployment uses ([`ENV_VARS`]) and `LTY_*` names mapped by path, read
//! into figment by [`EnvProvider`].

use figment::value::{Dict, Map, Value};
use figment::{Error as FigmentError, Metadata, Profile, Provider};

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
    var("AUDIO_SERVICE_TENCENT_APP_ID", "audio.tencent.app_id", true),
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
