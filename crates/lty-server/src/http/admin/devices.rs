//! Devices: search by MAC, one device with its binding history, online
//! state and secret, force unbind, secret revocation and a test push.

use axum::extract::State;
use bytes::Bytes;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lty_core::MacAddress;
use lty_core::user::DeviceBinding;
use lty_core::xiaozhi::XiaozhiDevice;
use lty_store::admin_queries::{DeviceSearch, MacSet};
use lty_store::sort::DeviceSort;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::AdminBindingOut;
use super::{AdminCtx, OptionalJson, PageInfo, PageQuery, not_found};
use crate::app::devices;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::ws::protocol::device_group;

/// Device routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(view))
        .routes(routes!(unbind))
        .routes(routes!(revoke_secret))
        .routes(routes!(push_test))
}

fn device_not_found() -> ApiError {
    not_found("device", "device_not_found")
}

fn not_bound() -> ApiError {
    not_found("device binding", "device_not_bound")
}

fn parse_mac(raw: &str) -> ApiResult<MacAddress> {
    Ok(MacAddress::parse(raw)?)
}

/// A search fragment of a MAC: hex digits with `:` or `-` separators, in
/// the stored form (lower case, `:`).
fn mac_fragment(raw: Option<String>) -> ApiResult<Option<String>> {
    let Some(raw) = raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(mac) = MacAddress::parse(&raw) {
        return Ok(Some(mac.to_string()));
    }
    if raw.len() > 17
        || !raw
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'-')
    {
        return Err(lty_core::Error::validation(
            "mac",
            "must be part of a MAC address: hex digits separated by : or -",
        )
        .into());
    }
    Ok(Some(raw.to_ascii_lowercase().replace('-', ":")))
}

/// Device search filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceSearchQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    /// A MAC address or part of one (`02:00:00`, `a4-cf`).
    pub mac: Option<String>,
    /// Devices ever bound to this user.
    pub user_id: Option<i64>,
    /// `xiaozhi`: only xiaozhi-esp32 devices (those that made an OTA check,
    /// bound or not), most recently seen first. Absent: every device ever
    /// bound, by MAC.
    #[param(inline)]
    pub kind: Option<DeviceKind>,
    /// The firmware version a xiaozhi device last reported, exactly
    /// (`1.6.2`); only xiaozhi devices report one.
    pub firmware: Option<String>,
    /// `true`: only devices seen within the last 5 minutes (online);
    /// `false`: only the others. Paging and `total` count the filtered
    /// devices.
    pub online: Option<bool>,
    /// Sort key: `mac`, `board`, `firmware`, `last_check` (the last three as the xiaozhi device reported; devices without a report first when ascending) (default `mac` ascending; with `kind=xiaozhi`, `last_check` descending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else the listing's own
    /// order).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    let mut schema = super::sorting::keys_schema::<DeviceSort>();
    schema.description = Some(
        "Sort key (default `mac` ascending; with `kind=xiaozhi`, `last_check` descending); \
         `board`, `firmware` and `last_check` are what a xiaozhi device reported; ties are \
         broken by MAC."
            .to_owned(),
    );
    schema
}

/// Which devices a search lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Xiaozhi,
}

/// What a xiaozhi-esp32 device last reported (its OTA check and channel
/// hello).
#[derive(Debug, Serialize, ToSchema)]
pub struct XiaozhiInfoOut {
    /// `board.type`, the board family.
    pub board_type: Option<String>,
    /// `board.name`, the build variant.
    pub board_name: Option<String>,
    /// `application.version` of the running firmware.
    pub firmware_version: Option<String>,
    /// The binary framing (1, 2 or 3) of its last channel.
    pub protocol_version: Option<i16>,
    /// `Client-Id`: changes after an NVS erase.
    pub client_id: Option<String>,
    /// `Serial-Number`, for activation version 2.
    pub serial_number: Option<String>,
    /// The first and the latest OTA check.
    pub first_seen_at: DateTime<Utc>,
    pub last_check_at: DateTime<Utc>,
}

