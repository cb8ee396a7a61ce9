//! Voice-agent callbacks (`ServerMessageUrl` / `ServerMessageURLForRTS`):
//! the JSON envelope Volcengine POSTs, the binary frame inside it, and the
//! `conv` (agent state) and `subv` (subtitle) payloads.
//!
//! ```text
//! envelope = {"message": Base64(frame), "signature": <the registered string, echoed>}
//! frame    = magic (4 ASCII bytes: "conv" | "subv") ‖ u32 big-endian length ‖ JSON payload
//! ```
//!
//! Pure functions only; the server decides where the decoded messages go.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Header bytes before the payload: 4-byte magic + 4-byte length.
pub const HEADER_LEN: usize = 8;

/// Strict standard Base64, as for tokens: padding required, nothing after
/// it, non-zero unused bits in the last quantum tolerated.
const MESSAGE_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// What a frame carries, from its 4-byte magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// `conv`: a change of the agent's conversation state.
    Conv,
    /// `subv`: subtitles of the child's or the agent's speech.
    Subv,
}

impl Magic {
    /// The four ASCII bytes on the wire.
    pub const fn bytes(self) -> [u8; 4] {
        match self {
            Self::Conv => *b"conv",
            Self::Subv => *b"subv",
        }
    }
}

/// Why a callback could not be decoded. Every variant is `invalid_frame`
/// for the caller; the text says which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `message` is not strict standard Base64.
    #[error("message is not padded standard Base64")]
    Base64,
    /// Fewer than the 8 header bytes.
    #[error("frame is {0} bytes, shorter than its 8-byte header")]
    Short(usize),
    /// A magic lty does not register (`tool`, ...).
    #[error("unknown frame type {0:?}")]
    UnknownMagic(String),
    /// The length field disagrees with the bytes that follow.
    #[error("frame length says {declared} bytes, {actual} follow")]
    Length {
        /// The big-endian length field.
        declared: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// The payload is not a UTF-8 JSON object of the expected shape.
    #[error("payload is not the expected JSON: {0}")]
    Payload(String),
}

/// One decoded frame: its kind and its JSON payload (an object).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// `conv` or `subv`.
    pub magic: Magic,
    /// The payload, parsed as a JSON object.
    pub payload: Map<String, Value>,
}

/// Encodes a frame: magic, big-endian payload length, payload.
///
/// Payloads over 4 GiB cannot be framed; callers send kilobytes.
pub fn encode_frame(magic: Magic, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&magic.bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a raw frame into its magic and payload bytes, checking the length.
pub fn split_frame(frame: &[u8]) -> Result<(Magic, &[u8]), FrameError> {
    let (header, payload) = frame
        .split_at_checked(HEADER_LEN)
        .ok_or(FrameError::Short(frame.len()))?;
    let magic = match &header[..4] {
        b"conv" => Magic::Conv,
        b"subv" => Magic::Subv,
        other => {
            return Err(FrameError::UnknownMagic(
                String::from_utf8_lossy(other).into_owned(),
            ));
        }
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(&header[4..]);
    let declared = u32::from_be_bytes(len);
    if usize::try_from(declared).ok() != Some(payload.len()) {
        return Err(FrameError::Length {
            declared,
            actual: payload.len(),
        });
    }
    Ok((magic, payload))
}

/// Decodes a raw frame whose payload must be a UTF-8 JSON object.
pub fn decode_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    let (magic, payload) = split_frame(frame)?;
    let payload: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|e| FrameError::Payload(e.to_string()))?;
    Ok(Frame { magic, payload })
}

/// Decodes the envelope's `message` field: strict Base64, then the frame.
pub fn decode_message(message: &str) -> Result<Frame, FrameError> {
    let raw = MESSAGE_DECODER
        .decode(message)
        .map_err(|_| FrameError::Base64)?;
    decode_frame(&raw)
}

/// The envelope's `message` for a frame (what Volcengine sends; for fakes).
pub fn encode_message(magic: Magic, payload: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(encode_frame(magic, payload))
}

/// Whether the envelope's `signature` equals the registered secret.
///
/// Constant time in the content: every byte is compared whatever the first
/// difference; only a different length returns early.
pub fn signature_matches(signature: &str, secret: &str) -> bool {
    lty_core::secret::constant_time_eq(signature.as_bytes(), secret.as_bytes())
}

