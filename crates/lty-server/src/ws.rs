//! The device WebSocket channel: `/ws/device/` (Bearer header) and
//! `/ws/device/token/{token}/` (token in the path), both with an optional
//! `?mac=`. A socket joins the group `device_{user_id}`; text it sends is
//! published to that group (itself included), and group messages come back
//! to it as text frames. With `?since=` a socket resumes: it gets what it
//! missed from the family's replay log, and every message with its id. See
//! docs/realtime.md for the delivery guarantee, resuming and close codes.

pub mod protocol;
pub mod session;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use lty_core::MacAddress;
use serde::Deserialize;

use crate::auth::{bearer_token, resolve_user};
use crate::error::ApiError;
use crate::extract::{ClientIp, Path, Query};
use crate::server::connections::{CapExceeded, SocketSlot};
use crate::state::AppState;

/// WebSocket routes (not in OpenAPI, which cannot describe them; see
/// docs/realtime.md).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/device/", get(connect_with_header))
        .route("/ws/device/token/{token}/", get(connect_with_path_token))
}

/// `?mac=` and `?since=` on the upgrade request.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    pub mac: Option<String>,
    /// Opts into resuming: `now`, or the id of the last message received.
    pub since: Option<String>,
}

fn parse_since(query: &WsQuery) -> Result<Option<protocol::Since>, ApiError> {
    match query.since.as_deref().map(str::trim) {
        None => Ok(None),
        Some(s) => protocol::Since::parse(s).map(Some).ok_or_else(|| {
            lty_core::Error::validation(
                "since",
                "must be `now` or the id of a received message, like 1733541234567-0",
            )
            .into()
        }),
    }
}

fn parse_mac(query: &WsQuery) -> Result<Option<MacAddress>, ApiError> {
    match query.mac.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(m) => Ok(Some(MacAddress::parse(m)?)),
    }
}

async fn connect_with_header(
    State(state): State<AppState>,
    ip: ClientIp,
    Query(query): Query<WsQuery>,
    parts: HeaderToken,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    accept(state, ip, &parts.0, &query, upgrade).await
}

async fn connect_with_path_token(
    State(state): State<AppState>,
    ip: ClientIp,
    Path(token): Path<String>,
    Query(query): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    accept(state, ip, &token, &query, upgrade).await
}

/// Authenticates before upgrading: a bad token gets a 401 JSON answer and
/// no socket; past the per-family or per-IP socket cap, 429
/// `too_many_connections`.
async fn accept(
    state: AppState,
    ip: ClientIp,
    token: &str,
    query: &WsQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let mac = parse_mac(query)?;
    let since = parse_since(query)?;
    let user = resolve_user(&state, token).await?;
    let slot = take_socket_slot(&state, Some(user.id), ip)?;
    let ws = &state.config.ws;
    // tungstenite allocates its read buffer up front and zero-fills all of
    // it on every read: keep it small so an idle socket costs a few KB;
    // larger frames still work (the buffer grows for them).
    let max = ws.max_frame_bytes;
    let fingerprint = protocol::token_fingerprint(token);
    Ok(upgrade
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max.saturating_mul(4).max(64 * 1024))
        .max_frame_size(max.saturating_mul(2))
        .max_message_size(max.saturating_mul(2))
        .on_upgrade(move |socket| {
            // Tracked so that a draining server waits for the close frame;
            // the socket keeps its places under the caps until it closes.
            let tasks = state.socket_tasks.clone();
            tasks.track_future(async move {
                let _slot = slot;
                session::run(socket, state, user.id, mac, since, fingerprint).await;
            })
        }))
}

/// Takes a place under the per-family and per-IP socket caps for a socket
/// of family `user_id` (`None`: a device bound to no family) from `ip`, or
/// answers 429 `too_many_connections` naming the full cap (counted in
/// `lty_ws_refused_total`). Device sockets and xiaozhi channels share the
/// caps; loopback is counted unless `limits.exempt_loopback`.
pub fn take_socket_slot(
    state: &AppState,
    user_id: Option<i64>,
    ip: ClientIp,
) -> Result<SocketSlot, ApiError> {
    let ws = &state.config.ws;
    let counted_ip = !(state.config.limits.exempt_loopback && ip.0.is_loopback());
    state
        .sockets
        .take(
            user_id,
            counted_ip.then_some(ip.0),
            ws.max_sockets_per_user,
            ws.max_sockets_per_ip,
        )
        .map_err(|cap| {
            let (label, message) = match cap {
                CapExceeded::User => ("user", "too many open sockets for this family"),
                CapExceeded::Ip => ("ip", "too many open sockets from this address"),
            };
            metrics::counter!("lty_ws_refused_total", "cap" => label).increment(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                message,
            )
        })
}

/// Closes every device socket of `user_id`'s family, on every instance
/// (close code 4001), e.g. once the account is disabled.
pub async fn kick_user(state: &AppState, user_id: i64) -> Result<(), ApiError> {
    state
        .pubsub
        .publish_control(
            &protocol::device_group(user_id),
            protocol::kick_all_message(),
        )
        .await?;
    Ok(())
}

/// The Bearer token of the upgrade request.
struct HeaderToken(String);

impl FromRequestParts<AppState> for HeaderToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        bearer_token(parts).map(|t| Self(t.to_owned()))
    }
}