impl From<XiaozhiDevice> for XiaozhiInfoOut {
    fn from(d: XiaozhiDevice) -> Self {
        Self {
            board_type: d.board_type,
            board_name: d.board_name,
            firmware_version: d.firmware_version,
            protocol_version: d.protocol_version,
            client_id: d.client_id,
            serial_number: d.serial_number,
            first_seen_at: d.first_seen_at,
            last_check_at: d.last_seen_at,
        }
    }
}

/// A device found by search.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceSummaryOut {
    #[schema(value_type = String, example = "02:00:00:00:00:05")]
    pub mac_address: String,
    /// The binding in force; `null` when the device is unbound.
    pub binding: Option<AdminBindingOut>,
    /// Seen within the last 5 minutes.
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    /// Set for xiaozhi-esp32 devices.
    pub xiaozhi: Option<XiaozhiInfoOut>,
}

/// A page of devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminDeviceListOut {
    pub devices: Vec<DeviceSummaryOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// Devices ever bound, by MAC, filtered by MAC fragment, user, the
/// firmware they reported or online state; with `kind=xiaozhi`, xiaozhi-esp32 devices with
/// what they last reported, most recently seen first. `sort` and `order`
/// choose another order.
#[utoipa::path(get, path = "/api/v1/admin/devices/", tag = "admin", operation_id = "admin_devices_search",
    security(("admin_bearer" = [])),
    params(DeviceSearchQuery),
    responses(
        (status = 200, body = AdminDeviceListOut),
        (status = 400, description = "bad filter or paging", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<DeviceSearchQuery>,
) -> ApiResult<Json<AdminDeviceListOut>> {
    let (offset, limit, page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .window()?;
    let xiaozhi_only = q.kind == Some(DeviceKind::Xiaozhi);
    let default = DeviceSort::default_for(xiaozhi_only);
    let sort = super::sorting::resolve(q.sort.as_deref(), q.order.as_deref(), default)?;
    let firmware = match q.firmware.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(v) if v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(lty_core::Error::validation(
                "firmware",
                "must be at most 64 printable ASCII characters",
            )
            .into());
        }
        Some(v) => Some(v.to_owned()),
    };
    let macs = match q.online {
        None => None,
        Some(online) => {
            let seen = devices::online_macs(&state).await?;
            Some(if online {
                MacSet::Within(seen)
            } else {
                MacSet::Outside(seen)
            })
        }
    };
    let filter = DeviceSearch {
        fragment: mac_fragment(q.mac)?,
        user_id: q.user_id,
        firmware,
        macs,
    };
    let (macs, total) = if xiaozhi_only {
        let found = state
            .db
            .search_xiaozhi_devices(&filter, sort, offset, limit)
            .await?;
        let macs = found.items.iter().map(|d| d.mac_address).collect();
        (macs, found.total)
    } else {
        let found = state
            .db
            .search_device_macs(&filter, sort, offset, limit)
            .await?;
        let macs = found
            .items
            .iter()
            .filter_map(|raw| MacAddress::parse(raw).ok())
            .collect::<Vec<_>>();
        (macs, found.total)
    };
    let mut xiaozhi: HashMap<MacAddress, XiaozhiDevice> = state
        .db
        .xiaozhi_devices_of(&macs)
        .await?
        .into_iter()
        .map(|d| (d.mac_address, d))
        .collect();
    let mut devices = Vec::with_capacity(macs.len());
    for mac in macs {
        let binding = state.db.latest_binding(&mac).await?;
        let (online, last_seen) = devices::online_state(&state, &mac).await?;
        devices.push(DeviceSummaryOut {
            mac_address: mac.to_string(),
            binding: binding.map(Into::into),
            online,
            last_seen,
            xiaozhi: xiaozhi.remove(&mac).map(Into::into),
        });
    }
    Ok(Json(AdminDeviceListOut {
        devices,
        page: PageInfo::new(total, page, size),
    }))
}

