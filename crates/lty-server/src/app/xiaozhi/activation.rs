//! Activation: an unbound device gets a 6-digit code (kept until it is
//! bound or expires, so every boot announces the same one) and a fresh
//! challenge with every OTA answer; it shows and speaks the code and polls
//! `…/activate` with the challenge (and, activation version 2, the HMAC of
//! the challenge under its eFuse key). A parent enters the code in the app,
//! which binds the device to the family; the next poll answers 200.
//!
//! Codes and challenges live in the cache (with Redis, on every instance):
//! `xiaozhi:code:{code}` → MAC and `xiaozhi:device_code:{mac}` → code for
//! `xiaozhi.activation_code_ttl_secs`, `xiaozhi:challenge:{challenge}` →
//! MAC for `xiaozhi.challenge_ttl_secs`. A challenge is accepted on every
//! poll of a cycle and consumed by the activation that succeeds.

use std::time::Duration;

use hmac::{Hmac, Mac};
use lty_core::user::DeviceBinding;
use lty_core::{Error, ErrorKind, MacAddress, Result};
use rand::{Rng, RngCore};
use serde::Serialize;
use sha2::Sha256;

use super::OtaRequest;
use crate::app::devices;
use crate::app::ratelimit::{self, ClientIp};
use crate::state::AppState;

/// The `activation` section of an OTA answer.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationOffer {
    /// Six digits, spoken digit by digit by the device.
    pub code: String,
    /// Shown on the device's screen.
    pub message: String,
    /// 32 random hex bytes; the device polls `/activate` with it.
    pub challenge: String,
}

fn code_key(code: &str) -> String {
    format!("xiaozhi:code:{code}")
}

fn device_code_key(mac: &MacAddress) -> String {
    format!("xiaozhi:device_code:{mac}")
}

fn challenge_key(challenge: &str) -> String {
    format!("xiaozhi:challenge:{challenge}")
}

/// The line the device shows, in its language.
fn message(language: Option<&str>, code: &str) -> String {
    let zh = language.is_none_or(|l| l.trim().to_ascii_lowercase().starts_with("zh"));
    if zh {
        format!("请在家长 App 中输入 {code}")
    } else {
        format!("Open the app and enter {code}")
    }
}

/// The live code of `mac`, or a new one unique among live codes.
async fn code_for(state: &AppState, mac: &MacAddress) -> Result<String> {
    let ttl = Duration::from_secs(state.config.xiaozhi.activation_code_ttl_secs);
    let mac_text = mac.to_string();
    if let Some(code) = state.cache.get(&device_code_key(mac)).await?
        && state.cache.get(&code_key(&code)).await?.as_deref() == Some(mac_text.as_str())
    {
        return Ok(code);
    }
    for _ in 0..32 {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        if state.cache.set_nx(&code_key(&code), &mac_text, ttl).await? {
            state
                .cache
                .set(&device_code_key(mac), &code, Some(ttl))
                .await?;
            return Ok(code);
        }
    }
    Err(Error::coded(
        ErrorKind::Unavailable,
        "activation_codes_exhausted",
        "no free activation code; try again shortly",
    ))
}

/// The activation section for a device that is not bound.
pub async fn offer(state: &AppState, req: &OtaRequest) -> Result<ActivationOffer> {
    let code = code_for(state, &req.mac).await?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let challenge = hex::encode(raw);
    let ttl = Duration::from_secs(state.config.xiaozhi.challenge_ttl_secs);
    state
        .cache
        .set(&challenge_key(&challenge), &req.mac.to_string(), Some(ttl))
        .await?;
    Ok(ActivationOffer {
        message: message(req.language.as_deref(), &code),
        code,
        challenge,
    })
}

/// A device's activation poll.
#[derive(Debug, Clone, Default)]
pub struct Poll {
    /// `Activation-Version`.
    pub version: u8,
    /// `serial_number` of a version-2 body (else the `Serial-Number`
    /// header).
    pub serial_number: Option<String>,
    pub challenge: Option<String>,
    /// Lower-case hex HMAC-SHA256 of the challenge.
    pub hmac: Option<String>,
}

