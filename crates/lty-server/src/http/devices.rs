//! `/api/device/`: bindings, pushes to a family's devices, online status.

use axum::extract::State;
use axum::response::IntoResponse;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lty_core::MacAddress;
use lty_core::user::DeviceBinding;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::device_auth::DeviceRouteLimits;
use crate::app::devices;
use crate::auth::{AuthUser, bearer_token, resolve_user};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ClientIp, DeviceSignature, Json, JsonOrForm, Path, Query};
use crate::state::AppState;

/// Device routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bind))
        .routes(routes!(unbind))
        .routes(routes!(list))
        .routes(routes!(binding_status))
        .routes(routes!(rename))
        .routes(routes!(send))
        .routes(routes!(status))
}

/// A device bound to the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceOut {
    /// Binding id (used by `PATCH /api/device/{id}/`).
    pub id: i64,
    #[schema(value_type = String, example = "02:00:00:00:00:05")]
    pub mac_address: MacAddress,
    pub name: Option<String>,
    pub bound_at: DateTime<Utc>,
    /// Seen within the last 5 minutes.
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    /// The device's new secret (docs/device-auth.md), only in the answer of
    /// a bind with `provision_secret`; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

async fn device_out(state: &AppState, b: DeviceBinding) -> ApiResult<DeviceOut> {
    let (online, last_seen) = devices::online_state(state, &b.mac_address).await?;
    Ok(DeviceOut {
        id: b.id,
        mac_address: b.mac_address,
        name: b.name,
        bound_at: b.bound_at,
        online,
        last_seen,
        secret: None,
    })
}

/// Bind request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BindIn {
    /// The device's MAC address.
    #[schema(value_type = String, required = true, example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
    /// A display name, at most 64 characters.
    pub name: Option<String>,
    /// Also give the device a new secret (replacing any previous one), in
    /// the answer's `secret`: the app hands it to the device, which signs
    /// its requests from then on (docs/device-auth.md).
    #[serde(default)]
    pub provision_secret: bool,
}

/// Binds a device to the caller. Binding a MAC that another family holds
/// moves it (the latest binding wins) and disconnects that family's
/// sockets of the device. Binding a device the caller already holds is a
/// no-op that returns the binding (a new name is applied).
#[utoipa::path(post, path = "/api/device/bind/", tag = "device",
    security(("bearer" = [])),
    request_body = BindIn,
    responses(
        (status = 200, description = "already bound to the caller", body = DeviceOut),
        (status = 201, description = "bound", body = DeviceOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn bind(
    State(state): State<AppState>,
    auth: AuthUser,
    JsonOrForm(body): JsonOrForm<BindIn>,
) -> ApiResult<axum::response::Response> {
    let mac = MacAddress::parse(body.mac_address.as_deref().unwrap_or(""))?;
    let (binding, created) = devices::bind(&state, auth.user.id, &mac, body.name).await?;
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    let mut out = device_out(&state, binding).await?;
    if body.provision_secret {
        let (cred, _) =
            crate::app::device_auth::provision_secret(&state, auth.user.id, &mac).await?;
        out.secret = Some(cred.secret);
    }
    let mut res = (status, Json(out)).into_response();
    if body.provision_secret {
        res.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}

/// Unbind request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UnbindIn {
    #[schema(value_type = String, required = true, example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
}

/// Unbind answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnbindOut {
    pub unbound: bool,
    #[schema(value_type = String)]
    pub mac_address: MacAddress,
}

/// Unbinds one of the caller's devices and disconnects its sockets.
#[utoipa::path(post, path = "/api/device/unbind/", tag = "device",
    security(("bearer" = [])),
    request_body = UnbindIn,
    responses(
        (status = 200, body = UnbindOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "not bound to the caller", body = ErrorBody),
    ))]
