//! Volcengine RTC AccessTokens for a family's room `room_{user_id}`:
//! minted in process (an HMAC), nothing else.

use lty_core::{Error, Result};
use lty_vendors::volcengine::rtc_token::AccessToken;

use crate::state::AppState;

/// A token to join a family's RTC room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcGrant {
    /// The RTC AppId the token is for.
    pub app_id: String,
    /// `room_{user_id}`.
    pub room_id: String,
    /// The RTC user id to join as.
    pub user_id: String,
    /// Version-001 AccessToken, valid 24 hours, publish and subscribe rights.
    pub token: String,
}

/// The room of a family.
pub fn room_id(user_id: i64) -> String {
    format!("room_{user_id}")
}

/// A 24-hour token for RTC user `rtc_user` in `room_{user_id}`, with the
/// legacy default privileges; `provider_not_configured` when the RTC
/// AppId/AppKey are unset.
pub fn mint(state: &AppState, user_id: i64, rtc_user: String) -> Result<RtcGrant> {
    let rtc = &state.config.volcengine;
    let (Some(app_id), Some(app_key)) = (&rtc.app_id, &rtc.app_key) else {
        return Err(Error::ProviderNotConfigured {
            provider: "volcengine",
        });
    };
    let room_id = room_id(user_id);
    let token = AccessToken::builder(app_id.as_str(), room_id.as_str(), rtc_user.as_str())
        .build()
        // The AppId is checked at start, so this is a clock beyond 2106.
        .map_err(|e| Error::Upstream {
            provider: "volcengine",
            message: format!("cannot build an RTC token: {e}"),
        })?
        .serialize(app_key.expose());
    Ok(RtcGrant {
        app_id: app_id.clone(),
        room_id,
        user_id: rtc_user,
        token,
    })
}
