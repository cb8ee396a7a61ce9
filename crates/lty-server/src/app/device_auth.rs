//! Signed device requests (DESIGN.md §5, docs/device-auth.md).
//!
//! A device that holds a secret proves it on MAC-authenticated routes
//! (mac-login, rtc-token) with four headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Device-Mac` | the device's MAC, any accepted spelling |
//! | `X-Device-Timestamp` | Unix time in seconds, decimal |
//! | `X-Device-Nonce` | 8–64 characters of `A–Z a–z 0–9 - _`, never reused |
//! | `X-Device-Signature` | lowercase hex HMAC-SHA256 of the canonical string, keyed with the secret's text |
//!
//! The canonical string is the upper-case method, the path with its query
//! exactly as sent on the request line, the timestamp and the nonce, joined
//! by `\n` with no trailing newline:
//!
//! ```text
//! POST\n/api/user/mac-login/\n1764000000\n5f2b8c1e9a7d4e30
//! ```
//!
//! Requests more than `auth.device_signature_skew_secs` (default 300) away
//! from the server clock are refused, and a nonce is accepted once per MAC
//! within twice that window (`device_nonce:{mac}:{nonce}` set-if-absent in
//! the cache, so the rule holds across instances).
//!
//! Devices without a secret are let through in `device_auth = legacy` mode
//! and refused in `signed` mode.
//!
//! The headers reach this service read into a [`DeviceSignature`]
//! (`crate::extract`); refusals are [`lty_core::Error`]s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use lty_core::user::DeviceBinding;
use lty_core::{Error, ErrorKind, MacAddress, Result};
use serde_json::json;
use sha2::Sha256;

use crate::config::DeviceAuthMode;
use crate::extract::ClientIp;
use crate::extract::{DeviceHeaders, DeviceSignature};
use crate::state::AppState;

/// `X-Device-Mac`.
pub const HEADER_MAC: &str = "x-device-mac";
/// `X-Device-Timestamp`.
pub const HEADER_TIMESTAMP: &str = "x-device-timestamp";
/// `X-Device-Nonce`.
pub const HEADER_NONCE: &str = "x-device-nonce";
/// `X-Device-Signature`.
pub const HEADER_SIGNATURE: &str = "x-device-signature";

type HmacSha256 = Hmac<Sha256>;

/// The string a device signs: `METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE`.
pub fn canonical_string(
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    nonce: &str,
) -> String {
    format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}")
}

fn keyed(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length")
}

