//! One device socket: a single task that multiplexes the socket, the
//! family's group queue, the device's kick group, pings and shutdown. A
//! resuming socket (`?since=`) first gets the family's replay log after its
//! cursor, then live messages, each once (ids at or below the last one sent
//! are dropped: the queue may hold messages that were also replayed).

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use lty_core::MacAddress;
use lty_core::ports::{LogId, Replay};
use tracing::Instrument;

use super::protocol::{
    CLOSE_ACCOUNT_DISABLED, CLOSE_INVALID_PAYLOAD, CLOSE_LOGGED_OUT, CLOSE_PING_TIMEOUT,
    CLOSE_SERVICE_RESTART, CLOSE_TOO_BIG, CLOSE_TOO_SLOW, CLOSE_UNBOUND, CONTROL, ErrorFrame,
    Since, cursor_frame, device_group, envelope, is_kick_all, parse_kick, parse_kick_token,
};
use crate::app::devices::SeenRecorder;
use crate::state::AppState;

/// Keeps the open-socket gauge right however the session ends.
struct OpenGauge;

impl OpenGauge {
    fn open() -> Self {
        metrics::gauge!("lty_ws_open_connections").increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("lty_ws_open_connections").decrement(1.0);
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// Whether a read error is tungstenite refusing a frame or message larger
/// than the limits set at the upgrade (its `Error::Capacity`, "Space limit
/// exceeded"). axum does not expose tungstenite's error type, so this reads
/// the message; a test sends such a frame and expects 1009.
fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if e.to_string().contains("Space limit exceeded") {
            return true;
        }
        source = e.source();
    }
    false
}

/// Runs the socket until it closes. `token` is the fingerprint of the
/// token that opened it ([`super::protocol::token_fingerprint`]): a
/// logout of that token closes it.
pub async fn run(
    socket: WebSocket,
    state: AppState,
    user_id: i64,
    mac: Option<MacAddress>,
    since: Option<Since>,
    token: String,
) {
    let span = tracing::debug_span!("ws", user_id, mac = ?mac.map(|m| m.to_string()));
    session(socket, state, user_id, mac, since, token)
        .instrument(span)
        .await;
}

/// Where a resuming socket stands.
struct Resume {
    /// The id of the last message sent to it, if any.
    last: Option<LogId>,
}

/// Sends a resuming socket what it missed after its cursor (or tells it
/// where it stands) and returns its state; `None` when the socket closed.
async fn resume(
    socket: &mut WebSocket,
    state: &AppState,
    group: &str,
    since: Since,
) -> Option<Resume> {
    let replay = match since {
        Since::Now => None,
        Since::After(cursor) => match state.pubsub.replay(group, cursor).await {
            Ok(Replay::After(missed)) => Some((cursor, missed)),
            Ok(Replay::Gap) => None,
            Err(err) => {
                tracing::warn!(%err, "cannot read the replay log; asking for a resync");
                None
            }
        },
    };
    if let Some((cursor, missed)) = replay {
        let mut last = cursor;
        metrics::counter!("lty_ws_replayed_total").increment(missed.len() as u64);
        for (id, payload) in missed {
            let Ok(text) = std::str::from_utf8(&payload) else {
                continue;
            };
            let frame = envelope(Some(id), text);
            socket.send(Message::Text(frame.into())).await.ok()?;
            last = id;
        }
        return Some(Resume { last: Some(last) });
    }
    let kind = match since {
        Since::Now => "cursor",
        Since::After(_) => {
            metrics::counter!("lty_ws_resyncs_total").increment(1);
            "resync"
        }
    };
    match state.pubsub.head(group).await {
        Ok(head) => {
            let frame = cursor_frame(kind, head);
            socket.send(Message::Text(frame.into())).await.ok()?;
        }
        Err(err) => {
            tracing::warn!(%err, "cannot read the replay log head");
            let frame = ErrorFrame::new(
                "resume_unavailable",
                "no cursor now; messages still come with ids",
            );
            socket
                .send(Message::Text(frame.to_json().into()))
                .await
                .ok()?;
        }
    }
    // Everything queued since the subscription is new to this socket.
    Some(Resume { last: None })
}

