//! Firmware releases for xiaozhi boards ([`crate::app::xiaozhi::firmware`]):
//! upload, list, retire and offer again; and the activation keys of
//! serial-numbered devices.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lty_core::xiaozhi::FirmwareRelease;
use lty_store::sort::{FirmwareSort, SortKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, PageInfo, PageQuery, not_found};
use crate::app::xiaozhi::firmware::{self, MAX_IMAGE_BYTES, Upload as ReleaseUpload};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::upload::Upload;
use crate::state::AppState;

/// Firmware and device-key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(
            // The image has its own limit (8 MiB).
            OpenApiRouter::new()
                .routes(routes!(upload))
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(list))
        .routes(routes!(set_active))
        .routes(routes!(put_key))
}

/// A firmware release.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirmwareOut {
    pub id: i64,
    /// The `board.name` (or `board.type`) it is offered to.
    pub board: String,
    pub version: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the image, hex.
    pub sha256: String,
    pub notes: Option<String>,
    /// Retired releases are not offered.
    pub is_active: bool,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Where devices download it.
    pub url: String,
}

impl FirmwareOut {
    fn new(state: &AppState, r: FirmwareRelease) -> Self {
        Self {
            url: firmware::download_url(&state.config.public_base(), &r),
            id: r.id,
            board: r.board,
            version: r.version,
            size: r.size,
            sha256: r.sha256,
            notes: r.notes,
            is_active: r.is_active,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// A release as its audit entries record it.
fn audited(r: &FirmwareRelease) -> serde_json::Value {
    json!({
        "id": r.id,
        "board": r.board,
        "version": r.version,
        "size": r.size,
        "sha256": r.sha256,
        "notes": r.notes,
        "is_active": r.is_active,
    })
}

/// Where the upload's fields go when the image is the raw body.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FirmwareUploadQuery {
    /// Board name: 1–64 of a-z, 0-9, `.`, `-`, `_`.
    pub board: Option<String>,
    /// Numeric dotted version, e.g. `2.4.3`.
    pub version: Option<String>,
    pub notes: Option<String>,
}

/// Uploads a firmware release: the build's application image (`.bin`,
/// first byte 0xE9; a merged full-flash image is refused), at most 8 MiB,
/// as the `file` part of a multipart form with `board`, `version` and
/// optional `notes` fields, or as the raw body with those in the query.
/// The newest active release of a board is offered to its devices at their
/// next boot. Audited as `firmware.create` with the release made.
#[utoipa::path(post, path = "/api/v1/admin/firmware/", tags = ["admin", "xiaozhi"],
    security(("admin_bearer" = [])),
    params(FirmwareUploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the image, or a multipart form with `file`, `board`, `version`, `notes`"),
    responses(
        (status = 201, body = FirmwareOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`firmware_exists`: the board has this version", body = ErrorBody),
        (status = 413, body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Query(query): Query<FirmwareUploadQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<FirmwareOut>)> {
    let mut fields = query;
    let image = Upload {
        what: "file",
        parts: &["file"],
        max: MAX_IMAGE_BYTES,
    }
    .read_with_fields(req, &["board", "version", "notes"], |name, text| {
        let value = Some(text.to_owned());
        match name {
            "board" => fields.board = value,
            "version" => fields.version = value,
            _ => fields.notes = value,
        }
        Ok(())
    })
    .await?
    .data;
    let board = fields.board.unwrap_or_default();
    let version = fields.version.unwrap_or_default();
    let details = json!({ "board": board, "version": version, "size": image.len() });
    let up = ReleaseUpload {
        board,
        version,
        notes: fields.notes,
        image,
    };
    let release = ctx
        .audited_create(&state, "firmware.create", "firmware", details, async {
            Ok(firmware::upload(&state, ctx.admin.id, up).await?)
        })
        .await?;
    ctx.actor
        .annotate_last(&state, json!({ "after": audited(&release) }))
        .await;
    Ok((StatusCode::CREATED, Json(FirmwareOut::new(&state, release))))
}

/// Release filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FirmwareQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    /// Only this board's releases.
    pub board: Option<String>,
    /// Sort key: `created`, `board`, `version`, `size`, `active` (default `created` descending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else the listing's own
    /// order).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<FirmwareSort>()
}

/// A page of releases.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirmwareListOut {
    #[serde(flatten)]
    pub page: PageInfo,
    pub releases: Vec<FirmwareOut>,
}

/// Firmware releases, newest first unless `sort` and `order` say
/// otherwise.
#[utoipa::path(get, path = "/api/v1/admin/firmware/", tags = ["admin", "xiaozhi"],
    security(("admin_bearer" = [])),
    params(FirmwareQuery),
    responses(
        (status = 200, body = FirmwareListOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<FirmwareQuery>,
) -> ApiResult<Json<FirmwareListOut>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let board = q.board.as_deref().map(str::trim).filter(|b| !b.is_empty());
    let sort =
        super::sorting::resolve(q.sort.as_deref(), q.order.as_deref(), FirmwareSort::DEFAULT)?;
    let found = state
        .db
        .firmware_releases(board, sort, (page - 1) * size, size)
        .await?;
    Ok(Json(FirmwareListOut {
        page: PageInfo::new(found.total, page, size),
        releases: found
            .items
            .into_iter()
            .map(|r| FirmwareOut::new(&state, r))
            .collect(),
    }))
}

/// Whether a release is offered.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FirmwareStateIn {
    /// `false` retires the release (devices are no longer offered it),
    /// `true` offers it again.
    pub is_active: bool,
}

/// Retires a release or offers it again. Audited as `firmware.update` with
/// the release before and after.
#[utoipa::path(patch, path = "/api/v1/admin/firmware/{id}/", tags = ["admin", "xiaozhi"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "release id")),
    request_body = FirmwareStateIn,
    responses(
        (status = 200, body = FirmwareOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`firmware_not_found`", body = ErrorBody),
    ))]
pub async fn set_active(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Json(body): Json<FirmwareStateIn>,
) -> ApiResult<Json<FirmwareOut>> {
    let missing = || not_found("firmware release", "firmware_not_found");
    let before = state.db.firmware_release(id).await?.ok_or_else(missing)?;
    let details = json!({
        "changes": { "is_active": body.is_active },
        "before": audited(&before),
    });
    let release = ctx
        .audited(&state, "firmware.update", "firmware", id, details, async {
            state
                .db
                .set_firmware_active(id, body.is_active)
                .await?
                .ok_or_else(missing)
        })
        .await?;
    ctx.actor
        .annotate_last(&state, json!({ "after": audited(&release) }))
        .await;
    Ok(Json(FirmwareOut::new(&state, release)))
}

/// A device's activation key.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceKeyIn {
    /// The 32-byte HMAC key burned into the device's eFuse, 64 hex digits.
    #[schema(pattern = "^[0-9A-Fa-f]{64}$")]
    pub key: String,
}

