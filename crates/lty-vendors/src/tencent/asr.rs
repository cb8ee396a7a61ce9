//! ASR `SentenceRecognition` (`asr.tencentcloudapi.com`, version
//! `2019-06-14`): one clip of at most 60 s, sent inline as Base64.

use serde::{Deserialize, Serialize};

/// `X-TC-Action`.
pub const ACTION: &str = "SentenceRecognition";
/// `X-TC-Version`.
pub const VERSION: &str = "2019-06-14";
/// Service name of the credential scope.
pub const SERVICE: &str = "asr";
/// Largest clip, in raw bytes.
pub const MAX_BYTES: usize = 3 * 1024 * 1024;

/// The request body. Note the vendor's spelling `EngSerViceType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceRecognition {
    /// Engine, e.g. `16k_zh`.
    #[serde(rename = "EngSerViceType")]
    pub eng_service_type: String,
    /// 1: the audio is in `Data`.
    #[serde(rename = "SourceType")]
    pub source_type: u8,
    /// `pcm`, `wav`, ...
    #[serde(rename = "VoiceFormat")]
    pub voice_format: String,
    /// Base64 of the audio, no line breaks.
    #[serde(rename = "Data")]
    pub data: String,
    /// Length of the raw audio in bytes, before Base64.
    #[serde(rename = "DataLen")]
    pub data_len: usize,
}

/// The response fields inside `Response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SentenceRecognitionResponse {
    /// The recognized text (empty for silence).
    #[serde(default)]
    pub result: String,
    /// Milliseconds.
    #[serde(default)]
    pub audio_duration: u64,
}
