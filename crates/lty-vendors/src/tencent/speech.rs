//! A Tencent Cloud speech client: TC3-signed `TextToVoice` and
//! `SentenceRecognition`, as the [`Tts`] and [`Asr`] ports.
//!
//! Every attempt is signed afresh (new timestamp); transport errors,
//! `InternalError*` and `RequestLimitExceeded*` are retried twice with
//! jittered backoff. Outcomes are decided on the `Response.Error` envelope,
//! never on the HTTP status.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lty_core::speech::{
    Asr, AudioFormat, Pcm16k, Synthesis, Transcript, Tts, TtsRequest, split_sentences,
};
use lty_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::tc3::{self, Tc3Call};
use super::{Credential, asr, tts};
use crate::http::ClientOptions;

const PROVIDER: &str = "tencent";
const RETRIES: u32 = 2;
const SAMPLE_RATE: u32 = 16_000;

/// Settings of a [`TencentSpeech`] client.
#[derive(Debug, Clone)]
pub struct TencentSpeechConfig {
    pub credential: Credential,
    /// TTS origin, e.g. `https://tts.tencentcloudapi.com` or `http://127.0.0.1:PORT`.
    pub tts_endpoint: String,
    /// ASR origin.
    pub asr_endpoint: String,
    /// `X-TC-Region` for TTS.
    pub region: String,
    /// Default `VoiceType`.
    pub voice_type: Option<i64>,
    pub connect_timeout: Duration,
    /// Bound on one attempt.
    pub timeout: Duration,
}

/// A Tencent Cloud speech client; cheap to clone.
#[derive(Debug, Clone)]
pub struct TencentSpeech {
    config: TencentSpeechConfig,
    http: reqwest::Client,
}

fn upstream(message: impl Into<String>) -> Error {
    Error::Upstream {
        provider: PROVIDER,
        message: message.into(),
    }
}

