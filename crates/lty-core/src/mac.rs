//! MAC addresses of devices, parsed once at the edge and stored normalised.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A 48-bit device MAC address.
///
/// Parsing accepts upper or lower case hex with `:` or `-` separators (or
/// none); the canonical form, used for storage, keys and comparison, is
/// lower case with colons: `02:00:00:00:13:87`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    /// Parses a MAC address in any of the accepted spellings.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::validation(
                "mac_address",
                "must be a MAC address such as 02:00:00:00:00:01",
            )
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(Error::validation("mac_address", "is required"));
        }
        let bytes = s.as_bytes();
        let (step, sep) = match bytes.len() {
            12 => (2, None),
            17 => match bytes[2] {
                b @ (b':' | b'-') => (3, Some(b)),
                _ => return Err(invalid()),
            },
            _ => return Err(invalid()),
        };
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * step;
            // Mixed separators ("02:00-00...") are rejected, not guessed at.
            if let Some(sep) = sep
                && i > 0
                && bytes[at - 1] != sep
            {
                return Err(invalid());
            }
            let hi = hex_val(bytes[at]).ok_or_else(invalid)?;
            let lo = hex_val(bytes[at + 1]).ok_or_else(invalid)?;
            *octet = (hi << 4) | lo;
        }
        Ok(Self(out))
    }

    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds an address from its six octets.
    pub fn from_octets(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddress({self})")
    }
}

impl FromStr for MacAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_spelling_and_normalises() {
        for s in [
            "02:00:00:00:13:87",
            "02:00:00:00:13:87",
            "02-00-00-00-13-87",
            "020000001387",
            " 02:00:00:00:13:87 ",
        ] {
            assert_eq!(
                MacAddress::parse(s).unwrap().to_string(),
                "02:00:00:00:13:87"
            );
        }
        assert_eq!(
            MacAddress::parse("AA:BB:CC:DD:EE:FF").unwrap().to_string(),
            "aa:bb:cc:dd:ee:ff"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for s in [
            "",
            "   ",
            "02:00:00:00:13",
            "02:00:00:00:13:8g",
            "02:00-00:00:13:87",
            "02.00.00.00.13.87",
            "02:00:00:00:13:870",
            "０2:00:00:00:13:87",
        ] {
            assert!(MacAddress::parse(s).is_err(), "{s:?} should be rejected");
        }
    }
}
