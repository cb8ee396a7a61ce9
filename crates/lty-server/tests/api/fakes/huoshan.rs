//! A fake huoshan speech service (`openspeech.bytedance.com`):
//!
//! - `POST /api/v1/tts`: checks `Authorization: Bearer;<token>` and the
//!   documented body (appid, cluster, voice, encoding, fresh reqid, text
//!   length), answers Base64 audio of the asked encoding with the duration
//!   as a string, and the vendor's `code`/`message` errors with HTTP 200 or
//!   4xx, each with an `X-Tt-Logid`.
//! - `GET /api/v3/sauc/bigmodel_nostream` and `/api/v3/sauc/bigmodel_async`
//!   (WebSocket): checks the handshake headers, parses every binary frame
//!   byte by byte (header nibbles, sequence numbers, payload size, gzip),
//!   keeps the audio received, and answers gzip JSON results as binary
//!   frames (partial ones as the audio comes, the scripted transcript after
//!   the last packet); scripted sessions answer an error frame, say
//!   nothing, or drop the connection mid-stream. How each connection ended
//!   (a close frame from the client, or the connection lost) is recorded.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lty_server::config::{Config, Secret};
use lty_vendors::volcengine::speech::codec::{gunzip, gzip};
use serde_json::{Value, json};

use super::{Ended, FakeServer, header, tone};

/// The fake's speech credentials (fictional).
pub const APPID: &str = "7100000042";
pub const TOKEN: &str = "fake-huoshan-access-token-for-lty-tests";
pub const CLUSTER: &str = "volcano_tts";
pub const VOICE: &str = "BV700_streaming";
/// A second voice enabled on the fake's account.
pub const OTHER_VOICE: &str = "BV001_streaming";
pub const RESOURCE_ID: &str = "volc.bigasr.sauc.duration";
/// The `X-Tt-Logid` of every answer.
pub const LOGID: &str = "20261125fakelogid0001";

/// One TTS request that passed authentication.
#[derive(Debug, Clone)]
pub struct TtsCall {
    /// The `Authorization` header as sent.
    pub authorization: String,
    pub body: Value,
    /// The vendor code answered (3000 on success).
    pub code: i64,
}

/// What one ASR connection sent, as the fake parsed it.
#[derive(Debug, Clone, Default)]
pub struct AsrSession {
    /// The endpoint path.
    pub path: String,
    pub app_key: String,
    pub access_key: String,
    pub resource_id: String,
    pub connect_id: String,
    /// The JSON of the full client request.
    pub request: Option<Value>,
    /// The four header bytes of every frame, in order.
    pub headers: Vec<[u8; 4]>,
    /// The sequence number of every frame, in order.
    pub sequences: Vec<i32>,
    /// Decompressed size of every audio packet.
    pub chunk_sizes: Vec<usize>,
    /// Every audio packet's PCM, in order.
    pub audio: Vec<u8>,
    /// Whether the fake sent its last word (final result or error frame).
    pub answered: bool,
    /// How the connection ended; `None` while it is open.
    pub ended: Option<Ended>,
    /// Whether every payload was gzip.
    pub all_gzip: bool,
    /// Whether the flagged last packet arrived.
    pub completed: bool,
    /// Protocol violations found (an error frame 45000001 answered each).
    pub violations: Vec<String>,
}

impl AsrSession {
    /// Total audio bytes received.
    pub fn audio_bytes(&self) -> usize {
        self.chunk_sizes.iter().sum()
    }
}

/// How the next ASR connection behaves.
#[derive(Debug, Clone, Copy)]
pub enum AsrScript {
    /// Answer error `code` once `after` audio packets have arrived
    /// (0: right after the full request).
    Error { code: u32, after: usize },
    /// Read everything, answer nothing.
    Silent,
    /// Drop the connection (no close frame) after `after` audio packets.
    Drop { after: usize },
}