/// `conv` payload: the agent's state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConvPayload {
    /// The task (session) the state belongs to.
    #[serde(rename = "TaskId", default)]
    pub task_id: Option<String>,
    /// The agent's RTC user id (`bot_{user_id}` for lty's sessions).
    #[serde(rename = "UserID", default)]
    pub user_id: Option<String>,
    /// Conversation round, from 0.
    #[serde(rename = "RoundID", default)]
    pub round_id: Option<i64>,
    /// When the state changed, Unix milliseconds.
    #[serde(rename = "EventTime", default)]
    pub event_time: Option<i64>,
    /// The new state.
    #[serde(rename = "Stage")]
    pub stage: Stage,
}

/// `conv` state code and the vendor's description of it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Stage {
    /// 1 listening, 2 thinking, 3 speaking, 4 interrupted, 5 finished.
    #[serde(rename = "Code")]
    pub code: i64,
    /// Free text; switch on `code`, never on this.
    #[serde(rename = "Description", default)]
    pub description: Option<String>,
}

/// lty's name for a `Stage.Code`: the official demo's enum, `unknown` else.
pub fn stage_name(code: i64) -> &'static str {
    match code {
        1 => "listening",
        2 => "thinking",
        3 => "speaking",
        4 => "interrupted",
        5 => "finished",
        _ => "unknown",
    }
}

/// `subv` payload: one or more subtitle pieces.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SubtitlePayload {
    /// `subtitle`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The pieces, each forwarded on its own.
    pub data: Vec<Subtitle>,
}

/// One subtitle piece. Partial pieces repeat with growing text until
/// `definite`; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subtitle {
    /// The text so far.
    pub text: String,
    /// Language, e.g. `zh`.
    #[serde(default)]
    pub language: Option<String>,
    /// RTC user id of the speaker (the child's device or the agent).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Sequence number; devices replace a subtitle by `(user_id, sequence)`.
    #[serde(default)]
    pub sequence: Option<i64>,
    /// Sentence is final.
    #[serde(default)]
    pub definite: bool,
    /// Utterance is complete.
    #[serde(default)]
    pub paragraph: bool,
    /// Conversation round, when the service sends it.
    #[serde(default)]
    pub round_id: Option<i64>,
}

impl Frame {
    /// The payload as a `conv` state, if this is a `conv` frame of that shape.
    pub fn conv(&self) -> Result<ConvPayload, FrameError> {
        from_map(&self.payload)
    }

    /// The payload as subtitles, if this is a `subv` frame of that shape.
    pub fn subtitles(&self) -> Result<SubtitlePayload, FrameError> {
        from_map(&self.payload)
    }
}

