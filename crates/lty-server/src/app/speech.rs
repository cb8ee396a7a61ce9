//! Speech services behind `/api/ai/tts/` and `/api/ai/asr/`: the [`Tts`],
//! [`Asr`] and [`StreamingAsr`] adapters chosen at start from
//! `AUDIO_SERVICE_PROVIDER`, the TTS cache (identical text+voice → the
//! stored audio, no new synthesis), and the legacy object layout
//! `{base_dir}/[permanent|temporary]/{YYYYMMDD}/{file}`.
//! The text side of a streamed spoken reply (cutting it into sentences,
//! reading its emotion, removing emoji) is in [`sentences`] and [`emotion`].

pub mod emotion;
pub mod espeak;
pub mod sentences;
pub mod streaming;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use lty_core::speech::{Asr, AudioFormat, BufferedAsr, StreamingAsr, Synthesis, Tts, TtsRequest};
use lty_core::{Error, Result};
use lty_vendors::tencent::Credential;
use lty_vendors::tencent::realtime_asr::{TencentRealtimeAsr, TencentRealtimeAsrConfig};
use lty_vendors::tencent::speech::{TencentSpeech, TencentSpeechConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::state::AppState;

/// The configured speech adapters; `None` where the provider lacks
/// credentials (the routes then answer `503 provider_not_configured`).
pub struct Speech {
    /// `AUDIO_SERVICE_PROVIDER`.
    pub provider: &'static str,
    pub tts: Option<Arc<dyn Tts>>,
    pub asr: Option<Arc<dyn Asr>>,
    /// Recognition while the audio is spoken: the provider's streaming
    /// protocol, or [`BufferedAsr`] over `asr` when it has none; metered.
    pub streaming_asr: Option<Arc<dyn StreamingAsr>>,
    /// `ALIYUN_OSS_AUDIO_BASE_DIR` without surrounding `/`.
    pub base_dir: String,
}

impl std::fmt::Debug for Speech {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speech")
            .field("provider", &self.provider)
            .field("tts", &self.tts.as_ref().map(|t| t.provider()))
            .field("asr", &self.asr.as_ref().map(|a| a.provider()))
            .field(
                "streaming_asr",
                &self.streaming_asr.as_ref().map(|a| a.provider()),
            )
            .finish()
    }
}

impl Speech {
    /// The TTS adapter, or 503 naming the configured provider.
    pub fn tts(&self) -> Result<&Arc<dyn Tts>> {
        self.tts.as_ref().ok_or(Error::ProviderNotConfigured {
            provider: self.provider,
        })
    }

    /// The ASR adapter, or 503 naming the configured provider.
    pub fn asr(&self) -> Result<&Arc<dyn Asr>> {
        self.asr.as_ref().ok_or(Error::ProviderNotConfigured {
            provider: self.provider,
        })
    }

    /// The streaming ASR adapter, built from the same configuration as
    /// [`asr`](Self::asr), or 503 naming the configured provider.
    pub fn streaming_asr(&self) -> Result<&Arc<dyn StreamingAsr>> {
        self.streaming_asr
            .as_ref()
            .ok_or(Error::ProviderNotConfigured {
                provider: self.provider,
            })
    }
}

fn provider_name(name: &str) -> &'static str {
    match name {
        "aliyun" => "aliyun",
        "tencent" => "tencent",
        "local" => "local",
        _ => "huoshan",
    }
}

