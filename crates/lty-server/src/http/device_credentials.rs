//! `/api/device/credentials/`: provisioning a device's secret, after which
//! the device must sign its MAC-authenticated requests
//! (docs/device-auth.md).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lty_core::MacAddress;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

/// Device credential routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// The device to provision.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CredentialIn {
    /// The device's MAC address; the caller must be its current owner.
    #[schema(value_type = String, required = true, example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
}

/// A device secret. It is shown only in this answer: store it on the
/// device.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialOut {
    /// Normalised MAC.
    pub mac_address: String,
    /// 64 hex characters; the HMAC-SHA256 key is this text's bytes.
    pub secret: String,
    /// Always `HMAC-SHA256`.
    pub algorithm: &'static str,
    /// True when an earlier secret was replaced (the device must be given
    /// the new one; the old one stops working now).
    pub replaced: bool,
    pub created_at: DateTime<Utc>,
}

/// Gives a device a new secret (replacing any earlier one). From then on
/// MAC-only requests for the device are refused: it must sign mac-login and
/// rtc-token requests. Only the user of the device's current binding may
/// do this.
#[utoipa::path(post, path = "/api/device/credentials/", tag = "device-auth", operation_id = "create_device_credential",
    security(("bearer" = [])),
    request_body = CredentialIn,
    responses(
        (status = 201, body = CredentialOut),
        (status = 400, description = "missing or malformed MAC", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`not_device_owner`: the device is bound to someone else", body = ErrorBody),
        (status = 404, description = "`device_not_bound`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user.id))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<CredentialIn>,
) -> ApiResult<Response> {
    let mac = MacAddress::parse(body.mac_address.as_deref().unwrap_or(""))?;
    let binding = state
        .db
        .latest_binding(&mac)
        .await?
        .ok_or(lty_core::Error::NotFound {
            what: "device binding",
            code: "device_not_bound",
        })?;
    if binding.user_id != auth.user.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_device_owner",
            "only the user this device is bound to may provision it",
        ));
    }
    let (cred, replaced) =
        crate::app::device_auth::provision_secret(&state, auth.user.id, &mac).await?;
    let mut res = (
        StatusCode::CREATED,
        Json(CredentialOut {
            mac_address: mac.to_string(),
            secret: cred.secret,
            algorithm: "HMAC-SHA256",
            replaced,
            created_at: cred.created_at,
        }),
    )
        .into_response();
    // The secret must not linger in caches.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