pub async fn unbind(
    State(state): State<AppState>,
    auth: AuthUser,
    JsonOrForm(body): JsonOrForm<UnbindIn>,
) -> ApiResult<Json<UnbindOut>> {
    let mac = MacAddress::parse(body.mac_address.as_deref().unwrap_or(""))?;
    devices::unbind(&state, auth.user.id, &mac).await?;
    Ok(Json(UnbindOut {
        unbound: true,
        mac_address: mac,
    }))
}

/// The caller's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceListOut {
    pub devices: Vec<DeviceOut>,
}

/// Lists the caller's bound devices with their online state.
#[utoipa::path(get, path = "/api/device/list/", tag = "device",
    security(("bearer" = [])),
    responses((status = 200, body = DeviceListOut), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<DeviceListOut>> {
    let bindings = state.db.bindings_of_user(auth.user.id).await?;
    let mut devices = Vec::with_capacity(bindings.len());
    for b in bindings {
        devices.push(device_out(&state, b).await?);
    }
    Ok(Json(DeviceListOut { devices }))
}

/// `?mac_address=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MacQuery {
    /// The device's MAC address.
    #[param(value_type = String, required = true, example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
}

/// Whether a MAC is bound.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingStatusOut {
    #[schema(value_type = String)]
    pub mac_address: MacAddress,
    pub bound: bool,
    /// Whether it is bound to the caller (false without a token).
    pub bound_to_you: bool,
    /// The owning user, shown to the owner only.
    pub user_id: Option<i64>,
    /// Binding details, shown to the owner only.
    pub name: Option<String>,
    pub bound_at: Option<DateTime<Utc>>,
}

/// Whether a MAC is bound, and to whom only for its owner. With a user
/// token: the full answer (binding details when the caller owns it); an
/// invalid token is refused. Without one, the caller must be the device:
/// the same checks as `mac-login` (per-IP and per-MAC rate limits, the
/// signature when the device holds a secret, `device_not_provisioned` for
/// an unsigned device in `signed` mode), and the answer says no more than
/// `bound`.
#[utoipa::path(get, path = "/api/device/binding-status/", tag = "device",
    params(MacQuery, DeviceSignature),
    responses((status = 200, body = BindingStatusOut), (status = 400, body = ErrorBody),
              (status = 401, description = "an invalid token, or a device signature required, invalid or missing in `signed` mode", body = ErrorBody),
              (status = 429, description = "`rate_limited` (requests without a token)", body = ErrorBody)))]
pub async fn binding_status(
    State(state): State<AppState>,
    ip: ClientIp,
    signed: DeviceSignature,
    Query(query): Query<MacQuery>,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<BindingStatusOut>> {
    if !parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        let limits = &state.config.limits;
        let (mac, facts) = crate::app::device_auth::check_device(
            &state,
            &ip,
            &signed,
            query.mac_address.as_deref(),
            DeviceRouteLimits {
                ip_rule: "binding_status_ip",
                per_ip: limits.binding_status_per_ip,
                mac_rule: "binding_status_mac",
                per_mac: limits.binding_status_per_mac,
            },
        )
        .await?;
        return Ok(Json(BindingStatusOut {
            mac_address: mac,
            bound: facts.binding.is_some(),
            bound_to_you: false,
            user_id: None,
            name: None,
            bound_at: None,
        }));
    }
    let mac = MacAddress::parse(query.mac_address.as_deref().unwrap_or(""))?;
    let caller = resolve_user(&state, bearer_token(&parts)?).await?.id;
    let binding = state.db.latest_binding(&mac).await?;
    let mine = binding.as_ref().filter(|b| b.user_id == caller);
    Ok(Json(BindingStatusOut {
        mac_address: mac,
        bound: binding.is_some(),
        bound_to_you: mine.is_some(),
        user_id: mine.map(|b| b.user_id),
        name: mine.and_then(|b| b.name.clone()),
        bound_at: mine.map(|b| b.bound_at),
    }))
}

/// Changes to a binding.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// New display name; empty or null clears it.
    pub name: Option<String>,
}

