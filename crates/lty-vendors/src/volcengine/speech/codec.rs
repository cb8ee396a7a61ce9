//! The binary frame of huoshan's speech WebSockets (streaming ASR, also
//! the TTS socket): a 4-byte header, an optional big-endian sequence
//! number or error code, a big-endian payload size and the payload,
//! optionally gzip-compressed. One frame per WebSocket binary message.
//!
//! ```text
//! byte 0  version (high nibble, 1) | header size in 4-byte words (low nibble)
//! byte 1  message type             | message-type-specific flags
//! byte 2  serialization (0, 1 JSON)| compression (0 none, 1 gzip)
//! byte 3  reserved
//! [header extensions up to 4 × header size]
//! [i32 sequence] or [u32 error code] · u32 payload size · payload
//! ```
//!
//! Pure functions only: [`encode`] and [`decode`] never do I/O and decode
//! never panics, whatever the bytes.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression as Level;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// The protocol version lty writes.
pub const VERSION: u8 = 1;

/// Flag bit 0: an i32 sequence number follows the header.
pub const FLAG_SEQUENCE: u8 = 0b0001;
/// Flag bit 1: the last packet of the stream.
pub const FLAG_LAST: u8 = 0b0010;

/// Largest decompressed payload accepted (a guard against gzip bombs).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// What a frame is, from the high nibble of byte 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `0x1`, client → server: the session's parameters as JSON.
    FullClientRequest,
    /// `0x2`, client → server: a chunk of audio.
    AudioOnlyRequest,
    /// `0x9`, server → client: a result as JSON.
    FullServerResponse,
    /// `0xB`, server → client: TTS audio, or an ACK without payload.
    AudioOnlyResponse,
    /// `0xC`, server → client: TTS frontend data (JSON).
    FrontendResponse,
    /// `0xF`, server → client: an error code and message; ends the session.
    Error,
}

impl MessageType {
    /// The nibble on the wire.
    pub const fn nibble(self) -> u8 {
        match self {
            Self::FullClientRequest => 0x1,
            Self::AudioOnlyRequest => 0x2,
            Self::FullServerResponse => 0x9,
            Self::AudioOnlyResponse => 0xB,
            Self::FrontendResponse => 0xC,
            Self::Error => 0xF,
        }
    }

    /// The type of a nibble, `None` for values the protocol does not define.
    pub const fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            0x1 => Self::FullClientRequest,
            0x2 => Self::AudioOnlyRequest,
            0x9 => Self::FullServerResponse,
            0xB => Self::AudioOnlyResponse,
            0xC => Self::FrontendResponse,
            0xF => Self::Error,
            _ => return None,
        })
    }
}

/// How the payload is serialized (high nibble of byte 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serialization {
    /// `0`: raw bytes (audio).
    None,
    /// `1`: JSON.
    Json,
}

/// How the payload is compressed (low nibble of byte 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `0`: as is.
    None,
    /// `1`: gzip (RFC 1952).
    Gzip,
}

/// One frame, with its payload decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// High nibble of byte 0 (1 for every frame lty sends).
    pub version: u8,
    pub message_type: MessageType,
    /// The low nibble of byte 1.
    pub flags: u8,
    pub serialization: Serialization,
    pub compression: Compression,
    /// The sequence number, present as [`has_sequence`] says.
    pub sequence: Option<i32>,
    /// The error code of an [`MessageType::Error`] frame.
    pub error_code: Option<u32>,
    /// The payload, uncompressed.
    pub payload: Bytes,
}