/// The recorded key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceKeyOut {
    pub serial_number: String,
    /// Always true: the key itself is never shown again.
    pub recorded: bool,
}

/// Records the eFuse key of the device with serial number `serial`
/// (activation version 2): its activation polls must then carry the HMAC
/// of their challenge under this key. Audited as `device_key.put` (the key
/// is not in the entry).
#[utoipa::path(put, path = "/api/v1/admin/device-keys/{serial}/", tags = ["admin", "xiaozhi"],
    security(("admin_bearer" = [])),
    params(("serial" = String, Path, description = "the device's serial number, 1–32 printable ASCII characters")),
    request_body = DeviceKeyIn,
    responses(
        (status = 200, body = DeviceKeyOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn put_key(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(serial): Path<String>,
    Json(body): Json<DeviceKeyIn>,
) -> ApiResult<Json<DeviceKeyOut>> {
    let serial = serial.trim().to_owned();
    if serial.is_empty() || serial.len() > 32 || !serial.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(lty_core::Error::validation(
            "serial",
            "must be 1 to 32 printable ASCII characters",
        )
        .into());
    }
    let key = body.key.trim().to_ascii_lowercase();
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(lty_core::Error::validation("key", "must be 64 hex digits (32 bytes)").into());
    }
    ctx.audited(
        &state,
        "device_key.put",
        "device_key",
        &serial,
        json!({}),
        async {
            Ok(state
                .db
                .put_xiaozhi_key(&serial, &key, Some(ctx.admin.id), Utc::now())
                .await?)
        },
    )
    .await?;
    Ok(Json(DeviceKeyOut {
        serial_number: serial,
        recorded: true,
    }))
}
