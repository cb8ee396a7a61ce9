//! Volcengine RTC AccessToken, version `"001"`: build, serialize, parse and
//! verify the token a device or app presents when it joins an RTC room.
//!
//! Wire format (all integers little-endian, `bytes(x)` = `u16` byte length
//! then the raw bytes):
//!
//! ```text
//! msg     = u32 nonce ‖ u32 issued_at ‖ u32 expire_at ‖ bytes(room_id) ‖ bytes(user_id)
//!           ‖ u16 count ‖ count × (u16 privilege id ‖ u32 expire_at), ascending ids
//! sig     = HMAC-SHA256(key = AppKey as UTF-8, data = msg)
//! content = bytes(msg) ‖ bytes(sig)
//! token   = "001" ‖ app_id (24 ASCII chars) ‖ Base64(content)   (standard alphabet, padded)
//! ```
//!
//! Every time is an absolute Unix time in seconds; `0` means "never expires".

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::Mac as _;
use rand::Rng as _;
use serde::Serialize;

use super::{hmac_sha256, keyed_mac};

/// Token format version, the first three characters of every token.
pub const VERSION: &str = "001";
/// Length of a Volcengine RTC AppId; the parser relies on it to find the content.
pub const APP_ID_LEN: usize = 24;
/// Lifetime of a token (and of its legacy default privileges) when no expiry is given.
pub const DEFAULT_TTL_SECS: u32 = 24 * 60 * 60;
/// Range of the random nonce drawn when none is given (what the vendor SDKs draw).
pub const NONCE_RANGE: Range<u32> = 1..99_999_999;

/// `"001"` + AppId: the fixed-width ASCII prefix before the Base64 content.
const PREFIX_LEN: usize = VERSION.len() + APP_ID_LEN;
/// Fixed part of `msg`: three `u32`, two string lengths and the map count.
const MSG_FIXED_LEN: usize = 12 + 2 + 2 + 2;
/// One privilege entry: `u16` id + `u32` expiry.
const PRIVILEGE_ENTRY_LEN: usize = 6;
/// Length of an HMAC-SHA256 signature.
const SIGNATURE_LEN: usize = 32;

/// Decoder for the content: standard alphabet, canonical padding required,
/// but non-zero unused bits in the last quantum tolerated (vendor decoders do).
const CONTENT_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// A right a token grants, with the numeric id used on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// `PrivPublishStream` (0): publish; the vendor SDKs fan it out to ids 1–3.
    PublishStream,
    /// `privPublishAudioStream` (1): publish audio (vendor-internal).
    PublishAudioStream,
    /// `privPublishVideoStream` (2): publish video (vendor-internal).
    PublishVideoStream,
    /// `privPublishDataStream` (3): publish data (vendor-internal).
    PublishDataStream,
    /// `PrivSubscribeStream` (4): subscribe.
    SubscribeStream,
    /// `PrivSwitchRTCProvider` (5): carried by console-minted tokens.
    SwitchRtcProvider,
}

impl Privilege {
    /// Every privilege, in id order.
    pub const ALL: [Self; 6] = [
        Self::PublishStream,
        Self::PublishAudioStream,
        Self::PublishVideoStream,
        Self::PublishDataStream,
        Self::SubscribeStream,
        Self::SwitchRtcProvider,
    ];

    /// The legacy default set: publish with its fan-out, plus subscribe (ids 0–4).
    pub const LEGACY_DEFAULT: [Self; 5] = [
        Self::PublishStream,
        Self::PublishAudioStream,
        Self::PublishVideoStream,
        Self::PublishDataStream,
        Self::SubscribeStream,
    ];

    /// The numeric id written on the wire.
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// The privilege with wire id `id`, if it is one of the six known ones.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            0 => Some(Self::PublishStream),
            1 => Some(Self::PublishAudioStream),
            2 => Some(Self::PublishVideoStream),
            3 => Some(Self::PublishDataStream),
            4 => Some(Self::SubscribeStream),
            5 => Some(Self::SwitchRtcProvider),
            _ => None,
        }
    }

    /// The name Volcengine's SDKs give this privilege (case as printed there).
    pub const fn vendor_name(self) -> &'static str {
        match self {
            Self::PublishStream => "PrivPublishStream",
            Self::PublishAudioStream => "privPublishAudioStream",
            Self::PublishVideoStream => "privPublishVideoStream",
            Self::PublishDataStream => "privPublishDataStream",
            Self::SubscribeStream => "PrivSubscribeStream",
            Self::SwitchRtcProvider => "PrivSwitchRTCProvider",
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.vendor_name())
    }
}

impl FromStr for Privilege {
    type Err = TokenError;

    /// Accepts the decimal id (`"0"`–`"5"`) or the exact vendor name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || TokenError::UnknownPrivilege(s.to_owned());
        if let Some(id) = parse_digits::<u16>(s) {
            return Self::from_id(id).ok_or_else(unknown);
        }
        Self::ALL
            .into_iter()
            .find(|p| p.vendor_name() == s)
            .ok_or_else(unknown)
    }
}

/// Why a token could not be built, parsed or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The AppId is not exactly [`APP_ID_LEN`] ASCII characters.
    #[error("app id must be exactly {APP_ID_LEN} ASCII characters, got {len} bytes")]
    InvalidAppId {
        /// Byte length of the rejected AppId.
        len: usize,
    },
    /// A length-prefixed field does not fit its `u16` length.
    #[error("{field} is {len} bytes long, the token format allows at most 65535")]
    FieldTooLong {
        /// `room_id`, `user_id` or `message` (the whole signed part).
        field: &'static str,
        /// Its byte length.
        len: usize,
    },
    /// The clock is outside what an unsigned 32-bit Unix time can hold.
    #[error("{what} {value} does not fit an unsigned 32-bit Unix time")]
    TimeOutOfRange {
        /// Which time overflowed.
        what: &'static str,
        /// The value that did not fit.
        value: u64,
    },
    /// Neither a privilege id 0–5 nor a vendor privilege name.
    #[error("unknown privilege {0:?}: expected 0-5 or a name such as PrivPublishStream")]
    UnknownPrivilege(String),
    /// A `ID=EXPIRE,...` privilege list could not be read.
    #[error("invalid privilege list: {0}")]
    InvalidPrivilegeList(String),
    /// The string is not a well-formed version-001 token.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The signature does not match the message under the given AppKey.
    #[error("token signature does not match")]
    BadSignature,
    /// The signature is valid but the token's `expire_at` has passed.
    #[error("token expired at {expire_at}")]
    Expired {
        /// The token's expiry (Unix seconds).
        expire_at: u32,
    },
}