fn from_map<T: serde::de::DeserializeOwned>(map: &Map<String, Value>) -> Result<T, FrameError> {
    T::deserialize(map).map_err(|e| FrameError::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Spec §4.6 (fictional secret).
    const SECRET: &str = "cb-secret-example-0001";
    const CONV: &str = r#"{"TaskId":"0d8f5b7e9c2a4e61b3f4a5c6d7e8f901","UserID":"bot_42","RoundID":3,"EventTime":1741064767123,"Stage":{"Code":2,"Description":"thinking"}}"#;
    const CONV_MESSAGE: &str = "Y29udgAAAJF7IlRhc2tJZCI6IjBkOGY1YjdlOWMyYTRlNjFiM2Y0YTVjNmQ3ZThmOTAxIiwiVXNlcklEIjoiYm90XzQyIiwiUm91bmRJRCI6MywiRXZlbnRUaW1lIjoxNzQxMDY0NzY3MTIzLCJTdGFnZSI6eyJDb2RlIjoyLCJEZXNjcmlwdGlvbiI6InRoaW5raW5nIn19";
    const SUBV: &str = r#"{"type":"subtitle","data":[{"text":"你好","language":"zh","userId":"42","sequence":7,"definite":true,"paragraph":true}]}"#;

    #[test]
    fn worked_conv_example_encodes_and_decodes_byte_exact() {
        assert_eq!(CONV.len(), 145);
        let frame = encode_frame(Magic::Conv, CONV.as_bytes());
        assert_eq!(hex::encode(&frame[..8]), "636f6e7600000091");
        assert_eq!(encode_message(Magic::Conv, CONV.as_bytes()), CONV_MESSAGE);

        let decoded = decode_message(CONV_MESSAGE).unwrap();
        assert_eq!(decoded.magic, Magic::Conv);
        let conv = decoded.conv().unwrap();
        assert_eq!(
            conv.task_id.as_deref(),
            Some("0d8f5b7e9c2a4e61b3f4a5c6d7e8f901")
        );
        assert_eq!(conv.user_id.as_deref(), Some("bot_42"));
        assert_eq!(conv.round_id, Some(3));
        assert_eq!(conv.event_time, Some(1741064767123));
        assert_eq!(conv.stage.code, 2);
        assert_eq!(stage_name(conv.stage.code), "thinking");
        assert!(signature_matches(SECRET, SECRET));
    }

    #[test]
    fn worked_subtitle_example_has_the_documented_header() {
        assert_eq!(SUBV.len(), 122);
        let frame = encode_frame(Magic::Subv, SUBV.as_bytes());
        assert_eq!(hex::encode(&frame[..8]), "737562760000007a");
        assert!(encode_message(Magic::Subv, SUBV.as_bytes()).starts_with("c3VidgAAAHp7InR5cGUi"));
        let subs = decode_frame(&frame).unwrap().subtitles().unwrap();
        assert_eq!(subs.data.len(), 1);
        let s = &subs.data[0];
        assert_eq!(s.text, "你好");
        assert_eq!(s.user_id.as_deref(), Some("42"));
        assert_eq!(s.sequence, Some(7));
        assert!(s.definite && s.paragraph);
    }

    #[test]
    fn malformed_frames_are_rejected() {
        let good = encode_frame(Magic::Conv, CONV.as_bytes());
        assert_eq!(decode_frame(&good[..7]), Err(FrameError::Short(7)));
        assert_eq!(decode_frame(b""), Err(FrameError::Short(0)));
        // One byte missing, one byte extra.
        assert!(matches!(
            decode_frame(&good[..good.len() - 1]),
            Err(FrameError::Length {
                declared: 145,
                actual: 144
            })
        ));
        let mut longer = good.clone();
        longer.push(b' ');
        assert!(matches!(
            decode_frame(&longer),
            Err(FrameError::Length { .. })
        ));
        // Function-call frames are not registered by lty.
        let tool = [b"tool".as_slice(), &good[4..]].concat();
        assert_eq!(
            decode_frame(&tool),
            Err(FrameError::UnknownMagic("tool".into()))
        );
        // Non-JSON, non-object and non-UTF-8 payloads.
        for payload in [&b"not json"[..], b"[1,2]", b"\"s\"", b"{\"a\":\xff}"] {
            let frame = encode_frame(Magic::Subv, payload);
            assert!(matches!(decode_frame(&frame), Err(FrameError::Payload(_))));
        }
        // Base64: unpadded, URL-safe, whitespace.
        let padded = encode_message(Magic::Subv, SUBV.as_bytes());
        assert!(padded.ends_with("=="));
        assert!(decode_message(&padded).is_ok());
        for bad in [
            padded.trim_end_matches('=').to_owned(),
            format!("{CONV_MESSAGE} "),
            format!("{CONV_MESSAGE}="),
            format!("-{}", &CONV_MESSAGE[1..]), // URL-safe alphabet
            "!!!!".to_owned(),
        ] {
            assert_eq!(decode_message(&bad), Err(FrameError::Base64), "{bad:?}");
        }
    }

    #[test]
    fn payload_shapes_are_checked_but_unknown_fields_ignored() {
        let frame = decode_frame(&encode_frame(Magic::Conv, br#"{"TaskId":"t"}"#)).unwrap();
        assert!(frame.conv().is_err(), "Stage is required");
        let frame = decode_frame(&encode_frame(
            Magic::Subv,
            br#"{"type":"subtitle","data":[{"text":"a","mode":1,"roundId":2}]}"#,
        ))
        .unwrap();
        let subs = frame.subtitles().unwrap();
        assert_eq!(subs.data[0].round_id, Some(2));
        assert!(!subs.data[0].definite);
    }

    #[test]
    fn stage_codes_map_to_names() {
        let names: Vec<_> = (0..=6).map(stage_name).collect();
        assert_eq!(
            names,
            [
                "unknown",
                "listening",
                "thinking",
                "speaking",
                "interrupted",
                "finished",
                "unknown"
            ]
        );
    }

    #[test]
    fn signatures_compare_whole_strings() {
        assert!(!signature_matches("", SECRET));
        assert!(!signature_matches("cb-secret-example-0002", SECRET));
        assert!(!signature_matches("cb-secret-example-00011", SECRET));
        assert!(!signature_matches("Cb-secret-example-0001", SECRET));
        assert!(signature_matches("", ""));
    }
}