/// What a poll learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// Bound: the device leaves activation (200).
    Activated,
    /// Not bound yet: poll again (202).
    Pending,
}

fn refused(message: &'static str) -> Error {
    Error::coded(ErrorKind::Forbidden, "activation_refused", message)
}

/// Checks a version-2 poll: the challenge was issued to this device and is
/// live, and the HMAC matches the key recorded for the serial number.
/// Without a recorded key the HMAC cannot be checked: accepted unless
/// `xiaozhi.require_device_key`.
async fn verify(state: &AppState, mac: &MacAddress, poll: &Poll) -> Result<()> {
    let require = state.config.xiaozhi.require_device_key;
    if poll.version < 2 {
        return if require {
            Err(refused(
                "this server needs activation version 2 with a device key",
            ))
        } else {
            Ok(())
        };
    }
    let challenge = poll.challenge.as_deref().unwrap_or("");
    let issued_to = state.cache.get(&challenge_key(challenge)).await?;
    if challenge.is_empty() || issued_to.as_deref() != Some(mac.to_string().as_str()) {
        return Err(refused("unknown or expired challenge: make an OTA check"));
    }
    let key = match poll.serial_number.as_deref().filter(|s| !s.is_empty()) {
        Some(serial) => state.db.xiaozhi_key(serial).await?,
        None => None,
    };
    let Some(key) = key else {
        return if require {
            Err(refused("no key is recorded for this serial number"))
        } else {
            Ok(())
        };
    };
    let key = hex::decode(key.trim())
        .map_err(|e| Error::Backend(lty_core::BackendError::new("database", e)))?;
    let given = hex::decode(poll.hmac.as_deref().unwrap_or("").trim())
        .map_err(|_| refused("hmac is not hex"))?;
    let mut mac_state = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| Error::Backend(lty_core::BackendError::new("xiaozhi", e)))?;
    mac_state.update(challenge.as_bytes());
    mac_state
        .verify_slice(&given)
        .map_err(|_| refused("the HMAC of the challenge does not match the device key"))
}

/// Answers a device's poll of `…/activate`.
pub async fn poll(state: &AppState, mac: &MacAddress, poll: Poll) -> Result<PollOutcome> {
    verify(state, mac, &poll).await?;
    if state.db.latest_binding(mac).await?.is_none() {
        return Ok(PollOutcome::Pending);
    }
    if let Some(challenge) = poll.challenge.as_deref().filter(|c| !c.is_empty()) {
        state.cache.delete(&challenge_key(challenge)).await?;
    }
    Ok(PollOutcome::Activated)
}

/// A parent enters the code a device shows: the device is bound to the
/// family (`name` optional) and the code is used up. Attempts are limited
/// per user and per client IP; an unknown or expired code is
/// `activation_code_not_found`.
pub async fn activate(
    state: &AppState,
    user_id: i64,
    ip: &ClientIp,
    code: &str,
    name: Option<String>,
) -> Result<(DeviceBinding, bool)> {
    let limits = &state.config.limits;
    ratelimit::check(
        state,
        "activate_user",
        &user_id.to_string(),
        limits.activate_per_user,
    )
    .await?;
    ratelimit::check_ip(state, "activate_ip", ip, limits.activate_per_ip).await?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::validation(
            "code",
            "must be the 6 digits the device shows",
        ));
    }
    let mac = state
        .cache
        .get(&code_key(code))
        .await?
        .and_then(|m| MacAddress::parse(&m).ok())
        .ok_or(Error::NotFound {
            what: "activation code",
            code: "activation_code_not_found",
        })?;
    let bound = devices::bind(state, user_id, &mac, name).await?;
    state.cache.delete(&code_key(code)).await?;
    state.cache.delete(&device_code_key(&mac)).await?;
    tracing::info!(%mac, user_id, "xiaozhi device activated");
    metrics::counter!("lty_xiaozhi_activations_total").increment(1);
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_follows_the_devices_language() {
        assert_eq!(
            message(Some("en-US"), "123456"),
            "Open the app and enter 123456"
        );
        assert!(message(Some("zh-CN"), "123456").contains("123456"));
        assert!(message(None, "1").starts_with('请'));
    }
}
