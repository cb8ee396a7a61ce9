//! The HTTP side of xiaozhi-esp32 devices ([`crate::app::xiaozhi`]): the
//! boot-time OTA check and activation polls, exactly as the firmware sends
//! and reads them (answered at every URL the firmware may use, never with a
//! redirect; errors are non-200 so the device retries), firmware downloads
//! with `Content-Length`, and the app route a parent binds a device with.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lty_core::MacAddress;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::xiaozhi::activation::{self, Poll, PollOutcome};
use crate::app::xiaozhi::{self as service, OtaAnswer, OtaRequest, firmware};
use crate::app::{devices, ratelimit};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ClientIp, Json, Path};
use crate::http::devices::DeviceOut;
use crate::state::AppState;

/// xiaozhi routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ota_check, ota_status))
        .routes(routes!(ota_check_bare))
        .routes(routes!(activate_poll))
        .routes(routes!(activate_poll_slash))
        .routes(routes!(download))
        .routes(routes!(activate))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The device of a request, from `Device-Id` (its MAC).
fn device_mac(headers: &HeaderMap) -> ApiResult<MacAddress> {
    let raw = header_text(headers, "device-id").ok_or_else(|| {
        lty_core::Error::validation(
            "Device-Id",
            "the Device-Id header (the device's MAC) is required",
        )
    })?;
    Ok(MacAddress::parse(raw)?)
}

/// The OTA answer with `Content-Length` (a fixed body always gets one).
fn ota_response(answer: &OtaAnswer) -> Response {
    Json(answer).into_response()
}

async fn check(state: &AppState, headers: &HeaderMap, body: &Bytes) -> ApiResult<Response> {
    let mac = device_mac(headers)?;
    ratelimit::check(
        state,
        "xiaozhi_ota",
        &mac.to_string(),
        state.config.limits.xiaozhi_ota_per_device,
    )
    .await?;
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| lty_core::Error::validation("body", format!("is not JSON: {e}")))?
    };
    if !(body.is_object() || body.is_null()) {
        return Err(lty_core::Error::validation("body", "must be a JSON object").into());
    }
    let req = OtaRequest {
        mac,
        client_id: header_text(headers, "client-id").map(str::to_owned),
        activation_version: match header_text(headers, "activation-version") {
            Some("2") => 2,
            _ => 1,
        },
        serial_number: header_text(headers, "serial-number").map(str::to_owned),
        language: header_text(headers, "accept-language").map(str::to_owned),
        body,
    };
    Ok(ota_response(&service::check(state, req).await?))
}

/// The OTA check a xiaozhi device makes at every boot.
///
/// Headers `Device-Id` (MAC), `Client-Id`, `Activation-Version`,
/// `Serial-Number`, `Accept-Language`; the body is the firmware's system
/// information (`board.type`, `board.name`, `application.version` are
/// read). The answer always carries `server_time`, `websocket` (`url`,
/// a per-device `token`, framing `version`), `firmware` (the newest
/// release for the board, else the device's own version with an empty
/// `url`; omitted when the device's version is not numeric) and, while the
/// device is not bound to a family, `activation` (`code`, `message`,
/// `challenge`). Errors are never 200, so the device retries.
#[utoipa::path(post, path = "/xiaozhi/ota/", tag = "xiaozhi",
    params(
        ("Device-Id" = String, Header, description = "the device's MAC, e.g. aa:bb:cc:dd:ee:ff"),
        ("Client-Id" = Option<String>, Header, description = "the device's UUID"),
        ("Activation-Version" = Option<String>, Header, description = "`1` or `2`"),
        ("Serial-Number" = Option<String>, Header, description = "activation version 2"),
    ),
    request_body(content = Option<Object>, description = "the firmware's system information (a JSON object), or none"),
    responses(
        (status = 200, description = "the OTA answer", body = Object),
        (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`xiaozhi_not_configured`: no voice channel URL", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn ota_check(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check(&state, &headers, &body).await
}

/// The OTA check at the URL without the trailing slash (devices use the
/// URL exactly as configured; no redirect is followed).
#[utoipa::path(post, path = "/xiaozhi/ota", tag = "xiaozhi",
    params(
        ("Device-Id" = String, Header, description = "the device's MAC, e.g. aa:bb:cc:dd:ee:ff"),
        ("Client-Id" = Option<String>, Header, description = "the device's UUID"),
        ("Activation-Version" = Option<String>, Header, description = "`1` or `2`"),
        ("Serial-Number" = Option<String>, Header, description = "activation version 2"),
    ),
    request_body(content = Option<Object>, description = "the firmware's system information (a JSON object), or none"),
    responses(
        (status = 200, description = "the OTA answer", body = Object),
        (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn ota_check_bare(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check(&state, &headers, &body).await
}

/// What `GET /xiaozhi/ota/` says.
#[derive(Debug, Serialize, ToSchema)]
pub struct OtaStatusOut {
    /// What this endpoint is.
    pub service: &'static str,
    /// The voice channel URL devices are given; `null` when not configured.
    pub websocket_url: Option<String>,
}

/// A readable status of the OTA endpoint (for people checking the URL they
/// are about to give a device).
#[utoipa::path(get, path = "/xiaozhi/ota/", tag = "xiaozhi",
    responses((status = 200, body = OtaStatusOut)))]
pub async fn ota_status(State(state): State<AppState>) -> Json<OtaStatusOut> {
    Json(OtaStatusOut {
        service: "lty xiaozhi OTA: devices POST their system information here",
        websocket_url: state.config.xiaozhi_websocket_url(),
    })
}

/// A version-2 activation body.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ActivatePollIn {
    /// `hmac-sha256`.
    pub algorithm: Option<String>,
    pub serial_number: Option<String>,
    /// The challenge of the last OTA answer.
    pub challenge: Option<String>,
    /// Lower-case hex HMAC-SHA256 of the challenge under the eFuse key.
    pub hmac: Option<String>,
}

