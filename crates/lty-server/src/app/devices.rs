//! Device bindings and pushes: binding a device to a family (the latest
//! binding wins; the family that lost it has the device's sockets closed),
//! unbinding, online state from `device:last_seen:{mac}` and the online
//! index beside it, and pushing a
//! message to every socket of a family, on every instance. The app's
//! routes, operators and device activation all bind through here.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use lty_core::ports::Delivery;
use lty_core::user::DeviceBinding;
use lty_core::{MacAddress, Result};

use crate::state::AppState;
use crate::ws::protocol::{LAST_SEEN_TTL_SECS, device_group, kick_message, last_seen_key};

/// Longest device name, in characters.
const NAME_MAX: usize = 64;

pub fn not_bound() -> lty_core::Error {
    lty_core::Error::NotFound {
        what: "device binding",
        code: "device_not_bound",
    }
}

pub fn validate_name(name: Option<String>) -> Result<Option<String>> {
    match name.map(|n| n.trim().to_owned()) {
        None => Ok(None),
        Some(n) if n.is_empty() => Ok(None),
        Some(n) if n.chars().count() > NAME_MAX || n.chars().any(char::is_control) => Err(
            lty_core::Error::validation("name", "must be at most 64 printable characters"),
        ),
        Some(n) => Ok(Some(n)),
    }
}

/// The cache's presence index of devices: every MAC whose
/// `device:last_seen:{mac}` was written, with the same expiry, so that
/// listings can filter and page by online state.
pub const ONLINE_INDEX: &str = "device:online";

/// Records that a connected device was seen: `device:last_seen:{mac}` and
/// its mark in [`ONLINE_INDEX`], at most once a second per connection (the
/// value has one-second resolution).
#[derive(Debug)]
pub struct SeenRecorder {
    key: String,
    mac: String,
    written: Option<Instant>,
}

impl SeenRecorder {
    pub fn new(mac: &MacAddress) -> Self {
        Self {
            key: last_seen_key(mac),
            mac: mac.to_string(),
            written: None,
        }
    }

    /// Writes both unless they were written less than a second ago; a
    /// cache error is logged and retried on the next call.
    pub async fn touch(&mut self, state: &AppState) {
        if self
            .written
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        let now = Utc::now().timestamp().to_string();
        let ttl = Duration::from_secs(LAST_SEEN_TTL_SECS);
        // Both go out together (one round trip on a pipelined connection).
        match tokio::try_join!(
            state.cache.set(&self.key, &now, Some(ttl)),
            state.cache.mark_present(ONLINE_INDEX, &self.mac, ttl),
        ) {
            Ok(_) => self.written = Some(Instant::now()),
            Err(err) => tracing::warn!(%err, key = %self.key, "cannot record last seen"),
        }
    }
}

/// The MACs seen within the last 5 minutes (the online index).
pub async fn online_macs(state: &AppState) -> Result<Vec<String>> {
    state.cache.present(ONLINE_INDEX).await
}

/// How many devices were seen within the last 5 minutes, on any instance.
pub async fn online_count(state: &AppState) -> Result<u64> {
    state.cache.count_present(ONLINE_INDEX).await
}

/// Online state of a device, from `device:last_seen:{mac}` (5-minute TTL).
pub async fn online_state(
    state: &AppState,
    mac: &MacAddress,
) -> Result<(bool, Option<DateTime<Utc>>)> {
    let seen = state.cache.get(&last_seen_key(mac)).await?;
    let at = seen
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| Utc.timestamp_opt(secs, 0).single());
    Ok((at.is_some(), at))
}

/// Closes the sockets of `mac` in the family of `user_id`, wherever they
/// are connected.
pub async fn kick(state: &AppState, user_id: i64, mac: &MacAddress) {
    if let Err(err) = state
        .pubsub
        .publish_control(&device_group(user_id), kick_message(mac))
        .await
    {
        tracing::warn!(%err, %mac, "cannot close the sockets of a re-bound device");
    }
}

/// Binds `mac` to `user_id` with an optional display name. Binding a
/// device the family already holds only applies a new name; binding one
/// another family holds moves it and closes that family's sockets of it.
/// Returns the binding in force and whether it is new.
pub async fn bind(
    state: &AppState,
    user_id: i64,
    mac: &MacAddress,
    name: Option<String>,
) -> Result<(DeviceBinding, bool)> {
    let name = validate_name(name)?;
    if let Some(current) = state.db.latest_binding(mac).await? {
        if current.user_id == user_id {
            let current = match name {
                Some(n) if current.name.as_deref() != Some(n.as_str()) => state
                    .db
                    .rename_device(current.id, Some(&n))
                    .await?
                    .unwrap_or(current),
                _ => current,
            };
            return Ok((current, false));
        }
        kick(state, current.user_id, mac).await;
        tracing::info!(%mac, from = current.user_id, to = user_id, "device re-bound");
    }
    let binding = state.db.bind(user_id, mac, name.as_deref()).await?;
    Ok((binding, true))
}

/// Unbinds `mac` from `user_id` (`device_not_bound` when the family does
/// not hold it) and closes its sockets. A xiaozhi device's channel tokens
/// are revoked with it: it re-enters activation at its next boot.
pub async fn unbind(state: &AppState, user_id: i64, mac: &MacAddress) -> Result<DeviceBinding> {
    let binding = state
        .db
        .latest_binding(mac)
        .await?
        .filter(|b| b.user_id == user_id)
        .ok_or_else(not_bound)?;
    state.db.unbind(binding.id).await?;
    state.db.revoke_xiaozhi_tokens(mac).await?;
    kick(state, binding.user_id, mac).await;
    Ok(binding)
}

/// Publishes `payload` to every device socket of `user_id`'s family
/// (group `device_{user_id}`), on every instance.
pub async fn push(state: &AppState, user_id: i64, payload: Bytes) -> Result<Delivery> {
    let started = std::time::Instant::now();
    let delivery = state
        .pubsub
        .publish(&device_group(user_id), payload)
        .await?;
    metrics::histogram!("lty_pubsub_publish_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    Ok(delivery)
}
