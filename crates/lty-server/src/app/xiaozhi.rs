//! xiaozhi-esp32 devices (spec: `shared/devices/xiaozhi-protocol.md`):
//! the boot-time OTA check, activation (a code the parent enters in the
//! app, a challenge the device polls with), channel tokens, and firmware
//! releases. The voice channel itself is the adapter in `crate::xiaozhi`.

pub mod activation;
pub mod firmware;

use chrono::Utc;
use lty_core::xiaozhi::{FirmwareVersion, XiaozhiDevice, XiaozhiSighting};
use lty_core::{Error, ErrorKind, MacAddress, Result};
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// What an OTA check sends besides its body.
#[derive(Debug, Clone)]
pub struct OtaRequest {
    /// `Device-Id`.
    pub mac: MacAddress,
    /// `Client-Id`.
    pub client_id: Option<String>,
    /// `Activation-Version` (1 or 2).
    pub activation_version: u8,
    /// `Serial-Number` (version 2).
    pub serial_number: Option<String>,
    /// `Accept-Language`, for the activation message.
    pub language: Option<String>,
    /// The system-information body, as sent.
    pub body: Value,
}

/// The answer to an OTA check: every section the firmware acts on.
#[derive(Debug, Clone, Serialize)]
pub struct OtaAnswer {
    pub server_time: ServerTime,
    /// Omitted when the device's own version is not numeric (the firmware
    /// would abort comparing it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareOffer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<activation::ActivationOffer>,
    pub websocket: WebsocketSection,
}

/// `server_time`: the device's only clock source.
#[derive(Debug, Clone, Serialize)]
pub struct ServerTime {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Minutes east of UTC.
    pub timezone_offset: i32,
}

/// `firmware`: the newest image for the board, or the device's own version
/// with an empty URL.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareOffer {
    pub version: String,
    pub url: String,
}

/// `websocket`: where and how the device opens its voice channel.
#[derive(Debug, Clone, Serialize)]
pub struct WebsocketSection {
    pub url: String,
    pub token: String,
    pub version: u8,
}

/// SHA-256 of a channel token, hex: what lty stores.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `board.type`, `board.name` and `application.version` of a body, each
/// only when it is a short string.
fn reported(body: &Value) -> (Option<String>, Option<String>, Option<String>) {
    let text = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_owned)
    };
    (
        text(&body["board"]["type"]),
        text(&body["board"]["name"]),
        text(&body["application"]["version"]),
    )
}

/// The HTTP origin devices download firmware from: `public_base_url`, else
/// the voice channel's host as `http`/`https`.
fn http_base(state: &AppState, websocket_url: &str) -> String {
    if state.config.public_base_url.is_some() {
        return state.config.public_base();
    }
    let (scheme, rest) = match websocket_url.strip_prefix("wss://") {
        Some(rest) => ("https", rest),
        None => (
            "http",
            websocket_url.strip_prefix("ws://").unwrap_or(websocket_url),
        ),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// The voice channel URL, or `503 xiaozhi_not_configured`.
pub fn websocket_url(state: &AppState) -> Result<String> {
    state.config.xiaozhi_websocket_url().ok_or_else(|| {
        Error::coded(
            ErrorKind::Unavailable,
            "xiaozhi_not_configured",
            "no voice channel URL: set LTY_XIAOZHI__WEBSOCKET_URL or LTY_PUBLIC_BASE_URL",
        )
    })
}

/// Answers an OTA check: records the device, rotates its channel token,
/// offers the newest firmware for its board and, while it is not bound to a
/// family, an activation code and challenge.
pub async fn check(state: &AppState, req: OtaRequest) -> Result<OtaAnswer> {
    let url = websocket_url(state)?;
    let (board_type, board_name, version) = reported(&req.body);
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let now = Utc::now();
    let device = state
        .db
        .record_xiaozhi_check(
            XiaozhiSighting {
                mac_address: req.mac,
                client_id: req.client_id.clone(),
                board_type,
                board_name,
                firmware_version: version,
                serial_number: req.serial_number.clone(),
            },
            &token_hash(&token),
            now,
        )
        .await?;
    let firmware = firmware_offer(state, &device, &url).await?;
    let bound = state.db.latest_binding(&req.mac).await?.is_some();
    let activation = if bound {
        None
    } else {
        Some(activation::offer(state, &req).await?)
    };
    metrics::counter!("lty_xiaozhi_ota_checks_total", "bound" => if bound { "yes" } else { "no" })
        .increment(1);
    Ok(OtaAnswer {
        server_time: ServerTime {
            timestamp: now.timestamp_millis(),
            timezone_offset: state.config.xiaozhi.timezone_offset_minutes,
        },
        firmware,
        activation,
        websocket: WebsocketSection {
            url,
            token,
            version: state.config.xiaozhi.protocol_version,
        },
    })
}

/// The `firmware` section for `device`.
async fn firmware_offer(
    state: &AppState,
    device: &XiaozhiDevice,
    websocket_url: &str,
) -> Result<Option<FirmwareOffer>> {
    let Some(current) = device
        .firmware_version
        .as_deref()
        .and_then(|v| FirmwareVersion::parse(v).map(|parsed| (v, parsed)))
    else {
        return Ok(None);
    };
    // The build variant first, then the board family.
    let boards = [device.board_name.as_deref(), device.board_type.as_deref()];
    for board in boards.into_iter().flatten() {
        if let Some(release) = state.db.newest_firmware(board).await?
            && FirmwareVersion::parse(&release.version).is_some_and(|v| v > current.1)
        {
            let base = http_base(state, websocket_url);
            return Ok(Some(FirmwareOffer {
                url: firmware::download_url(&base, &release),
                version: release.version,
            }));
        }
    }
    Ok(Some(FirmwareOffer {
        version: current.0.to_owned(),
        url: String::new(),
    }))
}

/// The device a channel token opens, when `token` is the current or the
/// previous token handed to `mac` (compared in constant time).
pub async fn authenticate_channel(
    state: &AppState,
    mac: &MacAddress,
    token: &str,
) -> Result<XiaozhiDevice> {
    let refused = || Error::Unauthenticated {
        message: "invalid device token: make an OTA check for a new one",
    };
    let device = state.db.xiaozhi_device(mac).await?.ok_or_else(refused)?;
    let given = token_hash(token);
    let matches = |stored: &Option<String>| {
        stored
            .as_deref()
            .is_some_and(|h| lty_core::secret::constant_time_eq(h.as_bytes(), given.as_bytes()))
    };
    if matches(&device.token_hash) || matches(&device.prev_token_hash) {
        Ok(device)
    } else {
        Err(refused())
    }
}