#[derive(Default)]
struct Inner {
    tts_calls: Vec<TtsCall>,
    tts_script: VecDeque<(u16, i64)>,
    reqids: HashSet<String>,
    /// Codes of refused TTS requests (authentication included).
    tts_errors: Vec<i64>,
    sessions: Vec<AsrSession>,
    asr_script: VecDeque<AsrScript>,
    /// Handshakes refused, with the status answered.
    handshake_refusals: Vec<u16>,
    transcript: String,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake; stopped when dropped.
pub struct FakeHuoshan {
    server: FakeServer,
    inner: Shared,
}

impl FakeHuoshan {
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        inner.lock().unwrap().transcript = "你好，小朋友。".into();
        let app = axum::Router::new()
            .route("/api/v1/tts", post(tts))
            .route("/api/v3/sauc/bigmodel_nostream", get(asr))
            .route("/api/v3/sauc/bigmodel_async", get(asr))
            .with_state(inner.clone());
        Self {
            server: FakeServer::start(app).await,
            inner,
        }
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        config.audio.provider = "huoshan".into();
        let h = &mut config.audio.huoshan;
        h.appid = Some(APPID.into());
        h.access_token = Some(Secret::new(TOKEN));
        h.cluster = CLUSTER.into();
        h.voice_type = Some(VOICE.into());
        h.base_url = format!("http://{}/", self.server.addr);
        h.ws_url = format!("ws://{}", self.server.addr);
        h.asr_resource_id = RESOURCE_ID.into();
    }

    /// TTS requests that passed authentication, oldest first.
    pub fn tts_calls(&self) -> Vec<TtsCall> {
        self.inner.lock().unwrap().tts_calls.clone()
    }

    /// Codes of refused TTS requests, oldest first.
    pub fn tts_errors(&self) -> Vec<i64> {
        self.inner.lock().unwrap().tts_errors.clone()
    }

    /// Answers the next well-formed TTS request with HTTP `status` and `code`.
    pub fn script_tts(&self, status: u16, code: i64) {
        self.inner
            .lock()
            .unwrap()
            .tts_script
            .push_back((status, code));
    }

    /// ASR connections that passed the handshake, oldest first.
    pub fn sessions(&self) -> Vec<AsrSession> {
        self.inner.lock().unwrap().sessions.clone()
    }

    /// Statuses of refused ASR handshakes.
    pub fn handshake_refusals(&self) -> Vec<u16> {
        self.inner.lock().unwrap().handshake_refusals.clone()
    }

    /// What recognition answers from now on.
    pub fn set_transcript(&self, text: &str) {
        self.inner.lock().unwrap().transcript = text.to_owned();
    }

    /// Makes the next ASR connection behave as `script`.
    pub fn script_asr(&self, script: AsrScript) {
        self.inner.lock().unwrap().asr_script.push_back(script);
    }
}

/// A vendor answer with the log id.
fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, [("X-Tt-Logid", LOGID)], axum::Json(body)).into_response()
}

fn tts_error(inner: &Mutex<Inner>, status: u16, reqid: &str, code: i64, message: &str) -> Response {
    inner.lock().unwrap().tts_errors.push(code);
    answer(
        status,
        json!({"reqid": reqid, "code": code, "message": message}),
    )
}

