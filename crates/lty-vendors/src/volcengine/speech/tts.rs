//! HTTP TTS, `POST {base}/api/v1/tts`: the request and response bodies,
//! the `Authorization: Bearer;<token>` header and what each vendor code
//! means for lty.

use serde::{Deserialize, Serialize};

/// Path of the endpoint under the base URL.
pub const PATH: &str = "/api/v1/tts";
/// `code` of a successful answer.
pub const SUCCESS: i64 = 3000;
/// Longest `request.text`, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Target length of one piece of a long text, in characters.
pub const TARGET_CHARS: usize = 300;
/// Sample rate lty asks for (the service's default).
pub const SAMPLE_RATE: u32 = 24_000;

/// The `Authorization` value: `Bearer;` and the token, no space.
pub fn authorization(token: &str) -> String {
    format!("Bearer;{token}")
}

/// `app`: who is calling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub appid: String,
    /// The access token again (the service requires a non-empty value).
    pub token: String,
    /// `volcano_tts`, or `volcano_icl` for cloned voices.
    pub cluster: String,
}

/// `user`: an opaque caller id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub uid: String,
}

/// `audio`: voice and encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audio {
    pub voice_type: String,
    /// `pcm`, `wav`, `mp3` or `ogg_opus`.
    pub encoding: String,
    /// 24000, 16000 or 8000.
    pub rate: u32,
    pub speed_ratio: f32,
    pub volume_ratio: f32,
    pub pitch_ratio: f32,
}

/// `request`: the text and the call's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// UUIDv4, new for every attempt (a reused one is refused with 3006).
    pub reqid: String,
    /// At most [`MAX_TEXT_BYTES`] bytes.
    pub text: String,
    /// `plain` (or `ssml`).
    pub text_type: String,
    /// `query`, the only operation over HTTP.
    pub operation: String,
}

/// The request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtsBody {
    pub app: App,
    pub user: User,
    pub audio: Audio,
    pub request: Request,
}

/// `addition` of an answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Addition {
    /// Playing time in milliseconds, as a decimal string.
    #[serde(default)]
    pub duration: Option<String>,
}

/// The answer, successful (`code` 3000) or not, whatever the HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtsAnswer {
    #[serde(default)]
    pub reqid: String,
    pub code: i64,
    #[serde(default)]
    pub message: String,
    /// Base64 of the whole audio.
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub addition: Option<Addition>,
}

impl TtsAnswer {
    /// `addition.duration` in milliseconds, when present and numeric.
    pub fn duration_ms(&self) -> Option<u64> {
        self.addition
            .as_ref()?
            .duration
            .as_deref()?
            .trim()
            .parse()
            .ok()
    }
}

/// What a failed answer's code asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The text cannot be spoken (3011): the caller's input.
    InvalidText,
    /// Busy or over the concurrency quota (3003, 3005): retry with backoff.
    Busy,
    /// A timeout or processing error (3030, 3031, 3032, 3040): retry once.
    Transient,
    /// Anything else (bad credentials 3001, duplicate reqid 3006, text too
    /// long 3010, unknown voice 3050, ...): no retry.
    Fatal,
}

impl Failure {
    /// The meaning of a non-3000 `code`.
    pub fn of(code: i64) -> Self {
        match code {
            3011 => Self::InvalidText,
            3003 | 3005 => Self::Busy,
            3030 | 3031 | 3032 | 3040 => Self::Transient,
            _ => Self::Fatal,
        }
    }

    /// How many more attempts this failure allows after the first.
    pub fn retries(self) -> u32 {
        match self {
            Self::Busy => 2,
            Self::Transient => 1,
            Self::InvalidText | Self::Fatal => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_request_body_has_the_documented_shape() {
        let body = TtsBody {
            app: App {
                appid: "APPID".into(),
                token: "TOKEN".into(),
                cluster: "volcano_tts".into(),
            },
            user: User {
                uid: "lty-42".into(),
            },
            audio: Audio {
                voice_type: "BV700_streaming".into(),
                encoding: "mp3".into(),
                rate: 24_000,
                speed_ratio: 1.0,
                volume_ratio: 1.0,
                pitch_ratio: 1.0,
            },
            request: Request {
                reqid: "6f1c2b1e-8a55-4c8e-9a57-0e2f4f8b9c11".into(),
                text: "你好，小朋友".into(),
                text_type: "plain".into(),
                operation: "query".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"app":{"appid":"APPID","token":"TOKEN","cluster":"volcano_tts"},
             "user":{"uid":"lty-42"},
             "audio":{"voice_type":"BV700_streaming","encoding":"mp3","rate":24000,"speed_ratio":1.0,"volume_ratio":1.0,"pitch_ratio":1.0},
             "request":{"reqid":"6f1c2b1e-8a55-4c8e-9a57-0e2f4f8b9c11","text":"你好，小朋友","text_type":"plain","operation":"query"}})
        );
        assert_eq!(authorization("TOKEN"), "Bearer;TOKEN");
    }

    #[test]
    fn answers_parse_with_the_duration_as_a_string() {
        let ok: TtsAnswer = serde_json::from_value(json!({"reqid":"r","code":3000,"operation":"query","message":"Success","sequence":-1,"data":"AAE=","addition":{"duration":"1960"}})).unwrap();
        assert_eq!(ok.code, SUCCESS);
        assert_eq!(ok.duration_ms(), Some(1960));
        let err: TtsAnswer = serde_json::from_value(
            json!({"reqid":"r","code":3050,"message":"voice_type not found"}),
        )
        .unwrap();
        assert_eq!(err.duration_ms(), None);
        assert_eq!(Failure::of(err.code), Failure::Fatal);
        assert_eq!(Failure::of(3011), Failure::InvalidText);
        assert_eq!(Failure::of(3005).retries(), 2);
        assert_eq!(Failure::of(3031).retries(), 1);
        assert_eq!(Failure::of(3006).retries(), 0);
    }
}
