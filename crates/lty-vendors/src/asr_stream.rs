//! What the streaming recognizers (huoshan, Aliyun NLS, Tencent) share: the
//! WebSocket connect with a bounded handshake, the task that owns an open
//! socket for one utterance, and the [`AsrSession`] handed to callers.
//!
//! A session packs pushed PCM into the provider's packet size and hands the
//! packets to its task through a bounded channel; the task writes them,
//! reads the provider's answers all along (so an error mid-stream is seen
//! at once), and on finish waits for the final transcript within a time
//! bound. A session dropped before `finish` drops the channel: the task
//! then closes the connection with a WebSocket close frame and ends.
//!
//! Errors follow one convention for every provider: credentials or an
//! account the provider refuses are `provider_unavailable` (503, an
//! operator must act), a provider over its concurrency or rate limit is
//! `upstream_rate_limited` (429), anything else is `upstream_error` (502);
//! the vendor's code is in the details and the log.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use lty_core::speech::{AsrSession, Transcript, extend_pcm16le};
use lty_core::{Error, ErrorKind, Result};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open provider socket (`ws://` or `wss://` with rustls).
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Packets a session may queue ahead of its task (at 100–200 ms each,
/// several seconds of audio).
const QUEUE: usize = 32;
/// How long a closing handshake may take once the outcome is known.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long to read on after a failed write, for the provider's reason.
const REASON_GRACE: Duration = Duration::from_secs(1);

/// An upstream failure of `provider` (502 `upstream_error`).
pub(crate) fn upstream(provider: &'static str, message: impl Into<String>) -> Error {
    Error::Upstream {
        provider,
        message: message.into(),
    }
}

/// The provider refuses this server until an operator acts (wrong
/// credentials, service not enabled, account in arrears): 503
/// `provider_unavailable` with the vendor code.
pub(crate) fn unavailable(provider: &'static str, vendor_code: &str, message: &str) -> Error {
    tracing::error!(
        provider,
        vendor_code,
        message,
        "speech provider refuses this server"
    );
    Error::coded(
        ErrorKind::Unavailable,
        "provider_unavailable",
        format!("{provider} cannot be used right now"),
    )
    .with_details(json!({ "provider": provider, "vendor_code": vendor_code }))
}

/// The provider is over its concurrency or rate limit: 429
/// `upstream_rate_limited`, worth another try in a second.
pub(crate) fn busy(provider: &'static str, vendor_code: &str, message: &str) -> Error {
    tracing::warn!(provider, vendor_code, message, "speech provider is busy");
    Error::coded(
        ErrorKind::Limited,
        "upstream_rate_limited",
        format!("{provider} is busy; retry in 1 s"),
    )
    .with_retry_after(1)
    .with_details(json!({ "provider": provider, "vendor_code": vendor_code, "retry_after": 1 }))
}

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The server answered the upgrade with a status other than 101.
    Refused {
        status: u16,
        headers: Box<HeaderMap>,
        /// The start of the answer's body, as text.
        body: String,
    },
    /// No connection: a bad URL, DNS, TCP, TLS, or no answer in time.
    Failed(String),
}

/// Builds the upgrade request for `url`; `headers` are added to it.
pub(crate) fn request(url: &str, headers: &[(&str, &str)]) -> Result<Request, String> {
    let mut req = url
        .into_client_request()
        .map_err(|e| format!("bad WebSocket URL: {e}"))?;
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("bad header name {name}"))?;
        let value = tokio_tungstenite::tungstenite::http::HeaderValue::from_str(value)
            .map_err(|_| format!("header {name} is not a valid header value"))?;
        req.headers_mut().insert(name, value);
    }
    Ok(req)
}