impl TokenError {
    /// Stable snake_case code for API errors and CLI messages.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InvalidAppId { .. } => "invalid_app_id",
            Self::FieldTooLong { .. } => "field_too_long",
            Self::TimeOutOfRange { .. } => "time_out_of_range",
            Self::UnknownPrivilege(_) => "unknown_privilege",
            Self::InvalidPrivilegeList(_) => "invalid_privilege_list",
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired { .. } => "expired",
        }
    }
}

/// A decimal number made of ASCII digits only: `FromStr` for integers would
/// also take a leading `+`, which the CLI syntax does not allow.
fn parse_digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Current Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a privilege list `ID=EXPIRE,ID=EXPIRE,...` (the `--privileges` syntax).
///
/// `ID` is a number 0–5 or a vendor name; `EXPIRE` a decimal `u32`. The empty
/// string is the empty list. The list is the wire map: no fan-out is added.
/// A repeated privilege, an unknown name or a bad number is an error.
pub fn parse_privilege_list(list: &str) -> Result<Vec<(Privilege, u32)>, TokenError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<(Privilege, u32)> = Vec::new();
    for item in list.split(',') {
        let (id, expire) = item.split_once('=').ok_or_else(|| {
            TokenError::InvalidPrivilegeList(format!("{item:?} is not ID=EXPIRE"))
        })?;
        let privilege: Privilege = id.parse()?;
        let expire = parse_digits::<u32>(expire).ok_or_else(|| {
            TokenError::InvalidPrivilegeList(format!(
                "expiry {expire:?} of {privilege} is not an integer 0..=4294967295"
            ))
        })?;
        if out.iter().any(|(p, _)| *p == privilege) {
            return Err(TokenError::InvalidPrivilegeList(format!(
                "{privilege} is given twice"
            )));
        }
        out.push((privilege, expire));
    }
    Ok(out)
}

/// A version-001 AccessToken ready to be signed.
///
/// Built with [`AccessToken::builder`], which validates every field once, so
/// [`AccessToken::serialize`] cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    app_id: String,
    room_id: String,
    user_id: String,
    nonce: u32,
    issued_at: u32,
    expire_at: u32,
    privileges: BTreeMap<u16, u32>,
}

impl AccessToken {
    /// Starts a token for `user_id` in `room_id` of application `app_id`.
    ///
    /// Unset fields default as in the legacy service: random nonce in
    /// [`NONCE_RANGE`], `issued_at` now, `expire_at` now + 24 h, and the
    /// [`Privilege::LEGACY_DEFAULT`] set expiring with the token.
    pub fn builder(
        app_id: impl Into<String>,
        room_id: impl Into<String>,
        user_id: impl Into<String>,
    ) -> AccessTokenBuilder {
        AccessTokenBuilder {
            app_id: app_id.into(),
            room_id: room_id.into(),
            user_id: user_id.into(),
            nonce: None,
            issued_at: None,
            expire_at: None,
            privileges: None,
        }
    }

    /// The RTC AppId (24 ASCII characters).
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The room the token admits to (may be empty).
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// The RTC user id the token is for (may be empty).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Random value that makes otherwise equal tokens differ.
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    /// Issue time, Unix seconds.
    pub fn issued_at(&self) -> u32 {
        self.issued_at
    }

    /// Expiry of the whole token, Unix seconds; 0 = never.
    pub fn expire_at(&self) -> u32 {
        self.expire_at
    }

    /// Privilege id → expiry (0 = never), in wire (ascending) order.
    pub fn privileges(&self) -> &BTreeMap<u16, u32> {
        &self.privileges
    }

    /// Length of the signed message; at most `u16::MAX` (checked when built).
    fn message_len(&self) -> usize {
        MSG_FIXED_LEN
            + self.room_id.len()
            + self.user_id.len()
            + PRIVILEGE_ENTRY_LEN * self.privileges.len()
    }

    /// Appends `msg` to `out`. Lengths fit `u16`: the builder checked them.
    fn write_message(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.issued_at.to_le_bytes());
        out.extend_from_slice(&self.expire_at.to_le_bytes());
        put_len(out, self.room_id.len());
        out.extend_from_slice(self.room_id.as_bytes());
        put_len(out, self.user_id.len());
        out.extend_from_slice(self.user_id.as_bytes());
        put_len(out, self.privileges.len());
        // BTreeMap iterates in ascending key order, which is the wire order.
        for (id, expire) in &self.privileges {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&expire.to_le_bytes());
        }
    }

    /// The token string, signed with `app_key` (its UTF-8 bytes are the HMAC key).
    ///
    /// Byte-exact with Volcengine's token libraries for the same fields.
    pub fn serialize(&self, app_key: &str) -> String {
        let msg_len = self.message_len();
        // content = bytes(msg) ‖ bytes(sig), built in one exact-size buffer.
        let mut content = Vec::with_capacity(2 + msg_len + 2 + SIGNATURE_LEN);
        put_len(&mut content, msg_len);
        self.write_message(&mut content);
        let sig = hmac_sha256(app_key.as_bytes(), &content[2..]);
        put_len(&mut content, SIGNATURE_LEN);
        content.extend_from_slice(&sig);
        encode_token(&self.app_id, &content)
    }
}

/// Builder for [`AccessToken`]; see [`AccessToken::builder`] for the defaults.
#[derive(Debug, Clone)]
pub struct AccessTokenBuilder {
    app_id: String,
    room_id: String,
    user_id: String,
    nonce: Option<u32>,
    issued_at: Option<u32>,
    expire_at: Option<u32>,
    privileges: Option<BTreeMap<u16, u32>>,
}

impl AccessTokenBuilder {
    /// Uses `nonce` instead of a random one.
    pub fn nonce(mut self, nonce: u32) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Sets the issue time (Unix seconds) instead of now.
    pub fn issued_at(mut self, issued_at: u32) -> Self {
        self.issued_at = Some(issued_at);
        self
    }

