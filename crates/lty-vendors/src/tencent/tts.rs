//! TTS `TextToVoice` (`tts.tencentcloudapi.com`, version `2019-08-23`):
//! the request and response bodies.

use serde::{Deserialize, Serialize};

/// `X-TC-Action`.
pub const ACTION: &str = "TextToVoice";
/// `X-TC-Version`.
pub const VERSION: &str = "2019-08-23";
/// Service name of the credential scope.
pub const SERVICE: &str = "tts";
/// Longest text of one request, in characters (150 Chinese characters;
/// Latin text may be longer, but lty splits by this one bound).
pub const MAX_CHARS: usize = 150;

/// The request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TextToVoice {
    pub text: String,
    /// Echoed back; a UUID per call.
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub voice_type: Option<i64>,
    /// 16000 (default), 8000, 24000.
    pub sample_rate: u32,
    /// `wav`, `mp3` or `pcm`.
    pub codec: String,
    /// Word timings, used to learn the duration of MP3 audio.
    pub enable_subtitle: bool,
}

/// One entry of `Subtitles` (times in milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subtitle {
    #[serde(default)]
    pub text: String,
    pub begin_time: u64,
    pub end_time: u64,
}

/// The response fields inside `Response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TextToVoiceResponse {
    /// Base64 of the whole audio.
    pub audio: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub subtitles: Option<Vec<Subtitle>>,
}
