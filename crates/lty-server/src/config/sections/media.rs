//! Speech providers (`[audio]`) and the object storage that keeps media
//! (`[storage]`).

use serde::{Deserialize, Serialize};

use crate::config::Secret;

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
    /// The account's AppId, which real-time (streaming) recognition needs;
    /// without it streaming recognition buffers the audio and uses
    /// SentenceRecognition.
    pub app_id: Option<String>,
    /// Scheme and host of real-time recognition (`ws://` or `wss://`).
    pub asr_ws_url: String,
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
            app_id: None,
            asr_ws_url: "wss://asr.cloud.tencent.com".into(),
        }
    }
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
