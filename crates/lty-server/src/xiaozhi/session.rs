//! One xiaozhi voice channel (spec §3–§5): the hello exchange, listening
//! (manual, auto and realtime modes, with server-side VAD), the voice turn
//! (ASR streamed while the child speaks, the one chat turn, the spoken
//! reply), barge-in and abort, MCP, pushes from the family's group, and
//! liveness as the firmware does it.
//!
//! One task owns the connection's state and reads the socket; a writer task
//! owns the socket's sending half. A response (transcript → reply → audio)
//! runs on a task of its own under a generation number: an `abort`, a new
//! `listen start` or a barge-in bumps the generation, aborts that task
//! (dropping the chat turn cancels the model's request and stores what was
//! said as incomplete) and sends `tts stop`; the writer drops anything
//! still queued from an older generation, so no stale frame follows the
//! stop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use lty_core::MacAddress;
use lty_core::speech::Transcript;
use rand::RngCore;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::framing::{self, ProtocolVersion};
use super::mcp::McpClient;
use super::speaker::{self, Downlink};
use crate::app::audio::opus::OpusDecoder;
use crate::app::audio::vad::{Vad, VadConfig, VadEvent};
use crate::app::chat::turn::{self, Delivery, Outcome, Style, Thread, TurnEvent, TurnRequest};
use crate::app::devices::SeenRecorder;
use crate::state::AppState;
use crate::ws::protocol::{CLOSE_SERVICE_RESTART, CONTROL, device_group, is_kick_all, parse_kick};

/// Uplink PCM rate (the firmware's constant).
const UPLINK_RATE: u32 = 16_000;
/// Audio kept from before the VAD noticed speech, so its onset reaches ASR.
const PREROLL_FRAMES: usize = 5;
/// Close code: nothing was said for `xiaozhi.idle_close_secs`.
const CLOSE_IDLE: u16 = 4000;

/// What the writer task sends.
#[derive(Debug)]
pub enum Outbound {
    /// A message sent whatever the generation.
    Now(Message),
    /// A message of a response's generation: dropped when a newer one has
    /// begun.
    Tagged(u64, Message),
    /// Our Close frame; the writer stops after it.
    Close(u16, &'static str),
}

impl Outbound {
    /// A JSON text message.
    pub fn text(value: Value) -> Message {
        Message::Text(Utf8Bytes::from(value.to_string()))
    }

    /// A binary frame.
    pub fn binary(frame: Bytes) -> Message {
        Message::Binary(frame)
    }

    /// A JSON message sent whatever the generation.
    pub fn now(value: Value) -> Self {
        Self::Now(Self::text(value))
    }

    fn json_text(value: String) -> Self {
        Self::Now(Message::Text(Utf8Bytes::from(value)))
    }
}

/// What an authenticated upgrade knows about the device.
#[derive(Debug, Clone)]
pub struct Device {
    pub mac: MacAddress,
    /// The family it is bound to; `None` while it is not (it still gets a
    /// proper hello, then a spoken activation prompt).
    pub user_id: Option<i64>,
    pub version: ProtocolVersion,
    /// The conversation its turns continue, when recent enough.
    pub conversation_id: Option<i64>,
}

/// The listening modes of `listen start` (spec §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Manual,
    Realtime,
}

/// Audio on its way to the ASR provider while the child speaks.
struct AsrFeed {
    pcm: mpsc::Sender<Vec<i16>>,
    result: JoinHandle<lty_core::Result<Transcript>>,
}

/// Streams `pcm` chunks into a recognition session; the transcript once the
/// sender is dropped.
fn open_asr(state: &AppState) -> AsrFeed {
    let (tx, mut rx) = mpsc::channel::<Vec<i16>>(64);
    let state = state.clone();
    let result = tokio::spawn(async move {
        let asr = state.speech.streaming_asr()?.clone();
        let started = std::time::Instant::now();
        let mut session = asr.open().await?;
        while let Some(chunk) = rx.recv().await {
            session.push(&chunk).await?;
        }
        let tail = std::time::Instant::now();
        let transcript = session.finish().await;
        metrics::histogram!("lty_xiaozhi_asr_finish_seconds", "provider" => asr.provider())
            .record(tail.elapsed().as_secs_f64());
        metrics::histogram!("lty_xiaozhi_asr_seconds", "provider" => asr.provider())
            .record(started.elapsed().as_secs_f64());
        transcript
    });
    AsrFeed { pcm: tx, result }
}