/// The `X-Device-Signature` value for `canonical`: lowercase hex
/// HMAC-SHA256 keyed with the bytes of `secret` as given.
pub fn sign(secret: &str, canonical: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn refuse(code: &'static str, message: impl Into<String>) -> Error {
    Error::coded(ErrorKind::Unauthenticated, code, message)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn valid_nonce(n: &str) -> bool {
    (8..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks the device signature of a request for `mac`, given the device's
/// secret (`None`: the device has none).
///
/// `Ok(())` means the request may proceed: correctly signed, or from a
/// device without a secret while `device_auth = legacy`. Refusals are 401
/// with codes `device_signature_required`, `device_signature_invalid`,
/// `device_clock_skew` (details carry `server_time`),
/// `device_nonce_reused` and `device_not_provisioned`.
pub async fn verify_with_secret(
    state: &AppState,
    signed: &DeviceSignature,
    mac: &MacAddress,
    secret: Option<&str>,
) -> Result<()> {
    let Some(secret) = secret else {
        return match state.config.device_auth {
            DeviceAuthMode::Legacy => {
                count_unsigned(false);
                Ok(())
            }
            DeviceAuthMode::Signed => Err(refuse(
                "device_not_provisioned",
                "this server accepts signed device requests only, and this device has no secret",
            )),
        };
    };
    let (claimed, ts, nonce, signature) = match &signed.headers {
        DeviceHeaders::Sent {
            mac,
            timestamp,
            nonce,
            signature,
        } => (mac, timestamp, nonce, signature),
        DeviceHeaders::Missing if in_unsigned_grace(state) => {
            count_unsigned(true);
            return Ok(());
        }
        DeviceHeaders::Missing => {
            return Err(refuse(
                "device_signature_required",
                "this device holds a secret: sign the request with the X-Device-* headers",
            ));
        }
        DeviceHeaders::NotAscii(name) => {
            return Err(
                refuse("device_signature_invalid", format!("{name} is not ASCII"))
                    .with_details(json!({ "header": name })),
            );
        }
    };
    let invalid = |what: &str| {
        refuse(
            "device_signature_invalid",
            format!("device signature rejected: {what}"),
        )
    };
    if MacAddress::parse(claimed).ok().as_ref() != Some(mac) {
        return Err(invalid("X-Device-Mac does not name this device"));
    }
    let skew = state.config.auth.device_signature_skew_secs;
    let now = now_secs();
    let stamp: u64 = ts
        .parse()
        .map_err(|_| invalid("X-Device-Timestamp must be Unix seconds"))?;
    if now.abs_diff(stamp) > skew {
        return Err(refuse(
            "device_clock_skew",
            format!("X-Device-Timestamp is more than {skew} s away from the server clock"),
        )
        .with_details(json!({ "server_time": now })));
    }
    if !valid_nonce(nonce) {
        return Err(invalid("X-Device-Nonce must be 8 to 64 of A-Z a-z 0-9 - _"));
    }
    let given = hex::decode(signature)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| invalid("X-Device-Signature must be 64 hex digits"))?;
    let canonical = canonical_string(&signed.method, &signed.target, ts, nonce);
    let mut expected = keyed(secret);
    expected.update(canonical.as_bytes());
    // Constant-time comparison.
    expected
        .verify_slice(&given)
        .map_err(|_| invalid("signature mismatch"))?;
    // Only a correctly signed request may spend a nonce.
    let key = format!("device_nonce:{mac}:{nonce}");
    let ttl = Duration::from_secs(skew.saturating_mul(2));
    if !state.cache.set_nx(&key, "1", ttl).await? {
        return Err(refuse(
            "device_nonce_reused",
            "this X-Device-Nonce was already used; send a fresh one",
        ));
    }
    Ok(())
}

/// Gives the bound device `mac` a new secret, replacing any previous one
/// at once, on behalf of `user_id` (its owner, checked by the caller).
/// Returns the credential and whether it replaced one. The secret is never
/// logged.
pub async fn provision_secret(
    state: &AppState,
    user_id: i64,
    mac: &MacAddress,
) -> Result<(lty_core::credential::DeviceCredential, bool)> {
    let replaced = state.db.secret_for(mac).await?.is_some();
    let secret = lty_core::credential::generate_device_secret();
    let cred = state.db.set_secret(mac, &secret, user_id).await?;
    tracing::info!(%mac, replaced, "device secret provisioned");
    Ok((cred, replaced))
}

/// Whether the fleet migration's grace period is running: devices that
/// hold a secret may still send unsigned requests until
/// `auth.unsigned_grace_until` (docs/device-auth.md, "Migrating a fleet").
fn in_unsigned_grace(state: &AppState) -> bool {
    state
        .config
        .auth
        .unsigned_grace_until
        .is_some_and(|until| chrono::Utc::now() < until)
}

/// Counts a MAC-authenticated request let through without a signature, by
/// whether the device holds a secret: what is left to migrate before
/// `device_auth = signed`.
fn count_unsigned(provisioned: bool) {
    let provisioned = if provisioned { "true" } else { "false" };
    metrics::counter!("lty_device_unsigned_requests_total", "provisioned" => provisioned)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of docs/device-auth.md: if this test changes, the
    // document must change with it.
    #[test]
    fn the_documented_worked_example_signs_to_the_documented_value() {
        let secret = "4f1c9a2be07d3856a1c4e9f0b2d7a6c35e8f1b0a9d2c4e6f7a8b9c0d1e2f3a4b";
        let canonical = canonical_string(
            "POST",
            "/api/user/mac-login/",
            "1764000000",
            "5f2b8c1e9a7d4e30",
        );
        assert_eq!(
            canonical,
            "POST\n/api/user/mac-login/\n1764000000\n5f2b8c1e9a7d4e30"
        );
        assert_eq!(sign(secret, &canonical), WORKED_EXAMPLE_SIGNATURE);

        let canonical = canonical_string(
            "POST",
            "/api/device/rtc-token/get_by_mac/?mac_address=02:00:00:00:13:87",
            "1764000000",
            "a0b1c2d3e4f5a6b7",
        );
        assert_eq!(sign(secret, &canonical), WORKED_EXAMPLE_RTC_SIGNATURE);
    }

    const WORKED_EXAMPLE_SIGNATURE: &str =
        "a364d183a1af1d570f487499b1574b56e1c6a3a227f31532aac54232527c8473";
    const WORKED_EXAMPLE_RTC_SIGNATURE: &str =
        "f7547139ef276f8d82b1a2674956809d428b74b2da6623f24f7b08e839c8ee6d";

    #[test]
    fn nonces_are_checked_for_length_and_alphabet() {
        assert!(valid_nonce("5f2b8c1e9a7d4e30"));
        assert!(valid_nonce("abc-DEF_12"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce(&"a".repeat(65)));
        assert!(!valid_nonce("has space1"));
    }
}

/// The rate limits of one MAC-authenticated device route: a rule name and
/// limit per client IP, then per MAC.
#[derive(Debug, Clone, Copy)]
pub struct DeviceRouteLimits {
    pub ip_rule: &'static str,
    pub per_ip: crate::config::RateLimit,
    pub mac_rule: &'static str,
    pub per_mac: crate::config::RateLimit,
}

/// The checks of [`authenticate_device`] up to the signature, without
/// requiring a binding: the per-IP limit, the MAC, the per-MAC limit, then
/// the device's facts and its signature. For routes that answer about an
/// unbound MAC too (`binding-status`).
pub async fn check_device(
    state: &AppState,
    ip: &ClientIp,
    signed: &DeviceSignature,
    mac: Option<&str>,
    limits: DeviceRouteLimits,
) -> Result<(MacAddress, lty_core::credential::DeviceAuthFacts)> {
    crate::app::ratelimit::check_ip(state, limits.ip_rule, ip, limits.per_ip).await?;
    let mac = MacAddress::parse(mac.unwrap_or(""))?;
    crate::app::ratelimit::check(state, limits.mac_rule, &mac.to_string(), limits.per_mac).await?;
    let facts = state.db.auth_facts(&mac).await?;
    verify_with_secret(state, signed, &mac, facts.secret.as_deref()).await?;
    Ok((mac, facts))
}

/// Authenticates a legacy device request naming `mac` (as sent, unparsed)
/// and carrying `signed`: the per-IP limit (before parsing, so malformed
/// MACs count too), the MAC, the per-MAC limit (so guessing MACs is
/// throttled), then the binding and the device's secret looked up together,
/// and the signature when the device holds a secret — before anything
/// about the binding is revealed. Returns
/// the binding in force; a disabled family's device gets `403` (from the
/// account itself, not the cache marker token-only routes use).
pub async fn authenticate_device(
    state: &AppState,
    ip: &ClientIp,
    signed: &DeviceSignature,
    mac: Option<&str>,
    limits: DeviceRouteLimits,
) -> Result<DeviceBinding> {
    let (_, facts) = check_device(state, ip, signed, mac, limits).await?;
    let binding = facts.binding.ok_or(Error::NotFound {
        what: "device binding",
        code: "device_not_bound",
    })?;
    tracing::Span::current().record("user_id", binding.user_id);
    // The account's own state, read with the binding: no cache round trip.
    if !facts.owner_active {
        return Err(crate::app::auth::account_disabled());
    }
    Ok(binding)
}
