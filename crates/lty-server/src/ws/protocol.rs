//! What travels on a device socket besides group messages: close codes,
//! error frames, and the frames of resuming sockets (`?since=`). Documented
//! for firmware authors in docs/realtime.md.

use lty_core::ports::LogId;
use serde::Serialize;

/// The server is draining for a restart or deploy; reconnect (another
/// instance answers), resuming with `?since=` to get what was missed.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// A text frame was not valid UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// A frame was larger than the configured limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// The device's binding changed (unbound or bound to another family).
pub const CLOSE_UNBOUND: u16 = 4003;
/// The account was disabled by an operator; do not reconnect.
pub const CLOSE_ACCOUNT_DISABLED: u16 = 4001;
/// The socket fell too far behind its group's messages; reconnect.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// No pong arrived for a server ping within one ping interval.
pub const CLOSE_PING_TIMEOUT: u16 = 4010;
/// The token that opened the socket was logged out; log in again.
pub const CLOSE_LOGGED_OUT: u16 = 4002;

/// The group of a family's sockets (legacy channel group name).
pub fn device_group(user_id: i64) -> String {
    format!("device_{user_id}")
}

/// First byte of a control message on a family group. 0xFF never starts
/// valid UTF-8, and every data message is UTF-8 text (device frames are
/// validated, pushes are re-serialized JSON), so no client can forge one.
pub const CONTROL: u8 = 0xFF;

const KICK: &[u8] = b"kick:";

/// The control message that closes the sockets of device `mac` in its
/// family's group (sent to the group of the family losing the device).
pub fn kick_message(mac: &lty_core::MacAddress) -> bytes::Bytes {
    let mut msg = Vec::with_capacity(1 + KICK.len() + 17);
    msg.push(CONTROL);
    msg.extend_from_slice(KICK);
    msg.extend_from_slice(mac.to_string().as_bytes());
    msg.into()
}

/// The MAC a kick control message names, if `msg` is one.
pub fn parse_kick(msg: &[u8]) -> Option<lty_core::MacAddress> {
    let rest = msg.strip_prefix(&[CONTROL])?.strip_prefix(KICK)?;
    lty_core::MacAddress::parse(std::str::from_utf8(rest).ok()?).ok()
}

const KICK_ALL: &[u8] = b"kick-all";

/// The control message that closes every socket of a family's group (the
/// account was disabled).
pub fn kick_all_message() -> bytes::Bytes {
    let mut msg = Vec::with_capacity(1 + KICK_ALL.len());
    msg.push(CONTROL);
    msg.extend_from_slice(KICK_ALL);
    msg.into()
}

/// Whether `msg` is the control message of [`kick_all_message`].
pub fn is_kick_all(msg: &[u8]) -> bool {
    msg.strip_prefix(&[CONTROL]) == Some(KICK_ALL)
}

const KICK_TOKEN: &[u8] = b"kick-token:";

/// What names a login token on the pub/sub channel without revealing it:
/// the first 16 bytes of its SHA-256, in hex.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(token.as_bytes())[..16])
}

/// The control message that closes the sockets opened with the token of
/// `fingerprint` ([`token_fingerprint`]) in its family's group (the token
/// was logged out).
pub fn kick_token_message(fingerprint: &str) -> bytes::Bytes {
    let mut msg = Vec::with_capacity(1 + KICK_TOKEN.len() + fingerprint.len());
    msg.push(CONTROL);
    msg.extend_from_slice(KICK_TOKEN);
    msg.extend_from_slice(fingerprint.as_bytes());
    msg.into()
}

/// The token fingerprint a kick-token control message names, if `msg` is
/// one.
pub fn parse_kick_token(msg: &[u8]) -> Option<&[u8]> {
    msg.strip_prefix(&[CONTROL])?.strip_prefix(KICK_TOKEN)
}

/// The cache key holding a device's last-seen unix time (legacy format).
pub fn last_seen_key(mac: &lty_core::MacAddress) -> String {
    format!("device:last_seen:{mac}")
}

/// How long a device counts as online after it was last seen.
pub const LAST_SEEN_TTL_SECS: u64 = 300;

/// An error reported to the device without closing the socket.
#[derive(Debug, Serialize)]
pub struct ErrorFrame<'a> {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'a str,
    pub message: &'a str,
}

impl<'a> ErrorFrame<'a> {
    /// An error frame with `code` and `message`.
    pub fn new(code: &'a str, message: &'a str) -> Self {
        Self {
            kind: "error",
            code,
            message,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where a resuming socket starts (`?since=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// `now`: from the next message on, every message with its id.
    Now,
    /// After this message: what the socket missed is replayed first.
    After(LogId),
}

impl Since {
    /// Parses `now` or a message id (`1733541234567-0`).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "now" {
            return Some(Self::Now);
        }
        s.parse().ok().map(Self::After)
    }
}

/// A group message as a resuming socket receives it: `{"id","message"}`
/// with the message spliced in as is when it is JSON (pushes always are),
/// or `{"id","text"}` with it as a JSON string when it is not.
pub fn envelope(id: Option<LogId>, message: &str) -> String {
    let id = id.map(|id| id.to_string());
    let id = serde_json::to_string(&id).unwrap_or_default();
    if serde_json::from_str::<serde::de::IgnoredAny>(message).is_ok() {
        format!(r#"{{"id":{id},"message":{message}}}"#)
    } else {
        let text = serde_json::to_string(message).unwrap_or_default();
        format!(r#"{{"id":{id},"text":{text}}}"#)
    }
}

/// Tells a resuming socket where it stands: `{"type":"cursor","id"}` (it
/// resumed with `since=now`) or `{"type":"resync","id"}` (its cursor was no
/// longer in the log: it may have missed messages). Either way `id` is a
/// cursor to resume from later.
pub fn cursor_frame(kind: &'static str, id: LogId) -> String {
    format!(r#"{{"type":"{kind}","id":"{id}"}}"#)
}
