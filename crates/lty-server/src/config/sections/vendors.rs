//! Vendor accounts outside speech and chat: Volcengine RTC and its voice
//! agent, Aliyun (SMS, NLS, OSS, Visual Intelligence, Log Service) and
//! WeChat login.

use serde::{Deserialize, Serialize};

use crate::config::Secret;

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
