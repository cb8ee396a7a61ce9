//! Binary WebSocket frames of the xiaozhi voice channel (protocol reference
//! §5.1): one Opus packet per frame, in one of three framings chosen by the
//! `Protocol-Version` the device announced, the same in both directions.
//!
//! | version | header | layout (big-endian) |
//! |---|---|---|
//! | 1 | none | the raw Opus packet |
//! | 2 | 16 bytes | `version` u16 (2), `type` u16 (0 = Opus), `reserved` u32 (0), `timestamp` u32 (ms), `payload_size` u32, payload |
//! | 3 | 4 bytes | `type` u8 (0), `reserved` u8 (0), `payload_size` u16, payload |
//!
//! The device trusts `payload_size` without checking it against the frame,
//! so [`encode`] always writes the exact length and [`decode`] refuses a
//! frame whose `payload_size` disagrees with what follows the header. The
//! `version`, `type` and `reserved` fields are written as the table says
//! and not checked on the way in (the firmware does not check them either).

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the version 2 header.
pub const V2_HEADER_LEN: usize = 16;
/// Bytes of the version 3 header.
pub const V3_HEADER_LEN: usize = 4;

/// The binary framing of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// A frame is the Opus packet itself (the firmware's default).
    V1,
    /// A 16-byte header with a timestamp (for server-side echo cancellation).
    V2,
    /// A 4-byte header.
    V3,
}

/// Why a frame could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A `Protocol-Version` other than 1, 2 or 3.
    #[error("unknown binary protocol version {0:?} (1, 2 or 3)")]
    UnknownVersion(String),
    /// The frame is shorter than its version's header.
    #[error("a version {version} frame of {len} bytes is shorter than its {header}-byte header")]
    Truncated {
        /// The framing version, 2 or 3.
        version: u8,
        /// The frame's length.
        len: usize,
        /// The header's length.
        header: usize,
    },
    /// The header's `payload_size` is not the length of what follows it.
    #[error("the header declares a payload of {declared} bytes but {actual} follow it")]
    PayloadSizeMismatch {
        /// `payload_size` from the header.
        declared: u64,
        /// Bytes after the header.
        actual: usize,
    },
    /// The payload does not fit the header's `payload_size` field.
    #[error("a payload of {len} bytes does not fit a version {version} header")]
    PayloadTooLarge {
        /// The framing version.
        version: u8,
        /// The payload's length.
        len: usize,
    },
}

impl ProtocolVersion {
    /// Parses a `Protocol-Version` header value (surrounding spaces
    /// allowed); anything but `1`, `2` or `3` is an error.
    pub fn parse(value: &str) -> Result<Self, FramingError> {
        match value.trim() {
            "1" => Ok(Self::V1),
            "2" => Ok(Self::V2),
            "3" => Ok(Self::V3),
            other => Err(FramingError::UnknownVersion(other.to_owned())),
        }
    }

    /// The version as a number (the hello's `version`).
    pub fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// Bytes of header before the payload.
    pub fn header_len(self) -> usize {
        match self {
            Self::V1 => 0,
            Self::V2 => V2_HEADER_LEN,
            Self::V3 => V3_HEADER_LEN,
        }
    }
}