async fn poll(state: &AppState, headers: &HeaderMap, body: &Bytes) -> ApiResult<Response> {
    let mac = device_mac(headers)?;
    ratelimit::check(
        state,
        "xiaozhi_activate",
        &mac.to_string(),
        state.config.limits.xiaozhi_ota_per_device,
    )
    .await?;
    // Version 1 sends no body (or `{}`); `null` is taken as none too.
    let parsed: ActivatePollIn = if body.iter().all(u8::is_ascii_whitespace) {
        ActivatePollIn::default()
    } else {
        serde_json::from_slice::<Option<ActivatePollIn>>(body)
            .map_err(|e| lty_core::Error::validation("body", format!("is not valid: {e}")))?
            .unwrap_or_default()
    };
    let version = match header_text(headers, "activation-version") {
        Some("2") => 2,
        _ => 1,
    };
    let outcome = activation::poll(
        state,
        &mac,
        Poll {
            version,
            serial_number: parsed
                .serial_number
                .or_else(|| header_text(headers, "serial-number").map(str::to_owned)),
            challenge: parsed.challenge,
            hmac: parsed.hmac,
        },
    )
    .await?;
    let (status, text) = match outcome {
        PollOutcome::Activated => (StatusCode::OK, "activated"),
        PollOutcome::Pending => (StatusCode::ACCEPTED, "pending"),
    };
    Ok((status, Json(serde_json::json!({ "status": text }))).into_response())
}

/// A device's activation poll: `200` once a parent has bound it with its
/// code, `202` while not yet; `403 activation_refused` for an unknown or
/// expired challenge or a wrong HMAC (activation version 2).
#[utoipa::path(post, path = "/xiaozhi/ota/activate", tag = "xiaozhi",
    params(("Device-Id" = String, Header, description = "the device's MAC")),
    request_body(content = Option<ActivatePollIn>, description = "none or `{}` (version 1), or the version-2 body"),
    responses(
        (status = 200, description = "activated", body = Object),
        (status = 202, description = "not bound yet: poll again", body = Object),
        (status = 400, body = ErrorBody),
        (status = 403, description = "`activation_refused`", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub async fn activate_poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    poll(&state, &headers, &body).await
}

/// The activation poll with a trailing slash.
#[utoipa::path(post, path = "/xiaozhi/ota/activate/", tag = "xiaozhi",
    params(("Device-Id" = String, Header, description = "the device's MAC")),
    request_body(content = Option<ActivatePollIn>, description = "none or `{}` (version 1), or the version-2 body"),
    responses(
        (status = 200, body = Object),
        (status = 202, body = Object),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub async fn activate_poll_slash(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    poll(&state, &headers, &body).await
}

/// A firmware image, served directly with `Content-Length` (the firmware
/// follows no redirect and needs the length).
#[utoipa::path(get, path = "/xiaozhi/firmware/{id}/{file}", tag = "xiaozhi",
    params(
        ("id" = i64, Path, description = "release id"),
        ("file" = String, Path, description = "any name, e.g. `board-2.4.3.bin`"),
    ),
    responses(
        (status = 200, description = "the application image", content_type = "application/octet-stream"),
        (status = 404, description = "`firmware_not_found`", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    Path((id, _file)): Path<(i64, String)>,
) -> ApiResult<Response> {
    let (release, image) = firmware::image(&state, id).await?;
    let mut res = image.into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", release.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(res)
}

/// A code a device shows.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActivateIn {
    /// The 6 digits the device shows and speaks.
    #[schema(example = "123456", pattern = "^[0-9]{6}$")]
    pub code: String,
    /// A display name for the device, at most 64 characters.
    pub name: Option<String>,
}

/// Binds the device showing `code` to the caller's family (xiaozhi-esp32
/// devices). Attempts are limited per user and per client IP.
#[utoipa::path(post, path = "/api/device/activate/", tag = "device",
    security(("bearer" = [])),
    request_body = ActivateIn,
    responses(
        (status = 200, description = "the caller already had this device", body = DeviceOut),
        (status = 201, description = "bound", body = DeviceOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`activation_code_not_found`: unknown or expired code", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub async fn activate(
    State(state): State<AppState>,
    auth: AuthUser,
    ip: ClientIp,
    Json(body): Json<ActivateIn>,
) -> ApiResult<(StatusCode, Json<DeviceOut>)> {
    let (binding, created) =
        activation::activate(&state, auth.user.id, &ip, &body.code, body.name).await?;
    let (online, last_seen) = devices::online_state(&state, &binding.mac_address).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DeviceOut {
            id: binding.id,
            mac_address: binding.mac_address,
            name: binding.name,
            bound_at: binding.bound_at,
            online,
            last_seen,
            secret: None,
        }),
    ))
}