/// One device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDetailOut {
    #[schema(value_type = String, example = "02:00:00:00:00:05")]
    pub mac_address: String,
    /// The binding in force; `null` when unbound.
    pub binding: Option<AdminBindingOut>,
    /// Every binding of this MAC, newest first.
    pub history: Vec<AdminBindingOut>,
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    /// Whether the device holds a secret (signed requests required).
    pub has_secret: bool,
    pub secret_created_at: Option<DateTime<Utc>>,
    /// Set for xiaozhi-esp32 devices.
    pub xiaozhi: Option<XiaozhiInfoOut>,
}

/// One device: binding in force, binding history, online state and
/// whether it holds a secret (audited as `device.view`).
#[utoipa::path(get, path = "/api/v1/admin/devices/{mac}/", tag = "admin", operation_id = "admin_device_view",
    security(("admin_bearer" = [])),
    params(("mac" = String, Path, description = "MAC address")),
    responses(
        (status = 200, body = DeviceDetailOut),
        (status = 400, description = "malformed MAC", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`device_not_found`: never bound, no secret and never checked in as a xiaozhi device", body = ErrorBody),
    ))]
pub async fn view(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(mac): Path<String>,
) -> ApiResult<Json<DeviceDetailOut>> {
    let mac = parse_mac(&mac)?;
    let history = state.db.binding_history(&mac).await?;
    let secret_at = state.db.device_secret_created_at(&mac).await?;
    let xiaozhi = state.db.xiaozhi_device(&mac).await?;
    if history.is_empty() && secret_at.is_none() && xiaozhi.is_none() {
        return Err(device_not_found());
    }
    let binding = state.db.latest_binding(&mac).await?;
    let (online, last_seen) = devices::online_state(&state, &mac).await?;
    ctx.audit(&state, "device.view", "device", mac, json!({}))
        .await?;
    Ok(Json(DeviceDetailOut {
        mac_address: mac.to_string(),
        binding: binding.map(Into::into),
        history: history.into_iter().map(Into::into).collect(),
        online,
        last_seen,
        has_secret: secret_at.is_some(),
        secret_created_at: secret_at,
        xiaozhi: xiaozhi.map(Into::into),
    }))
}

/// The result of an unbind.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUnbindOut {
    #[schema(value_type = String)]
    pub mac_address: String,
    /// The family that lost the device.
    pub user_id: i64,
    pub unbound: bool,
}

async fn current_binding(state: &AppState, mac: &MacAddress) -> ApiResult<DeviceBinding> {
    state.db.latest_binding(mac).await?.ok_or_else(not_bound)
}

/// Ends the device's binding and closes its sockets on every instance
/// (close code 4003). Audited as `device.unbind` with the binding before
/// and after.
#[utoipa::path(post, path = "/api/v1/admin/devices/{mac}/unbind/", tag = "admin", operation_id = "admin_device_unbind",
    security(("admin_bearer" = [])),
    params(("mac" = String, Path, description = "MAC address")),
    responses(
        (status = 200, body = AdminUnbindOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`device_not_bound`", body = ErrorBody),
    ))]
pub async fn unbind(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(mac): Path<String>,
) -> ApiResult<Json<AdminUnbindOut>> {
    let mac = parse_mac(&mac)?;
    let binding = current_binding(&state, &mac).await?;
    let details = json!({
        "binding_id": binding.id,
        "user_id": binding.user_id,
        "before": {
            "bound": true,
            "user_id": binding.user_id,
            "name": binding.name,
            "bound_at": binding.bound_at,
        },
        "after": { "bound": false },
    });
    ctx.audited(&state, "device.unbind", "device", mac, details, async {
        crate::app::devices::unbind(&state, binding.user_id, &mac).await?;
        Ok(())
    })
    .await?;
    Ok(Json(AdminUnbindOut {
        mac_address: mac.to_string(),
        user_id: binding.user_id,
        unbound: true,
    }))
}