/// Builds the speech adapters for `config`.
pub fn build(config: &Config) -> anyhow::Result<Speech> {
    let audio = &config.audio;
    let provider = provider_name(&audio.provider);
    let base_dir = config
        .aliyun
        .oss
        .audio_base_dir
        .as_deref()
        .unwrap_or("audio")
        .trim_matches('/')
        .to_owned();
    let key_safe = |s: &str| {
        s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
    };
    if !key_safe(&base_dir) {
        bail!(
            "ALIYUN_OSS_AUDIO_BASE_DIR must be a relative path of letters, digits, `-`, `_`, `.`"
        );
    }
    let timeout = Duration::from_secs(audio.timeout_secs.max(1));
    let local = || {
        espeak::EspeakTts::detect(&audio.espeak_path, &audio.local_voice, timeout)
            .map(|t| Arc::new(t) as Arc<dyn Tts>)
    };
    let mut tts: Option<Arc<dyn Tts>> = None;
    let mut asr: Option<Arc<dyn Asr>> = None;
    let mut streaming_asr: Option<Arc<dyn StreamingAsr>> = None;
    match provider {
        "local" => tts = local(),
        "aliyun" => {
            if let Some(client) = aliyun(config)? {
                tts = Some(Arc::new(client.clone()));
                asr = Some(Arc::new(client.clone()));
                streaming_asr = Some(Arc::new(client));
            }
        }
        "tencent" => {
            if let Some(client) = tencent(config)? {
                tts = Some(Arc::new(client.clone()));
                asr = Some(Arc::new(client));
                streaming_asr = tencent_realtime(config)?;
            }
        }
        "huoshan" => {
            if let Some(client) = huoshan(config)? {
                tts = Some(Arc::new(client.clone()));
                asr = Some(Arc::new(client.clone()));
                streaming_asr = Some(Arc::new(client));
            }
        }
        _ => {}
    }
    if streaming_asr.is_none()
        && let Some(asr) = &asr
    {
        // Nothing streams: collect the audio, recognize it at the end.
        let max_ms = audio.asr_max_seconds.saturating_mul(1000);
        streaming_asr = Some(Arc::new(BufferedAsr::new(asr.clone(), max_ms)));
    }
    let streaming_asr =
        streaming_asr.map(|s| Arc::new(streaming::Metered::new(s)) as Arc<dyn StreamingAsr>);
    if tts.is_none() && provider != "local" && audio.local_fallback {
        tts = local();
        if tts.is_some() {
            tracing::warn!(
                provider,
                "speech provider has no credentials; text to speech uses espeak-ng"
            );
        }
    }
    if tts.is_none() {
        tracing::warn!(
            provider,
            "text to speech is not available (no credentials, espeak-ng not found)"
        );
    }
    Ok(Speech {
        provider,
        tts,
        asr,
        streaming_asr,
        base_dir,
    })
}

/// The Aliyun NLS speech client, when its key pair and appkey are set.
fn aliyun(config: &Config) -> anyhow::Result<Option<lty_vendors::aliyun::nls::NlsSpeech>> {
    use lty_vendors::aliyun::AccessKey;
    use lty_vendors::aliyun::nls::{self, NlsSpeech, NlsSpeechConfig};
    let n = &config.aliyun.nls;
    let (Some(id), Some(secret), Some(appkey)) =
        (&n.access_key_id, &n.access_key_secret, &n.app_id)
    else {
        return Ok(None);
    };
    if id.is_empty() || secret.expose().is_empty() || appkey.is_empty() {
        return Ok(None);
    }
    let client = NlsSpeech::new(NlsSpeechConfig {
        key: AccessKey::new(id, secret.expose()),
        appkey: appkey.clone(),
        meta_endpoint: n.meta_endpoint.clone(),
        gateway_url: n.gateway_url.clone(),
        voice: nls::DEFAULT_VOICE.to_owned(),
        tts_max_chars: nls::TTS_MAX_CHARS,
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(config.audio.timeout_secs.max(1)),
    })?;
    Ok(Some(client))
}

/// The Tencent Cloud speech client, when its key pair is set.
fn tencent(config: &Config) -> anyhow::Result<Option<TencentSpeech>> {
    let t = &config.audio.tencent;
    let (Some(id), Some(secret)) = (&t.api_key, &t.api_secret) else {
        return Ok(None);
    };
    let client = TencentSpeech::new(TencentSpeechConfig {
        credential: Credential::new(id, secret.expose()),
        tts_endpoint: t.tts_endpoint.clone(),
        asr_endpoint: t.asr_endpoint.clone(),
        region: t.region.clone(),
        voice_type: t.voice_type,
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(config.audio.timeout_secs.max(1)),
    })?;
    Ok(Some(client))
}

/// Tencent real-time recognition, when the AppId is set besides the key
/// pair; `None` leaves streaming to the buffering fallback.
fn tencent_realtime(config: &Config) -> anyhow::Result<Option<Arc<dyn StreamingAsr>>> {
    let t = &config.audio.tencent;
    let (Some(id), Some(secret)) = (&t.api_key, &t.api_secret) else {
        return Ok(None);
    };
    let Some(app_id) = t.app_id.as_deref().filter(|a| !a.is_empty()) else {
        tracing::warn!(
            "AUDIO_SERVICE_TENCENT_APP_ID is unset: streaming recognition collects the audio \
             and sends it to SentenceRecognition at the end"
        );
        return Ok(None);
    };
    if !app_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("AUDIO_SERVICE_TENCENT_APP_ID must be the account's numeric AppId");
    }
    if !(t.asr_ws_url.starts_with("ws://") || t.asr_ws_url.starts_with("wss://")) {
        bail!("LTY_AUDIO__TENCENT__ASR_WS_URL must start with ws:// or wss://");
    }
    Ok(Some(Arc::new(TencentRealtimeAsr::new(
        TencentRealtimeAsrConfig {
            app_id: app_id.to_owned(),
            credential: Credential::new(id, secret.expose()),
            ws_url: t.asr_ws_url.clone(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(config.audio.timeout_secs.max(1)),
        },
    ))))
}