    /// Sets the token expiry (Unix seconds, 0 = never) instead of now + 24 h.
    pub fn expire_at(mut self, expire_at: u32) -> Self {
        self.expire_at = Some(expire_at);
        self
    }

    /// Replaces the default set with exactly these wire entries (later wins on
    /// a repeated privilege). An empty iterator gives a token with no privileges.
    pub fn privileges(mut self, privileges: impl IntoIterator<Item = (Privilege, u32)>) -> Self {
        self.privileges = Some(
            privileges
                .into_iter()
                .map(|(p, expire)| (p.id(), expire))
                .collect(),
        );
        self
    }

    /// Adds exactly one wire entry (no fan-out), replacing the default set.
    pub fn privilege(mut self, privilege: Privilege, expire_at: u32) -> Self {
        self.privileges
            .get_or_insert_with(BTreeMap::new)
            .insert(privilege.id(), expire_at);
        self
    }

    /// The vendor SDKs' `AddPrivilege`: like [`Self::privilege`], but
    /// [`Privilege::PublishStream`] also grants ids 1–3 with the same expiry.
    pub fn add_privilege(self, privilege: Privilege, expire_at: u32) -> Self {
        let this = self.privilege(privilege, expire_at);
        if privilege != Privilege::PublishStream {
            return this;
        }
        this.privilege(Privilege::PublishAudioStream, expire_at)
            .privilege(Privilege::PublishVideoStream, expire_at)
            .privilege(Privilege::PublishDataStream, expire_at)
    }

    /// A token with no privileges at all (count 0 on the wire).
    pub fn no_privileges(self) -> Self {
        self.privileges([])
    }

    /// Validates and fills the defaults from the system clock.
    pub fn build(self) -> Result<AccessToken, TokenError> {
        self.build_at(unix_now())
    }

    /// Validates and fills the defaults as if the time were `now` (Unix seconds).
    pub fn build_at(self, now: u64) -> Result<AccessToken, TokenError> {
        if self.app_id.len() != APP_ID_LEN || !self.app_id.is_ascii() {
            return Err(TokenError::InvalidAppId {
                len: self.app_id.len(),
            });
        }
        check_u16_len("room_id", self.room_id.len())?;
        check_u16_len("user_id", self.user_id.len())?;
        let issued_at = match self.issued_at {
            Some(t) => t,
            None => to_u32("issued_at", now)?,
        };
        let expire_at = match self.expire_at {
            Some(t) => t,
            None => to_u32("expire_at", now.saturating_add(u64::from(DEFAULT_TTL_SECS)))?,
        };
        // The legacy default privileges expire together with the token.
        let privileges = self.privileges.unwrap_or_else(|| {
            Privilege::LEGACY_DEFAULT
                .into_iter()
                .map(|p| (p.id(), expire_at))
                .collect()
        });
        let nonce = self
            .nonce
            .unwrap_or_else(|| rand::rng().random_range(NONCE_RANGE));
        let token = AccessToken {
            app_id: self.app_id,
            room_id: self.room_id,
            user_id: self.user_id,
            nonce,
            issued_at,
            expire_at,
            privileges,
        };
        // msg itself is length-prefixed, so the sum must fit too.
        check_u16_len("message", token.message_len())?;
        Ok(token)
    }
}

/// Appends a `u16` little-endian length. Callers guarantee `len <= u16::MAX`.
fn put_len(out: &mut Vec<u8>, len: usize) {
    debug_assert!(len <= usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_le_bytes());
}

fn check_u16_len(field: &'static str, len: usize) -> Result<(), TokenError> {
    if len > usize::from(u16::MAX) {
        return Err(TokenError::FieldTooLong { field, len });
    }
    Ok(())
}

fn to_u32(what: &'static str, value: u64) -> Result<u32, TokenError> {
    u32::try_from(value).map_err(|_| TokenError::TimeOutOfRange { what, value })
}

/// `"001" ‖ app_id ‖ Base64(content)` in one allocation.
fn encode_token(app_id: &str, content: &[u8]) -> String {
    let mut token = String::with_capacity(PREFIX_LEN + content.len().div_ceil(3) * 4);
    token.push_str(VERSION);
    token.push_str(app_id);
    STANDARD.encode_string(content, &mut token);
    token
}

/// A token read back from its string form, signature not yet checked.
///
/// Serializes (serde) to the fields of the `lty rtc-token --verify` output;
/// privileges become a JSON object keyed by the decimal id. The fields are
/// read-only so they cannot drift from the message the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedToken {
    app_id: String,
    room_id: String,
    user_id: String,
    nonce: u32,
    issued_at: u32,
    expire_at: u32,
    privileges: BTreeMap<u16, u32>,
    /// The decoded content: `bytes(msg) ‖ bytes(sig)`.
    #[serde(skip)]
    content: Vec<u8>,
    /// End of `msg` inside `content` (msg starts at byte 2).
    #[serde(skip)]
    msg_end: usize,
}

impl ParsedToken {
    /// AppId from the token prefix (not covered by the signature).
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Room id.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// RTC user id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Nonce.
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    /// Issue time, Unix seconds.
    pub fn issued_at(&self) -> u32 {
        self.issued_at
    }

    /// Token expiry, Unix seconds; 0 = never.
    pub fn expire_at(&self) -> u32 {
        self.expire_at
    }

    /// Privilege id → expiry (0 = never); any `u16` id is kept as read.
    pub fn privileges(&self) -> &BTreeMap<u16, u32> {
        &self.privileges
    }

    /// The signed message exactly as received.
    pub fn message(&self) -> &[u8] {
        self.content.get(2..self.msg_end).unwrap_or_default()
    }

    /// The signature exactly as received (32 bytes in a valid token).
    pub fn signature(&self) -> &[u8] {
        self.content.get(self.msg_end + 2..).unwrap_or_default()
    }

    /// Checks the signature under `app_key` in constant time.
    ///
    /// The MAC is recomputed over the message as received, never re-packed.
    pub fn verify(&self, app_key: &str) -> Result<(), TokenError> {
        keyed_mac(app_key.as_bytes())
            .chain_update(self.message())
            .verify_slice(self.signature())
            .map_err(|_| TokenError::BadSignature)
    }