/// Opens `req` (rustls for `wss://`, no Nagle delay) within `timeout`.
pub(crate) async fn connect(req: Request, timeout: Duration) -> Result<Ws, ConnectError> {
    let connect = tokio_tungstenite::connect_async_with_config(req, None, true);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(ConnectError::Failed(format!(
            "no WebSocket connection within {} s",
            timeout.as_secs_f32()
        ))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Http(res))) => {
            let body = res
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned())
                .unwrap_or_default();
            Err(ConnectError::Refused {
                status: res.status().as_u16(),
                headers: Box::new(res.headers().clone()),
                body,
            })
        }
        Ok(Err(e)) => Err(ConnectError::Failed(format!(
            "WebSocket connection failed: {e}"
        ))),
    }
}

/// Reads the next message within `timeout`: `Ok(None)` when the stream
/// ended, an error for a broken connection or silence.
pub(crate) async fn next_within(
    ws: &mut Ws,
    timeout: Duration,
    provider: &'static str,
) -> Result<Option<Message>> {
    match tokio::time::timeout(timeout, ws.next()).await {
        Err(_) => Err(upstream(
            provider,
            format!("no answer within {} s", timeout.as_secs_f32()),
        )),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(upstream(provider, format!("connection failed: {e}"))),
        Ok(Some(Ok(m))) => Ok(Some(m)),
    }
}

/// What a provider's answer means for the session.
pub(crate) enum Step {
    /// Keep going (a partial result, an acknowledgement, a ping).
    Continue,
    /// The final transcript.
    Done(Transcript),
}

/// One provider's streaming protocol on an open socket, after its own
/// opening exchange.
pub(crate) trait Protocol: Send + 'static {
    /// The message carrying one packet of PCM (not the last).
    fn audio(&mut self, pcm: Bytes) -> Result<Message>;
    /// The messages carrying the last PCM (possibly none) and ending the
    /// utterance.
    fn finish(&mut self, tail: Bytes) -> Result<Vec<Message>>;
    /// Reads one text or binary message from the provider.
    fn on_message(&mut self, msg: Message) -> Result<Step>;
}

/// A bound on how fast audio goes out: at most `burst` ahead of
/// `speed` × real time, for providers that refuse audio sent too fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub burst: Duration,
    pub speed: f64,
}

/// How a session packs and waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// Bytes of PCM per packet.
    pub chunk_bytes: usize,
    /// Bound on the final answer once the utterance ends, and on a push
    /// waiting for a provider that takes no audio.
    pub timeout: Duration,
    pub pace: Option<Pace>,
}

enum Command {
    Audio(Bytes),
    Finish(Bytes),
}

/// Starts the task owning `ws` and returns the caller's session.
pub(crate) fn spawn(
    provider: &'static str,
    ws: Ws,
    protocol: impl Protocol,
    limits: SessionLimits,
) -> Box<dyn AsrSession> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (outcome_tx, outcome_rx) = oneshot::channel();
    tokio::spawn(run(provider, ws, protocol, rx, outcome_tx, limits));
    Box::new(WsSession {
        provider,
        tx,
        outcome: Some(outcome_rx),
        pending: Vec::with_capacity(limits.chunk_bytes * 2),
        limits,
    })
}

/// The caller's side of a streaming session.
struct WsSession {
    provider: &'static str,
    tx: mpsc::Sender<Command>,
    /// Taken once the task's failure has been reported.
    outcome: Option<oneshot::Receiver<Result<Transcript>>>,
    /// PCM not yet packed into a packet.
    pending: Vec<u8>,
    limits: SessionLimits,
}

impl WsSession {
    /// Why the task ended before the caller finished.
    async fn task_error(&mut self) -> Error {
        match self.outcome.take() {
            Some(rx) => match rx.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => upstream(self.provider, "the provider ended the utterance early"),
                Err(_) => upstream(self.provider, "the session ended"),
            },
            None => upstream(self.provider, "the session failed earlier"),
        }
    }

    async fn send(&mut self, cmd: Command) -> Result<()> {
        match tokio::time::timeout(self.limits.timeout, self.tx.send(cmd)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.task_error().await),
            Err(_) => Err(upstream(
                self.provider,
                format!(
                    "the provider took no audio for {} s",
                    self.limits.timeout.as_secs_f32()
                ),
            )),
        }
    }
}

