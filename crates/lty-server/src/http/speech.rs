//! `/api/ai/tts/` (text → stored audio URL) and `/api/ai/asr/` (audio →
//! text), on the provider chosen by `AUDIO_SERVICE_PROVIDER`.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use lty_core::speech::Pcm16k;
use lty_core::speech::{AudioFormat, TtsRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::audio::{self, AudioError};
use crate::app::speech::{default_format, synthesize_stored};
use crate::auth::AuthUserId;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::http::upload::Upload;
use crate::state::AppState;

/// Speech routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tts))
        // The ASR upload has its own limit (`LTY_AUDIO__ASR_MAX_BYTES`).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(asr))
                .layer(DefaultBodyLimit::disable()),
        )
}

/// Longest voice name accepted.
const VOICE_MAX: usize = 64;

/// A text to speak.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TtsIn {
    /// What to say (UTF-8, at most `LTY_AUDIO__TTS_MAX_CHARS` characters,
    /// 500 by default).
    pub text: String,
    /// A voice of the provider; the configured default when absent.
    pub voice: Option<String>,
    /// `wav`, `mp3` or `pcm`; `mp3` by default (`wav` with the local
    /// provider, which cannot produce MP3).
    pub format: Option<String>,
}

/// Where the synthesized audio is.
#[derive(Debug, Serialize, ToSchema)]
pub struct TtsOut {
    /// URL of the audio (under `/media/` in embedded mode).
    pub audio_url: String,
    /// The encoding of the audio, which may differ from the one asked for
    /// when the provider cannot produce it.
    pub format: String,
    /// Playing time in milliseconds.
    pub duration_ms: u64,
}

fn parse_tts(input: TtsIn, max_chars: usize, provider: &str) -> lty_core::Result<TtsRequest> {
    let text = input.text.trim();
    if text.is_empty() {
        return Err(lty_core::Error::validation("text", "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(lty_core::Error::validation(
            "text",
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(lty_core::Error::validation(
            "text",
            "must not contain control characters",
        ));
    }
    let voice = match input.voice.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(v)
            if v.len() <= VOICE_MAX
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b)) =>
        {
            Some(v.to_owned())
        }
        Some(_) => {
            return Err(lty_core::Error::validation(
                "voice",
                "must be at most 64 letters, digits, `-`, `_`, `+`, `.`",
            ));
        }
    };
    let format = match input.format.as_deref() {
        None | Some("") => default_format(provider),
        Some(f) => AudioFormat::parse(f)?,
    };
    Ok(TtsRequest {
        text: text.to_owned(),
        voice,
        format,
    })
}

/// Speaks a text: synthesizes it with the configured provider, stores the
/// audio and returns its URL. The same text, voice and format within the
/// cache time return the stored audio without a new synthesis.
#[utoipa::path(post, path = "/api/ai/tts/", tag = "speech",
    security(("bearer" = [])),
    request_body = TtsIn,
    responses(
        (status = 200, description = "synthesized (or cached)", body = TtsOut),
        (status = 400, description = "empty or too long text, bad voice or format", body = ErrorBody),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 502, description = "the provider failed (`upstream_error`)", body = ErrorBody),
        (status = 503, description = "no provider configured (`provider_not_configured`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, err(Debug), fields(user_id = auth.user_id))]
pub async fn tts(
    State(state): State<AppState>,
    auth: AuthUserId,
    Json(input): Json<TtsIn>,
) -> ApiResult<Json<TtsOut>> {
    let provider = state.speech.tts()?.provider();
    let req = parse_tts(input, state.config.audio.tts_max_chars, provider)?;
    let stored = synthesize_stored(&state, &req).await?;
    Ok(Json(TtsOut {
        audio_url: state.blobs.url(&stored.key),
        format: stored.format,
        duration_ms: stored.duration_ms,
    }))
}

/// Recognized speech.
#[derive(Debug, Serialize, ToSchema)]
pub struct AsrOut {
    /// The transcript (empty for silence).
    pub text: String,
}

impl From<AudioError> for ApiError {
    fn from(err: AudioError) -> Self {
        match err {
            AudioError::Unsupported(what) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_audio_format",
                format!("{what}; send WAV, MP3, Ogg/Opus, or raw PCM (16 kHz, 16-bit, mono)"),
            ),
            AudioError::Empty | AudioError::Corrupt(_) | AudioError::TooLong { .. } => {
                lty_core::Error::validation("audio", err.to_string()).into()
            }
        }
    }
}

