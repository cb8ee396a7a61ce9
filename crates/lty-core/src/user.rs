//! Users and device bindings, and the repositories that persist them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::MacAddress;

/// A family account: the parent app and the family's devices act as it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub is_active: bool,
    pub date_joined: DateTime<Utc>,
}

/// What is needed to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub nickname: Option<String>,
    pub phone: Option<String>,
}

/// One binding of a device to a user. A MAC may be bound several times; the
/// binding with the latest `bound_at` is the one in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceBinding {
    pub id: i64,
    pub user_id: i64,
    pub mac_address: MacAddress,
    pub name: Option<String>,
    pub bound_at: DateTime<Utc>,
    /// When the binding was ended, if it was.
    pub unbound_at: Option<DateTime<Utc>>,
}

/// Changes to a user's own profile; `None` leaves a field as it is,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub nickname: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
}

/// Masks a phone number for display: `138****5678`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let keep_tail = 4;
    let keep_head = chars.len().saturating_sub(keep_tail + 4).min(3);
    let head: String = chars[..keep_head].iter().collect();
    let tail: String = chars[chars.len() - keep_tail..].iter().collect();
    format!(
        "{head}{}{tail}",
        "*".repeat(chars.len() - keep_head - keep_tail)
    )
}

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn phones_are_masked_keeping_prefix_and_last_four() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+8613812345678"), "+86*******5678");
        assert_eq!(mask_phone("12345"), "*****");
    }
}