#[async_trait]
impl AsrSession for WsSession {
    async fn push(&mut self, pcm: &[i16]) -> Result<()> {
        if self.tx.is_closed() {
            return Err(self.task_error().await);
        }
        extend_pcm16le(&mut self.pending, pcm);
        let chunk = self.limits.chunk_bytes;
        while self.pending.len() >= chunk {
            let rest = self.pending.split_off(chunk);
            let packet = std::mem::replace(&mut self.pending, rest);
            self.send(Command::Audio(Bytes::from(packet))).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Transcript> {
        let tail = Bytes::from(std::mem::take(&mut self.pending));
        self.send(Command::Finish(tail)).await?;
        let Some(rx) = self.outcome.take() else {
            return Err(upstream(self.provider, "the session failed earlier"));
        };
        // The task bounds its own wait; this only guards against a bug there.
        match tokio::time::timeout(self.limits.timeout * 2 + CLOSE_GRACE, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(upstream(self.provider, "the session ended")),
            Err(_) => Err(upstream(self.provider, "no final result in time")),
        }
    }
}

/// How the task's loop ended.
enum End {
    /// The caller dropped the session (or stopped waiting for it).
    Cancelled,
    /// The transcript or the failure.
    Outcome(Result<Transcript>),
}

async fn run(
    provider: &'static str,
    mut ws: Ws,
    mut protocol: impl Protocol,
    mut rx: mpsc::Receiver<Command>,
    mut outcome: oneshot::Sender<Result<Transcript>>,
    limits: SessionLimits,
) {
    let end = drive(
        provider,
        &mut ws,
        &mut protocol,
        &mut rx,
        &mut outcome,
        limits,
    )
    .await;
    // Pushes fail from now on.
    drop(rx);
    match end {
        End::Cancelled => tracing::debug!(provider, "streaming recognition cancelled"),
        End::Outcome(result) => {
            if let Err(e) = &result {
                tracing::debug!(provider, error = %e, "streaming recognition failed");
            }
            let _ = outcome.send(result);
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

async fn drive(
    provider: &'static str,
    ws: &mut Ws,
    protocol: &mut impl Protocol,
    rx: &mut mpsc::Receiver<Command>,
    outcome: &mut oneshot::Sender<Result<Transcript>>,
    limits: SessionLimits,
) -> End {
    let started = Instant::now();
    let mut sent_bytes: usize = 0;
    let mut finished_at: Option<Instant> = None;
    loop {
        let deadline = finished_at.map(|t| t + limits.timeout);
        tokio::select! {
            _ = outcome.closed() => return End::Cancelled,
            cmd = rx.recv(), if finished_at.is_none() => {
                let messages = match cmd {
                    None => return End::Cancelled,
                    Some(Command::Audio(pcm)) => {
                        sent_bytes += pcm.len();
                        protocol.audio(pcm).map(|m| vec![m])
                    }
                    Some(Command::Finish(tail)) => {
                        sent_bytes += tail.len();
                        finished_at = Some(Instant::now());
                        protocol.finish(tail)
                    }
                };
                let messages = match messages {
                    Ok(m) => m,
                    Err(e) => return End::Outcome(Err(e)),
                };
                if let Some(pace) = limits.pace {
                    pace_until(started, sent_bytes, pace).await;
                }
                for m in messages {
                    if let Err(e) = ws.send(m).await {
                        return End::Outcome(Err(reason_after_send_error(provider, ws, protocol, e).await));
                    }
                }
            }
            next = next_until(ws, deadline) => match next {
                None => return End::Outcome(Err(upstream(provider, format!(
                    "no final result within {} s of the end of the utterance",
                    limits.timeout.as_secs_f32()
                )))),
                Some(None) => return End::Outcome(Err(upstream(
                    provider,
                    "connection closed before the final result",
                ))),
                Some(Some(Err(e))) => return End::Outcome(Err(upstream(
                    provider,
                    format!("connection failed before the final result: {e}"),
                ))),
                Some(Some(Ok(msg))) => match read(provider, protocol, msg) {
                    Ok(Step::Continue) => {}
                    Ok(Step::Done(t)) => return End::Outcome(Ok(t)),
                    Err(e) => return End::Outcome(Err(e)),
                },
            },
        }
    }
}

/// Hands text and binary messages to `protocol`; a close frame before the
/// final result is a failure, pings and pongs are answered by the library.
fn read(provider: &'static str, protocol: &mut impl Protocol, msg: Message) -> Result<Step> {
    match msg {
        Message::Text(_) | Message::Binary(_) => protocol.on_message(msg),
        Message::Close(frame) => Err(upstream(
            provider,
            format!(
                "connection closed before the final result{}",
                frame
                    .map(|f| format!(" ({} {})", f.code, f.reason))
                    .unwrap_or_default()
            ),
        )),
        _ => Ok(Step::Continue),
    }
}

/// The next message, or `None` once `deadline` passes.
async fn next_until(
    ws: &mut Ws,
    deadline: Option<Instant>,
) -> Option<Option<std::result::Result<Message, WsError>>> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, ws.next()).await.ok(),
        None => Some(ws.next().await),
    }
}

/// Sleeps until `sent_bytes` of audio are within `pace` of real time.
async fn pace_until(started: Instant, sent_bytes: usize, pace: Pace) {
    tokio::time::sleep_until(started + pace_delay(sent_bytes, pace)).await;
}

/// How long after the start `sent_bytes` of audio may be out under `pace`.
fn pace_delay(sent_bytes: usize, pace: Pace) -> Duration {
    // 16 kHz, 16-bit mono: 32 bytes per millisecond.
    let audio = Duration::from_millis((sent_bytes / 32) as u64);
    audio
        .saturating_sub(pace.burst)
        .div_f64(pace.speed.max(0.1))
}

/// After a write failed, the provider's own reason when it sent one just
/// before closing, else the write error.
async fn reason_after_send_error(
    provider: &'static str,
    ws: &mut Ws,
    protocol: &mut impl Protocol,
    err: WsError,
) -> Error {
    let until = Instant::now() + REASON_GRACE;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, ws.next()).await {
        match read(provider, protocol, msg) {
            Err(e) => return e,
            Ok(Step::Done(_)) => break,
            Ok(Step::Continue) => {}
        }
    }
    upstream(
        provider,
        format!("connection failed while sending audio: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_lets_the_burst_through_then_holds_to_the_speed() {
        let pace = Pace {
            burst: Duration::from_secs(1),
            speed: 2.0,
        };
        // One second of audio (32 000 bytes) goes at once.
        assert_eq!(pace_delay(32_000, pace), Duration::ZERO);
        assert_eq!(pace_delay(100, pace), Duration::ZERO);
        // Three seconds need one more second at twice real time.
        assert_eq!(pace_delay(96_000, pace), Duration::from_secs(1));
    }

    #[test]
    fn refusals_and_limits_carry_the_provider_and_vendor_code() {
        let e = unavailable("tencent", "4002", "auth failed");
        assert_eq!(e.code(), "provider_unavailable");
        let Error::Coded(c) = &e else { panic!() };
        assert_eq!(c.kind, ErrorKind::Unavailable);
        assert_eq!(
            c.details,
            Some(json!({"provider": "tencent", "vendor_code": "4002"}))
        );
        let e = busy("aliyun", "40000005", "too many");
        assert_eq!(e.code(), "upstream_rate_limited");
        let Error::Coded(c) = &e else { panic!() };
        assert_eq!(c.retry_after_secs, Some(1));
        assert!(matches!(
            upstream("huoshan", "x"),
            Error::Upstream {
                provider: "huoshan",
                ..
            }
        ));
    }
}