/// The huoshan speech client, when its APP ID, access token and cluster
/// are set.
fn huoshan(
    config: &Config,
) -> anyhow::Result<Option<lty_vendors::volcengine::speech::HuoshanSpeech>> {
    use lty_vendors::volcengine::speech::{HuoshanSpeech, HuoshanSpeechConfig};
    let h = &config.audio.huoshan;
    let (Some(appid), Some(token)) = (&h.appid, &h.access_token) else {
        return Ok(None);
    };
    if appid.is_empty() || token.expose().is_empty() || h.cluster.is_empty() {
        return Ok(None);
    }
    if !(h.ws_url.starts_with("ws://") || h.ws_url.starts_with("wss://")) {
        bail!("AUDIO_SERVICE_HUOSHAN_WS_URL must start with ws:// or wss://");
    }
    let client = HuoshanSpeech::new(HuoshanSpeechConfig {
        appid: appid.clone(),
        access_token: token.expose().to_owned(),
        cluster: h.cluster.clone(),
        voice_type: h.voice_type.clone().filter(|v| !v.is_empty()),
        base_url: h.base_url.clone(),
        ws_url: h.ws_url.clone(),
        asr_resource_id: h.asr_resource_id.clone(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(config.audio.timeout_secs.max(1)),
        asr_grace: Duration::from_secs(10),
    })?;
    Ok(Some(client))
}

/// Whether an object is kept or swept after the configured number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Permanent,
    Temporary,
}

/// The legacy object key `{base_dir}/{permanent|temporary}/{YYYYMMDD}/{file}`,
/// dated in Asia/Shanghai (UTC+8).
pub fn object_key(base_dir: &str, retention: Retention, at: DateTime<Utc>, file: &str) -> String {
    // Asia/Shanghai has had no daylight saving time since 1991.
    let day = (at + chrono::Duration::hours(8)).format("%Y%m%d");
    let kind = match retention {
        Retention::Permanent => "permanent",
        Retention::Temporary => "temporary",
    };
    format!("{base_dir}/{kind}/{day}/{file}")
}

/// A stored synthesis, as the TTS cache remembers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAudio {
    /// Blob key of the audio.
    pub key: String,
    pub format: String,
    pub duration_ms: u64,
}

/// Cache key of a synthesis: provider, voice, format and text, hashed.
fn tts_cache_key(provider: &str, req: &TtsRequest) -> String {
    let mut h = Sha256::new();
    for part in [
        provider,
        req.voice.as_deref().unwrap_or(""),
        req.format.as_str(),
        req.text.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("tts:{}", hex::encode(h.finalize()))
}

/// Synthesizes `req` (or finds it in the TTS cache), stores the audio as a
/// temporary object and returns where it is.
pub async fn synthesize_stored(state: &AppState, req: &TtsRequest) -> Result<StoredAudio> {
    let tts = state.speech.tts()?;
    let cache_key = tts_cache_key(tts.provider(), req);
    if let Some(hit) = state.cache.get(&cache_key).await?
        && let Ok(stored) = serde_json::from_str::<StoredAudio>(&hit)
    {
        metrics::counter!("lty_tts_cache_total", "result" => "hit").increment(1);
        return Ok(stored);
    }
    metrics::counter!("lty_tts_cache_total", "result" => "miss").increment(1);
    let Synthesis {
        audio,
        format,
        duration_ms,
    } = tts.synthesize(req).await?;
    let file = format!("{:032x}.{}", rand::random::<u128>(), format.as_str());
    let key = object_key(
        &state.speech.base_dir,
        Retention::Temporary,
        Utc::now(),
        &file,
    );
    state.blobs.put(&key, audio, format.content_type()).await?;
    let stored = StoredAudio {
        key,
        format: format.as_str().to_owned(),
        duration_ms,
    };
    let ttl = Duration::from_secs(state.config.audio.tts_cache_ttl_secs);
    if !ttl.is_zero()
        && let Ok(json) = serde_json::to_string(&stored)
    {
        state.cache.set(&cache_key, &json, Some(ttl)).await?;
    }
    Ok(stored)
}

/// The default output format of a provider when the caller names none.
pub fn default_format(provider: &str) -> AudioFormat {
    if provider == "local" {
        AudioFormat::Wav
    } else {
        AudioFormat::Mp3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn object_keys_follow_the_legacy_layout_dated_in_shanghai() {
        // 2026-11-28 17:30 UTC is already the 29th in Shanghai.
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 17, 30, 0).unwrap();
        assert_eq!(
            object_key("audio", Retention::Temporary, at, "a.wav"),
            "audio/temporary/20261129/a.wav"
        );
        assert_eq!(
            object_key("x/y", Retention::Permanent, at, "b.mp3"),
            "x/y/permanent/20261129/b.mp3"
        );
    }
}
