//! One-sentence recognition over the NLS WebSocket gateway
//! (`SpeechRecognizer`, aliyun.md §5.5), as lty's [`StreamingAsr`] port.
//!
//! The socket is `wss://<gateway host>/ws/v1` with the token in
//! `X-NLS-Token`. The client sends `StartRecognition` (JSON text) and waits
//! for `RecognitionStarted`; then PCM as binary frames of 100 ms, then
//! `StopRecognition`; the gateway answers `RecognitionCompleted` with the
//! text, or `TaskFailed` with a status at any time. One `task_id` (32 hex)
//! names the whole recognition; every message has a fresh `message_id`.
//!
//! A `TaskFailed` with `40000001` (token refused) before any audio drops
//! the cached token and starts once more with a new one.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::SinkExt;
use lty_core::speech::{AsrSession, StreamingAsr, Transcript};
use lty_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::{NlsSpeech, NlsToken, PROVIDER, SAMPLE_RATE, TOKEN_HEADER, status};
use crate::asr_stream::{self, ConnectError, Step, Ws};

/// `header.namespace` of every message.
pub const NAMESPACE: &str = "SpeechRecognizer";
/// Path of the WebSocket gateway.
pub const WS_PATH: &str = "/ws/v1";
/// Bytes of one audio frame: 100 ms of 16 kHz 16-bit mono.
pub const CHUNK_BYTES: usize = 3200;

/// `header` of a client message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHeader {
    /// 32 hex, new for every message.
    pub message_id: String,
    /// 32 hex, the same for the whole recognition.
    pub task_id: String,
    pub namespace: String,
    /// `StartRecognition` or `StopRecognition`.
    pub name: String,
    /// The project appkey.
    pub appkey: String,
}

/// `payload` of `StartRecognition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartPayload {
    /// `pcm` here (also `opus`).
    pub format: String,
    /// 16000 or 8000.
    pub sample_rate: u32,
    /// Whether `RecognitionResultChanged` events are sent.
    pub enable_intermediate_result: bool,
    pub enable_punctuation_prediction: bool,
    pub enable_inverse_text_normalization: bool,
}

/// A client message: a header and, for `StartRecognition`, a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub header: RequestHeader,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<StartPayload>,
}

/// `header` of a gateway event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHeader {
    #[serde(default)]
    pub namespace: String,
    /// `RecognitionStarted`, `RecognitionResultChanged`,
    /// `RecognitionCompleted` or `TaskFailed`.
    pub name: String,
    /// [`status::SUCCESS`] or an error code.
    pub status: u64,
    #[serde(default)]
    pub status_text: String,
    #[serde(default)]
    pub message_id: String,
    #[serde(default)]
    pub task_id: String,
}

/// `payload` of a result event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPayload {
    /// The text so far, or the final text.
    #[serde(default)]
    pub result: String,
    /// Milliseconds of audio processed.
    #[serde(default)]
    pub duration: Option<u64>,
}

/// A gateway event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub header: EventHeader,
    #[serde(default)]
    pub payload: Option<EventPayload>,
}

/// A random id of 32 lowercase hex digits (`task_id`, `message_id`).
pub fn hex_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The `StartRecognition` message of task `task_id`: 16 kHz PCM,
/// punctuation and inverse text normalization on, no intermediate results.
pub fn start_recognition(appkey: &str, task_id: &str) -> Request {
    Request {
        header: header("StartRecognition", appkey, task_id),
        payload: Some(StartPayload {
            format: "pcm".into(),
            sample_rate: SAMPLE_RATE,
            enable_intermediate_result: false,
            enable_punctuation_prediction: true,
            enable_inverse_text_normalization: true,
        }),
    }
}

/// The `StopRecognition` message of task `task_id` (no payload).
pub fn stop_recognition(appkey: &str, task_id: &str) -> Request {
    Request {
        header: header("StopRecognition", appkey, task_id),
        payload: None,
    }
}

fn header(name: &str, appkey: &str, task_id: &str) -> RequestHeader {
    RequestHeader {
        message_id: hex_id(),
        task_id: task_id.to_owned(),
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
        appkey: appkey.to_owned(),
    }
}

/// The WebSocket gateway of a RESTful gateway origin: the same host,
/// `wss://` for `https://` (`ws://` for `http://`), path [`WS_PATH`].
pub fn ws_url(gateway_url: &str) -> std::result::Result<String, String> {
    let base = gateway_url.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(format!("gateway URL {base} is not http(s)"));
    };
    Ok(format!("{rest}{WS_PATH}"))
}

