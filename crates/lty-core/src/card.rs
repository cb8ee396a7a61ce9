//! Card codes: unguessable, easy to read aloud and type, with a check
//! character that catches typos before the database is asked.
//!
//! A code is 15 random symbols from a 31-symbol alphabet without look-alike
//! characters (no `0 O 1 I L`), about 74 bits, plus one check symbol: a
//! weighted sum modulo 31. Because 31 is prime and the weights are distinct
//! and non-zero, every single-symbol error and every swap of two adjacent
//! different symbols changes the check. Codes are displayed in groups of
//! four (`ABCD-EFGH-JKMN-PQRS`); parsing ignores case, spaces and dashes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The code alphabet: digits 2–9 and letters without `I`, `L` and `O`.
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Random symbols in a code (15 × log2(31) ≈ 74 bits).
pub const RANDOM_LEN: usize = 15;
/// Symbols in a code, check symbol included.
pub const CODE_LEN: usize = RANDOM_LEN + 1;

fn value_of(symbol: u8) -> Option<usize> {
    ALPHABET.iter().position(|&s| s == symbol)
}

/// The check symbol of `body` (symbols of [`ALPHABET`]).
fn check_symbol(body: &[u8]) -> Option<u8> {
    let mut sum = 0usize;
    for (i, &s) in body.iter().enumerate() {
        sum += (i + 1) * value_of(s)?;
    }
    Some(ALPHABET[(31 - sum % 31) % 31])
}

/// A well-formed card code (normalised: upper case, no separators).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardCode(String);

impl CardCode {
    /// A fresh random code from the thread's cryptographic RNG.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut body: Vec<u8> = (0..RANDOM_LEN)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect();
        // Symbols are from ALPHABET, so the check always exists.
        let check = check_symbol(&body).unwrap_or(ALPHABET[0]);
        body.push(check);
        Self(String::from_utf8_lossy(&body).into_owned())
    }

    /// Parses what a person typed or a scanner read: case, spaces and
    /// dashes do not matter; the check symbol must match.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = || {
            Error::validation(
                "code",
                "is not a card code (16 symbols of 2-9 and A-Z without I, L, O)",
            )
        };
        let norm: Vec<u8> = input
            .bytes()
            .filter(|b| !matches!(b, b'-' | b' '))
            .map(|b| b.to_ascii_uppercase())
            .collect();
        if norm.len() != CODE_LEN || norm.iter().any(|&b| value_of(b).is_none()) {
            return Err(bad());
        }
        if check_symbol(&norm[..RANDOM_LEN]) != Some(norm[RANDOM_LEN]) {
            return Err(Error::validation(
                "code",
                "has a wrong check symbol (a typo?)",
            ));
        }
        Ok(Self(String::from_utf8_lossy(&norm).into_owned()))
    }

    /// The stored form: 16 symbols, no separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The printed form: groups of four joined by dashes.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }
}

impl fmt::Display for CardCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// What a card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    /// Plays content on the device (story, song, lesson, persona).
    Content,
    /// Redeems for days of a plan.
    Membership,
}

impl CardKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Membership => "membership",
        }
    }
}

impl FromStr for CardKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "content" => Ok(Self::Content),
            "membership" => Ok(Self::Membership),
            _ => Err(Error::validation("kind", "must be content or membership")),
        }
    }
}

/// A batch of cards generated together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardBatch {
    pub id: i64,
    pub kind: CardKind,
    pub count: u32,
    /// What a content card plays (e.g. `story:123`).
    pub content_ref: Option<String>,
    /// Extra JSON sent to the device with the content.
    pub payload: Option<serde_json::Value>,
    /// The plan a membership card redeems for, and for how many days.
    pub plan_id: Option<i64>,
    pub days: Option<u32>,
    /// After this, the batch's cards are refused.
    pub expires_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
    pub disabled: bool,
    /// The admin who generated it.
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl CardBatch {
    /// Whether the batch's cards are expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// What is needed to generate a batch.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub kind: CardKind,
    pub count: u32,
    pub content_ref: Option<String>,
    pub payload: Option<serde_json::Value>,
    pub plan_id: Option<i64>,
    pub days: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
    pub created_by: Option<i64>,
}

/// One card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    pub id: i64,
    pub batch_id: i64,
    pub code: String,
    pub disabled: bool,
}

/// Usage of a card or of a whole batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CardUsage {
    pub scans: u64,
    pub unique_users: u64,
    pub first_scan_at: Option<DateTime<Utc>>,
    pub last_scan_at: Option<DateTime<Utc>>,
    /// Membership cards redeemed.
    pub redeemed: u64,
}

/// One scan, with the card and batch it was of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanRecord {
    pub id: i64,
    pub card: Card,
    pub batch: CardBatch,
    pub user_id: i64,
    pub mac_address: Option<String>,
    pub scanned_at: DateTime<Utc>,
}

/// Most cards in one batch.
pub const MAX_BATCH: u32 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_in_any_spelling() {
        for _ in 0..1000 {
            let code = CardCode::generate();
            assert_eq!(code.as_str().len(), CODE_LEN);
            assert_eq!(CardCode::parse(code.as_str()).unwrap(), code);
            let sloppy = code.display().to_ascii_lowercase().replace('-', " ");
            assert_eq!(CardCode::parse(&sloppy).unwrap(), code);
        }
    }

    #[test]
    fn every_single_substitution_and_adjacent_swap_is_caught() {
        let code = CardCode::generate();
        let bytes = code.as_str().as_bytes().to_vec();
        for i in 0..CODE_LEN {
            for &s in ALPHABET {
                if s == bytes[i] {
                    continue;
                }
                let mut typo = bytes.clone();
                typo[i] = s;
                assert!(CardCode::parse(std::str::from_utf8(&typo).unwrap()).is_err());
            }
            if i + 1 < CODE_LEN && bytes[i] != bytes[i + 1] {
                let mut swap = bytes.clone();
                swap.swap(i, i + 1);
                assert!(CardCode::parse(std::str::from_utf8(&swap).unwrap()).is_err());
            }
        }
    }

    #[test]
    fn look_alike_characters_are_not_in_the_alphabet() {
        for c in b"01ILO" {
            assert!(!ALPHABET.contains(c));
        }
    }
}
