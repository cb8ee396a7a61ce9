//! `/api/ai/tts/` (text → stored audio URL) and `/api/ai/asr/` (audio →
//! text), on the provider chosen by `AUDIO_SERVICE_PROVIDER`.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use lty_core::speech::{AudioFormat, TtsRequest};
use lty_core::speech::{Pcm16k, parse_wav};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUserId;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::speech::{default_format, synthesize_stored};
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

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_audio_format",
        format!("{what}; send WAV or raw PCM, 16 kHz, 16-bit, mono"),
    )
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the audio is larger than {max} bytes"),
    )
}

/// Whether a content type names raw 16-bit PCM.
fn is_pcm_type(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ["audio/pcm", "audio/l16", "audio/x-pcm", "audio/raw"]
        .iter()
        .any(|t| ct.starts_with(t))
}

/// Checks an upload and returns its samples: WAV must be 16 kHz, 16-bit,
/// mono PCM; anything without a RIFF header is PCM only when its type says
/// so.
fn decode_upload(data: bytes::Bytes, content_type: &str, max_seconds: u64) -> ApiResult<Pcm16k> {
    if data.is_empty() {
        return Err(lty_core::Error::validation("audio", "the upload is empty").into());
    }
    let samples = if data.starts_with(b"RIFF") {
        let info = parse_wav(&data).ok_or_else(|| unsupported("not a readable WAV file"))?;
        if info.format_tag != 1
            || info.bits_per_sample != 16
            || info.channels != 1
            || info.sample_rate != Pcm16k::SAMPLE_RATE
        {
            return Err(unsupported(&format!(
                "WAV with {} Hz, {}-bit, {} channel(s), format {} is not accepted",
                info.sample_rate, info.bits_per_sample, info.channels, info.format_tag
            )));
        }
        data.slice(info.data)
    } else if is_pcm_type(content_type) {
        data
    } else if data.starts_with(b"ID3") || data.starts_with(&[0xff, 0xfb]) {
        return Err(unsupported("MP3 is not accepted yet"));
    } else if data.starts_with(b"OggS") {
        return Err(unsupported("Ogg is not accepted yet"));
    } else {
        return Err(unsupported("unrecognized audio"));
    };
    if samples.len() % 2 != 0 {
        return Err(
            lty_core::Error::validation("audio", "16-bit PCM has an even number of bytes").into(),
        );
    }
    let pcm = Pcm16k { samples };
    if pcm.duration_ms() > max_seconds * 1000 {
        return Err(lty_core::Error::validation(
            "audio",
            format!("at most {max_seconds} seconds of audio"),
        )
        .into());
    }
    Ok(pcm)
}

/// Reads the audio of an upload: the raw body, or the first file part
/// (`file` or `audio`) of a multipart form, within `max` bytes.
async fn read_upload(req: Request, max: usize) -> ApiResult<(bytes::Bytes, String)> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let data = axum::body::to_bytes(req.into_body(), max)
            .await
            .map_err(|_| too_large(max))?;
        return Ok((data, content_type));
    }
    // Room for the part headers and boundaries around the audio.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, max + 16 * 1024)));
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    };
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        if matches!(field.name(), Some("file" | "audio")) {
            let part_type = field.content_type().unwrap_or("").to_owned();
            let data = field.bytes().await.map_err(bad_form)?;
            if data.len() > max {
                return Err(too_large(max));
            }
            return Ok((data, part_type));
        }
    }
    Err(lty_core::Error::validation("audio", "no `file` or `audio` part in the form").into())
}

/// Recognizes a short recording. Send the audio as the body (`audio/wav`,
/// or `audio/pcm` / `audio/L16` for raw samples) or as the `file` part of a
/// multipart form: WAV or raw PCM, 16 kHz, 16-bit, mono, at most
/// `LTY_AUDIO__ASR_MAX_SECONDS` (60 s) and `LTY_AUDIO__ASR_MAX_BYTES` (4 MiB).
#[utoipa::path(post, path = "/api/ai/asr/", tag = "speech",
    security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "audio/wav",
        description = "WAV or raw PCM (16 kHz, 16-bit, mono), or a multipart form with a `file` part"),
    responses(
        (status = 200, description = "recognized", body = AsrOut),
        (status = 400, description = "empty, malformed or too long audio", body = ErrorBody),
        (status = 401, description = "no or invalid token", body = ErrorBody),
        (status = 413, description = "larger than the upload limit", body = ErrorBody),
        (status = 415, description = "not WAV/PCM 16 kHz 16-bit mono (`unsupported_audio_format`)", body = ErrorBody),
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
    let (data, content_type) = read_upload(req, audio.asr_max_bytes).await?;
    let pcm = decode_upload(data, &content_type, audio.asr_max_seconds)?;
    let transcript = asr.recognize(&pcm).await?;
    Ok(Json(AsrOut {
        text: transcript.text,
    }))
}