fn text(req: &Request) -> Result<Message> {
    serde_json::to_string(req)
        .map(|s| Message::Text(s.into()))
        .map_err(|e| asr_stream::upstream(PROVIDER, e.to_string()))
}

/// The error a `TaskFailed` (or a failed completion) stands for.
fn failed(h: &EventHeader) -> Error {
    let code = h.status.to_string();
    let message = format!(
        "{} status {}: {} (task {})",
        h.name, h.status, h.status_text, h.task_id
    );
    match h.status {
        status::TOKEN_INVALID | status::APPKEY_NOT_EXIST | status::NOT_COMMERCIAL => {
            asr_stream::unavailable(PROVIDER, &code, &message)
        }
        status::TOO_MANY_REQUESTS => asr_stream::busy(PROVIDER, &code, &message),
        _ => asr_stream::upstream(PROVIDER, message),
    }
}

/// Parses a gateway text message.
fn event(msg: &Message) -> Result<Event> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).map_err(|e| {
            asr_stream::upstream(PROVIDER, format!("gateway message is not an event: {e}"))
        }),
        _ => Err(asr_stream::upstream(
            PROVIDER,
            "a binary message where JSON events were expected",
        )),
    }
}

/// The NLS side of a streaming session.
struct NlsStream {
    appkey: String,
    task_id: String,
}

impl asr_stream::Protocol for NlsStream {
    fn audio(&mut self, pcm: Bytes) -> Result<Message> {
        Ok(Message::Binary(pcm))
    }

    fn finish(&mut self, tail: Bytes) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(2);
        if !tail.is_empty() {
            out.push(Message::Binary(tail));
        }
        out.push(text(&stop_recognition(&self.appkey, &self.task_id))?);
        Ok(out)
    }

    fn on_message(&mut self, msg: Message) -> Result<Step> {
        let e = event(&msg)?;
        match e.header.name.as_str() {
            "RecognitionCompleted" if e.header.status == status::SUCCESS => {
                tracing::debug!(task_id = %e.header.task_id, "NLS recognition completed");
                Ok(Step::Done(Transcript {
                    text: e.payload.unwrap_or_default().result,
                    confidence: None,
                }))
            }
            "RecognitionCompleted" | "TaskFailed" => Err(failed(&e.header)),
            _ => Ok(Step::Continue),
        }
    }
}

/// Why a start failed.
enum StartFailure {
    /// The gateway refused the token: worth one more try with a new one.
    Token(Error),
    Other(Error),
}

impl NlsSpeech {
    /// Connects with `token` and starts task `task_id`: the socket once
    /// `RecognitionStarted` has come.
    async fn start_recognition(
        &self,
        url: &str,
        token: &NlsToken,
        task_id: &str,
    ) -> std::result::Result<Ws, StartFailure> {
        let config = &self.inner.config;
        let other = |e: Error| StartFailure::Other(e);
        let req = asr_stream::request(url, &[(TOKEN_HEADER, &token.id)])
            .map_err(|e| other(asr_stream::upstream(PROVIDER, e)))?;
        let mut ws = match asr_stream::connect(req, config.connect_timeout).await {
            Ok(ws) => ws,
            Err(ConnectError::Refused { status, body, .. }) => {
                let message = format!("WebSocket handshake refused with HTTP {status}: {body}");
                return Err(match status {
                    401 | 403 => StartFailure::Token(asr_stream::unavailable(
                        PROVIDER,
                        &format!("HTTP {status}"),
                        &message,
                    )),
                    _ => other(asr_stream::upstream(PROVIDER, message)),
                });
            }
            Err(ConnectError::Failed(message)) => {
                return Err(other(asr_stream::upstream(PROVIDER, message)));
            }
        };
        let start = text(&start_recognition(&config.appkey, task_id)).map_err(other)?;
        ws.send(start).await.map_err(|e| {
            other(asr_stream::upstream(
                PROVIDER,
                format!("connection failed: {e}"),
            ))
        })?;
        loop {
            let msg = asr_stream::next_within(&mut ws, config.timeout, PROVIDER)
                .await
                .map_err(other)?;
            let Some(msg) = msg else {
                return Err(other(asr_stream::upstream(
                    PROVIDER,
                    "connection closed before RecognitionStarted",
                )));
            };
            if let Message::Close(frame) = &msg {
                return Err(other(asr_stream::upstream(
                    PROVIDER,
                    format!("connection closed before RecognitionStarted ({frame:?})"),
                )));
            }
            if !matches!(msg, Message::Text(_) | Message::Binary(_)) {
                continue;
            }
            let e = event(&msg).map_err(other)?;
            match e.header.name.as_str() {
                "RecognitionStarted" if e.header.status == status::SUCCESS => return Ok(ws),
                _ if e.header.status == status::TOKEN_INVALID => {
                    return Err(StartFailure::Token(failed(&e.header)));
                }
                "TaskFailed" | "RecognitionStarted" => return Err(other(failed(&e.header))),
                _ => {}
            }
        }
    }
}

