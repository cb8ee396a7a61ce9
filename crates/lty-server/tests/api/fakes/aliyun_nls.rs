//! A fake Aliyun NLS: the meta endpoint's `CreateToken` (RPC signature V1
//! recomputed by the SMS fake's checker, wrong ones refused with the POP
//! error body) and, on a second listener, the RESTful gateway's
//! `/stream/v1/tts` and `/stream/v1/asr`. Tokens carry a configurable
//! lifetime and every issuance is counted; the gateway refuses unknown,
//! expired or revoked tokens with status `40000001` and a foreign appkey
//! with `40020105`, cuts TTS text past 300 characters like the vendor,
//! streams audio as chunked `audio/mpeg`, and answers scripted errors as
//! `application/json` with whatever HTTP status the test picks.
//!
//! The gateway's WebSocket `/ws/v1` plays `SpeechRecognizer`: it takes the
//! token from `X-NLS-Token`, enforces the message order (StartRecognition
//! → RecognitionStarted → binary audio → StopRecognition →
//! RecognitionCompleted) and the header fields (namespace, appkey, 32-hex
//! ids, one task id, a fresh message id each time), answers `TaskFailed`
//! as the vendor does (`40000001` bad token, `40020105` foreign appkey,
//! `40000002` out of order), keeps the audio received, and when scripted
//! fails mid-stream, goes silent after the stop, or drops the connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use serde_json::{Value, json};

use super::aliyun_sms::{RpcGateway, pop_error_from, verify_rpc_v1};
use super::{Ended, FakeServer, header, tone};

/// The fake's AccessKey pair and project appkey (fictional).
pub const ACCESS_KEY_ID: &str = "LTAIexampleNlsKeyForLtyTests";
pub const ACCESS_KEY_SECRET: &str = "exampleNlsSecretForLtyTestsOnly";
pub const APPKEY: &str = "exampleNlsAppkey01";
/// What recognition answers.
pub const TRANSCRIPT: &str = "今天天气怎么样";
/// Longest text the TTS gateway reads; the rest is cut off silently.
pub const TTS_LIMIT: usize = 300;
/// Voices the fake knows.
pub const VOICES: [&str; 4] = ["xiaoyun", "xiaogang", "aixia", "zhitian_emo"];
/// Milliseconds of PCM per character of text.
pub const PCM_MS_PER_CHAR: u64 = 100;
/// MP3 frames per character of text (MPEG-2 Layer III, 16 kHz mono,
/// 32 kbit/s: 144 bytes and 36 ms each).
pub const MP3_FRAMES_PER_CHAR: usize = 3;
/// Size of one fake MP3 frame.
pub const MP3_FRAME_BYTES: usize = 144;

/// One TTS request that produced audio.
#[derive(Debug, Clone)]
pub struct TtsCall {
    pub method: String,
    pub token: String,
    /// Every parameter received (query or JSON body), as strings.
    pub params: HashMap<String, String>,
    /// Whether the text was longer than [`TTS_LIMIT`] and got cut.
    pub truncated: bool,
}

/// How the next WebSocket recognition behaves.
#[derive(Debug, Clone, Copy)]
pub enum RecognizerScript {
    /// `TaskFailed` with `status` once `after` audio frames have arrived.
    Fail { status: u64, after: usize },
    /// Everything is read; nothing answers `StopRecognition`.
    Silent,
    /// The connection is dropped (no close frame) after `after` frames.
    Drop { after: usize },
}

/// What one WebSocket recognition sent, as the fake saw it.
#[derive(Debug, Clone, Default)]
pub struct RecognizerSession {
    /// `X-NLS-Token` of the handshake.
    pub token: String,
    /// The `StartRecognition` message.
    pub start: Option<Value>,
    pub task_id: String,
    /// Every audio frame's bytes, in order.
    pub audio: Vec<u8>,
    pub frame_sizes: Vec<usize>,
    /// Whether `StopRecognition` arrived.
    pub stopped: bool,
    /// The status of the `TaskFailed` answered, if any.
    pub failed: Option<u64>,
    /// Whether `RecognitionCompleted` was sent.
    pub completed: bool,
    /// Protocol violations found.
    pub violations: Vec<String>,
    /// How the connection ended; `None` while it is open.
    pub ended: Option<Ended>,
}

