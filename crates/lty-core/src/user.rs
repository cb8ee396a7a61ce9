//! Users and device bindings, and the repositories that persist them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{MacAddress, Result};

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

/// Persistence of users.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// The user with `id`.
    async fn get(&self, id: i64) -> Result<Option<User>>;
    /// Creates a user; a taken username or phone is a `Conflict`.
    async fn create(&self, user: NewUser) -> Result<User>;
    /// Applies `patch` to user `id`; `None` when there is no such user.
    async fn update_profile(&self, id: i64, patch: ProfilePatch) -> Result<Option<User>>;
}

/// Persistence of device bindings.
#[async_trait]
pub trait DeviceRepo: Send + Sync {
    /// The binding in force for `mac`: the one with the latest `bound_at`,
    /// unless it was unbound.
    async fn latest_binding(&self, mac: &MacAddress) -> Result<Option<DeviceBinding>>;
    /// Records a new binding of `mac` to `user_id`, now.
    async fn bind(
        &self,
        user_id: i64,
        mac: &MacAddress,
        name: Option<&str>,
    ) -> Result<DeviceBinding>;
    /// Ends binding `id`; `false` when it was already ended or is unknown.
    async fn unbind(&self, id: i64) -> Result<bool>;
    /// The bindings in force of `user_id`, oldest first.
    async fn bindings_of_user(&self, user_id: i64) -> Result<Vec<DeviceBinding>>;
    /// Renames binding `id`.
    async fn rename(&self, id: i64, name: Option<&str>) -> Result<Option<DeviceBinding>>;
    /// Every binding ever made of `mac`, newest first (history).
    async fn history(&self, mac: &MacAddress) -> Result<Vec<DeviceBinding>>;
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
