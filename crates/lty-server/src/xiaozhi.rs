//! The xiaozhi-esp32 device channel: devices running the open-source
//! xiaozhi firmware (spec: `shared/devices/xiaozhi-protocol.md`). The OTA
//! check, activation and firmware downloads are HTTP routes in
//! [`crate::http::xiaozhi`]; this is the WebSocket voice channel
//! `/xiaozhi/v1/`: JSON control messages, Opus audio in binary frames of
//! framing version 1, 2 or 3, MCP, adapted to lty's services (the one chat
//! turn, speech, the family's device group).

pub mod framing;
mod mcp;
pub mod session;
mod speaker;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use lty_core::MacAddress;

use crate::app::xiaozhi::authenticate_channel;
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::AppState;
use framing::ProtocolVersion;

/// The voice channel routes (not in OpenAPI, which cannot describe them;
/// see docs/xiaozhi.md).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/xiaozhi/v1/", get(connect))
        .route("/xiaozhi/v1", get(connect))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The token of `Authorization`: after `Bearer ` (the firmware adds it to
/// a token without a space), else the whole value.
fn token(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?;
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Some(rest.trim()),
        _ => Some(value),
    }
}

/// Authenticates before upgrading: a bad token or device gets a 401 JSON
/// answer and no socket (the device shows "cannot connect" and goes idle);
/// past the per-family or per-IP socket cap, which device sockets share,
/// 429 `too_many_connections`.
async fn connect(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let mac = MacAddress::parse(header(&headers, "device-id").ok_or_else(|| {
        lty_core::Error::validation(
            "Device-Id",
            "the Device-Id header (the device's MAC) is required",
        )
    })?)?;
    let version = match header(&headers, "protocol-version") {
        None => ProtocolVersion::V1,
        Some(v) => ProtocolVersion::parse(v)
            .map_err(|_| lty_core::Error::validation("Protocol-Version", "must be 1, 2 or 3"))?,
    };
    let token = token(&headers).ok_or(lty_core::Error::Unauthenticated {
        message: "missing device token: make an OTA check for one",
    })?;
    let device = authenticate_channel(&state, &mac, token).await?;
    let now = Utc::now();
    let binding = state.db.latest_binding(&mac).await?;
    let user_id = binding.map(|b| b.user_id);
    let slot = crate::ws::take_socket_slot(&state, user_id, ip)?;
    let window = chrono::Duration::seconds(
        i64::try_from(state.config.xiaozhi.context_window_secs).unwrap_or(i64::MAX / 2),
    );
    let conversation_id = device
        .conversation_id
        .filter(|_| device.conversation_at.is_some_and(|at| now - at < window));
    state
        .db
        .note_xiaozhi_channel(&mac, i16::from(version.number()), now)
        .await?;
    let device = session::Device {
        mac,
        user_id,
        version,
        conversation_id,
    };
    // As for device sockets (ws.rs): a small read buffer keeps an idle
    // channel cheap; a larger frame grows it.
    Ok(upgrade
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_frame_size(64 * 1024)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| {
            // The channel keeps its places under the caps until it closes.
            let sockets = state.socket_tasks.clone();
            sockets.track_future(async move {
                let _slot = slot;
                session::run(socket, state, device).await;
            })
        }))
}