impl std::str::FromStr for ProtocolVersion {
    type Err = FramingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<u64> for ProtocolVersion {
    type Error = FramingError;

    /// The version from a number, such as the hello's `version` field.
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match n {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            other => Err(FramingError::UnknownVersion(other.to_string())),
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// One received audio frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// The Opus packet.
    pub payload: Bytes,
    /// The v2 header's timestamp in ms (an echo of a downlink timestamp
    /// with server-side AEC); 0 in versions 1 and 3.
    pub timestamp: u32,
}

/// Frames `payload` (one Opus packet) in `version`. `timestamp_ms` is
/// written in version 2 only. A payload longer than the `payload_size`
/// field holds (65 535 bytes in version 3) is an error; an Opus packet is
/// never that long.
pub fn encode(
    version: ProtocolVersion,
    payload: &[u8],
    timestamp_ms: u32,
) -> Result<Bytes, FramingError> {
    let too_large = || FramingError::PayloadTooLarge {
        version: version.number(),
        len: payload.len(),
    };
    let mut frame = BytesMut::with_capacity(version.header_len() + payload.len());
    match version {
        ProtocolVersion::V1 => {}
        ProtocolVersion::V2 => {
            let size = u32::try_from(payload.len()).map_err(|_| too_large())?;
            frame.put_u16(2);
            frame.put_u16(0);
            frame.put_u32(0);
            frame.put_u32(timestamp_ms);
            frame.put_u32(size);
        }
        ProtocolVersion::V3 => {
            let size = u16::try_from(payload.len()).map_err(|_| too_large())?;
            frame.put_u8(0);
            frame.put_u8(0);
            frame.put_u16(size);
        }
    }
    frame.put_slice(payload);
    Ok(frame.freeze())
}

/// Reads one binary frame in `version`. The payload shares `frame`'s
/// memory. Refuses a frame shorter than its header and one whose
/// `payload_size` is not the length of the rest; never panics.
pub fn decode(version: ProtocolVersion, frame: &Bytes) -> Result<AudioFrame, FramingError> {
    let header = version.header_len();
    if frame.len() < header {
        return Err(FramingError::Truncated {
            version: version.number(),
            len: frame.len(),
            header,
        });
    }
    let (declared, timestamp) = match version {
        ProtocolVersion::V1 => {
            return Ok(AudioFrame {
                payload: frame.clone(),
                timestamp: 0,
            });
        }
        ProtocolVersion::V2 => (u64::from(be_u32(&frame[12..16])), be_u32(&frame[8..12])),
        ProtocolVersion::V3 => (u64::from(u16::from_be_bytes([frame[2], frame[3]])), 0),
    };
    let actual = frame.len() - header;
    if declared != actual as u64 {
        return Err(FramingError::PayloadSizeMismatch { declared, actual });
    }
    Ok(AudioFrame {
        payload: frame.slice(header..),
        timestamp,
    })
}

fn be_u32(b: &[u8]) -> u32 {
    b.iter().fold(0, |n, &x| (n << 8) | u32::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn version() -> impl Strategy<Value = ProtocolVersion> {
        prop_oneof![
            Just(ProtocolVersion::V1),
            Just(ProtocolVersion::V2),
            Just(ProtocolVersion::V3),
        ]
    }

    #[test]
    fn the_protocol_version_header_is_parsed_strictly() {
        assert_eq!(ProtocolVersion::parse("1"), Ok(ProtocolVersion::V1));
        assert_eq!(ProtocolVersion::parse(" 2 "), Ok(ProtocolVersion::V2));
        assert_eq!("3".parse(), Ok(ProtocolVersion::V3));
        for bad in ["", "0", "4", "v1", "1.0", "01x", "２"] {
            assert!(
                matches!(
                    ProtocolVersion::parse(bad),
                    Err(FramingError::UnknownVersion(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(ProtocolVersion::try_from(2u64), Ok(ProtocolVersion::V2));
        assert!(ProtocolVersion::try_from(0u64).is_err());
        assert_eq!(ProtocolVersion::V3.to_string(), "3");
    }

    #[test]
    fn version_1_is_the_packet_itself() {
        let frame = encode(ProtocolVersion::V1, b"opus", 99).unwrap();
        assert_eq!(&frame[..], b"opus");
        let got = decode(ProtocolVersion::V1, &frame).unwrap();
        assert_eq!(got.payload, Bytes::from_static(b"opus"));
        assert_eq!(got.timestamp, 0);
        // An empty frame is an empty packet, for the decoder to judge.
        assert_eq!(
            decode(ProtocolVersion::V1, &Bytes::new())
                .unwrap()
                .payload
                .len(),
            0
        );
    }

    #[test]
    fn version_2_has_the_16_byte_big_endian_header_of_the_spec() {
        let frame = encode(ProtocolVersion::V2, &[0xaa, 0xbb, 0xcc], 0x0102_0304).unwrap();
        assert_eq!(
            &frame[..],
            &[
                0, 2, // version
                0, 0, // type: Opus
                0, 0, 0, 0, // reserved
                1, 2, 3, 4, // timestamp
                0, 0, 0, 3, // payload_size
                0xaa, 0xbb, 0xcc,
            ]
        );
        let got = decode(ProtocolVersion::V2, &frame).unwrap();
        assert_eq!(&got.payload[..], &[0xaa, 0xbb, 0xcc]);
        assert_eq!(got.timestamp, 0x0102_0304);
    }

    #[test]
    fn version_3_has_the_4_byte_header_of_the_spec() {
        let payload = vec![7u8; 300];
        let frame = encode(ProtocolVersion::V3, &payload, 5).unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0x01, 0x2c]);
        assert_eq!(&frame[4..], &payload[..]);
        let got = decode(ProtocolVersion::V3, &frame).unwrap();
        assert_eq!(got.payload.len(), 300);
        assert_eq!(got.timestamp, 0, "version 3 carries no timestamp");
    }

    #[test]
    fn a_payload_size_that_disagrees_with_the_frame_is_refused() {
        let mut v2 = encode(ProtocolVersion::V2, &[1, 2, 3], 0).unwrap().to_vec();
        v2.push(4);
        assert_eq!(
            decode(ProtocolVersion::V2, &Bytes::from(v2.clone())),
            Err(FramingError::PayloadSizeMismatch {
                declared: 3,
                actual: 4
            })
        );
        v2.truncate(17);
        assert_eq!(
            decode(ProtocolVersion::V2, &Bytes::from(v2)),
            Err(FramingError::PayloadSizeMismatch {
                declared: 3,
                actual: 1
            })
        );
        // A v1 packet read as v3: its first bytes make a nonsense size.
        let v3 = Bytes::from_static(&[0x78, 0x01, 0xff, 0xff, 9, 9]);
        assert!(matches!(
            decode(ProtocolVersion::V3, &v3),
            Err(FramingError::PayloadSizeMismatch {
                declared: 65_535,
                actual: 2
            })
        ));
    }

    #[test]
    fn a_frame_shorter_than_its_header_is_refused() {
        for (version, len) in [(ProtocolVersion::V2, 15), (ProtocolVersion::V3, 3)] {
            for n in 0..=len {
                assert!(matches!(
                    decode(version, &Bytes::from(vec![0u8; n])),
                    Err(FramingError::Truncated { .. })
                ));
            }
        }
        // A header with an empty payload is a valid frame.
        assert!(decode(ProtocolVersion::V3, &Bytes::from_static(&[0, 0, 0, 0])).is_ok());
    }

    #[test]
    fn a_payload_too_large_for_version_3_is_an_error_not_a_wrong_header() {
        let big = vec![0u8; 65_536];
        assert!(matches!(
            encode(ProtocolVersion::V3, &big, 0),
            Err(FramingError::PayloadTooLarge {
                version: 3,
                len: 65_536
            })
        ));
        assert!(encode(ProtocolVersion::V3, &big[..65_535], 0).is_ok());
        assert!(encode(ProtocolVersion::V2, &big, 0).is_ok());
    }

    proptest! {
        #[test]
        fn decode_never_panics(v in version(), frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(v, &Bytes::from(frame));
        }

        #[test]
        fn decode_of_a_header_with_any_size_field_never_panics(
            v in version(),
            size in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut frame = match v {
                ProtocolVersion::V1 => Vec::new(),
                ProtocolVersion::V2 => [&[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &size.to_be_bytes()].concat(),
                ProtocolVersion::V3 => [&[0u8, 0][..], &(size as u16).to_be_bytes()].concat(),
            };
            frame.extend_from_slice(&payload);
            let got = decode(v, &Bytes::from(frame));
            let declared_matches = match v {
                ProtocolVersion::V1 => true,
                ProtocolVersion::V2 => size as usize == payload.len(),
                ProtocolVersion::V3 => usize::from(size as u16) == payload.len(),
            };
            prop_assert_eq!(got.is_ok(), declared_matches);
        }

        #[test]
        fn encode_then_decode_gives_back_the_payload_and_timestamp(
            v in version(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            timestamp in any::<u32>(),
        ) {
            let frame = encode(v, &payload, timestamp).unwrap();
            prop_assert_eq!(frame.len(), v.header_len() + payload.len());
            let got = decode(v, &frame).unwrap();
            prop_assert_eq!(&got.payload[..], &payload[..]);
            let expected = if v == ProtocolVersion::V2 { timestamp } else { 0 };
            prop_assert_eq!(got.timestamp, expected);
        }
    }
}