/// The result of a secret revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeSecretOut {
    #[schema(value_type = String)]
    pub mac_address: String,
    pub revoked: bool,
}

/// Deletes the device's secret: its signatures stop verifying, and it is
/// back to the configured `device_auth` default until provisioned again.
/// Superadmin only; audited as `device.revoke_secret`.
#[utoipa::path(post, path = "/api/v1/admin/devices/{mac}/revoke-secret/", tag = "admin", operation_id = "admin_device_revoke_secret",
    security(("admin_bearer" = [])),
    params(("mac" = String, Path, description = "MAC address")),
    responses(
        (status = 200, body = RevokeSecretOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "needs superadmin", body = ErrorBody),
        (status = 404, description = "`device_secret_not_found`", body = ErrorBody),
    ))]
pub async fn revoke_secret(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(mac): Path<String>,
) -> ApiResult<Json<RevokeSecretOut>> {
    let mac = parse_mac(&mac)?;
    let secret_not_found = || not_found("device secret", "device_secret_not_found");
    if state.db.device_secret_created_at(&mac).await?.is_none() {
        return Err(secret_not_found());
    }
    ctx.audited(
        &state,
        "device.revoke_secret",
        "device",
        mac,
        json!({}),
        async {
            if state.db.delete_device_secret(&mac).await? {
                Ok(())
            } else {
                Err(secret_not_found())
            }
        },
    )
    .await?;
    Ok(Json(RevokeSecretOut {
        mac_address: mac.to_string(),
        revoked: true,
    }))
}

/// A test message.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PushTestIn {
    /// Text shown by the device, at most 200 characters (default
    /// `"test"`).
    pub message: Option<String>,
}

/// What the test push reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushTestOut {
    pub delivered: bool,
    /// Local sockets reached (in-process mode).
    pub sockets: Option<usize>,
    /// Instances reached (Redis mode).
    pub instances: Option<usize>,
    /// The message sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// Sends `{"type":"admin_test","message":..,"sent_at":..}` to the family
/// group of the device's binding, like `POST /api/device/send/`. Audited
/// as `device.push_test`.
#[utoipa::path(post, path = "/api/v1/admin/devices/{mac}/push-test/", tag = "admin", operation_id = "admin_device_push_test",
    security(("admin_bearer" = [])),
    params(("mac" = String, Path, description = "MAC address")),
    request_body(content = Option<PushTestIn>, description = "optional"),
    responses(
        (status = 200, body = PushTestOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`device_not_bound`", body = ErrorBody),
    ))]
pub async fn push_test(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(mac): Path<String>,
    body: OptionalJson<PushTestIn>,
) -> ApiResult<Json<PushTestOut>> {
    let mac = parse_mac(&mac)?;
    let message = body
        .0
        .and_then(|b| b.message)
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "test".to_owned());
    if message.chars().count() > 200 || message.chars().any(char::is_control) {
        return Err(lty_core::Error::validation(
            "message",
            "must be at most 200 printable characters",
        )
        .into());
    }
    let binding = current_binding(&state, &mac).await?;
    let payload = json!({
        "type": "admin_test",
        "mac_address": mac.to_string(),
        "message": message,
        "sent_at": Utc::now(),
    });
    let details = json!({ "user_id": binding.user_id, "message": message });
    let delivery = ctx
        .audited(&state, "device.push_test", "device", mac, details, async {
            let bytes = serde_json::to_vec(&payload).map_err(|_| ApiError::internal())?;
            Ok(state
                .pubsub
                .publish(&device_group(binding.user_id), Bytes::from(bytes))
                .await?)
        })
        .await?;
    Ok(Json(PushTestOut {
        delivered: true,
        sockets: delivery.instances.is_none().then_some(delivery.local),
        instances: delivery.instances,
        payload,
    }))
}