/// One recognition request that was answered with a transcript.
#[derive(Debug, Clone)]
pub struct AsrCall {
    pub token: String,
    pub query: HashMap<String, String>,
    pub content_type: String,
    pub bytes: usize,
}

struct Issued {
    expire_time: u64,
    revoked: bool,
}

struct Inner {
    token_lifetime: u64,
    token_delay: Duration,
    token_script: VecDeque<(u16, &'static str)>,
    tokens: HashMap<String, Issued>,
    issued: Vec<String>,
    token_rejections: Vec<String>,
    nonces: HashSet<String>,
    refuse_all_tokens: bool,
    gateway_script: VecDeque<(u16, u64)>,
    gateway_errors: Vec<u64>,
    tts_calls: Vec<TtsCall>,
    asr_calls: Vec<AsrCall>,
    recognizer_script: VecDeque<RecognizerScript>,
    recognizers: Vec<RecognizerSession>,
    recognizer_transcript: String,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            token_lifetime: 86_400,
            token_delay: Duration::ZERO,
            token_script: VecDeque::new(),
            tokens: HashMap::new(),
            issued: Vec::new(),
            token_rejections: Vec::new(),
            nonces: HashSet::new(),
            refuse_all_tokens: false,
            gateway_script: VecDeque::new(),
            gateway_errors: Vec::new(),
            tts_calls: Vec::new(),
            asr_calls: Vec::new(),
            recognizer_script: VecDeque::new(),
            recognizers: Vec::new(),
            recognizer_transcript: TRANSCRIPT.to_owned(),
        }
    }
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake (meta endpoint and gateway); stopped when dropped.
pub struct FakeAliyunNls {
    meta: FakeServer,
    gateway: FakeServer,
    inner: Shared,
}