    /// Whether the whole token has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && now > u64::from(self.expire_at)
    }

    /// Signature first, then expiry: `Ok`, `BadSignature` or `Expired`.
    pub fn check(&self, app_key: &str, now: u64) -> Result<(), TokenError> {
        self.verify(app_key)?;
        if self.is_expired(now) {
            return Err(TokenError::Expired {
                expire_at: self.expire_at,
            });
        }
        Ok(())
    }

    /// Whether `privilege` is present and not expired at `now`.
    pub fn has_privilege(&self, privilege: Privilege, now: u64) -> bool {
        self.privileges
            .get(&privilege.id())
            .is_some_and(|&e| e == 0 || now <= u64::from(e))
    }

    /// The `lty rtc-token --verify` report: fields plus signature and expiry status.
    pub fn report(self, app_key: &str, now: u64) -> VerifyReport {
        VerifyReport {
            signature_valid: self.verify(app_key).is_ok(),
            expired: self.is_expired(now),
            token: self,
        }
    }
}

/// A parsed token with its verification outcome, as printed by `--verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The token's fields.
    #[serde(flatten)]
    pub token: ParsedToken,
    /// The HMAC matches under the AppKey given.
    pub signature_valid: bool,
    /// `expire_at` is set and has passed.
    pub expired: bool,
}

/// Parses a version-001 token strictly. Never panics, whatever the input.
///
/// Rejects (as [`TokenError::Malformed`]) a short or non-ASCII prefix, another
/// version, Base64 that is not strictly padded standard Base64, truncation and
/// trailing bytes, and non-UTF-8 ids. Privileges are read in stored order; a
/// repeated id keeps the later value. The signature is not checked here.
pub fn parse(token: &str) -> Result<ParsedToken, TokenError> {
    let raw = token.as_bytes();
    let (prefix, encoded) = raw
        .split_at_checked(PREFIX_LEN)
        .filter(|(_, rest)| !rest.is_empty())
        .ok_or(TokenError::Malformed("token is too short"))?;
    // ASCII before slicing the &str, so the split lands on a char boundary.
    if !prefix.is_ascii() {
        return Err(TokenError::Malformed("version and app id must be ASCII"));
    }
    if !prefix.starts_with(VERSION.as_bytes()) {
        return Err(TokenError::Malformed("unsupported token version"));
    }
    let app_id = token
        .get(VERSION.len()..PREFIX_LEN)
        .ok_or(TokenError::Malformed("token is too short"))?;
    let content = CONTENT_DECODER
        .decode(encoded)
        .map_err(|_| TokenError::Malformed("content is not padded standard Base64"))?;

    let mut outer = Reader(&content);
    let msg = outer.bytes()?;
    let msg_end = 2 + msg.len();
    outer.bytes()?; // signature, re-read through msg_end by ParsedToken::signature
    outer.finish()?;

    let mut m = Reader(msg);
    let nonce = m.u32()?;
    let issued_at = m.u32()?;
    let expire_at = m.u32()?;
    let room_id = m.utf8()?;
    let user_id = m.utf8()?;
    let count = m.u16()?;
    let mut privileges = BTreeMap::new();
    for _ in 0..count {
        let id = m.u16()?;
        let expire = m.u32()?;
        privileges.insert(id, expire);
    }
    m.finish()?;

    Ok(ParsedToken {
        app_id: app_id.to_owned(),
        room_id,
        user_id,
        nonce,
        issued_at,
        expire_at,
        privileges,
        content,
        msg_end,
    })
}

/// Parses `token` and accepts it only if signed with `app_key` and unexpired at `now`.
pub fn verify(token: &str, app_key: &str, now: u64) -> Result<ParsedToken, TokenError> {
    let parsed = parse(token)?;
    parsed.check(app_key, now)?;
    Ok(parsed)
}