/// The child's current utterance.
struct Listening {
    mode: Mode,
    vad: Vad,
    /// Recent frames from before speech was detected.
    preroll: VecDeque<Vec<i16>>,
    asr: Option<AsrFeed>,
}

impl Listening {
    fn new(mode: Mode, state: &AppState) -> Self {
        let x = &state.config.xiaozhi;
        let mut listening = Self {
            mode,
            vad: Vad::new(VadConfig {
                threshold_dbfs: x.vad_threshold_dbfs,
                end_silence_ms: x.vad_end_silence_ms,
                ..VadConfig::default()
            }),
            preroll: VecDeque::new(),
            asr: None,
        };
        // In manual mode the button decides: everything is the utterance.
        if mode == Mode::Manual {
            listening.asr = Some(open_asr(state));
        }
        listening
    }

    /// Feeds one decoded frame; `true` when the VAD ends the utterance.
    fn push(&mut self, state: &AppState, pcm: Vec<i16>) -> (bool, bool) {
        let event = self.vad.push(&pcm);
        let started = event == VadEvent::SpeechStarted;
        if started && self.asr.is_none() {
            let feed = open_asr(state);
            for frame in self.preroll.drain(..) {
                let _ = feed.pcm.try_send(frame);
            }
            self.asr = Some(feed);
        }
        match &self.asr {
            Some(feed) => {
                if feed.pcm.try_send(pcm).is_err() {
                    tracing::debug!("ASR feed full; a frame was dropped");
                }
            }
            None => {
                self.preroll.push_back(pcm);
                if self.preroll.len() > PREROLL_FRAMES {
                    self.preroll.pop_front();
                }
            }
        }
        let ended = event == VadEvent::SpeechEnded && self.mode != Mode::Manual;
        (started, ended)
    }
}

/// Keeps the connection gauge right however the session ends.
struct Gauge;

impl Gauge {
    fn open() -> Self {
        metrics::gauge!("lty_xiaozhi_connections").increment(1.0);
        Self
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!("lty_xiaozhi_connections").decrement(1.0);
    }
}

/// The connection's state.
struct Session {
    state: AppState,
    device: Device,
    session_id: String,
    out: mpsc::Sender<Outbound>,
    generation: Arc<AtomicU64>,
    /// Boxed: a decoder's state is about 10 KB, which an idle channel
    /// would otherwise carry inline even while it has none.
    decoder: Option<Box<OpusDecoder>>,
    listening: Option<Listening>,
    responding: Option<JoinHandle<()>>,
    mcp: Arc<McpClient>,
    hello_done: bool,
    last_voice: Instant,
    seen: SeenRecorder,
}

/// Runs a channel until it ends.
pub async fn run(socket: WebSocket, state: AppState, device: Device) {
    let span = tracing::info_span!("xiaozhi", mac = %device.mac, user_id = ?device.user_id);
    serve(socket, state, device).instrument(span).await;
}