/// Why bytes are not a frame, or a frame cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the header or a field needs.
    #[error("frame truncated: {0}")]
    Truncated(&'static str),
    /// The header-size nibble is 0.
    #[error("header size is 0")]
    HeaderSize,
    /// A message type the protocol does not define.
    #[error("unknown message type {0:#x}")]
    MessageType(u8),
    /// A serialization other than none or JSON.
    #[error("unknown serialization {0:#x}")]
    Serialization(u8),
    /// A compression other than none or gzip.
    #[error("unknown compression {0:#x}")]
    Compression(u8),
    /// Bytes after the payload.
    #[error("{0} trailing bytes after the payload")]
    Trailing(usize),
    /// The payload is not valid gzip.
    #[error("payload is not valid gzip: {0}")]
    Gzip(String),
    /// The payload (after decompression) exceeds [`MAX_PAYLOAD`].
    #[error("payload larger than {MAX_PAYLOAD} bytes")]
    TooLarge,
    /// A frame to encode whose sequence or error code does not match its
    /// type and flags.
    #[error("inconsistent frame: {0}")]
    Inconsistent(&'static str),
}

/// Whether a frame of `message_type` with `flags` carries a sequence
/// number: for audio-only responses whenever a flag is set (the last TTS
/// audio is flagged `0b0010` and still numbered), for error frames never,
/// for every other type when bit 0 is set.
pub const fn has_sequence(message_type: MessageType, flags: u8) -> bool {
    match message_type {
        MessageType::Error => false,
        MessageType::AudioOnlyResponse => flags != 0,
        _ => flags & FLAG_SEQUENCE != 0,
    }
}

impl Frame {
    /// The full client request opening a session: JSON, numbered `sequence`.
    pub fn full_client_request(sequence: i32, json: Bytes, compression: Compression) -> Self {
        Self {
            version: VERSION,
            message_type: MessageType::FullClientRequest,
            flags: FLAG_SEQUENCE,
            serialization: Serialization::Json,
            compression,
            sequence: Some(sequence),
            error_code: None,
            payload: json,
        }
    }

    /// An audio packet numbered `sequence` (> 0); the last one is flagged
    /// and carries the negated sequence.
    pub fn audio(sequence: i32, last: bool, audio: Bytes, compression: Compression) -> Self {
        let (flags, sequence) = if last {
            (FLAG_SEQUENCE | FLAG_LAST, -sequence)
        } else {
            (FLAG_SEQUENCE, sequence)
        };
        Self {
            version: VERSION,
            message_type: MessageType::AudioOnlyRequest,
            flags,
            serialization: Serialization::None,
            compression,
            sequence: Some(sequence),
            error_code: None,
            payload: audio,
        }
    }

    /// A server's JSON result numbered `sequence`, flagged when `last`.
    pub fn server_response(
        sequence: i32,
        last: bool,
        json: Bytes,
        compression: Compression,
    ) -> Self {
        Self {
            version: VERSION,
            message_type: MessageType::FullServerResponse,
            flags: if last {
                FLAG_SEQUENCE | FLAG_LAST
            } else {
                FLAG_SEQUENCE
            },
            serialization: Serialization::Json,
            compression,
            sequence: Some(sequence),
            error_code: None,
            payload: json,
        }
    }

    /// An error frame with `code` and a JSON `message`.
    pub fn error(code: u32, message: Bytes, compression: Compression) -> Self {
        Self {
            version: VERSION,
            message_type: MessageType::Error,
            flags: 0,
            serialization: Serialization::Json,
            compression,
            sequence: None,
            error_code: Some(code),
            payload: message,
        }
    }

    /// Whether the frame is flagged as the last of its stream.
    pub fn is_last(&self) -> bool {
        self.flags & FLAG_LAST != 0
    }

    /// Whether this is an audio-only response without anything after the
    /// header (the TTS ACK).
    pub fn is_ack(&self) -> bool {
        self.message_type == MessageType::AudioOnlyResponse
            && self.flags == 0
            && self.sequence.is_none()
            && self.payload.is_empty()
    }

    /// The payload as text (lossy UTF-8), e.g. an error frame's message.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// gzip of `data` (RFC 1952, default level).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Level::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// The content of a gzip stream of at most `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let mut dec = GzDecoder::new(data).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| CodecError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge);
    }
    Ok(out)
}

