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
}

/// Persistence of users.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// The user with `id`.
    async fn get(&self, id: i64) -> Result<Option<User>>;
    /// Creates a user; a taken username or phone is a `Conflict`.
    async fn create(&self, user: NewUser) -> Result<User>;
}

/// Persistence of device bindings.
#[async_trait]
pub trait DeviceRepo: Send + Sync {
    /// The binding in force for `mac`: the one with the latest `bound_at`.
    async fn latest_binding(&self, mac: &MacAddress) -> Result<Option<DeviceBinding>>;
    /// Records a new binding of `mac` to `user_id`, now.
    async fn bind(
        &self,
        user_id: i64,
        mac: &MacAddress,
        name: Option<&str>,
    ) -> Result<DeviceBinding>;
}