async fn serve(socket: WebSocket, state: AppState, device: Device) {
    let _gauge = Gauge::open();
    let (sink, mut stream) = socket.split();
    let (out, rx) = mpsc::channel::<Outbound>(64);
    let generation = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write(sink, rx, generation.clone()));
    let mut raw = [0u8; 12];
    rand::rng().fill_bytes(&mut raw);
    let mcp_timeout = Duration::from_secs(state.config.xiaozhi.mcp_timeout_secs.max(1));
    let idle = Duration::from_secs(state.config.xiaozhi.idle_close_secs.max(1));
    let shutdown = state.shutdown.clone();
    let mut sub = device.user_id.map(|id| {
        state
            .pubsub
            .subscribe(&device_group(id), state.config.ws.queue_capacity)
    });
    let seen = SeenRecorder::new(&device.mac);
    let mut session = Session {
        mcp: Arc::new(McpClient::new(out.clone(), mcp_timeout)),
        state,
        device,
        session_id: hex::encode(raw),
        out,
        generation,
        // Made at the first uplink audio: an idle channel never pays for it.
        decoder: None,
        listening: None,
        responding: None,
        hello_done: false,
        last_voice: Instant::now(),
        seen,
    };
    Box::pin(session.touch()).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tracing::debug!("xiaozhi channel open");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                Box::pin(session.close(CLOSE_SERVICE_RESTART, "server restarting")).await;
                break;
            }
            incoming = stream.next() => match incoming {
                // The firmware never sends a Close frame: a TCP end is the
                // normal end of a channel.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(text))) => {
                    if !Box::pin(session.on_text(&text)).await {
                        break;
                    }
                }
                Some(Ok(Message::Binary(frame))) => {
                    Box::pin(session.on_audio(&frame)).await;
                }
                Some(Ok(_)) => {}
            },
            pushed = recv(&mut sub) => match pushed {
                Some(payload) => {
                    if !Box::pin(session.on_push(&payload)).await {
                        break;
                    }
                }
                None => sub = None,
            },
            _ = tick.tick() => {
                let busy = session.responding.as_ref().is_some_and(|t| !t.is_finished());
                if busy || session.listening.as_ref().is_some_and(|l| l.vad.in_speech()) {
                    session.last_voice = Instant::now();
                } else if session.last_voice.elapsed() > idle {
                    Box::pin(session.close(CLOSE_IDLE, "no voice for a while")).await;
                    break;
                }
            }
        }
    }
    session.stop_response();
    drop(session);
    // The writer ends after our Close frame; a device that dropped TCP
    // leaves it nothing to flush (a background MCP request may still hold
    // a sender for a while).
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
    tracing::debug!("xiaozhi channel closed");
}