/// Writes `frame` (header size 1, no extensions), compressing the payload
/// when the frame says gzip.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    let flags = frame.flags & 0x0F;
    if frame.message_type == MessageType::Error {
        if frame.error_code.is_none() || frame.sequence.is_some() {
            return Err(CodecError::Inconsistent(
                "an error frame has a code and no sequence",
            ));
        }
    } else if frame.error_code.is_some() {
        return Err(CodecError::Inconsistent("only error frames have a code"));
    }
    if frame.message_type != MessageType::Error
        && has_sequence(frame.message_type, flags) != frame.sequence.is_some()
    {
        return Err(CodecError::Inconsistent(
            "the flags and the sequence disagree",
        ));
    }
    let ack = frame.message_type == MessageType::AudioOnlyResponse
        && flags == 0
        && frame.payload.is_empty();
    let serialization = match frame.serialization {
        Serialization::None => 0,
        Serialization::Json => 1,
    };
    let body: std::borrow::Cow<'_, [u8]> = match frame.compression {
        Compression::Gzip if !frame.payload.is_empty() => gzip(&frame.payload).into(),
        _ => frame.payload.as_ref().into(),
    };
    let compression = match frame.compression {
        Compression::None => 0,
        Compression::Gzip => 1,
    };
    let size = u32::try_from(body.len()).map_err(|_| CodecError::TooLarge)?;
    let mut out = Vec::with_capacity(12 + body.len());
    out.push(((frame.version & 0x0F) << 4) | 1);
    out.push((frame.message_type.nibble() << 4) | flags);
    out.push((serialization << 4) | compression);
    out.push(0);
    if ack {
        return Ok(out);
    }
    if let Some(code) = frame.error_code {
        out.extend_from_slice(&code.to_be_bytes());
    }
    if let Some(seq) = frame.sequence {
        out.extend_from_slice(&seq.to_be_bytes());
    }
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads 4 big-endian bytes at `*at`, advancing it.
fn take4(bytes: &[u8], at: &mut usize, what: &'static str) -> Result<[u8; 4], CodecError> {
    let end = at.checked_add(4).ok_or(CodecError::Truncated(what))?;
    let field = bytes
        .get(*at..end)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or(CodecError::Truncated(what))?;
    *at = end;
    Ok(field)
}

