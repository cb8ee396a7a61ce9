//! A fake Tencent Cloud API 3.0 endpoint for `TextToVoice` and
//! `SentenceRecognition`: parses `Authorization` strictly, recomputes the
//! TC3-HMAC-SHA256 signature from the request as received, and answers
//! every error, signature errors included, in HTTP 200 with the
//! `{"Response":{"Error":...}}` envelope, like the vendor.
//!
//! On the same listener, `/asr/v2/{appid}` plays real-time recognition
//! (WebSocket, API 2.0): it rebuilds the signed string from the Host, the
//! path and the decoded query as received, checks the HMAC-SHA1 signature,
//! the AppId, `expired`, a fresh `voice_id` and the parameters, and answers
//! inside the socket as the vendor does (`{"code":0}` or an error code,
//! then close). It keeps the audio received, answers partial slices, and
//! after `{"type":"end"}` one final slice per scripted sentence and
//! `"final":1`; scripted sessions fail mid-stream, stay silent after the
//! end, or drop the connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lty_server::config::{Config, Secret};
use lty_vendors::tencent::tc3;
use serde_json::{Value, json};

use super::{Ended, FakeServer, header, tone};

/// The fake's key pair (fictional).
pub const SECRET_ID: &str = "AKIDexampleTencentSpeechForLtyTests";
pub const SECRET_KEY: &str = "exampleTencentSecretForLtyTestsOnly";

/// The fake account's AppId (fictional).
pub const APP_ID: &str = "1250000042";

/// How the next real-time recognition behaves.
#[derive(Debug, Clone, Copy)]
pub enum RealtimeScript {
    /// Error `code` once `after` audio frames have arrived.
    Fail { code: i64, after: usize },
    /// Everything is read; nothing answers the end.
    Silent,
    /// The connection is dropped (no close frame) after `after` frames.
    Drop { after: usize },
}

/// What one real-time recognition sent, as the fake saw it.
#[derive(Debug, Clone, Default)]
pub struct RealtimeSession {
    /// The decoded query, `signature` included.
    pub query: HashMap<String, String>,
    /// The code of the handshake message (0: accepted).
    pub handshake_code: i64,
    /// Every audio frame's bytes, in order.
    pub audio: Vec<u8>,
    pub frame_sizes: Vec<usize>,
    /// Whether `{"type":"end"}` arrived.
    pub end_received: bool,
    /// The error code answered after the handshake, if any.
    pub failed: Option<i64>,
    /// Whether the `"final":1` message was sent.
    pub completed: bool,
    pub violations: Vec<String>,
    /// How the connection ended; `None` while it is open.
    pub ended: Option<Ended>,
}

/// One call that passed the signature check.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    errors: Vec<String>,
    script: VecDeque<&'static str>,
    transcript: String,
    realtime_script: VecDeque<RealtimeScript>,
    realtime: Vec<RealtimeSession>,
    voice_ids: HashSet<String>,
    sentences: Vec<String>,
}

/// A running fake; stopped when dropped.
pub struct FakeTencent {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTencent {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        {
            let mut guard = inner.lock().unwrap();
            guard.transcript = "你好，小朋友".into();
            guard.sentences = vec!["你好，小朋友。".into(), "我们去公园吧。".into()];
        }
        let app = axum::Router::new()
            .route("/asr/v2/{appid}", get(realtime))
            .fallback(handle)
            .with_state(inner.clone());
        let server = FakeServer::start(app).await;
        Self { server, inner }
    }

    /// Also sets the AppId, so streaming recognition is real-time.
    pub fn configure_realtime(&self, config: &mut Config) {
        self.configure(config);
        config.audio.tencent.app_id = Some(APP_ID.into());
        config.audio.tencent.asr_ws_url = format!("ws://{}", self.server.addr);
    }

    /// Makes the next real-time recognition behave as `script`.
    pub fn script_realtime(&self, script: RealtimeScript) {
        self.inner.lock().unwrap().realtime_script.push_back(script);
    }

    /// The sentences real-time recognition answers from now on.
    pub fn set_sentences(&self, sentences: &[&str]) {
        self.inner.lock().unwrap().sentences = sentences.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Real-time recognitions, oldest first.
    pub fn realtime_sessions(&self) -> Vec<RealtimeSession> {
        self.inner.lock().unwrap().realtime.clone()
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        let t = &mut config.audio.tencent;
        config.audio.provider = "tencent".into();
        t.api_key = Some(SECRET_ID.into());
        t.api_secret = Some(Secret::new(SECRET_KEY));
        t.tts_endpoint = self.server.url();
        t.asr_endpoint = self.server.url();
    }

    /// Accepted calls, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Error codes answered, oldest first.
    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().unwrap().errors.clone()
    }

