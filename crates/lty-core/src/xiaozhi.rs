//! xiaozhi-esp32 devices: what lty keeps about each one (its board,
//! firmware, channel token and conversation), firmware releases offered to
//! them, and the firmware's version rule.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::MacAddress;

/// A xiaozhi device as lty last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XiaozhiDevice {
    /// `Device-Id`: the stable identity and the binding key.
    pub mac_address: MacAddress,
    /// `Client-Id`: a UUID that changes after an NVS erase.
    pub client_id: Option<String>,
    /// `board.type`, the board family.
    pub board_type: Option<String>,
    /// `board.name`, the build variant.
    pub board_name: Option<String>,
    /// `application.version`.
    pub firmware_version: Option<String>,
    /// `Serial-Number` of activation version 2.
    pub serial_number: Option<String>,
    /// The binary framing the device announced on its last channel.
    pub protocol_version: Option<i16>,
    /// SHA-256 (hex) of the channel token handed out by the last OTA check.
    pub token_hash: Option<String>,
    /// The token before it, still accepted until the next rotation.
    pub prev_token_hash: Option<String>,
    /// The conversation the device's turns continue, and when it was last
    /// used.
    pub conversation_id: Option<i64>,
    pub conversation_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// What an OTA check tells about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XiaozhiSighting {
    pub mac_address: MacAddress,
    pub client_id: Option<String>,
    pub board_type: Option<String>,
    pub board_name: Option<String>,
    pub firmware_version: Option<String>,
    pub serial_number: Option<String>,
}

/// A firmware image offered to one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareRelease {
    pub id: i64,
    /// `board.name` (or `board.type`) it is built for.
    pub board: String,
    /// Numeric dotted version (see [`FirmwareVersion`]).
    pub version: String,
    /// Where the image is kept in the blob store.
    pub blob_key: String,
    pub size: i64,
    /// SHA-256 of the image, hex.
    pub sha256: String,
    pub notes: Option<String>,
    /// Retired releases are no longer offered.
    pub is_active: bool,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A release to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFirmwareRelease {
    pub board: String,
    pub version: String,
    pub blob_key: String,
    pub size: i64,
    pub sha256: String,
    pub notes: Option<String>,
    pub created_by: Option<i64>,
}

/// A firmware version as the device compares them: dotted decimal numbers,
/// compared segment by segment, the longer winning when the shared
/// segments are equal. Only versions the firmware parses without aborting
/// are accepted: every segment 1–9 digits (`^[0-9]+(\.[0-9]+)*$`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareVersion(Vec<u32>);

impl FirmwareVersion {
    /// Parses `text`, or `None` when the firmware could not.
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() {
            return None;
        }
        text.split('.')
            .map(|seg| {
                let ok =
                    !seg.is_empty() && seg.len() <= 9 && seg.bytes().all(|b| b.is_ascii_digit());
                ok.then(|| seg.parse::<u32>().ok()).flatten()
            })
            .collect::<Option<Vec<_>>>()
            .map(Self)
    }
}

impl PartialOrd for FirmwareVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FirmwareVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            match a.cmp(b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

/// Whether `board` is a board name lty accepts for releases: the
/// firmware's `board.type` alphabet (`^[a-z0-9.-]+$`, plus `_`), 1–64
/// characters.
pub fn valid_board(board: &str) -> bool {
    (1..=64).contains(&board.len())
        && board.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> FirmwareVersion {
        FirmwareVersion::parse(s).unwrap()
    }

    #[test]
    fn versions_compare_as_the_firmware_compares_them() {
        assert!(v("2.4.3") > v("2.4.2"));
        assert!(v("2.10") > v("2.9.9"));
        assert!(v("1.2.0") > v("1.2"));
        assert_eq!(v("1.2").cmp(&v("1.2")), Ordering::Equal);
        assert!(v("10") > v("9.99.99"));
    }

    #[test]
    fn only_versions_the_firmware_can_parse_are_accepted() {
        for bad in [
            "",
            "v2.4.2",
            "2..1",
            ".2",
            "2.",
            "1.2-beta",
            "1234567890",
            " 1.2",
            "1.x",
        ] {
            assert!(FirmwareVersion::parse(bad).is_none(), "{bad:?}");
        }
        assert!(FirmwareVersion::parse("0").is_some());
        assert!(FirmwareVersion::parse("999999999.0").is_some());
    }

    #[test]
    fn board_names_use_the_firmware_alphabet() {
        assert!(valid_board("bread-compact-wifi-128x64"));
        assert!(valid_board("esp32-s3_touch.lcd"));
        assert!(!valid_board("Bread"));
        assert!(!valid_board("a/b"));
        assert!(!valid_board(""));
    }
}