/// Reads one frame; the payload comes back decompressed.
pub fn decode(bytes: &[u8]) -> Result<Frame, CodecError> {
    let header = bytes.get(..4).ok_or(CodecError::Truncated("header"))?;
    let version = header[0] >> 4;
    let header_size = usize::from(header[0] & 0x0F);
    if header_size == 0 {
        return Err(CodecError::HeaderSize);
    }
    let type_nibble = header[1] >> 4;
    let message_type =
        MessageType::from_nibble(type_nibble).ok_or(CodecError::MessageType(type_nibble))?;
    let flags = header[1] & 0x0F;
    let serialization = match header[2] >> 4 {
        0 => Serialization::None,
        1 => Serialization::Json,
        n => return Err(CodecError::Serialization(n)),
    };
    let compression = match header[2] & 0x0F {
        0 => Compression::None,
        1 => Compression::Gzip,
        n => return Err(CodecError::Compression(n)),
    };
    let mut at = 4 * header_size;
    if bytes.len() < at {
        return Err(CodecError::Truncated("header extensions"));
    }
    let mut frame = Frame {
        version,
        message_type,
        flags,
        serialization,
        compression,
        sequence: None,
        error_code: None,
        payload: Bytes::new(),
    };
    if message_type == MessageType::AudioOnlyResponse && flags == 0 && bytes.len() == at {
        return Ok(frame);
    }
    if message_type == MessageType::Error {
        frame.error_code = Some(u32::from_be_bytes(take4(bytes, &mut at, "error code")?));
    } else if has_sequence(message_type, flags) {
        frame.sequence = Some(i32::from_be_bytes(take4(bytes, &mut at, "sequence")?));
    }
    let size = u32::from_be_bytes(take4(bytes, &mut at, "payload size")?) as usize;
    let rest = &bytes[at..];
    if rest.len() < size {
        return Err(CodecError::Truncated("payload"));
    }
    if rest.len() > size {
        return Err(CodecError::Trailing(rest.len() - size));
    }
    frame.payload = match compression {
        Compression::Gzip if size > 0 => Bytes::from(gunzip(rest, MAX_PAYLOAD)?),
        _ if size > MAX_PAYLOAD => return Err(CodecError::TooLarge),
        _ => Bytes::copy_from_slice(rest),
    };
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).unwrap()
    }

    const FULL_JSON: &str = r#"{"audio":{"format":"pcm","rate":16000,"bits":16,"channel":1},"request":{"model_name":"bigmodel"}}"#;

    #[test]
    fn the_documented_full_request_is_byte_exact() {
        let json = Bytes::from_static(FULL_JSON.as_bytes());
        assert_eq!(json.len(), 97);
        let frame = Frame::full_client_request(1, json.clone(), Compression::None);
        let mut expected = unhex("11111000 00000001 00000061");
        expected.extend_from_slice(FULL_JSON.as_bytes());
        let wire = encode(&frame).unwrap();
        assert_eq!(wire.len(), 109);
        assert_eq!(wire, expected);
        assert!(wire[12..].starts_with(&unhex("7b22617564696f22")));
        assert!(wire.ends_with(&unhex("7d7d")));
        assert_eq!(decode(&wire).unwrap(), frame);
    }

    #[test]
    fn the_gzip_full_request_compares_by_header_sequence_and_content() {
        let json = Bytes::from_static(FULL_JSON.as_bytes());
        let frame = Frame::full_client_request(1, json.clone(), Compression::Gzip);
        let wire = encode(&frame).unwrap();
        assert_eq!(wire[..8], unhex("11111100 00000001")[..]);
        let size = u32::from_be_bytes(wire[8..12].try_into().unwrap()) as usize;
        assert_eq!(size, wire.len() - 12);
        assert_eq!(wire[12..15], [0x1f, 0x8b, 0x08]);
        let back = decode(&wire).unwrap();
        assert_eq!(back.payload, json);
        assert_eq!(back, frame);
    }

    #[test]
    fn the_documented_audio_frames_are_byte_exact() {
        let audio = Frame::audio(
            2,
            false,
            Bytes::from_static(&[0x01, 0x00, 0xff, 0xff]),
            Compression::None,
        );
        let wire = unhex("11210000 00000002 00000004 0100ffff");
        assert_eq!(encode(&audio).unwrap(), wire);
        assert_eq!(decode(&wire).unwrap(), audio);

        let last = Frame::audio(3, true, Bytes::new(), Compression::None);
        let wire = unhex("11230000 fffffffd 00000000");
        assert_eq!(encode(&last).unwrap(), wire);
        let back = decode(&wire).unwrap();
        assert_eq!(back, last);
        assert_eq!(back.sequence, Some(-3));
        assert!(back.is_last());
    }

    #[test]
    fn the_documented_server_response_is_byte_exact() {
        let json = r#"{"result":{"text":"你好"}}"#;
        let wire = unhex(
            "11911000 00000001 0000001c 7b22726573756c74223a7b2274657874223a22e4bda0e5a5bd227d7d",
        );
        let frame = decode(&wire).unwrap();
        assert_eq!(frame.message_type, MessageType::FullServerResponse);
        assert_eq!(frame.serialization, Serialization::Json);
        assert_eq!(frame.sequence, Some(1));
        assert!(!frame.is_last());
        assert_eq!(frame.payload, json.as_bytes());
        let built = Frame::server_response(
            1,
            false,
            Bytes::from_static(json.as_bytes()),
            Compression::None,
        );
        assert_eq!(encode(&built).unwrap(), wire);
    }

    #[test]
    fn the_documented_error_frame_is_byte_exact() {
        let wire = unhex(
            "11f01000 02aea591 00000025 7b226572726f72223a2274696d656f75742077616974696e6720666f7220617564696f227d",
        );
        let frame = decode(&wire).unwrap();
        assert_eq!(frame.message_type, MessageType::Error);
        assert_eq!(frame.error_code, Some(45_000_081));
        assert_eq!(frame.sequence, None);
        assert_eq!(frame.text(), r#"{"error":"timeout waiting for audio"}"#);
        let built = Frame::error(
            45_000_081,
            Bytes::from_static(br#"{"error":"timeout waiting for audio"}"#),
            Compression::None,
        );
        assert_eq!(encode(&built).unwrap(), wire);
    }

    #[test]
    fn the_documented_tts_frames_are_byte_exact() {
        let ack = decode(&unhex("11b00000")).unwrap();
        assert!(ack.is_ack());
        assert_eq!(encode(&ack).unwrap(), unhex("11b00000"));

        let wire = unhex("11b20000 fffffffe 00000002 fffe");
        let last = decode(&wire).unwrap();
        assert_eq!(last.message_type, MessageType::AudioOnlyResponse);
        assert_eq!(last.sequence, Some(-2));
        assert!(last.is_last());
        assert_eq!(last.payload, [0xff, 0xfe][..]);
        assert_eq!(encode(&last).unwrap(), wire);
    }

    #[test]
    fn header_extensions_are_skipped() {
        // Header size 2: four extension bytes before the sequence.
        let wire = unhex("12210000 deadbeef 00000007 00000001 aa");
        let frame = decode(&wire).unwrap();
        assert_eq!(frame.sequence, Some(7));
        assert_eq!(frame.payload, [0xaa][..]);
    }

    #[test]
    fn malformed_frames_are_refused() {
        let cases: [(&str, CodecError); 9] = [
            ("111110", CodecError::Truncated("header")),
            ("10111000", CodecError::HeaderSize),
            ("12111000 0000", CodecError::Truncated("header extensions")),
            ("11311000 00000001 00000000", CodecError::MessageType(3)),
            ("11113000 00000001 00000000", CodecError::Serialization(3)),
            ("11111200 00000001 00000000", CodecError::Compression(2)),
            (
                "11111000 00000001 00000002 7b",
                CodecError::Truncated("payload"),
            ),
            ("11111000 00000001 00000001 7b7d", CodecError::Trailing(1)),
            ("11f01000 02ae", CodecError::Truncated("error code")),
        ];
        for (hex, err) in cases {
            assert_eq!(decode(&unhex(hex)), Err(err), "{hex}");
        }
        assert!(matches!(
            decode(&unhex("11111100 00000001 00000003 1f8b08")),
            Err(CodecError::Gzip(_))
        ));
        // An ACK followed by bytes is an audio response without sequence.
        assert_eq!(
            decode(&unhex("11b00000 01")),
            Err(CodecError::Truncated("payload size"))
        );
    }

    #[test]
    fn gzip_payloads_over_the_limit_are_refused() {
        let bomb = gzip(&vec![0u8; MAX_PAYLOAD + 1]);
        let mut wire = unhex("11210100 00000002");
        wire.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
        wire.extend_from_slice(&bomb);
        assert_eq!(decode(&wire), Err(CodecError::TooLarge));
    }

    #[test]
    fn inconsistent_frames_are_not_encoded() {
        let mut frame = Frame::audio(2, false, Bytes::new(), Compression::None);
        frame.sequence = None;
        assert!(matches!(encode(&frame), Err(CodecError::Inconsistent(_))));
        let mut err = Frame::error(1, Bytes::new(), Compression::None);
        err.sequence = Some(1);
        assert!(matches!(encode(&err), Err(CodecError::Inconsistent(_))));
        let mut resp = Frame::server_response(1, true, Bytes::new(), Compression::None);
        resp.error_code = Some(1);
        assert!(matches!(encode(&resp), Err(CodecError::Inconsistent(_))));
    }

    fn message_type() -> impl Strategy<Value = MessageType> {
        prop_oneof![
            Just(MessageType::FullClientRequest),
            Just(MessageType::AudioOnlyRequest),
            Just(MessageType::FullServerResponse),
            Just(MessageType::AudioOnlyResponse),
            Just(MessageType::FrontendResponse),
            Just(MessageType::Error),
        ]
    }

    prop_compose! {
        fn frame()(
            message_type in message_type(),
            flags in 0u8..16,
            json in any::<bool>(),
            gz in any::<bool>(),
            seq in any::<i32>(),
            code in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) -> Frame {
            let sequence = (message_type != MessageType::Error
                && has_sequence(message_type, flags))
                .then_some(seq);
            let is_error = message_type == MessageType::Error;
            let mut payload = payload;
            // A bare ACK has no payload size; give every other flags-0
            // audio response at least one byte so it is not one.
            if message_type == MessageType::AudioOnlyResponse && flags == 0 && payload.is_empty() {
                payload.push(0);
            }
            Frame {
                version: VERSION,
                message_type,
                flags,
                serialization: if json { Serialization::Json } else { Serialization::None },
                compression: if gz { Compression::Gzip } else { Compression::None },
                sequence,
                error_code: is_error.then_some(code),
                payload: Bytes::from(payload),
            }
        }
    }

    proptest! {
        #[test]
        fn frames_round_trip(frame in frame()) {
            let wire = encode(&frame).unwrap();
            prop_assert_eq!(decode(&wire).unwrap(), frame);
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_mutated_frames(
            frame in frame(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = encode(&frame).unwrap();
            let i = at.index(wire.len());
            wire[i] = byte;
            let n = cut.index(wire.len() + 1);
            let _ = decode(&wire[..n]);
            let _ = decode(&wire);
        }
    }
}