    /// Makes `SentenceRecognition` recognize `text` from now on (empty for
    /// silence).
    pub fn set_transcript(&self, text: &str) {
        self.inner.lock().unwrap().transcript = text.to_owned();
    }

    /// Answers the next correctly signed call with this error code.
    pub fn script_error(&self, code: &'static str) {
        self.inner.lock().unwrap().script.push_back(code);
    }
}

fn error(inner: &Mutex<Inner>, code: &str, message: &str) -> Response {
    inner.lock().unwrap().errors.push(code.to_owned());
    axum::Json(json!({"Response": {
        "Error": {"Code": code, "Message": message},
        "RequestId": "fake-request-id",
    }}))
    .into_response()
}

/// The parts of `Authorization`, or `None` when it is malformed.
fn parse_authorization(value: &str) -> Option<(String, String, String, String)> {
    let rest = value.strip_prefix("TC3-HMAC-SHA256 Credential=")?;
    let (credential, rest) = rest.split_once(", SignedHeaders=")?;
    let (signed, signature) = rest.split_once(", Signature=")?;
    let (id, scope) = credential.split_once('/')?;
    Some((id.into(), scope.into(), signed.into(), signature.into()))
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((id, scope, signed, signature)) =
        parse_authorization(header(&headers, "authorization"))
    else {
        return error(
            &inner,
            "AuthFailure.InvalidAuthorization",
            "bad Authorization",
        );
    };
    let signed_list: Vec<&str> = signed.split(';').collect();
    if !signed_list.contains(&"content-type") || !signed_list.contains(&"host") {
        return error(
            &inner,
            "AuthFailure.InvalidAuthorization",
            "content-type and host must be signed",
        );
    }
    if id != SECRET_ID {
        return error(&inner, "AuthFailure.SecretIdNotFound", "unknown SecretId");
    }
    let Ok(timestamp) = header(&headers, "x-tc-timestamp").parse::<u64>() else {
        return error(
            &inner,
            "AuthFailure.InvalidAuthorization",
            "bad X-TC-Timestamp",
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(timestamp) > 300 {
        return error(
            &inner,
            "AuthFailure.SignatureExpire",
            "timestamp too far off",
        );
    }
    let mut scope_parts = scope.split('/');
    let (Some(date), Some(service), Some("tc3_request"), None) = (
        scope_parts.next(),
        scope_parts.next(),
        scope_parts.next(),
        scope_parts.next(),
    ) else {
        return error(
            &inner,
            "AuthFailure.InvalidAuthorization",
            "bad credential scope",
        );
    };
    if date != tc3::tc3_date(timestamp) {
        return error(
            &inner,
            "AuthFailure.SignatureFailure",
            "scope date mismatch",
        );
    }
    let values: Vec<(&str, &str)> = signed_list
        .iter()
        .map(|name| (*name, header(&headers, name)))
        .collect();
    let canonical =
        tc3::canonical_request("POST", "/", "", &values, &tc3::hashed_payload(&body)).unwrap();
    let sts = tc3::string_to_sign(timestamp, &scope, &canonical.canonical_request);
    let key = tc3::signing_key(SECRET_KEY, date, service).unwrap();
    let expected = tc3::signature(&key, &sts).unwrap();
    if canonical.signed_headers != signed || expected != signature {
        return error(&inner, "AuthFailure.SignatureFailure", "signature mismatch");
    }
    let action = header(&headers, "x-tc-action").to_owned();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(&inner, "InvalidParameter", "body is not JSON");
    };
    let scripted = inner.lock().unwrap().script.pop_front();
    if let Some(code) = scripted {
        return error(&inner, code, "scripted");
    }
    inner.lock().unwrap().calls.push(Call {
        action: action.clone(),
        body: request.clone(),
    });
    match (action.as_str(), service) {
        ("TextToVoice", "tts") => {
            if header(&headers, "x-tc-version") != "2019-08-23" {
                return error(&inner, "NoSuchVersion", "version");
            }
            let text = request["Text"].as_str().unwrap_or("");
            if text.is_empty() || text.chars().count() > 150 {
                return error(&inner, "InvalidParameterValue.TextTooLong", "Text length");
            }
            let audio = match request["Codec"].as_str() {
                Some("pcm") => tone(100 * text.chars().count(), 16_000),
                Some("mp3") => b"\xff\xfb\x90\x00fake-mp3".to_vec(),
                _ => return error(&inner, "InvalidParameterValue.Codec", "Codec"),
            };
            axum::Json(json!({"Response": {
                "Audio": STANDARD.encode(audio),
                "SessionId": request["SessionId"],
                "Subtitles": [{"Text": text, "BeginTime": 0, "EndTime": 100 * text.chars().count(), "BeginIndex": 0, "EndIndex": 1, "Phoneme": ""}],
                "RequestId": "fake-request-id",
            }}))
            .into_response()
        }
        ("SentenceRecognition", "asr") => {
            if request.get("EngSerViceType").and_then(Value::as_str) != Some("16k_zh") {
                return error(&inner, "InvalidParameterValue.EngSerViceType", "engine");
            }
            let data = STANDARD
                .decode(request["Data"].as_str().unwrap_or(""))
                .unwrap_or_default();
            if request["DataLen"].as_u64() != Some(data.len() as u64) {
                return error(&inner, "InvalidParameterValue.DataLen", "DataLen");
            }
            let transcript = inner.lock().unwrap().transcript.clone();
            axum::Json(json!({"Response": {
                "Result": transcript,
                "AudioDuration": data.len() / 32,
                "WordSize": 0,
                "WordList": null,
                "RequestId": "fake-request-id",
            }}))
            .into_response()
        }
        _ => error(&inner, "InvalidAction", "unknown action"),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The handshake checks of real-time recognition: the decoded query, or
/// the API 2.0 code and message to answer in the socket.
fn check_realtime(
    inner: &Mutex<Inner>,
    appid: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> (HashMap<String, String>, Result<(), (i64, String)>) {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let query: HashMap<String, String> = pairs.iter().cloned().collect();
    let verdict = (|| {
        for required in [
            "secretid",
            "timestamp",
            "expired",
            "nonce",
            "engine_model_type",
            "voice_id",
            "voice_format",
            "signature",
        ] {
            if query.get(required).is_none_or(String::is_empty) {
                return Err((4001, format!("参数不合法: {required} is missing")));
            }
        }
        if pairs.len() != query.len() {
            return Err((4001, "参数不合法: a parameter appears twice".into()));
        }
        // The signed string, rebuilt from the request as received.
        let mut signed: Vec<&(String, String)> =
            pairs.iter().filter(|(k, _)| k != "signature").collect();
        signed.sort_by(|a, b| a.0.cmp(&b.0));
        let joined: Vec<String> = signed.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let source = format!(
            "{}{}?{}",
            header(headers, "host"),
            uri.path(),
            joined.join("&")
        );
        let expected = lty_vendors::tencent::realtime_asr::signature(SECRET_KEY, &source).unwrap();
        if appid != APP_ID || query["secretid"] != SECRET_ID || query["signature"] != expected {
            return Err((4002, "鉴权失败".into()));
        }
        let expired: u64 = query["expired"]
            .parse()
            .map_err(|_| (4001, "参数不合法: expired".to_owned()))?;
        if expired <= now_secs() {
            return Err((4002, "鉴权失败: signature expired".into()));
        }
        if query["engine_model_type"] != "16k_zh" || query["voice_format"] != "1" {
            return Err((4001, "参数不合法: engine or voice_format".into()));
        }
        if !inner
            .lock()
            .unwrap()
            .voice_ids
            .insert(query["voice_id"].clone())
        {
            return Err((4001, "参数不合法: voice_id reused".into()));
        }
        Ok(())
    })();
    (query, verdict)
}

async fn realtime(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(appid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let (query, verdict) = check_realtime(&inner, &appid, &uri, &headers);
    let script = inner.lock().unwrap().realtime_script.pop_front();
    // The vendor upgrades first and answers inside the socket.
    ws.on_upgrade(move |socket| realtime_session(socket, inner, query, verdict, script))
}

fn rt_message(
    code: i64,
    message: &str,
    voice_id: &str,
    result: Option<Value>,
    last: bool,
) -> Message {
    let mut m = json!({
        "code": code, "message": message, "voice_id": voice_id,
        "message_id": format!("{voice_id}_{}", rand::random::<u32>()),
    });
    if let Some(r) = result {
        m["result"] = r;
    }
    if last {
        m["final"] = json!(1);
    }
    Message::Text(m.to_string().into())
}

async fn realtime_session(
    mut socket: WebSocket,
    inner: Arc<Mutex<Inner>>,
    query: HashMap<String, String>,
    verdict: Result<(), (i64, String)>,
    script: Option<RealtimeScript>,
) {
    let voice_id = query.get("voice_id").cloned().unwrap_or_default();
    let mut session = RealtimeSession {
        query,
        handshake_code: verdict.as_ref().err().map_or(0, |(c, _)| *c),
        ..RealtimeSession::default()
    };
    let index = {
        let mut guard = inner.lock().unwrap();
        guard.realtime.push(session.clone());
        guard.realtime.len() - 1
    };
    let save = |s: &RealtimeSession| inner.lock().unwrap().realtime[index] = s.clone();
    let sentences = inner.lock().unwrap().sentences.clone();
    let mut over = false;
    match &verdict {
        Ok(()) => {
            let _ = socket
                .send(rt_message(0, "success", &voice_id, None, false))
                .await;
        }
        Err((code, message)) => {
            let _ = socket
                .send(rt_message(*code, message, &voice_id, None, false))
                .await;
            let _ = socket.send(Message::Close(None)).await;
            over = true;
        }
    }
    let ended =
        loop {
            let msg = match socket.recv().await {
                Some(Ok(msg)) => msg,
                _ => break Ended::Lost,
            };
            if let Message::Close(_) = msg {
                break Ended::CloseFrame;
            }
            if over {
                continue;
            }
            let mut fail: Option<(i64, String)> = None;
            let mut replies = Vec::new();
            match msg {
                Message::Binary(audio) => {
                    if session.end_received {
                        fail = Some((4001, "参数不合法: audio after the end".into()));
                    } else if !audio.len().is_multiple_of(2) {
                        fail = Some((4007, "音频解码失败".into()));
                    } else {
                        session.audio.extend_from_slice(&audio);
                        session.frame_sizes.push(audio.len());
                        let frames = session.frame_sizes.len();
                        let ms = session.audio.len() / 32;
                        match script {
                            Some(RealtimeScript::Fail { code, after }) if frames == after => {
                                fail = Some((code, "scripted failure".into()));
                            }
                            Some(RealtimeScript::Drop { after }) if frames == after => {
                                break Ended::DroppedByFake;
                            }
                            _ if frames == 1 => replies.push(rt_message(
                                0,
                                "success",
                                &voice_id,
                                Some(json!({
                                    "slice_type": 0, "index": 0, "start_time": 0, "end_time": ms,
                                    "voice_text_str": "", "word_size": 0, "word_list": [],
                                })),
                                false,
                            )),
                            _ if frames.is_multiple_of(10) => {
                                let first: String = sentences
                                    .first()
                                    .map(|s| s.chars().take(2).collect())
                                    .unwrap_or_default();
                                replies.push(rt_message(0, "success", &voice_id, Some(json!({
                                "slice_type": 1, "index": 0, "start_time": 0, "end_time": ms,
                                "voice_text_str": first, "word_size": 0, "word_list": [],
                            })), false));
                            }
                            _ => {}
                        }
                    }
                }
                Message::Text(text) => {
                    let parsed: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if session.end_received || parsed != json!({"type": "end"}) {
                        session.violations.push(format!("unexpected text {text}"));
                        fail = Some((4010, "客户端上传未知文本消息".into()));
                    } else {
                        session.end_received = true;
                        if !matches!(script, Some(RealtimeScript::Silent)) {
                            let ms = session.audio.len() / 32;
                            for (i, sentence) in sentences.iter().enumerate() {
                                replies.push(rt_message(0, "success", &voice_id, Some(json!({
                                "slice_type": 2, "index": i, "start_time": 0, "end_time": ms,
                                "voice_text_str": sentence, "word_size": 0, "word_list": [],
                            })), false));
                            }
                            replies.push(rt_message(0, "success", &voice_id, None, true));
                            session.completed = true;
                        }
                    }
                }
                _ => continue,
            }
            if let Some((code, message)) = fail {
                session.failed = Some(code);
                replies.push(rt_message(code, &message, &voice_id, None, false));
            }
            save(&session);
            for r in replies {
                let _ = socket.send(r).await;
            }
            if session.failed.is_some() || session.completed {
                over = true;
                let _ = socket.send(Message::Close(None)).await;
            }
        };
    session.ended = Some(ended);
    save(&session);
}
