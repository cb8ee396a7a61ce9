//! Aliyun NLS (Intelligent Speech Interaction): the `CreateToken` call
//! (RPC signature V1), a shared token cache, RESTful text to speech
//! (`/stream/v1/tts`) and RESTful one-sentence recognition
//! (`/stream/v1/asr`), as lty's [`Tts`] and [`Asr`] ports; the WebSocket
//! `SpeechRecognizer` as its `StreamingAsr` port is in [`recognizer`].
//!
//! The AccessKey pair signs `CreateToken` only; every speech call carries
//! the resulting token (`X-NLS-Token`) and the project appkey. One token
//! serves every request until shortly before its `ExpireTime`; concurrent
//! callers wait for a single refresh. A speech call answered with status
//! `40000001` (token invalid or expired) drops the token, fetches a new
//! one and is sent once more.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use lty_core::speech::{
    Asr, AudioFormat, Pcm16k, Synthesis, Transcript, Tts, TtsRequest, split_sentences,
};
use lty_core::{Error, Result};
use serde::{Deserialize, Serialize};

pub mod recognizer;

use super::pop::{PopResponseError, RpcCall, RpcSigned, check_pop_response, sign_rpc};
use super::{AccessKey, Method, SignError};
use crate::http::ClientOptions;

/// `Action` of the token call.
pub const CREATE_TOKEN_ACTION: &str = "CreateToken";
/// `Version` of the NLS meta API.
pub const CREATE_TOKEN_VERSION: &str = "2019-02-28";
/// `RegionId` of `CreateToken` (cn-shanghai even for other mainland gateways).
pub const REGION_ID: &str = "cn-shanghai";
/// The public `CreateToken` endpoint.
pub const DEFAULT_META_ENDPOINT: &str = "https://nls-meta.cn-shanghai.aliyuncs.com";
/// The public RESTful gateway.
pub const DEFAULT_GATEWAY_URL: &str = "https://nls-gateway-cn-shanghai.aliyuncs.com";
/// Path of RESTful text to speech on the gateway.
pub const TTS_PATH: &str = "/stream/v1/tts";
/// Path of RESTful one-sentence recognition on the gateway.
pub const ASR_PATH: &str = "/stream/v1/asr";
/// Header carrying the token on speech calls.
pub const TOKEN_HEADER: &str = "X-NLS-Token";
/// Longest text of one TTS request, in characters; the gateway silently
/// cuts anything beyond it.
pub const TTS_MAX_CHARS: usize = 300;
/// Longest clip of one recognition request, in milliseconds.
pub const ASR_MAX_MS: u64 = 60_000;
/// The voice used when neither the request nor the configuration names one.
pub const DEFAULT_VOICE: &str = "xiaoyun";
/// Sample rate lty asks for and sends (Hz).
pub const SAMPLE_RATE: u32 = 16_000;

/// NLS `status` values lty acts on (aliyun.md §5.6).
pub mod status {
    /// The call succeeded.
    pub const SUCCESS: u64 = 20_000_000;
    /// The token is invalid or expired: refresh it and retry once.
    pub const TOKEN_INVALID: u64 = 40_000_001;
    /// Too many concurrent requests: back off and retry.
    pub const TOO_MANY_REQUESTS: u64 = 40_000_005;
    /// The trial expired or the service is not commercial yet.
    pub const NOT_COMMERCIAL: u64 = 40_000_010;
    /// The appkey belongs to another account than the token.
    pub const APPKEY_NOT_EXIST: u64 = 40_020_105;
    /// Vendor-side failure: a bounded retry may succeed.
    pub const SERVER_ERROR: u64 = 50_000_000;
}

const PROVIDER: &str = "aliyun";
/// Extra attempts after a transient failure (flow control, server error,
/// transport), besides the single retry after a token refresh.
const RETRIES: u32 = 2;
/// How long to keep serving a still-valid token after a failed refresh
/// before trying `CreateToken` again.
const REFRESH_BACKOFF: Duration = Duration::from_secs(30);
/// Largest audio answer accepted for one TTS request.
const MAX_AUDIO_BYTES: usize = 32 * 1024 * 1024;
/// Largest JSON answer read from the gateway.
const MAX_JSON_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// CreateToken
// ---------------------------------------------------------------------------