/// The `Host` a request to `endpoint` carries (with the port when one is
/// given), which is what gets signed.
fn host_of(endpoint: &str) -> Result<String> {
    let url = url::Url::parse(endpoint).map_err(|e| upstream(format!("bad endpoint: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| upstream("endpoint has no host"))?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn session_id() -> String {
    let raw: u128 = rand::random();
    format!("{raw:032x}")
}

/// One API call's constants.
struct Api {
    service: &'static str,
    action: &'static str,
    version: &'static str,
}

impl TencentSpeech {
    /// A client for `config`; fails only when the HTTP client cannot be built.
    pub fn new(config: TencentSpeechConfig) -> Result<Self> {
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| upstream(e.to_string()))?;
        Ok(Self { config, http })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        api: &Api,
        region: Option<&str>,
        body: &impl Serialize,
    ) -> Result<T> {
        let host = host_of(endpoint)?;
        let url = format!("{}/", endpoint.trim_end_matches('/'));
        // Serialized once: the bytes hashed are the bytes sent.
        let payload = serde_json::to_vec(body).map_err(|e| upstream(e.to_string()))?;
        let mut attempt = 0;
        loop {
            let outcome = self.attempt::<T>(&url, &host, api, region, &payload).await;
            match outcome {
                Ok(data) => return Ok(data),
                Err((retryable, err)) if retryable && attempt < RETRIES => {
                    attempt += 1;
                    let jitter = u64::from(rand::random::<u8>());
                    let backoff = 100 * u64::from(attempt * attempt) + jitter;
                    tracing::warn!(%err, attempt, "tencent call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err((_, err)) => return Err(err),
            }
        }
    }

    /// One signed attempt; the error says whether it may be retried.
    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &str,
        host: &str,
        api: &Api,
        region: Option<&str>,
        payload: &[u8],
    ) -> std::result::Result<T, (bool, Error)> {
        let call = Tc3Call {
            service: api.service,
            host,
            action: api.action,
            version: api.version,
            region,
            language: None,
            timestamp: now_secs(),
            payload,
        };
        let signed = tc3::sign(&call, &self.config.credential)
            .map_err(|e| (false, upstream(e.to_string())))?;
        let mut req = self.http.post(url).body(payload.to_vec());
        for (name, value) in &signed.headers {
            // reqwest writes Host from the URL, identical to the signed value.
            if name != "Host" {
                req = req.header(name, value);
            }
        }
        let res = req
            .send()
            .await
            .map_err(|e| (true, upstream(e.without_url().to_string())))?;
        let status = res.status();
        let body = res
            .bytes()
            .await
            .map_err(|e| (true, upstream(e.without_url().to_string())))?;
        match tc3::parse_response::<T>(&body) {
            Ok(ok) => {
                tracing::debug!(request_id = %ok.request_id, action = api.action, "tencent call ok");
                Ok(ok.data)
            }
            Err(tc3::ResponseError::Api(e)) => {
                let retryable = e.is_retryable();
                Err((retryable, upstream(e.to_string())))
            }
            Err(tc3::ResponseError::Malformed(e)) => Err((
                status.is_server_error(),
                upstream(format!("HTTP {status}: {e}")),
            )),
        }
    }

    fn voice(&self, req: &TtsRequest) -> Result<Option<i64>> {
        match &req.voice {
            None => Ok(self.config.voice_type),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::validation("voice", "a Tencent VoiceType is a number")),
        }
    }
}

#[async_trait]
impl Tts for TencentSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn synthesize(&self, req: &TtsRequest) -> Result<Synthesis> {
        let voice_type = self.voice(req)?;
        // PCM and MP3 join byte-wise; WAV is PCM with one header of ours.
        let codec = match req.format {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Wav | AudioFormat::Pcm => "pcm",
        };
        let api = Api {
            service: tts::SERVICE,
            action: tts::ACTION,
            version: tts::VERSION,
        };
        let mut audio = Vec::new();
        let mut duration_ms = 0;
        for piece in split_sentences(&req.text, tts::MAX_CHARS) {
            let body = tts::TextToVoice {
                text: piece,
                session_id: session_id(),
                voice_type,
                sample_rate: SAMPLE_RATE,
                codec: codec.to_owned(),
                enable_subtitle: codec == "mp3",
            };
            let res: tts::TextToVoiceResponse = self
                .call(
                    &self.config.tts_endpoint,
                    &api,
                    Some(&self.config.region),
                    &body,
                )
                .await?;
            let bytes = STANDARD
                .decode(res.audio.as_bytes())
                .map_err(|e| upstream(format!("Audio is not Base64: {e}")))?;
            duration_ms += if codec == "pcm" {
                (bytes.len() as u64 / 2) * 1000 / u64::from(SAMPLE_RATE)
            } else {
                res.subtitles
                    .iter()
                    .flatten()
                    .map(|s| s.end_time)
                    .max()
                    .unwrap_or(0)
            };
            audio.extend_from_slice(&bytes);
        }
        Ok(Synthesis::joined(
            audio,
            req.format,
            SAMPLE_RATE,
            duration_ms,
        ))
    }
}

#[async_trait]
impl Asr for TencentSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn recognize(&self, audio: &Pcm16k) -> Result<Transcript> {
        if audio.samples.len() > asr::MAX_BYTES {
            return Err(Error::validation("audio", "at most 3 MB of audio"));
        }
        let body = asr::SentenceRecognition {
            eng_service_type: "16k_zh".into(),
            source_type: 1,
            voice_format: "pcm".into(),
            data: STANDARD.encode(&audio.samples),
            data_len: audio.samples.len(),
        };
        let api = Api {
            service: asr::SERVICE,
            action: asr::ACTION,
            version: asr::VERSION,
        };
        let res: asr::SentenceRecognitionResponse = self
            .call(&self.config.asr_endpoint, &api, None, &body)
            .await?;
        Ok(Transcript {
            text: res.result,
            confidence: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_host_keeps_an_explicit_port_only() {
        assert_eq!(host_of("http://127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(
            host_of("https://tts.tencentcloudapi.com/").unwrap(),
            "tts.tencentcloudapi.com"
        );
        assert!(host_of("not a url").is_err());
    }
}