async fn recv(sub: &mut Option<lty_core::ports::Subscription>) -> Option<Bytes> {
    match sub {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends what the session queues; drops messages of stale generations;
/// after our Close frame, stops (the connection is then dropped without
/// waiting for the device's answer, which never comes).
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    generation: Arc<AtomicU64>,
) {
    while let Some(item) = rx.recv().await {
        let message = match item {
            Outbound::Now(m) => m,
            Outbound::Tagged(g, m) => {
                if g < generation.load(Ordering::Acquire) {
                    continue;
                }
                m
            }
            Outbound::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
}

impl Session {
    async fn send(&self, value: Value) -> bool {
        self.out.send(Outbound::now(value)).await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        self.stop_response();
        let _ = self.out.send(Outbound::Close(code, reason)).await;
    }

    /// `device:last_seen:{mac}` and the online index, at most once a second.
    async fn touch(&mut self) {
        self.seen.touch(&self.state).await;
    }

    /// A text frame; `false` ends the channel.
    async fn on_text(&mut self, text: &str) -> bool {
        self.touch().await;
        // Not JSON (e.g. a malformed MCP error from the firmware): logged
        // and ignored, never a reason to close.
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            tracing::debug!(len = text.len(), "a text frame that is not JSON");
            return true;
        };
        match message["type"].as_str() {
            Some("hello") => self.on_hello(&message).await,
            Some("listen") => {
                self.on_listen(&message).await;
                true
            }
            Some("abort") => {
                let reason = message["reason"].as_str().unwrap_or("button");
                metrics::counter!("lty_xiaozhi_aborts_total", "reason" => if reason == "wake_word_detected" { "wake_word" } else { "button" }).increment(1);
                self.abort().await;
                true
            }
            Some("mcp") => {
                if message["payload"].is_object() {
                    self.mcp.on_payload(&message["payload"]);
                }
                true
            }
            _ => true,
        }
    }

    /// The device's hello: answered at once, complete every time.
    async fn on_hello(&mut self, hello: &Value) -> bool {
        let sent = self
            .send(json!({
                "type": "hello",
                "transport": "websocket",
                "session_id": self.session_id,
                "audio_params": {
                    "format": "opus",
                    "sample_rate": self.state.config.xiaozhi.downlink_sample_rate,
                    "channels": 1,
                    "frame_duration": crate::app::audio::opus::XIAOZHI_FRAME_MS,
                },
            }))
            .await;
        if !sent {
            return false;
        }
        let first = !self.hello_done;
        self.hello_done = true;
        if first && hello["features"]["mcp"] == true {
            let mcp = self.mcp.clone();
            tokio::spawn(
                async move {
                    match mcp.start().await {
                        Ok(n) => tracing::debug!(tools = n, "device tools listed"),
                        Err(err) => tracing::info!(%err, "device MCP not available"),
                    }
                }
                .in_current_span(),
            );
        }
        true
    }

    async fn on_listen(&mut self, message: &Value) {
        match message["state"].as_str() {
            Some("start") => {
                let mode = match message["mode"].as_str() {
                    Some("manual") => Mode::Manual,
                    Some("realtime") => Mode::Realtime,
                    _ => Mode::Auto,
                };
                // A new utterance while we speak interrupts us.
                if self.responding.as_ref().is_some_and(|t| !t.is_finished()) {
                    metrics::counter!("lty_xiaozhi_aborts_total", "reason" => "listen")
                        .increment(1);
                    self.abort().await;
                }
                self.last_voice = Instant::now();
                self.listening = Some(Listening::new(mode, &self.state));
            }
            Some("stop") => {
                // The end of the utterance, whatever the mode.
                if let Some(listening) = self.listening.take() {
                    self.respond(listening.asr).await;
                }
            }
            Some("detect") => {
                // The wake word's audio is not part of the utterance.
                self.listening = None;
            }
            _ => {}
        }
    }

    /// One uplink frame.
    async fn on_audio(&mut self, frame: &Bytes) {
        self.touch().await;
        let Some(listening) = self.listening.as_mut() else {
            return;
        };
        let Ok(audio) = framing::decode(self.device.version, frame) else {
            metrics::counter!("lty_xiaozhi_bad_frames_total").increment(1);
            return;
        };
        if self.decoder.is_none() {
            self.decoder = OpusDecoder::new(UPLINK_RATE).ok().map(Box::new);
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        let pcm = match decoder.decode(&audio.payload) {
            Ok(pcm) if !pcm.is_empty() => pcm,
            Ok(_) => return,
            Err(_) => {
                metrics::counter!("lty_xiaozhi_bad_frames_total").increment(1);
                return;
            }
        };
        let mode = listening.mode;
        let (started, ended) = listening.push(&self.state, pcm);
        if started {
            self.last_voice = Instant::now();
            // Voice while we speak in realtime mode interrupts us.
            if mode == Mode::Realtime && self.responding.as_ref().is_some_and(|t| !t.is_finished())
            {
                metrics::counter!("lty_xiaozhi_aborts_total", "reason" => "barge_in").increment(1);
                self.abort().await;
            }
        }
        if ended {
            let asr = self.listening.as_mut().and_then(|l| l.asr.take());
            if let Some(l) = self.listening.as_mut() {
                l.vad.reset();
            }
            if mode != Mode::Realtime {
                self.listening = None;
            }
            self.respond(asr).await;
        }
    }

    /// Cancels the response in progress, if any, and says so with
    /// `tts stop` (always: a button abort leaves the device speaking until
    /// it gets one).
    async fn abort(&mut self) {
        self.stop_response();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let _ = self
            .out
            .send(Outbound::now(json!({ "type": "tts", "state": "stop" })))
            .await;
    }

    fn stop_response(&mut self) {
        if let Some(task) = self.responding.take() {
            task.abort();
        }
    }

    /// Starts the response to an utterance that just ended.
    async fn respond(&mut self, asr: Option<AsrFeed>) {
        let Some(asr) = asr else {
            return;
        };
        let end_of_speech = Instant::now();
        self.stop_response();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let responder = Responder {
            link: Downlink {
                state: self.state.clone(),
                out: self.out.clone(),
                version: self.device.version,
                generation,
                sample_rate: self.state.config.xiaozhi.downlink_sample_rate,
                voice: None,
            },
            device: self.device.clone(),
            mcp: self.mcp.clone(),
            end_of_speech,
        };
        let task = tokio::spawn(responder.run(asr).in_current_span());
        self.responding = Some(task);
    }

    /// A message for the family's devices; `false` ends the channel.
    async fn on_push(&mut self, payload: &Bytes) -> bool {
        if payload.first() == Some(&CONTROL) {
            if is_kick_all(payload) {
                self.close(4001, "account disabled").await;
                return false;
            }
            if parse_kick(payload).as_ref() == Some(&self.device.mac) {
                // Unbound or moved: the device reboots into activation.
                let _ = self
                    .send(json!({ "type": "system", "command": "reboot" }))
                    .await;
                self.close(4003, "device binding changed").await;
                return false;
            }
            return true;
        }
        let Ok(message) = serde_json::from_slice::<Value>(payload) else {
            return true;
        };
        let busy = self.responding.as_ref().is_some_and(|t| !t.is_finished());
        match push_speech(&message) {
            Some(text) if !busy => {
                let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                let link = Downlink {
                    state: self.state.clone(),
                    out: self.out.clone(),
                    version: self.device.version,
                    generation,
                    sample_rate: self.state.config.xiaozhi.downlink_sample_rate,
                    voice: None,
                };
                let margin = Duration::from_millis(self.state.config.xiaozhi.tts_stop_margin_ms);
                self.responding = Some(tokio::spawn(
                    async move { say(&link, text, margin).await }.in_current_span(),
                ));
                true
            }
            Some(text) => {
                self.send(json!({
                    "type": "alert", "status": "通知", "message": text, "emotion": "happy",
                }))
                .await
            }
            None => self
                .out
                .send(Outbound::json_text(
                    json!({ "type": "custom", "payload": message }).to_string(),
                ))
                .await
                .is_ok(),
        }
    }
}

/// The words a pushed message is spoken as (docs/xiaozhi.md): an unlocked
/// achievement is congratulated; a message with `text` (or `message`) is
/// read out; anything else is not spoken.
fn push_speech(message: &Value) -> Option<String> {
    if message["type"] == "achievement_unlocked" {
        let name = message["achievement"]["name"].as_str()?;
        return Some(format!("太棒了，你获得了新成就：{name}！"));
    }
    let text = message["text"]
        .as_str()
        .or_else(|| message["message"].as_str())?
        .trim();
    (!text.is_empty() && text.chars().count() <= 500).then(|| text.to_owned())
}

/// Speaks fixed text as a whole response: `tts start`, the speech, `tts
/// stop`.
async fn say(link: &Downlink, text: String, margin: Duration) {
    if !link.json(json!({ "type": "tts", "state": "start" })).await {
        return;
    }
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(text).await;
    drop(tx);
    speaker::speak(link, rx, margin).await;
    link.json(json!({ "type": "tts", "state": "stop" })).await;
}

/// One response: the transcript, the turn, the spoken reply.
struct Responder {
    link: Downlink,
    device: Device,
    mcp: Arc<McpClient>,
    end_of_speech: Instant,
}

impl Responder {
    async fn run(mut self, asr: AsrFeed) {
        let AsrFeed { pcm, result } = asr;
        drop(pcm);
        let x = self.link.state.config.xiaozhi.clone();
        let margin = Duration::from_millis(x.tts_stop_margin_ms);
        let transcript = match result.await {
            Ok(Ok(t)) => t.text.trim().to_owned(),
            Ok(Err(err)) if err.code() == "provider_not_configured" => {
                tracing::warn!("a xiaozhi device spoke but no ASR is configured");
                metrics::counter!("lty_xiaozhi_turns_total", "outcome" => "no_asr").increment(1);
                say(&self.link, x.no_asr_message.clone(), margin).await;
                return;
            }
            Ok(Err(err)) => {
                tracing::warn!(code = err.code(), "speech recognition failed");
                metrics::counter!("lty_xiaozhi_turns_total", "outcome" => "asr_failed")
                    .increment(1);
                say(&self.link, x.error_message.clone(), margin).await;
                return;
            }
            Err(_) => return,
        };
        if transcript.is_empty() {
            metrics::counter!("lty_xiaozhi_turns_total", "outcome" => "no_speech").increment(1);
            return;
        }
        if !self
            .link
            .json(json!({ "type": "stt", "text": transcript }))
            .await
            || !self
                .link
                .json(json!({ "type": "tts", "state": "start" }))
                .await
        {
            return;
        }
        let Some(user_id) = self.device.user_id else {
            let prompt = activation_prompt(&self.link.state, &self.device.mac).await;
            say_in_progress(&self.link, prompt, margin).await;
            return;
        };
        let (tx, rx) = mpsc::channel::<String>(64);
        let speaking = {
            let link = self.link.clone();
            tokio::spawn(async move { speaker::speak(&link, rx, margin).await }.in_current_span())
        };
        let outcome = self.converse(user_id, &transcript, &tx).await;
        drop(tx);
        let first_audio = speaking.await.ok().flatten();
        if let Some(at) = first_audio {
            metrics::histogram!("lty_xiaozhi_first_audio_seconds")
                .record((at - self.end_of_speech).as_secs_f64());
        }
        metrics::counter!("lty_xiaozhi_turns_total", "outcome" => outcome).increment(1);
        self.link
            .json(json!({ "type": "tts", "state": "stop" }))
            .await;
    }

    /// Runs the chat turn, feeding what is to be said into `say`; the
    /// outcome label.
    async fn converse(
        &mut self,
        user_id: i64,
        transcript: &str,
        say: &mpsc::Sender<String>,
    ) -> &'static str {
        let state = self.link.state.clone();
        let request = TurnRequest {
            user_id,
            message: transcript.to_owned(),
            language: None,
            thread: Thread::Conversation {
                id: self.device.conversation_id,
                persona_id: None,
            },
            style: Style::Spoken,
            delivery: Delivery::Stream,
            temperature: None,
            max_tokens: None,
            tools: (!self.mcp.tools().is_empty())
                .then(|| self.mcp.clone() as Arc<dyn turn::ToolBox>),
        };
        let mut turn = match turn::start(&state, request).await {
            Ok(turn) => turn,
            Err(err) => {
                let words = if err.code() == "quota_exceeded" {
                    state.config.ai.quota_message.clone()
                } else {
                    tracing::warn!(code = err.code(), "a xiaozhi turn could not start");
                    state.config.xiaozhi.error_message.clone()
                };
                let _ = say.send(words).await;
                return if err.code() == "quota_exceeded" {
                    "quota"
                } else {
                    "failed"
                };
            }
        };
        self.link.voice = turn.persona.as_ref().and_then(|p| p.voice_id.clone());
        if let Some(id) = turn.conversation_id {
            self.device.conversation_id = Some(id);
            if let Err(err) = state
                .db
                .set_xiaozhi_conversation(&self.device.mac, id, Utc::now())
                .await
            {
                tracing::warn!(%err, "cannot remember the device's conversation");
            }
        }
        while let Some(event) = turn.next().await {
            match event {
                TurnEvent::Delta(piece) => {
                    if say.send(piece).await.is_err() {
                        return "gone";
                    }
                }
                TurnEvent::End(end) => {
                    return match end.outcome {
                        Outcome::Answered => "answered",
                        Outcome::Refused | Outcome::BlockedMidway | Outcome::Flagged => {
                            let _ = say.send(end.reply).await;
                            "refused"
                        }
                        Outcome::Failed(_) => "failed",
                    };
                }
            }
        }
        "gone"
    }
}

/// Speaks fixed text inside a response whose `tts start` was sent.
async fn say_in_progress(link: &Downlink, text: String, margin: Duration) {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(text).await;
    drop(tx);
    speaker::speak(link, rx, margin).await;
    link.json(json!({ "type": "tts", "state": "stop" })).await;
}

/// What an unbound device says: its live activation code, if it has one.
async fn activation_prompt(state: &AppState, mac: &MacAddress) -> String {
    let code = state
        .cache
        .get(&format!("xiaozhi:device_code:{mac}"))
        .await
        .ok()
        .flatten();
    match code {
        Some(code) => {
            let spaced: Vec<String> = code.chars().map(String::from).collect();
            format!("请在家长 App 中输入 {} 来绑定我。", spaced.join(" "))
        }
        None => "我还没有绑定，请重启我，然后在家长 App 中输入我说的验证码。".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle channel carries its `Session` for as long as it is open:
    /// what only a talking channel needs (the Opus decoder, the utterance)
    /// is boxed, so thousands of idle channels stay within their memory
    /// budget (docs/benchmarks.md). An inline decoder made this ~11 KB.
    #[test]
    fn an_idle_channel_state_stays_small() {
        assert!(
            std::mem::size_of::<Session>() <= 1024,
            "Session is {} bytes",
            std::mem::size_of::<Session>()
        );
    }

    #[test]
    fn pushes_are_spoken_by_their_text_and_achievements_are_congratulated() {
        assert_eq!(
            push_speech(&json!({"type": "reminder", "text": " 该睡觉啦 "})),
            Some("该睡觉啦".into())
        );
        assert_eq!(push_speech(&json!({"message": "hi"})), Some("hi".into()));
        assert!(
            push_speech(
                &json!({"type": "achievement_unlocked", "achievement": {"name": "小话痨"}})
            )
            .unwrap()
            .contains("小话痨")
        );
        assert_eq!(
            push_speech(&json!({"type": "card_content", "card": 1})),
            None
        );
        assert_eq!(push_speech(&json!({"text": ""})), None);
    }
}
