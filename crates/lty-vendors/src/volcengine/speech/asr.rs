//! Streaming ASR over WebSocket: `{ws}/api/v3/sauc/bigmodel_nostream` for
//! a finished clip and `{ws}/api/v3/sauc/bigmodel_async` for audio sent
//! while it is spoken. Both take the same handshake headers, full client
//! request, numbered audio packets (gzip) and answer with the same results
//! and error codes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::codec::{Compression, Frame};

/// Path of the endpoint under the WebSocket base URL (results after the
/// last packet, best accuracy).
pub const PATH: &str = "/api/v3/sauc/bigmodel_nostream";
/// Path of the streaming endpoint (results as they change, the final one
/// right after the last packet).
pub const STREAM_PATH: &str = "/api/v3/sauc/bigmodel_async";
/// Bytes of one audio packet: 200 ms of 16 kHz 16-bit mono.
pub const CHUNK_BYTES: usize = 6400;

/// Handshake header with the APP ID.
pub const HEADER_APP_KEY: &str = "X-Api-App-Key";
/// Handshake header with the access token.
pub const HEADER_ACCESS_KEY: &str = "X-Api-Access-Key";
/// Handshake header with the resource id (billing model).
pub const HEADER_RESOURCE_ID: &str = "X-Api-Resource-Id";
/// Handshake header with a fresh UUID per connection.
pub const HEADER_CONNECT_ID: &str = "X-Api-Connect-Id";
/// Response header with the service's log id.
pub const HEADER_LOGID: &str = "X-Tt-Logid";

/// Error-frame code of a session that ended normally.
pub const SUCCESS: u32 = 20_000_000;
/// Invalid parameters or a duplicate request.
pub const INVALID_PARAMETERS: u32 = 45_000_001;
/// The audio is empty (no speech).
pub const EMPTY_AUDIO: u32 = 45_000_002;
/// The server waited too long for the next packet.
pub const PACKET_TIMEOUT: u32 = 45_000_081;
/// The audio format is wrong.
pub const BAD_AUDIO_FORMAT: u32 = 45_000_151;
/// The service is busy.
pub const BUSY: u32 = 55_000_031;

/// `user` of the full request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub uid: String,
}

/// `audio` of the full request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioParams {
    /// `pcm`, `wav`, `ogg` or `mp3`.
    pub format: String,
    /// `raw`, or `opus` for ogg.
    pub codec: String,
    /// Only 16000.
    pub rate: u32,
    /// Only 16.
    pub bits: u32,
    pub channel: u32,
}

/// `request` of the full request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestParams {
    pub model_name: String,
    pub enable_itn: bool,
    pub enable_punc: bool,
    /// `full`: every result carries the whole text so far.
    pub result_type: String,
}

/// The JSON of the full client request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullRequest {
    pub user: User,
    pub audio: AudioParams,
    pub request: RequestParams,
}

impl FullRequest {
    /// Parameters for 16 kHz, 16-bit, mono PCM with punctuation and
    /// inverse text normalization.
    pub fn pcm16k(uid: &str) -> Self {
        Self {
            user: User { uid: uid.into() },
            audio: AudioParams {
                format: "pcm".into(),
                codec: "raw".into(),
                rate: 16_000,
                bits: 16,
                channel: 1,
            },
            request: RequestParams {
                model_name: "bigmodel".into(),
                enable_itn: true,
                enable_punc: true,
                result_type: "full".into(),
            },
        }
    }
}

/// `audio_info` of a result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Milliseconds of audio processed.
    #[serde(default)]
    pub duration: u64,
}

/// One utterance of a result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub start_time: i64,
    #[serde(default)]
    pub end_time: i64,
    #[serde(default)]
    pub definite: bool,
}

/// `result` of a server response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecognitionResult {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub utterances: Vec<Utterance>,
}

/// The JSON of a full server response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerResponse {
    #[serde(default)]
    pub audio_info: Option<AudioInfo>,
    #[serde(default)]
    pub result: Option<RecognitionResult>,
}

impl ServerResponse {
    /// `result.text`, empty when absent.
    pub fn text(&self) -> &str {
        self.result.as_ref().map_or("", |r| r.text.as_str())
    }
}