/// Renames one of the caller's devices.
#[utoipa::path(patch, path = "/api/device/{id}/", tag = "device",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "binding id")),
    request_body = DevicePatch,
    responses((status = 200, body = DeviceOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rename(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<i64>,
    Json(body): Json<DevicePatch>,
) -> ApiResult<Json<DeviceOut>> {
    let name = devices::validate_name(body.name)?;
    let owned = state
        .db
        .bindings_of_user(auth.user.id)
        .await?
        .into_iter()
        .any(|b| b.id == id);
    if !owned {
        return Err(devices::not_bound().into());
    }
    let binding = state
        .db
        .rename_device(id, name.as_deref())
        .await?
        .ok_or_else(devices::not_bound)?;
    Ok(Json(device_out(&state, binding).await?))
}

/// Push answer. The body is exactly `{"delivered": true}`, as legacy
/// clients compare it; the reach is in the `X-Lty-Sockets` /
/// `X-Lty-Instances` headers, and in the body with `?detail=true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendOut {
    /// True once the message is published to the family's group.
    pub delivered: bool,
    /// With `?detail=true`: sockets of the family on this instance that the
    /// message was queued for; absent when the count spans instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<usize>,
    /// With `?detail=true`: lty instances the message reached (Redis mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
}

/// `?detail=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct SendQuery {
    /// Include `sockets` / `instances` in the body.
    #[serde(default)]
    pub detail: bool,
}

/// Pushes a JSON object to every device socket of the caller's family (the
/// group `device_{user_id}`), on every instance. Answers once the message
/// is published.
#[utoipa::path(post, path = "/api/device/send/", tag = "device",
    security(("bearer" = [])),
    params(SendQuery),
    request_body(content = Object, description = "any JSON object"),
    responses((status = 200, body = SendOut,
               headers(("X-Lty-Sockets" = usize, description = "local sockets reached (in-process mode)"),
                       ("X-Lty-Instances" = usize, description = "instances reached (Redis mode)"),
                       ("X-Lty-Push-Id" = String, description = "the message's id in the family's replay log, as resuming sockets receive it"))),
              (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<SendQuery>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<axum::response::Response> {
    if !body.is_object() {
        return Err(lty_core::Error::validation("body", "must be a JSON object").into());
    }
    let payload = serde_json::to_vec(&body).map_err(|_| ApiError::internal())?;
    let delivery = devices::push(&state, auth.user.id, Bytes::from(payload)).await?;
    let sockets = delivery.instances.is_none().then_some(delivery.local);
    let mut res = Json(SendOut {
        delivered: true,
        sockets: sockets.filter(|_| query.detail),
        instances: delivery.instances.filter(|_| query.detail),
    })
    .into_response();
    let headers = res.headers_mut();
    if let Some(n) = sockets {
        headers.insert("x-lty-sockets", n.into());
    }
    if let Some(n) = delivery.instances {
        headers.insert("x-lty-instances", n.into());
    }
    if let Some(id) = delivery.id
        && let Ok(value) = axum::http::HeaderValue::from_str(&id.to_string())
    {
        headers.insert("x-lty-push-id", value);
    }
    Ok(res)
}

/// Online state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOut {
    #[schema(value_type = String)]
    pub mac_address: MacAddress,
    /// Seen within the last 5 minutes.
    pub online: bool,
    /// Last message or pong from the device.
    pub last_seen: Option<DateTime<Utc>>,
}

/// Whether one of the caller's devices is online.
#[utoipa::path(get, path = "/api/device/status/", tag = "device",
    security(("bearer" = [])),
    params(MacQuery),
    responses((status = 200, body = StatusOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<MacQuery>,
) -> ApiResult<Json<StatusOut>> {
    let mac = MacAddress::parse(query.mac_address.as_deref().unwrap_or(""))?;
    state
        .db
        .latest_binding(&mac)
        .await?
        .filter(|b| b.user_id == auth.user.id)
        .ok_or_else(devices::not_bound)?;
    let (online, last_seen) = devices::online_state(&state, &mac).await?;
    Ok(Json(StatusOut {
        mac_address: mac,
        online,
        last_seen,
    }))
}
