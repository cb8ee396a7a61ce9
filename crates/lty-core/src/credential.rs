//! Per-device secrets (DESIGN.md §5): a device holding one must sign its
//! MAC-authenticated requests. The secret is generated here and handed to
//! the device's owner once.

use chrono::{DateTime, Utc};
use rand::RngCore;

use crate::MacAddress;
use crate::user::DeviceBinding;

/// A device's secret and its provenance.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredential {
    pub mac_address: MacAddress,
    /// 64 lowercase hex characters; the HMAC key is this text's bytes.
    pub secret: String,
    /// The user who provisioned it (the owner at the time).
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for DeviceCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCredential")
            .field("mac_address", &self.mac_address)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A new device secret: 32 random bytes as 64 lowercase hex characters.
pub fn generate_device_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// What authenticating a device reads about its MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceAuthFacts {
    /// The device's secret, if it holds one.
    pub secret: Option<String>,
    /// The binding in force (as `DeviceRepo::latest_binding`).
    pub binding: Option<DeviceBinding>,
    /// Whether the bound account is active; `false` without a binding.
    pub owner_active: bool,
}

impl std::fmt::Debug for DeviceAuthFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthFacts")
            .field("has_secret", &self.secret.is_some())
            .field("binding", &self.binding)
            .field("owner_active", &self.owner_active)
            .finish()
    }
}