/// Signs a `CreateToken` GET: the returned `signed_query` goes after
/// `https://<meta host>/?`.
pub fn sign_create_token(
    key: &AccessKey,
    timestamp: u64,
    nonce: &str,
) -> std::result::Result<RpcSigned, SignError> {
    let call = RpcCall {
        action: CREATE_TOKEN_ACTION,
        version: CREATE_TOKEN_VERSION,
        params: &[("RegionId", REGION_ID)],
    };
    sign_rpc(Method::Get, &call, key, timestamp, nonce)
}

/// An NLS access token. `Debug` hides the id: it is a bearer credential.
#[derive(Clone, PartialEq, Eq)]
pub struct NlsToken {
    /// `Token.Id`, sent as `X-NLS-Token`.
    pub id: String,
    /// `Token.ExpireTime`: absolute expiry in Unix seconds.
    pub expire_time: u64,
}

impl fmt::Debug for NlsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NlsToken")
            .field("id", &"<redacted>")
            .field("expire_time", &self.expire_time)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateTokenBody {
    token: Option<TokenBody>,
    #[serde(default)]
    nls_request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TokenBody {
    id: String,
    expire_time: u64,
}

/// Reads a `CreateToken` answer: the token, or an upstream error carrying
/// the vendor `Code` and `Message`.
pub fn parse_create_token_response(status: u16, body: &[u8]) -> Result<NlsToken> {
    let envelope = check_pop_response(status, body).map_err(|e| match e {
        PopResponseError::Api(e) => upstream(format!(
            "CreateToken refused: {} ({}), request {}",
            e.code,
            e.message,
            e.request_id.as_deref().unwrap_or("-")
        )),
        other => upstream(format!("CreateToken: {other}")),
    })?;
    let parsed: CreateTokenBody = serde_json::from_slice(body)
        .map_err(|e| upstream(format!("CreateToken answered unexpectedly: {e}")))?;
    let token = parsed
        .token
        .filter(|t| !t.id.is_empty())
        .ok_or_else(|| upstream("CreateToken answered without Token.Id"))?;
    tracing::debug!(
        request_id = ?envelope.request_id,
        nls_request_id = ?parsed.nls_request_id,
        expire_time = token.expire_time,
        "NLS token issued"
    );
    Ok(NlsToken {
        id: token.id,
        expire_time: token.expire_time,
    })
}

/// When a token issued at `now` and expiring at `expire_time` should be
/// replaced: 10 minutes before it expires, or 10 % of its lifetime before
/// when that is longer.
pub fn refresh_at(now: u64, expire_time: u64) -> u64 {
    let lifetime = expire_time.saturating_sub(now);
    let margin = (lifetime / 10).max(600);
    expire_time.saturating_sub(margin)
}

// ---------------------------------------------------------------------------
// Gateway answers
// ---------------------------------------------------------------------------

/// The JSON the gateway answers with: always for recognition, and for TTS
/// when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NlsStatus {
    /// The vendor's id of the task; log it.
    #[serde(default)]
    pub task_id: String,
    /// Recognized text (empty on failure).
    #[serde(default)]
    pub result: String,
    /// [`status::SUCCESS`] or an error code.
    pub status: u64,
    /// `SUCCESS` or a description of the error.
    #[serde(default)]
    pub message: String,
}

/// The body of a RESTful TTS POST (`Content-Type: application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtsBody {
    /// Project appkey.
    pub appkey: String,
    /// UTF-8 text, at most [`TTS_MAX_CHARS`] characters.
    pub text: String,
    /// `pcm`, `wav` or `mp3`.
    pub format: String,
    /// 16000 or 8000.
    pub sample_rate: u32,
    /// Voice name, e.g. `xiaoyun`.
    pub voice: String,
}

/// The query string of a recognition POST, in the order it is sent.
pub fn asr_query(appkey: &str) -> Vec<(&'static str, String)> {
    vec![
        ("appkey", appkey.to_owned()),
        ("format", "pcm".to_owned()),
        ("sample_rate", SAMPLE_RATE.to_string()),
        ("enable_punctuation_prediction", "true".to_owned()),
        ("enable_inverse_text_normalization", "true".to_owned()),
    ]
}