/// Bounds-checked little-endian reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(TokenError::Malformed("token content is truncated"))?;
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, TokenError> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, TokenError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<&'a [u8], TokenError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn utf8(&mut self) -> Result<String, TokenError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| TokenError::Malformed("room or user id is not UTF-8"))
    }

    fn finish(&self) -> Result<(), TokenError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TokenError::Malformed("unexpected trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // §1.7 of the vendor notes (fictional AppId and AppKey).
    const APP: &str = "5f3c0e1d2b4a69788796a5b4";
    const KEY: &str = "lty-docs-example-app-key-0001";
    const TOKEN_A: &str = "0015f3c0e1d2b4a69788796a5b4OQDA/jQBP4rGZ7/bx2cHAHJvb21fNDICADQyBQAAAL/bx2cBAL/bx2cCAL/bx2cDAL/bx2cEAL/bx2cgAHxQQqBfOLAbvWapTBmZfPU7hDdcKySVI+1EkRtZ5Pyh";
    const TOKEN_B: &str = "0015f3c0e1d2b4a69788796a5b4GAABAAAAP4rGZwAAAAAGAOaIv+mXtAAAAAAgAIMH+UrXnnG9tzhGIwM8Lb/6HmIsdSgowF87tX+qglpR";

    fn token_a() -> AccessToken {
        AccessToken::builder(APP, "room_42", "42")
            .nonce(20250304)
            .issued_at(1741064767)
            .expire_at(1741151167)
            .build_at(0)
            .unwrap()
    }

    fn decode_hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn worked_example_a_is_byte_exact() {
        // Spec §1.7 inputs A: legacy default privileges 0..4 → expire_at.
        let token = token_a();
        assert_eq!(token.serialize(KEY), TOKEN_A);
        let parsed = parse(TOKEN_A).unwrap();
        assert_eq!(
            parsed.message(),
            decode_hex(
                "c0fe3401 3f8ac667 bfdbc767 0700 726f6f6d5f3432 0200 3432 \
                 0500 0000bfdbc767 0100bfdbc767 0200bfdbc767 0300bfdbc767 0400bfdbc767"
            )
        );
        assert_eq!(
            hex::encode(parsed.signature()),
            "7c5042a05f38b01bbd66a94c19997cf53b84375c2b249523ed44911b59e4fca1"
        );
    }

    #[test]
    fn worked_example_b_non_ascii_room_empty_user_no_privileges() {
        // Spec §1.7 inputs B.
        let token = AccessToken::builder(APP, "房间", "")
            .nonce(1)
            .issued_at(1741064767)
            .expire_at(0)
            .no_privileges()
            .build_at(0)
            .unwrap();
        assert_eq!(token.serialize(KEY), TOKEN_B);
        let parsed = parse(TOKEN_B).unwrap();
        assert_eq!(
            parsed.message(),
            decode_hex("01000000 3f8ac667 00000000 0600e688bfe997b4 0000 0000")
        );
        assert_eq!(
            hex::encode(parsed.signature()),
            "8307f94ad79e71bdb7384623033c2dbffa1e622c752828c05f3bb57faa825a51"
        );
    }

    /// Tokens produced by running Volcengine's official Node.js token library
    /// (`Server/token.js` of github.com/volcengine/rtc-aigc-demo, commit
    /// 46cbe05283bb35b1d5ed95def4d128b3cae62f46) with nonce, issuedAt and
    /// expireTime set explicitly; `fan_out` = entries added with its
    /// `addPrivilege` (publish also grants 1–3), else written to the map as is.
    struct OfficialVector {
        app_id: &'static str,
        app_key: &'static str,
        room: &'static str,
        user: &'static str,
        nonce: u32,
        issued_at: u32,
        expire_at: u32,
        privileges: &'static [(Privilege, u32)],
        fan_out: bool,
        token: &'static str,
    }

    const OFFICIAL_NODE_VECTORS: &[OfficialVector] = &[
        // Spec §1.7 A again, this time as the official library produces it.
        OfficialVector {
            app_id: APP,
            app_key: KEY,
            room: "room_42",
            user: "42",
            nonce: 20250304,
            issued_at: 1741064767,
            expire_at: 1741151167,
            privileges: &[
                (Privilege::PublishStream, 1741151167),
                (Privilege::SubscribeStream, 1741151167),
            ],
            fan_out: true,
            token: TOKEN_A,
        },
        OfficialVector {
            app_id: APP,
            app_key: KEY,
            room: "房间",
            user: "",
            nonce: 1,
            issued_at: 1741064767,
            expire_at: 0,
            privileges: &[],
            fan_out: true,
            token: TOKEN_B,
        },
        // All six privileges, u32 extremes, emoji and other non-ASCII ids.
        OfficialVector {
            app_id: APP,
            app_key: KEY,
            room: "🎧房间 42",
            user: "用户-é",
            nonce: u32::MAX,
            issued_at: 0,
            expire_at: u32::MAX,
            privileges: &[
                (Privilege::PublishStream, 0),
                (Privilege::PublishAudioStream, 1),
                (Privilege::PublishVideoStream, u32::MAX),
                (Privilege::PublishDataStream, 7),
                (Privilege::SubscribeStream, 1741151167),
                (Privilege::SwitchRtcProvider, 123456789),
            ],
            fan_out: false,
            token: "0015f3c0e1d2b4a69788796a5b4TAD/////AAAAAP////8NAPCfjqfmiL/pl7QgNDIJAOeUqOaIty3DqQYAAAAAAAAAAQABAAAAAgD/////AwAHAAAABAC/28dnBQAVzVsHIAC+WeBhv0CszrHt36pDQKaMqV2p4Zn4DqOrAPmULR4+8Q==",
        },
        // The SDK's own sample inputs (AccessTokenTest), with fixed times.
        OfficialVector {
            app_id: "123456781234567812345678",
            app_key: "app key",
            room: "new room",
            user: "new user id",
            nonce: 12345678,
            issued_at: 1700000000,
            expire_at: 1700003600,
            privileges: &[
                (Privilege::SubscribeStream, 0),
                (Privilege::PublishStream, 1700003600),
            ],
            fan_out: true,
            token: "001123456781234567812345678QwBOYbwAAPFTZRD/U2UIAG5ldyByb29tCwBuZXcgdXNlciBpZAUAAAAQ/1NlAQAQ/1NlAgAQ/1NlAwAQ/1NlBAAAAAAAIACBb1UkubyLiQbgSE8mW0V1iap6eADRs2XDmO8kgOsmtQ==",
        },
        // Empty AppKey, empty room and user, one privilege.
        OfficialVector {
            app_id: APP,
            app_key: "",
            room: "",
            user: "",
            nonce: 99999999,
            issued_at: 1741064767,
            expire_at: 1741064768,
            privileges: &[(Privilege::SubscribeStream, 1741064768)],
            fan_out: true,
            token: "0015f3c0e1d2b4a69788796a5b4GAD/4PUFP4rGZ0CKxmcAAAAAAQAEAECKxmcgAC839BofuAjlJybXwOJ5Uh2bXZFIQusAPLeRE9EAyw1I",
        },
        // AppKey longer than the 64-byte HMAC block (hashed first).
        OfficialVector {
            app_id: APP,
            app_key: "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-longer-than-one-sha256-block-xxxxxxxxxxxxxxxxxxxx",
            room: "room_42",
            user: "42",
            nonce: 7,
            issued_at: 1741064767,
            expire_at: 1741151167,
            privileges: &[
                (Privilege::PublishStream, 1741151167),
                (Privilege::SubscribeStream, 1741151167),
            ],
            fan_out: true,
            token: "0015f3c0e1d2b4a69788796a5b4OQAHAAAAP4rGZ7/bx2cHAHJvb21fNDICADQyBQAAAL/bx2cBAL/bx2cCAL/bx2cDAL/bx2cEAL/bx2cgAHAMVKyQdf7nUl/8o3WL+28DO61ogSDedrCs1/IdVKVf",
        },
        // AppKey of exactly one block (64 bytes, used as is).
        OfficialVector {
            app_id: APP,
            app_key: "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK",
            room: "room_42",
            user: "42",
            nonce: 7,
            issued_at: 1741064767,
            expire_at: 1741151167,
            privileges: &[(Privilege::SubscribeStream, 1741151167)],
            fan_out: true,
            token: "0015f3c0e1d2b4a69788796a5b4IQAHAAAAP4rGZ7/bx2cHAHJvb21fNDICADQyAQAEAL/bx2cgAIoShH/wBhiqsqCqFw0hhOnC0InvlIXEI92sR7uKG9MQ",
        },
    ];

    #[test]
    fn serialize_matches_the_official_node_library() {
        for v in OFFICIAL_NODE_VECTORS {
            let mut b = AccessToken::builder(v.app_id, v.room, v.user)
                .nonce(v.nonce)
                .issued_at(v.issued_at)
                .expire_at(v.expire_at)
                .no_privileges();
            for &(p, t) in v.privileges {
                b = if v.fan_out {
                    b.add_privilege(p, t)
                } else {
                    b.privilege(p, t)
                };
            }
            let token = b.build_at(0).unwrap();
            assert_eq!(token.serialize(v.app_key), v.token, "room {:?}", v.room);
            let parsed = verify(v.token, v.app_key, 0).unwrap();
            assert_eq!(parsed.room_id, v.room);
            assert_eq!(parsed.user_id, v.user);
            assert_eq!(&parsed.privileges, token.privileges());
        }
    }

    /// Tokens that public third-party projects state were produced with
    /// Volcengine's official libraries (cited there as "officialNodeToken" in a
    /// Go test of a package `volcenginertc`, and as "matches the official Token
    /// 001 implementation" in a TypeScript test); the inputs are theirs.
    #[test]
    fn serialize_matches_tokens_quoted_from_official_libraries() {
        // 2026-07-23T08:00:00Z, TTL 2 h, nonce 0x01020304, default set.
        let go = AccessToken::builder("123456781234567812345678", "room_1", "user_1")
            .nonce(0x0102_0304)
            .issued_at(1784793600)
            .expire_at(1784800800)
            .build_at(0)
            .unwrap();
        assert_eq!(
            go.serialize("app key"),
            "001123456781234567812345678PAAEAwIBAMphaiDmYWoGAHJvb21fMQYAdXNlcl8xBQAAACDmYWoBACDmYWoCACDmYWoDACDmYWoEACDmYWogAH2Abc2RqGxUiKo3THh8a0VBZXtZ93pLZIvkFvs1jHOG"
        );
        let ts = AccessToken::builder("123456781234567812345678", "ses_000001", "usr_000001")
            .nonce(0x1234_5678)
            .issued_at(1767225600)
            .expire_at(1767226800)
            .build_at(0)
            .unwrap();
        assert_eq!(
            ts.serialize("test-app-key"),
            "001123456781234567812345678RAB4VjQSALlVabC9VWkKAHNlc18wMDAwMDEKAHVzcl8wMDAwMDEFAAAAsL1VaQEAsL1VaQIAsL1VaQMAsL1VaQQAsL1VaSAAc6rmZCLFAiEotqwNHTsdhg3CcSp8yG8vCIybtxr8Aik="
        );
    }

    /// Tokens minted by the Volcengine console (privileges 0–5, 7-day expiry),
    /// published in `src/config.ts` of github.com/ChanSinging/real-time-meeting
    /// (a copy of a Volcengine demo). Their AppKey is unknown, so the check is
    /// the layout: parsing and re-packing the fields gives back the same bytes.
    #[test]
    fn console_minted_tokens_parse_and_repack_byte_exact() {
        let cases = [
            (
                "001689a076d81f16a017865b5b8QADZVoUDeoecaPrBpWgGADEyMzQ1NgQAcXdlcgYAAAD6waVoAQD6waVoAgD6waVoAwD6waVoBAD6waVoBQD6waVoIAB4/QuHIfrhKaJmGHK5N9VAfCUpvbDnJFI3aGtcCnuPaQ==",
                "qwer",
                59070169,
                1755088762,
                1755693562,
            ),
            (
                "001689a076d81f16a017865b5b8QABcubgDhoecaAbCpWgGADEyMzQ1NgQAYXNkZgYAAAAGwqVoAQAGwqVoAgAGwqVoAwAGwqVoBAAGwqVoBQAGwqVoIAAiIeSuHv0KmJwp+ZUfbXxKMKmsYPCs8eKXSATF2g4vgw==",
                "asdf",
                62437724,
                1755088774,
                1755693574,
            ),
        ];
        for (raw, user, nonce, issued_at, expire_at) in cases {
            let parsed = parse(raw).unwrap();
            assert_eq!(parsed.app_id, "689a076d81f16a017865b5b8");
            assert_eq!(parsed.room_id, "123456");
            assert_eq!(parsed.user_id, user);
            assert_eq!(
                (parsed.nonce, parsed.issued_at, parsed.expire_at),
                (nonce, issued_at, expire_at)
            );
            let all: BTreeMap<u16, u32> = (0..6).map(|id| (id, expire_at)).collect();
            assert_eq!(parsed.privileges, all);
            assert!(parsed.verify("not-the-app-key").is_err());

            let rebuilt = AccessToken::builder(&parsed.app_id, "123456", user)
                .nonce(nonce)
                .issued_at(issued_at)
                .expire_at(expire_at)
                .privileges(Privilege::ALL.map(|p| (p, expire_at)))
                .build_at(0)
                .unwrap();
            let mut msg = Vec::new();
            rebuilt.write_message(&mut msg);
            assert_eq!(msg, parsed.message());
            let mut content = Vec::new();
            put_len(&mut content, msg.len());
            content.extend_from_slice(&msg);
            put_len(&mut content, parsed.signature().len());
            content.extend_from_slice(parsed.signature());
            assert_eq!(encode_token(&parsed.app_id, &content), raw);
        }
    }

    #[test]
    fn verify_rejects_a_wrong_key_and_reports_expiry_after_the_signature() {
        // Spec §1.7: AppKey + "x" → bad_signature; now = expire_at + 1 → expired.
        let wrong = format!("{KEY}x");
        assert_eq!(verify(TOKEN_A, &wrong, 0), Err(TokenError::BadSignature));
        assert_eq!(
            verify(TOKEN_A, KEY, 1741151168).map(|_| ()),
            Err(TokenError::Expired {
                expire_at: 1741151167
            })
        );
        assert!(verify(TOKEN_A, KEY, 1741151167).is_ok());
        // A bad signature wins over expiry.
        assert_eq!(
            verify(TOKEN_A, &wrong, 1741151168),
            Err(TokenError::BadSignature)
        );
        // expire_at 0 never expires.
        assert!(verify(TOKEN_B, KEY, u64::MAX).is_ok());
    }

    #[test]
    fn error_codes_match_the_verify_results() {
        assert_eq!(TokenError::BadSignature.code(), "bad_signature");
        assert_eq!(TokenError::Expired { expire_at: 1 }.code(), "expired");
        assert_eq!(parse("001").unwrap_err().code(), "malformed");
    }

    #[test]
    fn privilege_expiry_is_checked_per_entry() {
        let raw = AccessToken::builder(APP, "r", "u")
            .issued_at(100)
            .expire_at(0)
            .privilege(Privilege::PublishStream, 200)
            .privilege(Privilege::SubscribeStream, 0)
            .build_at(100)
            .unwrap()
            .serialize(KEY);
        let parsed = parse(&raw).unwrap();
        assert!(parsed.has_privilege(Privilege::PublishStream, 200));
        assert!(!parsed.has_privilege(Privilege::PublishStream, 201));
        assert!(parsed.has_privilege(Privilege::SubscribeStream, u64::MAX));
        assert!(!parsed.has_privilege(Privilege::PublishAudioStream, 0));
    }

    #[test]
    fn report_serializes_to_the_cli_json_shape() {
        let report = parse(TOKEN_A).unwrap().report(KEY, 1741151168);
        let json = serde_json::to_value(&report).unwrap();
        let t = 1741151167;
        assert_eq!(
            json,
            serde_json::json!({
                "app_id": APP,
                "room_id": "room_42",
                "user_id": "42",
                "nonce": 20250304,
                "issued_at": 1741064767,
                "expire_at": t,
                "privileges": {"0": t, "1": t, "2": t, "3": t, "4": t},
                "signature_valid": true,
                "expired": true,
            })
        );
        assert!(!parse(TOKEN_A).unwrap().report("x", 0).signature_valid);
    }

    #[test]
    fn builder_defaults_are_the_legacy_ones() {
        let now = 1_741_064_767;
        let token = AccessToken::builder(APP, "room_42", "42")
            .build_at(now)
            .unwrap();
        assert_eq!(u64::from(token.issued_at()), now);
        assert_eq!(token.expire_at(), 1_741_064_767 + 86_400);
        let expected: BTreeMap<u16, u32> = (0..5).map(|id| (id, token.expire_at())).collect();
        assert_eq!(token.privileges(), &expected);
        assert!(NONCE_RANGE.contains(&token.nonce()));
        // An explicit expiry is also the default privileges' expiry.
        let token = AccessToken::builder(APP, "r", "u")
            .expire_at(5)
            .build_at(now)
            .unwrap();
        assert!(token.privileges().values().all(|&e| e == 5));
    }

    #[test]
    fn builder_rejects_what_cannot_be_parsed_back() {
        let long = "x".repeat(65_536);
        assert_eq!(
            AccessToken::builder("short", "r", "u").build_at(0),
            Err(TokenError::InvalidAppId { len: 5 })
        );
        // 24 bytes but not ASCII.
        assert_eq!(
            AccessToken::builder("ééééééééééé12", "r", "u")
                .build_at(0)
                .map(|_| ()),
            Err(TokenError::InvalidAppId { len: 24 })
        );
        assert_eq!(
            AccessToken::builder(APP, long.as_str(), "u").build_at(0),
            Err(TokenError::FieldTooLong {
                field: "room_id",
                len: 65_536
            })
        );
        assert_eq!(
            AccessToken::builder(APP, "r", long.as_str()).build_at(0),
            Err(TokenError::FieldTooLong {
                field: "user_id",
                len: 65_536
            })
        );
        // Each id fits, but together they overflow the message length.
        let half = "y".repeat(40_000);
        assert!(matches!(
            AccessToken::builder(APP, half.as_str(), half.as_str()).build_at(0),
            Err(TokenError::FieldTooLong {
                field: "message",
                ..
            })
        ));
        // The largest message that fits still round-trips.
        let room = "z".repeat(65_535 - MSG_FIXED_LEN);
        let raw = AccessToken::builder(APP, room.as_str(), "")
            .no_privileges()
            .build_at(0)
            .unwrap()
            .serialize(KEY);
        assert_eq!(verify(&raw, KEY, 0).unwrap().room_id, room);
        // now + 24 h past 2106 does not fit u32.
        assert!(matches!(
            AccessToken::builder(APP, "r", "u").build_at(u64::from(u32::MAX)),
            Err(TokenError::TimeOutOfRange {
                what: "expire_at",
                ..
            })
        ));
    }

    #[test]
    fn privileges_parse_from_ids_and_vendor_names() {
        for p in Privilege::ALL {
            assert_eq!(p.vendor_name().parse::<Privilege>(), Ok(p));
            assert_eq!(p.id().to_string().parse::<Privilege>(), Ok(p));
            assert_eq!(Privilege::from_id(p.id()), Some(p));
        }
        assert_eq!(
            "PrivSwitchRTCProvider".parse(),
            Ok(Privilege::SwitchRtcProvider)
        );
        for bad in [
            "6",
            "",
            "+4",
            " 4",
            "privpublishstream",
            "PrivPublish",
            "65536",
        ] {
            assert!(bad.parse::<Privilege>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn privilege_lists_follow_the_cli_rules() {
        assert_eq!(parse_privilege_list(""), Ok(vec![]));
        assert_eq!(
            parse_privilege_list("0=10,PrivSubscribeStream=0,5=4294967295"),
            Ok(vec![
                (Privilege::PublishStream, 10),
                (Privilege::SubscribeStream, 0),
                (Privilege::SwitchRtcProvider, u32::MAX),
            ])
        );
        for bad in [
            "0=1,0=2",
            "0=1,PrivPublishStream=2",
            "7=1",
            "Nope=1",
            "0=4294967296",
            "0=-1",
            "0=1.5",
            "0=",
            "0",
            "0=1,",
            "0=+1",
        ] {
            assert!(parse_privilege_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_reads_privileges_in_stored_order_and_later_wins() {
        // Hand-packed: ids 4, 0, 4 (unsorted, repeated) under a real signature.
        let mut msg = Vec::new();
        msg.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        msg.extend_from_slice(&[1, 0, b'r', 1, 0, b'u', 3, 0]);
        for (id, e) in [(4u16, 10u32), (0, 20), (4, 30)] {
            msg.extend_from_slice(&id.to_le_bytes());
            msg.extend_from_slice(&e.to_le_bytes());
        }
        let sig = hmac_sha256(KEY.as_bytes(), &msg);
        let mut content = Vec::new();
        put_len(&mut content, msg.len());
        content.extend_from_slice(&msg);
        put_len(&mut content, sig.len());
        content.extend_from_slice(&sig);
        let parsed = verify(&encode_token(APP, &content), KEY, 0).unwrap();
        assert_eq!(parsed.privileges, BTreeMap::from([(0, 20), (4, 30)]));
    }

    #[test]
    fn parse_rejects_malformed_tokens() {
        let body = &TOKEN_A[PREFIX_LEN..];
        let cases = [
            String::new(),
            "001".to_owned(),
            TOKEN_A[..PREFIX_LEN].to_owned(),       // prefix only
            format!("002{}", &TOKEN_A[3..]),        // other version
            format!("001{}{body}", "é".repeat(12)), // non-ASCII app id
            format!("001{}é{body}", &APP[..23]),    // char boundary inside prefix
            format!("{TOKEN_A}="),                  // padding where none is due
            format!("{} ", TOKEN_A),                // trailing whitespace
            format!("{}\n{}", &TOKEN_A[..40], &TOKEN_A[40..]), // inner newline
            TOKEN_A.replace('+', "-"),              // URL-safe alphabet
            TOKEN_A[..TOKEN_A.len() - 4].to_owned(), // truncated signature
        ];
        for raw in &cases {
            assert!(
                matches!(parse(raw), Err(TokenError::Malformed(_))),
                "{raw:?}"
            );
        }
        // Unpadded Base64: drop the '=' of a padded token.
        let padded = OFFICIAL_NODE_VECTORS[2].token;
        assert!(padded.ends_with("=="));
        assert!(parse(&padded[..padded.len() - 2]).is_err());
        assert!(parse(&padded[..padded.len() - 1]).is_err());
    }

    #[test]
    fn parse_rejects_trailing_bytes_and_bad_utf8() {
        let good = parse(TOKEN_A).unwrap();
        let repack = |msg: &[u8], sig: &[u8], extra: &[u8]| {
            let mut content = Vec::new();
            put_len(&mut content, msg.len());
            content.extend_from_slice(msg);
            put_len(&mut content, sig.len());
            content.extend_from_slice(sig);
            content.extend_from_slice(extra);
            encode_token(APP, &content)
        };
        // Trailing byte after the signature.
        assert!(parse(&repack(good.message(), good.signature(), &[0])).is_err());
        // Trailing byte inside msg.
        let mut msg = good.message().to_vec();
        msg.push(0);
        assert!(parse(&repack(&msg, good.signature(), &[])).is_err());
        // Truncated msg (privilege map cut short).
        let cut = &good.message()[..good.message().len() - 1];
        assert!(parse(&repack(cut, good.signature(), &[])).is_err());
        // Room id bytes that are not UTF-8.
        let mut msg = good.message().to_vec();
        msg[14] = 0xff;
        assert_eq!(
            parse(&repack(&msg, good.signature(), &[])).unwrap_err(),
            TokenError::Malformed("room or user id is not UTF-8")
        );
        // The unmodified repack is the original token.
        assert_eq!(repack(good.message(), good.signature(), &[]), TOKEN_A);
    }

    #[test]
    fn parse_tolerates_non_zero_unused_bits_in_the_last_quantum() {
        // "…tQ==": 'Q' carries 4 unused bits; 'R' sets one of them.
        let canonical = OFFICIAL_NODE_VECTORS[3].token;
        assert!(canonical.ends_with("tQ=="));
        let loose = format!("{}R==", &canonical[..canonical.len() - 3]);
        let parsed = verify(&loose, "app key", 0).unwrap();
        assert_eq!(parsed, parse(canonical).unwrap());
    }

    #[test]
    fn app_id_is_not_covered_by_the_signature() {
        // Only msg is signed (spec §1.3): another AppId keeps a valid signature.
        let other = format!("001{}{}", "a".repeat(24), &TOKEN_A[PREFIX_LEN..]);
        let parsed = verify(&other, KEY, 0).unwrap();
        assert_eq!(parsed.app_id, "a".repeat(24));
    }

    fn arb_token() -> impl Strategy<Value = (AccessToken, String)> {
        (
            "[ -~]{24}",
            any::<String>(),
            any::<String>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            prop::collection::btree_map(0u16..6, any::<u32>(), 0..=6),
            any::<String>(),
        )
            .prop_map(|(app, room, user, nonce, iat, exp, privs, key)| {
                let token = AccessToken::builder(app, room, user)
                    .nonce(nonce)
                    .issued_at(iat)
                    .expire_at(exp)
                    .privileges(
                        privs
                            .into_iter()
                            .filter_map(|(id, e)| Privilege::from_id(id).map(|p| (p, e))),
                    )
                    .build_at(0)
                    .unwrap();
                (token, key)
            })
    }

    proptest! {
        #[test]
        fn built_tokens_parse_back_to_the_same_fields((token, key) in arb_token()) {
            let raw = token.serialize(&key);
            let parsed = verify(&raw, &key, 0).unwrap();
            prop_assert_eq!(&parsed.app_id, token.app_id());
            prop_assert_eq!(&parsed.room_id, token.room_id());
            prop_assert_eq!(&parsed.user_id, token.user_id());
            prop_assert_eq!(parsed.nonce, token.nonce());
            prop_assert_eq!(parsed.issued_at, token.issued_at());
            prop_assert_eq!(parsed.expire_at, token.expire_at());
            prop_assert_eq!(&parsed.privileges, token.privileges());
            prop_assert_eq!(parsed.verify(&format!("{key}!")), Err(TokenError::BadSignature));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
            let _ = parse(&s);
            let _ = parse(&format!("001{s}"));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_content(
            app in "[ -~]{24}",
            content in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = parse(&encode_token(&app, &content));
        }

        #[test]
        fn a_flipped_content_bit_fails_verification(
            (token, key) in arb_token(),
            index in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let raw = token.serialize(&key);
            let mut content = STANDARD.decode(&raw[PREFIX_LEN..]).unwrap();
            let i = index.index(content.len());
            content[i] ^= mask;
            let tampered = encode_token(token.app_id(), &content);
            prop_assert!(parse(&tampered).and_then(|p| p.verify(&key)).is_err());
        }

        #[test]
        fn a_changed_character_never_panics_the_parser(
            (token, key) in arb_token(),
            index in any::<prop::sample::Index>(),
            c in any::<char>(),
        ) {
            let raw = token.serialize(&key);
            let mut chars: Vec<char> = raw.chars().collect();
            let i = index.index(chars.len());
            chars[i] = c;
            let s: String = chars.into_iter().collect();
            let _ = verify(&s, &key, 0);
        }
    }
}