impl FakeAliyunNls {
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        let meta = axum::Router::new()
            .fallback(create_token)
            .with_state(inner.clone());
        let gateway = axum::Router::new()
            .route("/stream/v1/tts", axum::routing::any(tts))
            .route("/stream/v1/asr", axum::routing::any(asr))
            .route("/ws/v1", axum::routing::get(recognizer))
            .with_state(inner.clone());
        Self {
            meta: FakeServer::start(meta).await,
            gateway: FakeServer::start(gateway).await,
            inner,
        }
    }

    /// Makes aliyun the speech provider and points it at this fake with
    /// its credentials.
    pub fn configure(&self, config: &mut Config) {
        config.audio.provider = "aliyun".into();
        let nls = &mut config.aliyun.nls;
        nls.access_key_id = Some(ACCESS_KEY_ID.into());
        nls.access_key_secret = Some(Secret::new(ACCESS_KEY_SECRET));
        nls.app_id = Some(APPKEY.into());
        nls.meta_endpoint = self.meta.url();
        nls.gateway_url = self.gateway.url();
    }

    /// Lifetime of the tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.inner.lock().unwrap().token_lifetime = secs;
    }

    /// How long `CreateToken` takes to answer.
    pub fn set_token_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().token_delay = delay;
    }

    /// Answers the next correctly signed `CreateToken` with a POP error.
    pub fn script_token_error(&self, http: u16, code: &'static str) {
        self.inner
            .lock()
            .unwrap()
            .token_script
            .push_back((http, code));
    }

    /// Ids of the tokens issued, oldest first.
    pub fn issued(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }

    /// POP `Code`s of refused `CreateToken` calls, oldest first.
    pub fn token_rejections(&self) -> Vec<String> {
        self.inner.lock().unwrap().token_rejections.clone()
    }

    /// Invalidates every token issued so far (as an account change would).
    pub fn revoke_tokens(&self) {
        for issued in self.inner.lock().unwrap().tokens.values_mut() {
            issued.revoked = true;
        }
    }

    /// Makes the gateway refuse every token, old and new.
    pub fn refuse_all_tokens(&self) {
        self.inner.lock().unwrap().refuse_all_tokens = true;
    }

    /// Answers the next gateway call that passes the token and appkey
    /// checks with this NLS status as JSON, with HTTP status `http`.
    pub fn script_gateway_error(&self, http: u16, status: u64) {
        self.inner
            .lock()
            .unwrap()
            .gateway_script
            .push_back((http, status));
    }

    /// NLS statuses of refused gateway calls, oldest first.
    pub fn gateway_errors(&self) -> Vec<u64> {
        self.inner.lock().unwrap().gateway_errors.clone()
    }

    /// TTS calls that produced audio, oldest first.
    pub fn tts_calls(&self) -> Vec<TtsCall> {
        self.inner.lock().unwrap().tts_calls.clone()
    }

    /// Recognition calls that were answered, oldest first.
    pub fn asr_calls(&self) -> Vec<AsrCall> {
        self.inner.lock().unwrap().asr_calls.clone()
    }

    /// Makes the next WebSocket recognition behave as `script`.
    pub fn script_recognizer(&self, script: RecognizerScript) {
        self.inner
            .lock()
            .unwrap()
            .recognizer_script
            .push_back(script);
    }

    /// What WebSocket recognitions answer from now on.
    pub fn set_recognizer_transcript(&self, text: &str) {
        self.inner.lock().unwrap().recognizer_transcript = text.to_owned();
    }

    /// WebSocket recognitions, oldest first.
    pub fn recognizers(&self) -> Vec<RecognizerSession> {
        self.inner.lock().unwrap().recognizers.clone()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hex_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

async fn create_token(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    const HOST: &str = "nls-meta.cn-shanghai.aliyuncs.com";
    let delay = inner.lock().unwrap().token_delay;
    tokio::time::sleep(delay).await;
    let refuse = |status: u16, code: &str, message: &str| {
        inner.lock().unwrap().token_rejections.push(code.to_owned());
        pop_error_from(HOST, status, code, message)
    };
    if uri.path() != "/" {
        return refuse(404, "InvalidAction.NotFound", "Specified api is not found.");
    }
    let checked = verify_rpc_v1(
        &RpcGateway {
            access_key_id: ACCESS_KEY_ID,
            access_key_secret: ACCESS_KEY_SECRET,
            action: "CreateToken",
            version: "2019-02-28",
        },
        &method,
        &uri,
        &body,
        |nonce| inner.lock().unwrap().nonces.insert(nonce.to_owned()),
    );
    let params = match checked {
        Ok(params) => params,
        Err(r) => return refuse(r.status, &r.code, &r.message),
    };
    if !params
        .iter()
        .any(|(k, v)| k == "RegionId" && v == "cn-shanghai")
    {
        return refuse(400, "InvalidRegionId", "RegionId must be cn-shanghai.");
    }
    let scripted = inner.lock().unwrap().token_script.pop_front();
    if let Some((status, code)) = scripted {
        return refuse(status, code, "Request was denied due to user flow control.");
    }
    let id = hex_id();
    let expire_time = {
        let mut inner = inner.lock().unwrap();
        let expire_time = now() + inner.token_lifetime;
        inner.tokens.insert(
            id.clone(),
            Issued {
                expire_time,
                revoked: false,
            },
        );
        inner.issued.push(id.clone());
        expire_time
    };
    axum::Json(json!({
        "ErrMsg": "",
        "Token": {"UserId": "1000000000000000", "Id": id, "ExpireTime": expire_time},
        "RequestId": hex_id(),
        "NlsRequestId": hex_id(),
    }))
    .into_response()
}

/// An NLS JSON status answer.
fn nls_error(inner: &Mutex<Inner>, http: u16, status: u64, message: &str) -> Response {
    inner.lock().unwrap().gateway_errors.push(status);
    let task_id = hex_id();
    (
        StatusCode::from_u16(http).unwrap(),
        [("task_id", task_id.clone())],
        axum::Json(json!({
            "task_id": task_id,
            "result": "",
            "status": status,
            "message": message,
        })),
    )
        .into_response()
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Whether the gateway accepts `token` now.
fn token_valid(inner: &Mutex<Inner>, token: &str) -> bool {
    let inner = inner.lock().unwrap();
    !inner.refuse_all_tokens
        && inner
            .tokens
            .get(token)
            .is_some_and(|t| !t.revoked && now() < t.expire_time)
}

/// The gateway's token and appkey checks: the refusal to send, if any.
fn access_denied(inner: &Mutex<Inner>, token: &str, appkey: Option<&str>) -> Option<Response> {
    let valid = {
        let inner = inner.lock().unwrap();
        !inner.refuse_all_tokens
            && inner
                .tokens
                .get(token)
                .is_some_and(|t| !t.revoked && now() < t.expire_time)
    };
    if !valid {
        return Some(nls_error(
            inner,
            400,
            40_000_001,
            "Gateway:ACCESS_DENIED:The token is invalid!",
        ));
    }
    if appkey != Some(APPKEY) {
        return Some(nls_error(
            inner,
            400,
            40_020_105,
            "Meta:APPKEY_NOT_EXIST:Appkey not exist!",
        ));
    }
    None
}

fn scripted(inner: &Mutex<Inner>) -> Option<Response> {
    let next = inner.lock().unwrap().gateway_script.pop_front();
    next.map(|(http, status)| nls_error(inner, http, status, "scripted failure"))
}

/// `n` MPEG-2 Layer III frames (16 kHz, 32 kbit/s, mono).
fn mp3_frames(n: usize) -> Vec<u8> {
    let mut frame = [0x55u8; MP3_FRAME_BYTES];
    frame[..4].copy_from_slice(&[0xff, 0xf3, 0x48, 0xc0]);
    frame.repeat(n)
}

fn param_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn tts(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = query_map(&uri);
    if method == Method::POST {
        if !header(&headers, "content-type").starts_with("application/json") {
            return nls_error(
                &inner,
                400,
                40_000_003,
                "Content-Type must be application/json",
            );
        }
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
            return nls_error(&inner, 400, 40_000_003, "body is not a JSON object");
        };
        for (k, v) in map {
            match param_string(&v) {
                Some(s) => {
                    params.insert(k, s);
                }
                None => {
                    return nls_error(&inner, 400, 40_000_003, &format!("bad value for {k}"));
                }
            }
        }
    } else if method != Method::GET {
        return nls_error(&inner, 405, 40_000_000, "GET or POST");
    }
    let mut token = header(&headers, "x-nls-token").to_owned();
    if token.is_empty() {
        token = params.get("token").cloned().unwrap_or_default();
    }
    if let Some(answer) = access_denied(&inner, &token, params.get("appkey").map(String::as_str)) {
        return answer;
    }
    if let Some(answer) = scripted(&inner) {
        return answer;
    }
    let text = params.get("text").cloned().unwrap_or_default();
    if text.trim().is_empty() {
        return nls_error(&inner, 400, 40_000_003, "text is empty");
    }
    let truncated = text.chars().count() > TTS_LIMIT;
    let spoken: String = text.chars().take(TTS_LIMIT).collect();
    let chars = spoken.chars().count();
    let voice = params
        .get("voice")
        .cloned()
        .unwrap_or_else(|| "xiaoyun".into());
    if !VOICES.contains(&voice.as_str()) {
        return nls_error(&inner, 400, 40_000_003, "voice is not supported");
    }
    let rate = params
        .get("sample_rate")
        .cloned()
        .unwrap_or_else(|| "16000".into());
    if rate != "16000" && rate != "8000" {
        return nls_error(&inner, 400, 40_000_003, "sample_rate must be 16000 or 8000");
    }
    let pcm = || tone(PCM_MS_PER_CHAR as usize * chars, 16_000);
    let audio = match params.get("format").map_or("pcm", String::as_str) {
        "pcm" => pcm(),
        "wav" => lty_core::speech::wav_from_pcm16(&pcm(), 16_000, 1).to_vec(),
        "mp3" => mp3_frames(MP3_FRAMES_PER_CHAR * chars),
        _ => return nls_error(&inner, 400, 40_000_003, "format must be pcm, wav or mp3"),
    };
    inner.lock().unwrap().tts_calls.push(TtsCall {
        method: method.to_string(),
        token,
        params,
        truncated,
    });
    // Chunked, like the vendor: the client must read the whole stream.
    let chunks: Vec<Result<Bytes, std::io::Error>> = audio
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Response::builder()
        .header("content-type", "audio/mpeg")
        .header("task_id", hex_id())
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap()
}

async fn asr(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return nls_error(&inner, 405, 40_000_000, "POST only");
    }
    let query = query_map(&uri);
    let token = header(&headers, "x-nls-token");
    if let Some(answer) = access_denied(&inner, token, query.get("appkey").map(String::as_str)) {
        return answer;
    }
    if let Some(answer) = scripted(&inner) {
        return answer;
    }
    let content_type = header(&headers, "content-type");
    if content_type != "application/octet-stream" {
        return nls_error(
            &inner,
            400,
            40_000_003,
            "Content-Type must be application/octet-stream",
        );
    }
    if header(&headers, "content-length") != body.len().to_string() {
        return nls_error(
            &inner,
            400,
            40_000_003,
            "Content-Length must match the body",
        );
    }
    if query.get("format").map(String::as_str) != Some("pcm")
        || query.get("sample_rate").map(String::as_str) != Some("16000")
    {
        return nls_error(
            &inner,
            400,
            40_000_003,
            "format=pcm and sample_rate=16000 expected",
        );
    }
    // 60 s of 16 kHz 16-bit mono at most.
    if body.is_empty() || !body.len().is_multiple_of(2) || body.len() > 60 * 32_000 {
        return nls_error(
            &inner,
            400,
            40_000_003,
            "audio must be 16-bit PCM of at most 60 s",
        );
    }
    inner.lock().unwrap().asr_calls.push(AsrCall {
        token: token.to_owned(),
        query,
        content_type: content_type.to_owned(),
        bytes: body.len(),
    });
    let task_id = hex_id();
    (
        [("task_id", task_id.clone())],
        axum::Json(json!({
            "task_id": task_id,
            "result": TRANSCRIPT,
            "status": 20_000_000,
            "message": "SUCCESS",
        })),
    )
        .into_response()
}