/// Every frame of one recognition, in order: the full request (sequence 1,
/// gzip JSON), then the audio in [`CHUNK_BYTES`] packets numbered 2, 3, …,
/// the last one flagged with its sequence negated (an empty last packet
/// when there is no audio).
pub fn request_frames(params: &FullRequest, pcm: &Bytes) -> Result<Vec<Frame>, serde_json::Error> {
    let json = serde_json::to_vec(params)?;
    let mut frames = vec![Frame::full_client_request(
        1,
        Bytes::from(json),
        Compression::Gzip,
    )];
    let count = pcm.len().div_ceil(CHUNK_BYTES).max(1);
    for i in 0..count {
        let start = (i * CHUNK_BYTES).min(pcm.len());
        let end = ((i + 1) * CHUNK_BYTES).min(pcm.len());
        // At most 60 s of audio reaches here; the count fits an i32.
        let sequence = i32::try_from(i + 2).unwrap_or(i32::MAX);
        frames.push(Frame::audio(
            sequence,
            i + 1 == count,
            pcm.slice(start..end),
            Compression::Gzip,
        ));
    }
    Ok(frames)
}

/// What an error frame's code asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 45000002: nothing to recognize (the caller's audio).
    EmptyAudio,
    /// 45000081: the server gave up waiting; reconnect once.
    PacketTimeout,
    /// 55000031: busy; bounded retry.
    Busy,
    /// Anything else: no retry.
    Fatal,
}

impl Failure {
    /// The meaning of an error frame's code.
    pub fn of(code: u32) -> Self {
        match code {
            EMPTY_AUDIO => Self::EmptyAudio,
            PACKET_TIMEOUT => Self::PacketTimeout,
            BUSY => Self::Busy,
            _ => Self::Fatal,
        }
    }

    /// How many more attempts this failure allows after the first.
    pub fn retries(self) -> u32 {
        match self {
            Self::Busy => 2,
            Self::PacketTimeout => 1,
            Self::EmptyAudio | Self::Fatal => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{self, FLAG_LAST, FLAG_SEQUENCE, MessageType};
    use super::*;

    #[test]
    fn the_full_request_has_the_documented_json() {
        let json = serde_json::to_string(&FullRequest::pcm16k("lty-42")).unwrap();
        assert_eq!(
            json,
            r#"{"user":{"uid":"lty-42"},"audio":{"format":"pcm","codec":"raw","rate":16000,"bits":16,"channel":1},"request":{"model_name":"bigmodel","enable_itn":true,"enable_punc":true,"result_type":"full"}}"#
        );
    }

    #[test]
    fn audio_is_sent_in_numbered_200_ms_packets_with_the_last_negated() {
        let pcm = Bytes::from(vec![7u8; CHUNK_BYTES * 2 + 100]);
        let frames = request_frames(&FullRequest::pcm16k("u"), &pcm).unwrap();
        assert_eq!(frames.len(), 4);
        let wire: Vec<Vec<u8>> = frames.iter().map(|f| codec::encode(f).unwrap()).collect();
        assert_eq!(wire[0][..4], [0x11, 0x11, 0x11, 0x00]);
        assert_eq!(wire[1][..4], [0x11, 0x21, 0x01, 0x00]);
        assert_eq!(wire[2][..4], [0x11, 0x21, 0x01, 0x00]);
        assert_eq!(wire[3][..4], [0x11, 0x23, 0x01, 0x00]);
        let back: Vec<Frame> = wire.iter().map(|w| codec::decode(w).unwrap()).collect();
        let seqs: Vec<i32> = back.iter().map(|f| f.sequence.unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, -4]);
        assert_eq!(back[0].message_type, MessageType::FullClientRequest);
        assert_eq!(back[3].flags, FLAG_SEQUENCE | FLAG_LAST);
        let sizes: Vec<usize> = back[1..].iter().map(|f| f.payload.len()).collect();
        assert_eq!(sizes, [CHUNK_BYTES, CHUNK_BYTES, 100]);

        let exact = Bytes::from(vec![1u8; CHUNK_BYTES]);
        let frames = request_frames(&FullRequest::pcm16k("u"), &exact).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].sequence, Some(-2));

        let frames = request_frames(&FullRequest::pcm16k("u"), &Bytes::new()).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[1].is_last() && frames[1].payload.is_empty());
    }

    #[test]
    fn results_and_codes_parse() {
        let r: ServerResponse = serde_json::from_str(
            r#"{"audio_info":{"duration":1000},"result":{"text":"你好","utterances":[{"text":"你好","start_time":0,"end_time":900,"definite":true,"words":[]}]}}"#,
        )
        .unwrap();
        assert_eq!(r.text(), "你好");
        assert_eq!(ServerResponse::default().text(), "");
        assert_eq!(Failure::of(EMPTY_AUDIO), Failure::EmptyAudio);
        assert_eq!(Failure::of(PACKET_TIMEOUT).retries(), 1);
        assert_eq!(Failure::of(BUSY).retries(), 2);
        assert_eq!(Failure::of(INVALID_PARAMETERS).retries(), 0);
        assert_eq!(Failure::of(BAD_AUDIO_FORMAT), Failure::Fatal);
    }
}