/// What went wrong in one gateway attempt, and what may be done about it.
enum Failure {
    /// The gateway refused the token (`40000001`).
    TokenRejected(Error),
    /// Flow control, a vendor-side error or a transport failure.
    Transient(Error),
    /// Anything else: retrying cannot help.
    Fatal(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Self::TokenRejected(e) | Self::Transient(e) | Self::Fatal(e) => e,
        }
    }
}

fn classify(s: &NlsStatus, what: &str) -> Failure {
    let err = upstream(format!(
        "{what} status {}: {} (task {})",
        s.status,
        s.message,
        if s.task_id.is_empty() {
            "-"
        } else {
            &s.task_id
        }
    ));
    match s.status {
        status::TOKEN_INVALID => Failure::TokenRejected(err),
        status::TOO_MANY_REQUESTS | status::SERVER_ERROR => Failure::Transient(err),
        _ => Failure::Fatal(err),
    }
}

/// Reads the JSON status body of a failed or recognition answer.
fn parse_status(
    http_status: u16,
    body: &[u8],
    what: &str,
) -> std::result::Result<NlsStatus, Failure> {
    serde_json::from_slice::<NlsStatus>(body).map_err(|_| {
        let err = upstream(format!(
            "{what} answered HTTP {http_status} without an NLS status"
        ));
        if http_status >= 500 {
            Failure::Transient(err)
        } else {
            Failure::Fatal(err)
        }
    })
}

// ---------------------------------------------------------------------------
// MP3 duration
// ---------------------------------------------------------------------------

/// One MPEG audio Layer III frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mp3Frame {
    /// Whole frame length in bytes, header included.
    len: usize,
    /// Samples per channel in the frame.
    samples: u64,
    sample_rate: u64,
    /// Size of the side information, where a Xing/Info tag would start.
    side_info: usize,
}