async fn recognizer(
    State(inner): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let mut token = header(&headers, "x-nls-token").to_owned();
    if token.is_empty() {
        token = query_map(&uri).remove("token").unwrap_or_default();
    }
    let script = inner.lock().unwrap().recognizer_script.pop_front();
    ws.on_upgrade(move |socket| recognizer_session(socket, inner, token, script))
}

fn is_hex32(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A gateway event as text.
fn event(
    namespace: &str,
    name: &str,
    status: u64,
    text: &str,
    task_id: &str,
    payload: Option<Value>,
) -> Message {
    let mut e = json!({"header": {
        "namespace": namespace, "name": name, "status": status,
        "status_text": text, "message_id": hex_id(), "task_id": task_id,
    }});
    if let Some(p) = payload {
        e["payload"] = p;
    }
    Message::Text(e.to_string().into())
}

/// Where the recognition stands.
#[derive(PartialEq)]
enum Phase {
    AwaitStart,
    Started,
    Stopped,
    /// TaskFailed or RecognitionCompleted was sent.
    Over,
}

async fn recognizer_session(
    mut socket: WebSocket,
    inner: Shared,
    token: String,
    script: Option<RecognizerScript>,
) {
    let index = {
        let mut guard = inner.lock().unwrap();
        guard.recognizers.push(RecognizerSession {
            token: token.clone(),
            ..RecognizerSession::default()
        });
        guard.recognizers.len() - 1
    };
    let save = |s: &RecognizerSession| inner.lock().unwrap().recognizers[index] = s.clone();
    let transcript = inner.lock().unwrap().recognizer_transcript.clone();
    let mut session = inner.lock().unwrap().recognizers[index].clone();
    let mut phase = Phase::AwaitStart;
    let mut message_ids = HashSet::new();
    let ended = loop {
        let msg = match socket.recv().await {
            Some(Ok(msg)) => msg,
            _ => break Ended::Lost,
        };
        if phase == Phase::Over {
            if matches!(msg, Message::Close(_)) {
                break Ended::CloseFrame;
            }
            continue;
        }
        // (status, text) of a TaskFailed to send, if any.
        let mut fail: Option<(u64, String)> = None;
        let mut reply: Option<Message> = None;
        match msg {
            Message::Close(_) => break Ended::CloseFrame,
            Message::Binary(audio) => {
                if phase != Phase::Started {
                    fail = Some((
                        40_000_002,
                        "Gateway:MESSAGE_INVALID:audio outside a started task".into(),
                    ));
                } else {
                    session.audio.extend_from_slice(&audio);
                    session.frame_sizes.push(audio.len());
                    let frames = session.frame_sizes.len();
                    match script {
                        Some(RecognizerScript::Fail { status, after }) if frames == after => {
                            fail = Some((status, "scripted failure".into()));
                        }
                        Some(RecognizerScript::Drop { after }) if frames == after => {
                            break Ended::DroppedByFake;
                        }
                        _ => {}
                    }
                }
            }
            Message::Text(text) => {
                let parsed: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let h = &parsed["header"];
                let name = h["name"].as_str().unwrap_or("");
                let fresh = h["message_id"]
                    .as_str()
                    .is_some_and(|m| message_ids.insert(m.to_owned()));
                if h["namespace"] != "SpeechRecognizer"
                    || !is_hex32(&h["message_id"])
                    || !is_hex32(&h["task_id"])
                    || !fresh
                {
                    fail = Some((
                        40_000_002,
                        format!("Gateway:MESSAGE_INVALID:bad header {h}"),
                    ));
                } else if phase == Phase::AwaitStart && name == "StartRecognition" {
                    let p = &parsed["payload"];
                    if !token_valid(&inner, &token) {
                        fail = Some((
                            40_000_001,
                            format!("Gateway:ACCESS_DENIED:The token '{token}' is invalid!"),
                        ));
                    } else if h["appkey"] != APPKEY {
                        fail = Some((40_020_105, "Meta:APPKEY_NOT_EXIST:Appkey not exist!".into()));
                    } else if p["format"] != "pcm" || p["sample_rate"] != 16_000 {
                        fail = Some((40_000_003, format!("Gateway:PARAMETER_INVALID:{p}")));
                    } else {
                        session.task_id = h["task_id"].as_str().unwrap_or("").to_owned();
                        session.start = Some(parsed.clone());
                        phase = Phase::Started;
                        reply = Some(event(
                            "SpeechRecognizer",
                            "RecognitionStarted",
                            20_000_000,
                            "Gateway:SUCCESS:Success.",
                            &session.task_id,
                            None,
                        ));
                    }
                } else if phase == Phase::Started && name == "StopRecognition" {
                    if h["task_id"] != session.task_id.as_str()
                        || parsed.get("payload").is_some_and(|p| !p.is_null())
                    {
                        fail = Some((
                            40_000_002,
                            "Gateway:MESSAGE_INVALID:bad StopRecognition".into(),
                        ));
                    } else {
                        session.stopped = true;
                        phase = Phase::Stopped;
                        if !matches!(script, Some(RecognizerScript::Silent)) {
                            let ms = session.audio.len() / 32;
                            session.completed = true;
                            reply = Some(event(
                                "SpeechRecognizer",
                                "RecognitionCompleted",
                                20_000_000,
                                "Gateway:SUCCESS:Success.",
                                &session.task_id,
                                Some(json!({"result": transcript, "duration": ms})),
                            ));
                        }
                    }
                } else {
                    fail = Some((
                        40_000_002,
                        format!("Gateway:MESSAGE_INVALID:{name} in this state"),
                    ));
                }
            }
            _ => continue,
        }
        if let Some((status, text)) = fail {
            if status == 40_000_002 {
                session.violations.push(text.clone());
            }
            session.failed = Some(status);
            let namespace = if phase == Phase::AwaitStart {
                "Default"
            } else {
                "SpeechRecognizer"
            };
            reply = Some(event(
                namespace,
                "TaskFailed",
                status,
                &text,
                &session.task_id,
                None,
            ));
        }
        let over = session.failed.is_some() || session.completed;
        save(&session);
        if let Some(reply) = reply {
            let _ = socket.send(reply).await;
        }
        if over {
            phase = Phase::Over;
            let _ = socket.send(Message::Close(None)).await;
        }
    };
    session.ended = Some(ended);
    save(&session);
}