async fn session(
    mut socket: WebSocket,
    state: AppState,
    user_id: i64,
    mac: Option<MacAddress>,
    since: Option<Since>,
    token: String,
) {
    let _gauge = OpenGauge::open();
    let ws = state.config.ws.clone();
    let group = device_group(user_id);
    let mut sub = state.pubsub.subscribe(&group, ws.queue_capacity);
    // Checked once subscribed: an account disabled while this socket was
    // being accepted published its close before the subscription existed.
    match state
        .cache
        .get(&crate::app::auth::disabled_key(user_id))
        .await
    {
        Ok(Some(_)) => {
            close(&mut socket, CLOSE_ACCOUNT_DISABLED, "account disabled").await;
            return;
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(%err, "cannot check whether the account is disabled"),
    }
    let mut last_seen = mac.as_ref().map(SeenRecorder::new);
    if let Some(seen) = last_seen.as_mut() {
        seen.touch(&state).await;
    }
    // Subscribed before reading the log: a message published meanwhile is
    // in the log, the queue, or both (then dropped by id below).
    let mut resumed = match since {
        Some(since) => match resume(&mut socket, &state, &group, since).await {
            Some(r) => Some(r),
            None => return,
        },
        None => None,
    };
    tracing::debug!(resuming = resumed.is_some(), "device socket open");

    let period = Duration::from_secs(ws.ping_interval_secs);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    let shutdown = state.shutdown.clone();

    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                close(&mut socket, CLOSE_SERVICE_RESTART, "server restarting; reconnect").await;
                break;
            }
            incoming = socket.recv() => match incoming {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Err(err)) => {
                    // tungstenite reports invalid UTF-8, protocol errors and
                    // frames past its size limit here.
                    tracing::debug!(%err, "device socket error");
                    if is_too_big(&err) {
                        close(&mut socket, CLOSE_TOO_BIG, "message too big").await;
                    } else {
                        close(&mut socket, CLOSE_INVALID_PAYLOAD, "invalid frame").await;
                    }
                    break;
                }
                Some(Ok(Message::Text(text))) => {
                    awaiting_pong = false;
                    if text.len() > ws.max_frame_bytes {
                        close(&mut socket, CLOSE_TOO_BIG, "message too big").await;
                        break;
                    }
                    metrics::counter!("lty_ws_messages_in_total").increment(1);
                    if let Some(seen) = last_seen.as_mut() {
                        seen.touch(&state).await;
                    }
                    let started = Instant::now();
                    let published = state.pubsub.publish(&group, Bytes::from(text)).await;
                    metrics::histogram!("lty_pubsub_publish_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    if let Err(err) = published {
                        tracing::warn!(%err, "publish from device socket failed");
                        let frame = ErrorFrame::new("publish_failed", "message not delivered; retry");
                        if socket.send(Message::Text(frame.to_json().into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let frame = ErrorFrame::new(
                        "binary_not_supported",
                        "send JSON text frames on this channel",
                    );
                    if socket.send(Message::Text(frame.to_json().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Pong(_))) => {
                    awaiting_pong = false;
                    if let Some(seen) = last_seen.as_mut() {
                        seen.touch(&state).await;
                    }
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_))) => awaiting_pong = false,
            },
            message = sub.recv_message() => match message {
                Some(message) if message.payload.first() == Some(&CONTROL) => {
                    let payload = message.payload;
                    if is_kick_all(&payload) {
                        close(&mut socket, CLOSE_ACCOUNT_DISABLED, "account disabled").await;
                        break;
                    }
                    if mac.is_some() && parse_kick(&payload) == mac {
                        close(&mut socket, CLOSE_UNBOUND, "device binding changed").await;
                        break;
                    }
                    if parse_kick_token(&payload) == Some(token.as_bytes()) {
                        close(&mut socket, CLOSE_LOGGED_OUT, "logged out").await;
                        break;
                    }
                }
                Some(message) => {
                    let Ok(text) = Utf8Bytes::try_from(message.payload) else {
                        continue;
                    };
                    let frame = match resumed.as_mut() {
                        // Legacy sockets get the message exactly as published.
                        None => text,
                        Some(resume) => {
                            if let (Some(id), Some(last)) = (message.id, resume.last)
                                && id <= last
                            {
                                continue;
                            }
                            resume.last = message.id.or(resume.last);
                            envelope(message.id, text.as_str()).into()
                        }
                    };
                    if socket.send(Message::Text(frame)).await.is_err() {
                        break;
                    }
                    metrics::counter!("lty_ws_messages_out_total").increment(1);
                }
                None => {
                    if sub.overflowed() {
                        metrics::counter!("lty_ws_closed_slow_total").increment(1);
                        tracing::warn!("device socket too slow; closing it");
                        close(&mut socket, CLOSE_TOO_SLOW, "too slow; reconnect").await;
                    }
                    break;
                }
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    metrics::counter!("lty_ws_ping_timeouts_total").increment(1);
                    close(&mut socket, CLOSE_PING_TIMEOUT, "ping timeout").await;
                    break;
                }
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
                awaiting_pong = true;
            }
        }
    }
    tracing::debug!("device socket closed");
}