fn mp3_frame(h: &[u8]) -> Option<Mp3Frame> {
    const BITRATES_V1: [u64; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const BITRATES_V2: [u64; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let (&b0, &b1, &b2, &b3) = (h.first()?, h.get(1)?, h.get(2)?, h.get(3)?);
    if b0 != 0xff || b1 & 0xe0 != 0xe0 {
        return None;
    }
    // Version: 0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1; layer 1 = Layer III.
    let version = (b1 >> 3) & 3;
    if version == 1 || (b1 >> 1) & 3 != 1 {
        return None;
    }
    let bitrate_index = usize::from(b2 >> 4);
    let rate_index = usize::from((b2 >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let padding = usize::from((b2 >> 1) & 1);
    let mono = b3 >> 6 == 3;
    let mpeg1 = version == 3;
    let kbps = if mpeg1 {
        BITRATES_V1[bitrate_index]
    } else {
        BITRATES_V2[bitrate_index]
    };
    let base_rate = [44_100, 48_000, 32_000][rate_index];
    let sample_rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let (samples, coefficient, side_info) = match (mpeg1, mono) {
        (true, true) => (1152, 144, 17),
        (true, false) => (1152, 144, 32),
        (false, true) => (576, 72, 9),
        (false, false) => (576, 72, 17),
    };
    let len = usize::try_from(coefficient * kbps * 1000 / sample_rate).ok()? + padding;
    Some(Mp3Frame {
        len,
        samples,
        sample_rate,
        side_info,
    })
}

/// Playing time of MPEG Layer III audio in milliseconds, from its frame
/// headers: an ID3v2 tag and a leading Xing/Info frame are skipped, bytes
/// between frames are scanned past.
pub fn mp3_duration_ms(data: &[u8]) -> u64 {
    let mut at = 0;
    if data.len() >= 10 && &data[..3] == b"ID3" {
        // Syncsafe size: 7 bits per byte, plus a footer when flagged.
        let size = data[6..10]
            .iter()
            .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7f));
        let footer = if data[5] & 0x10 != 0 { 10 } else { 0 };
        at = 10 + size + footer;
    }
    let mut micros: u64 = 0;
    let mut first = true;
    while let Some(header) = data.get(at..at + 4) {
        let Some(frame) = mp3_frame(header) else {
            if header.starts_with(b"TAG") {
                break;
            }
            at += 1;
            continue;
        };
        let tag_at = at + 4 + frame.side_info;
        let is_info =
            first && matches!(data.get(tag_at..tag_at + 4), Some(b"Xing") | Some(b"Info"));
        if !is_info {
            micros += frame.samples * 1_000_000 / frame.sample_rate;
        }
        first = false;
        at += frame.len;
    }
    micros / 1000
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// Settings of an [`NlsSpeech`] client.
#[derive(Debug, Clone)]
pub struct NlsSpeechConfig {
    /// AccessKey pair that signs `CreateToken`.
    pub key: AccessKey,
    /// Project appkey (`ALIYUN_NLS_APP_ID`).
    pub appkey: String,
    /// `CreateToken` origin, e.g. [`DEFAULT_META_ENDPOINT`] or `http://127.0.0.1:PORT`.
    pub meta_endpoint: String,
    /// RESTful gateway origin, e.g. [`DEFAULT_GATEWAY_URL`].
    pub gateway_url: String,
    /// Voice used when a request names none.
    pub voice: String,
    /// Longest text of one TTS request ([`TTS_MAX_CHARS`]).
    pub tts_max_chars: usize,
    pub connect_timeout: Duration,
    /// Bound on one HTTP call.
    pub timeout: Duration,
}

/// The cached token and when to replace it.
struct Cached {
    token: NlsToken,
    refresh_at: u64,
}

#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    /// After a failed refresh: keep the old token until then.
    backoff_until: Option<Instant>,
    /// Counts finished `CreateToken` calls.
    generation: u64,
    /// Why the latest `CreateToken` failed, if it did.
    failure: Option<String>,
}

struct Inner {
    config: NlsSpeechConfig,
    http: reqwest::Client,
    /// Held across a refresh, so concurrent callers wait for one
    /// `CreateToken` instead of each sending their own.
    slot: tokio::sync::Mutex<Slot>,
    /// Mirror of [`Slot::generation`], readable without the lock.
    generation: AtomicU64,
}

/// An Aliyun NLS speech client; cheap to clone, clones share the token.
#[derive(Clone)]
pub struct NlsSpeech {
    inner: Arc<Inner>,
}

impl fmt::Debug for NlsSpeech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NlsSpeech")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn upstream(message: impl Into<String>) -> Error {
    Error::Upstream {
        provider: PROVIDER,
        message: message.into(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn transport(err: reqwest::Error) -> Failure {
    Failure::Transient(upstream(err.without_url().to_string()))
}

/// Reads a response body up to `max` bytes.
async fn read_capped(
    mut res: reqwest::Response,
    max: usize,
) -> std::result::Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if out.len() + chunk.len() > max {
            return Err(Failure::Fatal(upstream(format!(
                "answer larger than {max} bytes"
            ))));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl NlsSpeech {
    /// A client for `config`; fails only when the HTTP client cannot be built.
    pub fn new(config: NlsSpeechConfig) -> Result<Self> {
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| upstream(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                slot: tokio::sync::Mutex::new(Slot::default()),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// A valid token: the cached one, or a new one from `CreateToken` when
    /// it nears expiry. Concurrent callers share one refresh; if the
    /// refresh fails while the old token is still unexpired, the old token
    /// is used (and `CreateToken` is tried again after a short pause).
    /// Callers that waited for a refresh that failed share its error.
    pub async fn token(&self) -> Result<NlsToken> {
        let seen = self.inner.generation.load(Ordering::Acquire);
        let mut slot = self.inner.slot.lock().await;
        let now = now_secs();
        if let Some(c) = &slot.cached {
            let backing_off = slot.backoff_until.is_some_and(|t| Instant::now() < t);
            if now < c.refresh_at || (backing_off && now < c.token.expire_time) {
                return Ok(c.token.clone());
            }
        }
        if slot.generation != seen
            && let Some(message) = &slot.failure
        {
            return Err(upstream(message.clone()));
        }
        let fetched = self.create_token().await;
        slot.generation += 1;
        self.inner
            .generation
            .store(slot.generation, Ordering::Release);
        slot.failure = fetched.as_ref().err().map(|e| match e {
            Error::Upstream { message, .. } => message.clone(),
            other => other.to_string(),
        });
        match fetched {
            Ok(token) => {
                slot.cached = Some(Cached {
                    refresh_at: refresh_at(now, token.expire_time),
                    token: token.clone(),
                });
                slot.backoff_until = None;
                Ok(token)
            }
            Err(err) => match &slot.cached {
                Some(c) if now < c.token.expire_time => {
                    tracing::warn!(%err, "NLS token refresh failed; the current token is still valid");
                    let token = c.token.clone();
                    slot.backoff_until = Some(Instant::now() + REFRESH_BACKOFF);
                    Ok(token)
                }
                _ => Err(err),
            },
        }
    }

    /// Forgets `token` after the gateway refused it, unless another caller
    /// already replaced it.
    async fn invalidate(&self, token: &NlsToken) {
        let mut slot = self.inner.slot.lock().await;
        if slot.cached.as_ref().is_some_and(|c| c.token.id == token.id) {
            slot.cached = None;
            slot.backoff_until = None;
        }
    }

    /// One signed `CreateToken` call.
    async fn create_token(&self) -> Result<NlsToken> {
        let config = &self.inner.config;
        let signed = sign_create_token(&config.key, now_secs(), &super::pop::signature_nonce())
            .map_err(|e| upstream(e.to_string()))?;
        let url = format!(
            "{}/?{}",
            config.meta_endpoint.trim_end_matches('/'),
            signed.signed_query
        );
        let res = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| upstream(format!("CreateToken: {}", e.without_url())))?;
        let status = res.status().as_u16();
        let body = read_capped(res, MAX_JSON_BYTES)
            .await
            .map_err(Failure::into_error)?;
        parse_create_token_response(status, &body)
    }

    /// Runs `attempt` with a valid token: once more after a token refusal
    /// (with a fresh token), and up to [`RETRIES`] more times after
    /// transient failures, with jittered backoff.
    async fn with_token<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T>
    where
        F: Fn(NlsToken) -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let mut refreshed = false;
        let mut retries = 0;
        loop {
            let token = self.token().await?;
            match attempt(token.clone()).await {
                Ok(v) => return Ok(v),
                Err(Failure::TokenRejected(err)) if !refreshed => {
                    tracing::info!(%err, "{what}: NLS token refused; fetching a new one");
                    refreshed = true;
                    self.invalidate(&token).await;
                }
                Err(Failure::Transient(err)) if retries < RETRIES => {
                    retries += 1;
                    let jitter = u64::from(rand::random::<u8>());
                    let backoff = 100 * u64::from(retries * retries) + jitter;
                    tracing::warn!(%err, retries, "{what} failed; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(failure) => return Err(failure.into_error()),
            }
        }
    }

    /// One TTS request for a piece of text within the length limit.
    async fn tts_once(
        &self,
        token: NlsToken,
        body: &TtsBody,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let url = format!(
            "{}{TTS_PATH}",
            self.inner.config.gateway_url.trim_end_matches('/')
        );
        let res = self
            .inner
            .http
            .post(url)
            .header(TOKEN_HEADER, &token.id)
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let http_status = res.status();
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let task_id = res
            .headers()
            .get("task_id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        // JSON is an error whatever the status; a non-2xx is an error
        // whatever the type. Neither is ever taken for audio.
        if content_type.starts_with("application/json") || !http_status.is_success() {
            let raw = read_capped(res, MAX_JSON_BYTES).await?;
            let s = parse_status(http_status.as_u16(), &raw, "TTS")?;
            return Err(classify(&s, "TTS"));
        }
        if !(content_type.starts_with("audio/") || content_type == "application/octet-stream") {
            return Err(Failure::Fatal(upstream(format!(
                "TTS answered with content type `{content_type}`"
            ))));
        }
        let audio = read_capped(res, MAX_AUDIO_BYTES).await?;
        if audio.is_empty() {
            return Err(Failure::Fatal(upstream("TTS answered with no audio")));
        }
        tracing::debug!(%task_id, bytes = audio.len(), "NLS TTS piece");
        Ok(audio)
    }

    /// One recognition request.
    async fn asr_once(
        &self,
        token: NlsToken,
        samples: &Bytes,
    ) -> std::result::Result<String, Failure> {
        let config = &self.inner.config;
        let mut url = url::Url::parse(&format!(
            "{}{ASR_PATH}",
            config.gateway_url.trim_end_matches('/')
        ))
        .map_err(|e| Failure::Fatal(upstream(format!("bad gateway URL: {e}"))))?;
        url.query_pairs_mut()
            .extend_pairs(asr_query(&config.appkey));
        let res = self
            .inner
            .http
            .post(url)
            .header(TOKEN_HEADER, &token.id)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(samples.clone())
            .send()
            .await
            .map_err(transport)?;
        let http_status = res.status().as_u16();
        let raw = read_capped(res, MAX_JSON_BYTES).await?;
        let s = parse_status(http_status, &raw, "ASR")?;
        if s.status != status::SUCCESS {
            return Err(classify(&s, "ASR"));
        }
        tracing::debug!(task_id = %s.task_id, "NLS recognition done");
        Ok(s.result)
    }

    fn voice(&self, req: &TtsRequest) -> Result<String> {
        let Some(voice) = req.voice.as_deref() else {
            return Ok(self.inner.config.voice.clone());
        };
        if voice.is_empty()
            || voice.len() > 64
            || !voice
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::validation(
                "voice",
                "an Aliyun voice is letters, digits and `_`",
            ));
        }
        Ok(voice.to_owned())
    }
}

#[async_trait]
impl Tts for NlsSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn synthesize(&self, req: &TtsRequest) -> Result<Synthesis> {
        let voice = self.voice(req)?;
        // PCM and MP3 join byte-wise; WAV is PCM under one header of ours.
        let format = match req.format {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Wav | AudioFormat::Pcm => "pcm",
        };
        let pieces = split_sentences(&req.text, self.inner.config.tts_max_chars);
        if pieces.is_empty() {
            return Err(Error::validation("text", "must not be empty"));
        }
        let mut audio = Vec::new();
        let mut duration_ms = 0;
        for text in pieces {
            let body = TtsBody {
                appkey: self.inner.config.appkey.clone(),
                text,
                format: format.to_owned(),
                sample_rate: SAMPLE_RATE,
                voice: voice.clone(),
            };
            let piece = self
                .with_token("TTS", |token| self.tts_once(token, &body))
                .await?;
            duration_ms += if format == "pcm" {
                (piece.len() as u64 / 2) * 1000 / u64::from(SAMPLE_RATE)
            } else {
                mp3_duration_ms(&piece)
            };
            audio.extend_from_slice(&piece);
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
impl Asr for NlsSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn recognize(&self, audio: &Pcm16k) -> Result<Transcript> {
        if audio.samples.is_empty() {
            return Err(Error::validation("audio", "the recording is empty"));
        }
        if audio.duration_ms() > ASR_MAX_MS {
            return Err(Error::validation("audio", "at most 60 seconds of audio"));
        }
        let text = self
            .with_token("ASR", |token| self.asr_once(token, &audio.samples))
            .await?;
        Ok(Transcript {
            text,
            confidence: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::pop::{canonicalized_query, pop_encode, rpc_signature, rpc_string_to_sign};
    use super::*;

    #[test]
    fn create_token_is_a_signed_get_with_the_nls_parameters() {
        let key = AccessKey::new("testid", "testsecret");
        let signed = sign_create_token(&key, 1_700_000_000, "nonce-1").unwrap();
        for part in [
            "Action=CreateToken",
            "Version=2019-02-28",
            "RegionId=cn-shanghai",
            "Format=JSON",
            "SignatureMethod=HMAC-SHA1",
            "Timestamp=2023-11-14T22%3A13%3A20Z",
        ] {
            assert!(signed.signed_query.contains(part), "{part} missing");
        }
        assert!(
            signed
                .string_to_sign
                .starts_with("GET&%2F&AccessKeyId%3Dtestid")
        );
        // A gateway re-signs the decoded parameters minus Signature.
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(signed.signed_query.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "Signature")
                .collect();
        let sts = rpc_string_to_sign(Method::Get, &canonicalized_query(&params));
        let sig = rpc_signature("testsecret", &sts).unwrap();
        assert!(
            signed
                .signed_query
                .ends_with(&format!("&Signature={}", pop_encode(&sig)))
        );
    }

    #[test]
    fn create_token_answers_are_read_and_pop_errors_carry_the_vendor_code() {
        let ok = br#"{"ErrMsg":"","Token":{"UserId":"1","Id":"abc","ExpireTime":1700086400},"RequestId":"R","NlsRequestId":"N"}"#;
        let token = parse_create_token_response(200, ok).unwrap();
        assert_eq!(token.id, "abc");
        assert_eq!(token.expire_time, 1_700_086_400);
        assert!(!format!("{token:?}").contains("abc"));

        let refused = br#"{"RequestId":"R","Code":"SignatureDoesNotMatch","Message":"nope"}"#;
        let err = parse_create_token_response(400, refused).unwrap_err();
        assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
        for body in [
            &b"{}"[..],
            br#"{"Token":{"Id":"","ExpireTime":1}}"#,
            b"<html>",
        ] {
            assert!(parse_create_token_response(200, body).is_err());
        }
    }

    #[test]
    fn tokens_are_refreshed_ten_minutes_or_a_tenth_of_their_life_early() {
        // A day-long token: 10 % (2.4 h) is the larger margin.
        assert_eq!(refresh_at(0, 86_400), 86_400 - 8_640);
        // An hour-long token: 10 minutes.
        assert_eq!(refresh_at(1_000, 4_600), 4_000);
        // Shorter than the margin: due at once.
        assert_eq!(refresh_at(1_000, 1_300), 700);
        assert_eq!(refresh_at(5_000, 100), 0);
    }

    #[test]
    fn gateway_statuses_are_sorted_into_refresh_retry_and_fail() {
        let s = |status| NlsStatus {
            task_id: "t".into(),
            result: String::new(),
            status,
            message: "m".into(),
        };
        assert!(matches!(
            classify(&s(status::TOKEN_INVALID), "TTS"),
            Failure::TokenRejected(_)
        ));
        for code in [status::SERVER_ERROR, status::TOO_MANY_REQUESTS] {
            assert!(matches!(classify(&s(code), "TTS"), Failure::Transient(_)));
        }
        for code in [status::APPKEY_NOT_EXIST, 40_000_003, 40_000_010] {
            assert!(matches!(classify(&s(code), "TTS"), Failure::Fatal(_)));
        }
        assert!(matches!(
            parse_status(502, b"<html>", "TTS"),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            parse_status(200, b"{}", "TTS"),
            Err(Failure::Fatal(_))
        ));
    }

    /// An MPEG-2 Layer III frame at 16 kHz, 32 kbit/s, mono: 144 bytes, 36 ms.
    fn mpeg2_frame() -> Vec<u8> {
        let mut f = vec![0u8; 144];
        f[..4].copy_from_slice(&[0xff, 0xf3, 0x48, 0xc0]);
        f
    }

    #[test]
    fn mp3_duration_counts_frames_and_skips_tags() {
        let frames: Vec<u8> = (0..10).flat_map(|_| mpeg2_frame()).collect();
        assert_eq!(mp3_duration_ms(&frames), 360);

        // ID3v2 tag in front, Xing frame first, ID3v1 tag at the end.
        let mut xing = mpeg2_frame();
        xing[4 + 9..4 + 13].copy_from_slice(b"Xing");
        let mut tagged = b"ID3\x03\x00\x00\x00\x00\x00\x05hello".to_vec();
        tagged.extend_from_slice(&xing);
        tagged.extend_from_slice(&frames);
        tagged.extend_from_slice(b"TAG");
        tagged.extend_from_slice(&[0u8; 125]);
        assert_eq!(mp3_duration_ms(&tagged), 360);

        // MPEG-1, 44.1 kHz, 128 kbit/s, stereo: 417 bytes, 1152 samples.
        let mut f = vec![0u8; 417];
        f[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
        let one_second: Vec<u8> = (0..38).flat_map(|_| f.clone()).collect();
        assert_eq!(mp3_duration_ms(&one_second), 992);

        assert_eq!(mp3_duration_ms(b""), 0);
        assert_eq!(mp3_duration_ms(b"{\"status\":40000001}"), 0);
        assert_eq!(mp3_duration_ms(&[0xff; 64]), 0);
    }

    #[test]
    fn the_asr_query_names_the_appkey_and_the_pcm_format() {
        let q = asr_query("key");
        assert_eq!(q[0], ("appkey", "key".to_owned()));
        assert!(q.contains(&("format", "pcm".to_owned())));
        assert!(q.contains(&("sample_rate", "16000".to_owned())));
    }
}