#[async_trait]
impl StreamingAsr for NlsSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// Starts a `SpeechRecognizer` task on the gateway's WebSocket.
    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn open(&self) -> Result<Box<dyn AsrSession>> {
        let config = &self.inner.config;
        let url = ws_url(&config.gateway_url).map_err(|e| asr_stream::upstream(PROVIDER, e))?;
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let task_id = hex_id();
            match self.start_recognition(&url, &token, &task_id).await {
                Ok(ws) => {
                    tracing::debug!(%task_id, "NLS streaming recognition open");
                    return Ok(asr_stream::spawn(
                        PROVIDER,
                        ws,
                        NlsStream {
                            appkey: config.appkey.clone(),
                            task_id,
                        },
                        asr_stream::SessionLimits {
                            chunk_bytes: CHUNK_BYTES,
                            timeout: config.timeout,
                            // The gateway wants audio at about real time.
                            pace: Some(asr_stream::Pace {
                                burst: std::time::Duration::from_secs(1),
                                speed: 2.0,
                            }),
                        },
                    ));
                }
                Err(StartFailure::Token(err)) if !refreshed => {
                    tracing::info!(%err, "NLS token refused at StartRecognition; fetching a new one");
                    refreshed = true;
                    self.invalidate(&token).await;
                }
                Err(StartFailure::Token(err) | StartFailure::Other(err)) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_message_has_the_documented_fields() {
        let req = start_recognition("key", "0123456789abcdef0123456789abcdef");
        let json: serde_json::Value = serde_json::to_value(&req).unwrap();
        assert_eq!(json["header"]["namespace"], "SpeechRecognizer");
        assert_eq!(json["header"]["name"], "StartRecognition");
        assert_eq!(json["header"]["appkey"], "key");
        assert_eq!(
            json["header"]["task_id"],
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(json["header"]["message_id"].as_str().unwrap().len(), 32);
        assert_eq!(json["payload"]["format"], "pcm");
        assert_eq!(json["payload"]["sample_rate"], 16_000);
        assert_eq!(json["payload"]["enable_punctuation_prediction"], true);
        let stop = serde_json::to_value(stop_recognition("key", "t")).unwrap();
        assert_eq!(stop["header"]["name"], "StopRecognition");
        assert!(stop.get("payload").is_none());
        assert_ne!(
            stop_recognition("k", "t").header.message_id,
            stop_recognition("k", "t").header.message_id
        );
    }

    #[test]
    fn the_websocket_gateway_is_the_rest_gateway_host_under_ws_v1() {
        assert_eq!(
            ws_url("https://nls-gateway-cn-shanghai.aliyuncs.com").unwrap(),
            "wss://nls-gateway-cn-shanghai.aliyuncs.com/ws/v1"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/ws/v1"
        );
        assert!(ws_url("ftp://x").is_err());
    }

    #[test]
    fn gateway_events_parse_and_failures_are_sorted() {
        let e: Event = serde_json::from_str(
            r#"{"header":{"namespace":"SpeechRecognizer","name":"RecognitionCompleted","status":20000000,"message_id":"m","task_id":"t","status_text":"Gateway:SUCCESS:Success."},"payload":{"result":"你好","duration":1500}}"#,
        )
        .unwrap();
        assert_eq!(e.payload.unwrap().result, "你好");
        let failed_with = |status| {
            failed(&EventHeader {
                namespace: "Default".into(),
                name: "TaskFailed".into(),
                status,
                status_text: "x".into(),
                message_id: String::new(),
                task_id: String::new(),
            })
            .code()
        };
        assert_eq!(failed_with(40_000_001), "provider_unavailable");
        assert_eq!(failed_with(40_020_105), "provider_unavailable");
        assert_eq!(failed_with(40_000_005), "upstream_rate_limited");
        assert_eq!(failed_with(40_000_004), "upstream_error");
        assert_eq!(failed_with(50_000_000), "upstream_error");
    }
}