/// Decodes an upload into 16 kHz 16-bit mono samples of at most
/// `max_seconds`: WAV (any rate, channel count, integer or float PCM),
/// MP3, Ogg/Opus, or raw 16 kHz 16-bit mono PCM when `content_type` says
/// so (`audio/pcm`, `audio/L16`, …). Unknown or undecodable formats are
/// 415 `unsupported_audio_format`; empty, damaged or too long audio is 400.
pub(crate) fn decode_upload(
    data: bytes::Bytes,
    content_type: &str,
    max_seconds: u64,
) -> ApiResult<Pcm16k> {
    Ok(audio::decode(data, content_type, max_seconds)?)
}

/// [`decode_upload`] on the blocking pool: decoding and resampling are CPU
/// work that must not hold an async worker.
pub(crate) async fn decode_off_runtime(
    data: bytes::Bytes,
    content_type: String,
    max_seconds: u64,
) -> ApiResult<Pcm16k> {
    tokio::task::spawn_blocking(move || decode_upload(data, &content_type, max_seconds))
        .await
        .map_err(|_| ApiError::internal())?
}

/// An audio upload of at most `max` bytes: the raw body, or the `file` (or
/// `audio`) part of a multipart form.
pub(crate) fn audio_upload(max: usize) -> Upload {
    Upload {
        what: "audio",
        parts: &["file", "audio"],
        max,
    }
}

/// Recognizes a short recording. Send the audio as the body or as the
/// `file` (or `audio`) part of a multipart form: WAV (any sample rate,
/// channel count, 8/16/24/32-bit integer or float PCM), MP3, Ogg/Opus, or
/// raw 16 kHz 16-bit little-endian mono PCM declared as `audio/pcm` or
/// `audio/L16`. The format is told by the file's first bytes; the audio is
/// decoded, mixed down to mono and resampled to 16 kHz for the provider.
/// At most `LTY_AUDIO__ASR_MAX_SECONDS` (60 s) and
/// `LTY_AUDIO__ASR_MAX_BYTES` (4 MiB).
#[utoipa::path(post, path = "/api/ai/asr/", tag = "speech",
    security(("bearer" = [])),
    request_body(
        content(
            (Vec<u8> = "audio/wav"),
            (Vec<u8> = "audio/mpeg"),
            (Vec<u8> = "audio/ogg"),
            (Vec<u8> = "audio/pcm"),
            (Vec<u8> = "audio/L16"),
            (Vec<u8> = "multipart/form-data"),
        ),
        description = "WAV, MP3, Ogg/Opus or raw PCM (16 kHz, 16-bit, mono), or a multipart form with a `file` part"),
    responses(
        (status = 200, description = "recognized", body = AsrOut),
        (status = 400, description = "empty, damaged or too long audio (`validation_error`)", body = ErrorBody),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 413, description = "larger than the upload limit", body = ErrorBody),
        (status = 415, description = "not WAV, MP3, Ogg/Opus or declared raw PCM, or an encoding of them that is not decoded, e.g. Ogg Vorbis or ADPCM WAV (`unsupported_audio_format`)", body = ErrorBody),
        (status = 502, description = "the provider failed (`upstream_error`)", body = ErrorBody),
        (status = 503, description = "no provider configured (`provider_not_configured`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, err(Debug), fields(user_id = auth.user_id))]
pub async fn asr(
    State(state): State<AppState>,
    auth: AuthUserId,
    req: Request,
) -> ApiResult<Json<AsrOut>> {
    let asr = state.speech.asr()?.clone();
    let audio = &state.config.audio;
    let file = audio_upload(audio.asr_max_bytes).read(req).await?;
    let pcm = decode_off_runtime(file.data, file.content_type, audio.asr_max_seconds).await?;
    let transcript = asr.recognize(&pcm).await?;
    Ok(Json(AsrOut {
        text: transcript.text,
    }))
}
