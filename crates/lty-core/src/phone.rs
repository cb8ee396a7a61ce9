//! Phone numbers of SMS-login users, parsed once at the edge and stored in
//! one canonical spelling so `+86 138-1234-5678` and `13812345678` are the
//! same account.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::Error;

/// A mobile phone number.
///
/// Accepted spellings: a mainland China mobile number (11 digits starting
/// `1[3-9]`), optionally prefixed `+86`, `0086` or `86`; or any E.164 number
/// (`+` and 8 to 15 digits, or `00` instead of `+`). Spaces, hyphens, dots
/// and parentheses between digits are ignored.
///
/// Canonical form: mainland numbers as their 11 digits (`13812345678`, the
/// form the legacy system and the SMS vendor use), every other number as
/// E.164 with `+` (`+85291234567`). The two never collide: only the second
/// starts with `+`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

const FIELD: &str = "phone";

impl PhoneNumber {
    /// Parses and normalises a phone number.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::validation(
                FIELD,
                "must be a mobile number such as 13812345678 or +85291234567",
            )
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(Error::validation(FIELD, "is required"));
        }
        if trimmed.len() > 32 {
            return Err(invalid());
        }
        let (international, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => match trimmed.strip_prefix("00") {
                Some(rest) => (true, rest),
                None => (false, trimmed),
            },
        };
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid()),
            }
        }
        // A bare 13-digit `86...` is a mainland number with its country code.
        let national = if international {
            digits.strip_prefix("86")
        } else if digits.len() == 13 && digits.starts_with("861") {
            Some(&digits[2..])
        } else {
            Some(digits.as_str())
        };
        match national {
            Some(n) => {
                if is_mainland_mobile(n) {
                    Ok(Self(n.to_owned()))
                } else {
                    Err(invalid())
                }
            }
            None => {
                // E.164: country code 1-9, 8..=15 digits in total.
                let ok = (8..=15).contains(&digits.len()) && !digits.starts_with('0');
                if ok {
                    Ok(Self(format!("+{digits}")))
                } else {
                    Err(invalid())
                }
            }
        }
    }

    /// The canonical form (see the type's documentation).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a mainland China number.
    pub fn is_mainland(&self) -> bool {
        !self.0.starts_with('+')
    }

    /// The form Aliyun SendSms takes in `PhoneNumbers`: 11 digits for
    /// mainland numbers, country code and number without `+` otherwise.
    pub fn for_aliyun(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }

    /// The number masked for logs and display: `138****5678`.
    pub fn masked(&self) -> String {
        crate::user::mask_phone(&self.0)
    }
}

fn is_mainland_mobile(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Debug masks the number: phone numbers are personal data and Debug output
// ends up in logs.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl FromStr for PhoneNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_numbers_normalise_to_eleven_digits() {
        for s in [
            "13812345678",
            " 138 1234 5678 ",
            "138-1234-5678",
            "+8613812345678",
            "+86 138 1234 5678",
            "008613812345678",
            "8613812345678",
        ] {
            let p = PhoneNumber::parse(s).unwrap();
            assert_eq!(p.as_str(), "13812345678", "{s}");
            assert!(p.is_mainland());
            assert_eq!(p.for_aliyun(), "13812345678");
        }
    }

    #[test]
    fn other_numbers_normalise_to_e164() {
        let p = PhoneNumber::parse("+852 9123 4567").unwrap();
        assert_eq!(p.as_str(), "+85291234567");
        assert!(!p.is_mainland());
        assert_eq!(p.for_aliyun(), "85291234567");
        assert_eq!(
            PhoneNumber::parse("0044 7700 900123").unwrap().as_str(),
            "+447700900123"
        );
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        for s in [
            "",
            "   ",
            "1381234567",
            "138123456789",
            "12812345678",
            "+8612812345678",
            "+86138123456",
            "+1234567",
            "+1234567890123456",
            "+0123456789",
            "13812345678x",
            "１３８１２３４５６７８",
            "+44+7700900123",
        ] {
            assert!(PhoneNumber::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn debug_output_masks_the_number() {
        let p = PhoneNumber::parse("13812345678").unwrap();
        assert_eq!(format!("{p:?}"), "PhoneNumber(138****5678)");
    }
}