/// What the fake answers for MP3: a frame sync and the text.
pub fn fake_mp3(text: &str) -> Vec<u8> {
    [b"\xff\xfb\x90\x00".as_slice(), text.as_bytes()].concat()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn tts(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = header(&headers, "authorization");
    let token = authorization
        .strip_prefix("Bearer;")
        .map(|t| t.strip_prefix(' ').unwrap_or(t));
    if token != Some(TOKEN) {
        return tts_error(
            &inner,
            401,
            "",
            3001,
            "authenticate request: load grant: requested grant not found",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return tts_error(&inner, 400, "", 3001, "body is not JSON");
    };
    let reqid = request["request"]["reqid"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let bad = |message: &str| tts_error(&inner, 400, &reqid, 3001, message);
    if request["app"]["appid"] != APPID || request["app"]["cluster"] != CLUSTER {
        return bad("invalid appid or cluster");
    }
    if request["app"]["token"].as_str().is_none_or(str::is_empty) {
        return bad("app.token is required");
    }
    if request["user"]["uid"].as_str().is_none_or(str::is_empty) {
        return bad("user.uid is required");
    }
    let voice = request["audio"]["voice_type"].as_str().unwrap_or("");
    if voice.is_empty() {
        return bad("audio.voice_type is required");
    }
    let encoding = request["audio"]["encoding"].as_str().unwrap_or("pcm");
    if !["pcm", "wav", "mp3", "ogg_opus"].contains(&encoding) {
        return bad("unsupported encoding");
    }
    let rate = request["audio"]["rate"].as_u64().unwrap_or(24_000) as usize;
    if ![24_000, 16_000, 8_000].contains(&rate) {
        return bad("unsupported rate");
    }
    if request["request"]["operation"] != "query" {
        return bad("operation must be query");
    }
    if !is_uuid(&reqid) {
        return bad("reqid must be a UUID");
    }
    if !inner.lock().unwrap().reqids.insert(reqid.clone()) {
        return tts_error(&inner, 200, &reqid, 3006, "duplicated reqid");
    }
    let text = request["request"]["text"].as_str().unwrap_or("").to_owned();
    let record = |code: i64| {
        inner.lock().unwrap().tts_calls.push(TtsCall {
            authorization: authorization.to_owned(),
            body: request.clone(),
            code,
        });
    };
    let scripted = inner.lock().unwrap().tts_script.pop_front();
    if let Some((status, code)) = scripted {
        record(code);
        return tts_error(&inner, status, &reqid, code, "scripted");
    }
    if text.trim().is_empty() {
        record(3011);
        return tts_error(&inner, 200, &reqid, 3011, "invalid text");
    }
    if text.len() > 1024 {
        record(3010);
        return tts_error(&inner, 200, &reqid, 3010, "text too long");
    }
    if voice != VOICE && voice != OTHER_VOICE {
        record(3050);
        return tts_error(&inner, 200, &reqid, 3050, "voice_type not found");
    }
    record(3000);
    let ms = 100 * text.chars().count();
    let audio = match encoding {
        "pcm" => tone(ms, rate),
        "wav" => lty_core::speech::wav_from_pcm16(&tone(ms, rate), rate as u32, 1).to_vec(),
        "mp3" => fake_mp3(&text),
        _ => b"OggS-fake".to_vec(),
    };
    answer(
        200,
        json!({
            "reqid": reqid, "code": 3000, "operation": "query", "message": "Success",
            "sequence": -1, "data": STANDARD.encode(audio),
            "addition": {"duration": ms.to_string()},
        }),
    )
}

async fn asr(
    State(inner): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let session = AsrSession {
        path: uri.path().to_owned(),
        app_key: header(&headers, "x-api-app-key").to_owned(),
        access_key: header(&headers, "x-api-access-key").to_owned(),
        resource_id: header(&headers, "x-api-resource-id").to_owned(),
        connect_id: header(&headers, "x-api-connect-id").to_owned(),
        all_gzip: true,
        ..AsrSession::default()
    };
    // No Bearer on this endpoint: the keys ride in their own headers.
    let refusal = if session.app_key != APPID || session.access_key != TOKEN {
        Some((401, "invalid X-Api-App-Key or X-Api-Access-Key"))
    } else if session.resource_id != RESOURCE_ID {
        Some((403, "resource not granted"))
    } else if !is_uuid(&session.connect_id) {
        Some((400, "X-Api-Connect-Id must be a UUID"))
    } else {
        None
    };
    if let Some((status, message)) = refusal {
        inner.lock().unwrap().handshake_refusals.push(status);
        return answer(status, json!({"error": message}));
    }
    let script = inner.lock().unwrap().asr_script.pop_front();
    ws.on_upgrade(move |socket| asr_session(socket, inner, session, script))
}

/// One parsed client frame.
struct ClientFrame {
    header: [u8; 4],
    message_type: u8,
    flags: u8,
    serialization: u8,
    compression: u8,
    sequence: Option<i32>,
    payload: Vec<u8>,
}

fn be32(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

/// Parses a client frame by hand (header size 1 expected).
fn parse(bytes: &[u8]) -> Result<ClientFrame, String> {
    let header: [u8; 4] = be32(bytes, 0).ok_or("shorter than the header")?;
    if header[0] != 0x11 {
        return Err(format!(
            "byte 0 is {:#04x}, not version 1 / size 1",
            header[0]
        ));
    }
    if header[3] != 0 {
        return Err("reserved byte is not 0".into());
    }
    let (message_type, flags) = (header[1] >> 4, header[1] & 0x0F);
    let (serialization, compression) = (header[2] >> 4, header[2] & 0x0F);
    let mut at = 4;
    let sequence = if flags & 1 == 1 {
        let seq = i32::from_be_bytes(be32(bytes, at).ok_or("no sequence")?);
        at += 4;
        Some(seq)
    } else {
        None
    };
    let size = u32::from_be_bytes(be32(bytes, at).ok_or("no payload size")?) as usize;
    at += 4;
    if bytes.len() != at + size {
        return Err(format!(
            "payload size {size} but {} bytes follow",
            bytes.len() - at
        ));
    }
    let raw = &bytes[at..];
    let payload = match compression {
        0 => raw.to_vec(),
        1 if raw.is_empty() => Vec::new(),
        1 => {
            if !raw.starts_with(&[0x1f, 0x8b, 0x08]) {
                return Err("payload is not gzip".into());
            }
            gunzip(raw, 1 << 24).map_err(|e| e.to_string())?
        }
        c => return Err(format!("unknown compression {c}")),
    };
    Ok(ClientFrame {
        header,
        message_type,
        flags,
        serialization,
        compression,
        sequence,
        payload,
    })
}

/// A server frame: type 9 JSON result (gzip), numbered.
fn result_frame(sequence: i32, last: bool, body: &Value) -> Vec<u8> {
    let payload = gzip(body.to_string().as_bytes());
    let flags = if last { 0b0011 } else { 0b0001 };
    let mut out = vec![0x11, 0x90 | flags, 0x11, 0x00];
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// An error frame: type 0xF, u32 code, JSON message (uncompressed).
fn error_frame(code: u32, message: &str) -> Vec<u8> {
    let payload = json!({"error": message}).to_string().into_bytes();
    let mut out = vec![0x11, 0xF0, 0x10, 0x00];
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Checks one frame against the session so far; the violation, if any.
fn check(s: &mut AsrSession, f: &ClientFrame) -> Result<(), String> {
    s.headers.push(f.header);
    if let Some(seq) = f.sequence {
        s.sequences.push(seq);
    }
    s.all_gzip &= f.compression == 1;
    if s.request.is_none() {
        if f.header != [0x11, 0x11, 0x11, 0x00] || f.sequence != Some(1) {
            return Err(format!(
                "first frame {:02x?} seq {:?} is not a gzip JSON full request numbered 1",
                f.header, f.sequence
            ));
        }
        let json: Value = serde_json::from_slice(&f.payload).map_err(|e| e.to_string())?;
        let audio = &json["audio"];
        if json["user"]["uid"].as_str().is_none_or(str::is_empty)
            || audio["format"] != "pcm"
            || audio["rate"] != 16_000
            || audio["bits"] != 16
            || audio["channel"] != 1
            || json["request"]["model_name"] != "bigmodel"
        {
            return Err(format!("unexpected parameters {json}"));
        }
        s.request = Some(json);
        return Ok(());
    }
    if s.completed {
        return Err("a frame after the last packet".into());
    }
    if f.message_type != 0x2 || f.serialization != 0 || !matches!(f.flags, 0b0001 | 0b0011) {
        return Err(format!("{:02x?} is not a numbered audio packet", f.header));
    }
    let expected = s.chunk_sizes.len() as i32 + 2;
    let last = f.flags == 0b0011;
    let want = if last { -expected } else { expected };
    if f.sequence != Some(want) {
        return Err(format!("sequence {:?}, expected {want}", f.sequence));
    }
    if !f.payload.len().is_multiple_of(2) || f.payload.len() > 6400 {
        return Err(format!("audio packet of {} bytes", f.payload.len()));
    }
    s.chunk_sizes.push(f.payload.len());
    s.audio.extend_from_slice(&f.payload);
    s.completed = last;
    Ok(())
}

async fn asr_session(
    mut socket: WebSocket,
    inner: Shared,
    mut session: AsrSession,
    script: Option<AsrScript>,
) {
    let index = {
        let mut guard = inner.lock().unwrap();
        guard.sessions.push(session.clone());
        guard.sessions.len() - 1
    };
    let save = |s: &AsrSession| inner.lock().unwrap().sessions[index] = s.clone();
    let transcript = inner.lock().unwrap().transcript.clone();
    let mut finished = false;
    let ended = loop {
        let msg = match socket.recv().await {
            Some(Ok(msg)) => msg,
            _ => break Ended::Lost,
        };
        let Message::Binary(bytes) = msg else {
            if matches!(msg, Message::Close(_)) {
                break Ended::CloseFrame;
            }
            continue;
        };
        if finished {
            // Whatever still arrives after our last word is ignored.
            continue;
        }
        let outcome = parse(&bytes).and_then(|f| check(&mut session, &f));
        save(&session);
        if let Err(violation) = outcome {
            session.violations.push(violation.clone());
            session.answered = true;
            save(&session);
            let _ = socket
                .send(Message::Binary(error_frame(45_000_001, &violation).into()))
                .await;
            finished = true;
            continue;
        }
        let packets = session.chunk_sizes.len();
        match script {
            Some(AsrScript::Error { code, after }) if packets == after => {
                session.answered = true;
                save(&session);
                let frame = error_frame(code, "scripted");
                let _ = socket.send(Message::Binary(frame.into())).await;
                finished = true;
                continue;
            }
            Some(AsrScript::Drop { after }) if packets == after => break Ended::DroppedByFake,
            Some(AsrScript::Silent) => continue,
            _ => {}
        }
        let duration = packets as u64 * 200;
        if packets == 0 {
            // The parameters are acknowledged with an empty result.
            let ack = result_frame(
                1,
                false,
                &json!({"audio_info": {"duration": 0}, "result": {"text": ""}}),
            );
            let _ = socket.send(Message::Binary(ack.into())).await;
        } else if session.completed {
            let body = json!({
                "audio_info": {"duration": session.audio_bytes() / 32},
                "result": {"text": transcript, "utterances": [
                    {"text": transcript, "start_time": 0, "end_time": duration, "definite": true, "words": []}
                ]},
            });
            // The service's own example ends with a positive sequence.
            let frame = result_frame(packets as i32 + 1, true, &body);
            session.answered = true;
            save(&session);
            let _ = socket.send(Message::Binary(frame.into())).await;
            finished = true;
        } else if packets.is_multiple_of(3) {
            let partial = json!({"audio_info": {"duration": duration}, "result": {"text": "你好"}});
            let frame = result_frame(packets as i32 + 1, false, &partial);
            let _ = socket.send(Message::Binary(frame.into())).await;
        }
    };
    session.ended = Some(ended);
    save(&session);
}
