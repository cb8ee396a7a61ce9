//! `/api/device/rtc-token/`: Volcengine RTC AccessTokens for a family's room
//! `room_{user_id}`. A hot path: one indexed query and an in-process HMAC,
//! nothing else.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::device_auth::{self, DeviceRouteLimits};
use crate::app::rtc::{RtcGrant, mint};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ClientIp;
use crate::extract::{DeviceSignature, Json, Query};
use crate::state::AppState;

/// RTC token routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_by_mac))
        .routes(routes!(for_app))
}

/// Query of the legacy device route.
#[derive(Debug, Deserialize, IntoParams)]
pub struct GetByMacQuery {
    /// The device's MAC address; `:` or `-` separated, any case.
    #[param(example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
}

/// A token to join the family's RTC room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RtcTokenOut {
    /// The RTC AppId the token is for.
    pub app_id: String,
    /// `room_{user_id}`.
    #[schema(example = "room_42")]
    pub room_id: String,
    /// The RTC user id to join as: the family's user id, as a string.
    #[schema(example = "42")]
    pub user_id: String,
    /// Version-001 AccessToken, valid 24 hours, publish and subscribe rights.
    pub token: String,
}

impl From<RtcGrant> for RtcTokenOut {
    fn from(g: RtcGrant) -> Self {
        Self {
            app_id: g.app_id,
            room_id: g.room_id,
            user_id: g.user_id,
            token: g.token,
        }
    }
}

/// A device's RTC token, by MAC (no body needed).
///
/// The token is for the room of the user the MAC is bound to, with that
/// user's id as the RTC user. A device holding a secret must sign the
/// request (`X-Device-*` headers, docs/device-auth.md); legacy devices
/// without one need nothing else while `device_auth = legacy`.
#[utoipa::path(post, path = "/api/device/rtc-token/get_by_mac/", tag = "rtc",
    params(GetByMacQuery, DeviceSignature),
    responses(
        (status = 200, body = RtcTokenOut),
        (status = 400, description = "missing or malformed MAC", body = ErrorBody),
        (status = 401, description = "signature required, invalid, stale or replayed", body = ErrorBody),
        (status = 404, description = "the MAC is not bound", body = ErrorBody),
        (status = 429, description = "`rate_limited` per MAC or per IP; see Retry-After", body = ErrorBody),
        (status = 503, description = "`provider_not_configured`: VOLCENGINE_APP_ID / VOLCENGINE_APP_KEY unset", body = ErrorBody),
    ))]
pub async fn get_by_mac(
    State(state): State<AppState>,
    ip: ClientIp,
    signed: DeviceSignature,
    Query(query): Query<GetByMacQuery>,
) -> ApiResult<Json<RtcTokenOut>> {
    let limits = &state.config.limits;
    // Devices holding a secret must sign (DESIGN §5); per-MAC limits also
    // throttle guessing MACs to join families' rooms.
    let binding = device_auth::authenticate_device(
        &state,
        &ip,
        &signed,
        query.mac_address.as_deref(),
        DeviceRouteLimits {
            ip_rule: "rtc_token_ip",
            per_ip: limits.rtc_token_per_ip,
            mac_rule: "rtc_token_mac",
            per_mac: limits.rtc_token_per_mac,
        },
    )
    .await?;
    let user_id = binding.user_id;
    Ok(Json(mint(&state, user_id, user_id.to_string())?.into()))
}

/// The app's RTC token: the same room as the family's devices, joined as
/// the caller's user id.
#[utoipa::path(post, path = "/api/device/rtc-token/", tag = "rtc",
    security(("bearer" = [])),
    responses(
        (status = 200, body = RtcTokenOut),
        (status = 401, body = ErrorBody),
        (status = 503, description = "`provider_not_configured`", body = ErrorBody),
    ))]
pub async fn for_app(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<RtcTokenOut>> {
    let id = auth.user.id;
    Ok(Json(mint(&state, id, id.to_string())?.into()))
}
