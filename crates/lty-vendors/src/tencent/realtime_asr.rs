//! Real-time speech recognition over WebSocket (API 2.0,
//! `wss://asr.cloud.tencent.com/asr/v2/<appid>?<query>`), as lty's
//! [`StreamingAsr`] port.
//!
//! The query carries the parameters, the SecretId and a signature: the
//! parameters sorted by name and joined as `k=v&…` after
//! `<host>/asr/v2/<appid>?` make the string signed with HMAC-SHA1 keyed
//! with the SecretKey, Base64, then URL-encoded as `signature`. After the
//! upgrade the server sends `{"code":0,…}` (or an error code and closes);
//! the client sends PCM as binary frames of 40 ms at about real time, then
//! the text `{"type":"end"}`; results come as JSON text with one
//! `result` per sentence (`index`, `slice_type` 0/1/2, `voice_text_str`)
//! and a last message with `"final":1` and no result.
//!
//! Codes are the API 2.0 ones (4002 authentication failed, 4006 over the
//! concurrency limit, 4008 no audio for 15 s, 5000–5002 server side).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use lty_core::speech::{AsrSession, StreamingAsr, Transcript};
use lty_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use tokio_tungstenite::tungstenite::Message;

use super::{Credential, SignError};
use crate::asr_stream::{self, ConnectError, Step};

const PROVIDER: &str = "tencent";

/// The public endpoint.
pub const DEFAULT_WS_URL: &str = "wss://asr.cloud.tencent.com";
/// Path prefix; the AppId follows.
pub const PATH: &str = "/asr/v2/";
/// `engine_model_type`: Mandarin, 16 kHz.
pub const ENGINE: &str = "16k_zh";
/// `voice_format` of raw PCM.
pub const VOICE_FORMAT_PCM: u8 = 1;
/// Bytes of one audio frame: 40 ms of 16 kHz 16-bit mono, as the service
/// recommends.
pub const CHUNK_BYTES: usize = 1280;
/// The text message that ends the audio.
pub const END: &str = r#"{"type":"end"}"#;
/// Seconds a signature stays valid (`expired` − `timestamp`).
pub const SIGNATURE_LIFETIME: u64 = 24 * 3600;

/// API 2.0 codes lty acts on.
pub mod code {
    /// Success.
    pub const OK: i64 = 0;
    /// Audio sent faster than 3 s per second.
    pub const TOO_FAST: i64 = 4000;
    /// Invalid parameters.
    pub const INVALID_PARAMETER: i64 = 4001;
    /// Authentication failed (signature, SecretId, AppId).
    pub const AUTH_FAILED: i64 = 4002;
    /// The service is not enabled for the AppId.
    pub const NOT_ENABLED: i64 = 4003;
    /// The resource pack is used up.
    pub const NO_RESOURCES: i64 = 4004;
    /// The account is in arrears.
    pub const ARREARS: i64 = 4005;
    /// Over the account's concurrency limit.
    pub const CONCURRENCY: i64 = 4006;
    /// The audio cannot be decoded.
    pub const DECODE_FAILED: i64 = 4007;
    /// No audio for 15 s.
    pub const UPLOAD_TIMEOUT: i64 = 4008;
    /// The client went away.
    pub const CLIENT_GONE: i64 = 4009;
    /// An unknown text message from the client.
    pub const UNKNOWN_TEXT: i64 = 4010;
    /// Called from abroad on the mainland site.
    pub const OVERSEAS: i64 = 6001;
}

/// The query parameters of one connection, sorted by name (the order they
/// are signed and sent in), `signature` excepted.
pub fn query(
    secret_id: &str,
    voice_id: &str,
    timestamp: u64,
    nonce: u32,
) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("convert_num_mode", "1".to_owned()),
        ("engine_model_type", ENGINE.to_owned()),
        ("expired", (timestamp + SIGNATURE_LIFETIME).to_string()),
        ("needvad", "1".to_owned()),
        ("nonce", nonce.to_string()),
        ("secretid", secret_id.to_owned()),
        ("timestamp", timestamp.to_string()),
        ("voice_format", VOICE_FORMAT_PCM.to_string()),
        ("voice_id", voice_id.to_owned()),
    ];
    q.sort_by(|a, b| a.0.cmp(b.0));
    q
}

/// The string signed: `<host>/asr/v2/<appid>?k=v&…` with the parameters
/// sorted by name and their values as sent.
pub fn sign_string(host: &str, appid: &str, params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let joined: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{host}{PATH}{appid}?{}", joined.join("&"))
}

/// Base64 of HMAC-SHA1 of `sign_string` keyed with the SecretKey.
pub fn signature(secret_key: &str, sign_string: &str) -> std::result::Result<String, SignError> {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).map_err(|_| SignError::HmacKey)?;
    mac.update(sign_string.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether a parameter value can go into the URL as it is signed (every
/// value lty sends is made of these).
fn url_safe(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

/// The URL of one connection: `<ws_url>/asr/v2/<appid>?<query>&signature=…`,
/// signed over the host (and port) of `ws_url`.
pub fn signed_url(
    ws_url: &str,
    appid: &str,
    credential: &Credential,
    voice_id: &str,
    timestamp: u64,
    nonce: u32,
) -> std::result::Result<String, String> {
    let base = ws_url.trim_end_matches('/');
    let host = base
        .strip_prefix("wss://")
        .or_else(|| base.strip_prefix("ws://"))
        .ok_or_else(|| format!("{base} is not a ws:// or wss:// URL"))?;
    if !url_safe(appid) {
        return Err("the AppId must be digits".into());
    }
    let params = query(&credential.secret_id, voice_id, timestamp, nonce);
    if let Some((k, _)) = params.iter().find(|(_, v)| !url_safe(v)) {
        return Err(format!("{k} has characters that cannot be signed as sent"));
    }
    let signed = sign_string(host, appid, &params);
    let sig = signature(&credential.secret_key, &signed).map_err(|e| e.to_string())?;
    let encoded: String = url::form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    let query = signed
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    Ok(format!("{base}{PATH}{appid}?{query}&signature={encoded}"))
}

/// One sentence's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceResult {
    /// 0 a sentence starts, 1 it changes, 2 it is final.
    #[serde(default)]
    pub slice_type: u8,
    /// The sentence's number in the stream.
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub start_time: u64,
    #[serde(default)]
    pub end_time: u64,
    /// The sentence's text so far.
    #[serde(default)]
    pub voice_text_str: String,
}

/// A server message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMessage {
    /// [`code::OK`] or an error.
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub voice_id: String,
    #[serde(default)]
    pub message_id: String,
    #[serde(default)]
    pub result: Option<SliceResult>,
    /// 1 on the last message of the stream.
    #[serde(default, rename = "final")]
    pub is_final: u8,
}

/// The error a non-zero code stands for.
fn failed(m: &ServerMessage) -> Error {
    let vendor_code = m.code.to_string();
    let message = format!("code {}: {} (voice {})", m.code, m.message, m.voice_id);
    match m.code {
        code::AUTH_FAILED
        | code::NOT_ENABLED
        | code::NO_RESOURCES
        | code::ARREARS
        | code::OVERSEAS => asr_stream::unavailable(PROVIDER, &vendor_code, &message),
        code::CONCURRENCY => asr_stream::busy(PROVIDER, &vendor_code, &message),
        _ => asr_stream::upstream(PROVIDER, message),
    }
}

fn parse(msg: &Message) -> Result<ServerMessage> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str()).map_err(|e| {
            asr_stream::upstream(PROVIDER, format!("server message is not JSON: {e}"))
        }),
        _ => Err(asr_stream::upstream(
            PROVIDER,
            "a binary message where JSON text was expected",
        )),
    }
}

/// The Tencent side of a streaming session: the latest text of every
/// sentence, joined in order at the end.
#[derive(Default)]
struct TencentStream {
    sentences: BTreeMap<i64, String>,
}

impl asr_stream::Protocol for TencentStream {
    fn audio(&mut self, pcm: Bytes) -> Result<Message> {
        Ok(Message::Binary(pcm))
    }

    fn finish(&mut self, tail: Bytes) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(2);
        if !tail.is_empty() {
            out.push(Message::Binary(tail));
        }
        out.push(Message::Text(END.into()));
        Ok(out)
    }

    fn on_message(&mut self, msg: Message) -> Result<Step> {
        let m = parse(&msg)?;
        if m.code != code::OK {
            return Err(failed(&m));
        }
        if let Some(r) = m.result {
            self.sentences.insert(r.index, r.voice_text_str);
        }
        if m.is_final == 1 {
            return Ok(Step::Done(Transcript {
                text: self.sentences.values().map(String::as_str).collect(),
                confidence: None,
            }));
        }
        Ok(Step::Continue)
    }
}

/// Settings of a [`TencentRealtimeAsr`] client.
#[derive(Clone)]
pub struct TencentRealtimeAsrConfig {
    /// The account's AppId (digits), part of the path.
    pub app_id: String,
    pub credential: Credential,
    /// Scheme and host, e.g. [`DEFAULT_WS_URL`] or `ws://127.0.0.1:PORT`.
    pub ws_url: String,
    /// Bound on connecting and on the server's first message.
    pub connect_timeout: Duration,
    /// Bound on the final result once the audio has ended.
    pub timeout: Duration,
}

impl fmt::Debug for TencentRealtimeAsrConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TencentRealtimeAsrConfig")
            .field("app_id", &self.app_id)
            .field("credential", &self.credential)
            .field("ws_url", &self.ws_url)
            .finish_non_exhaustive()
    }
}

/// Tencent real-time recognition; cheap to clone.
#[derive(Debug, Clone)]
pub struct TencentRealtimeAsr {
    config: TencentRealtimeAsrConfig,
}

impl TencentRealtimeAsr {
    /// A client for `config`.
    pub fn new(config: TencentRealtimeAsrConfig) -> Self {
        Self { config }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[async_trait]
impl StreamingAsr for TencentRealtimeAsr {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// Connects with a freshly signed URL and waits for the server's
    /// handshake message.
    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn open(&self) -> Result<Box<dyn AsrSession>> {
        let c = &self.config;
        // A fresh voice_id per connection: the service refuses reuse.
        let voice_id = format!("{:032x}", rand::random::<u128>());
        let nonce = rand::random_range(1..=999_999_999u32);
        let url = signed_url(
            &c.ws_url,
            &c.app_id,
            &c.credential,
            &voice_id,
            now_secs(),
            nonce,
        )
        .map_err(|e| asr_stream::upstream(PROVIDER, e))?;
        let req = asr_stream::request(&url, &[]).map_err(|e| asr_stream::upstream(PROVIDER, e))?;
        let mut ws = match asr_stream::connect(req, c.connect_timeout).await {
            Ok(ws) => ws,
            Err(ConnectError::Refused { status, body, .. }) => {
                let message = format!("WebSocket handshake refused with HTTP {status}: {body}");
                return Err(match status {
                    401 | 403 => {
                        asr_stream::unavailable(PROVIDER, &format!("HTTP {status}"), &message)
                    }
                    _ => asr_stream::upstream(PROVIDER, message),
                });
            }
            Err(ConnectError::Failed(message)) => {
                return Err(asr_stream::upstream(PROVIDER, message));
            }
        };
        // The server speaks first: code 0, or why it refuses.
        let first = loop {
            match asr_stream::next_within(&mut ws, c.connect_timeout, PROVIDER).await? {
                None | Some(Message::Close(_)) => {
                    return Err(asr_stream::upstream(
                        PROVIDER,
                        "connection closed before the handshake message",
                    ));
                }
                Some(m @ (Message::Text(_) | Message::Binary(_))) => break parse(&m)?,
                Some(_) => {}
            }
        };
        if first.code != code::OK {
            return Err(failed(&first));
        }
        tracing::debug!(%voice_id, "tencent real-time recognition open");
        Ok(asr_stream::spawn(
            PROVIDER,
            ws,
            TencentStream::default(),
            asr_stream::SessionLimits {
                chunk_bytes: CHUNK_BYTES,
                timeout: c.timeout,
                // Code 4000 refuses more than 3 s of audio per second.
                pace: Some(asr_stream::Pace {
                    burst: Duration::from_secs(1),
                    speed: 2.0,
                }),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_base64_hmac_sha1() {
        // RFC 2202, test case 2.
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?").unwrap(),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn the_signed_string_is_host_path_appid_and_sorted_parameters() {
        let params = vec![
            ("voice_id", "v1".to_owned()),
            ("engine_model_type", "16k_zh".to_owned()),
            ("timestamp", "1673408372".to_owned()),
        ];
        assert_eq!(
            sign_string("asr.cloud.tencent.com", "1259228442", &params),
            "asr.cloud.tencent.com/asr/v2/1259228442?engine_model_type=16k_zh&timestamp=1673408372&voice_id=v1"
        );
    }

    #[test]
    fn the_url_carries_the_signed_query_and_the_encoded_signature() {
        let cred = Credential::new("AKIDexample", "secret");
        let url = signed_url(
            "ws://127.0.0.1:9000/",
            "1250000000",
            &cred,
            "abc",
            1_700_000_000,
            42,
        )
        .unwrap();
        let (base, rest) = url.split_once('?').unwrap();
        assert_eq!(base, "ws://127.0.0.1:9000/asr/v2/1250000000");
        let (query, sig) = rest.rsplit_once("&signature=").unwrap();
        assert_eq!(
            query,
            "convert_num_mode=1&engine_model_type=16k_zh&expired=1700086400&needvad=1&nonce=42\
             &secretid=AKIDexample&timestamp=1700000000&voice_format=1&voice_id=abc"
        );
        let expected = signature(
            "secret",
            &format!("127.0.0.1:9000/asr/v2/1250000000?{query}"),
        )
        .unwrap();
        let decoded: String = url::form_urlencoded::parse(format!("s={sig}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(decoded, expected);
        assert!(!sig.contains('+') && !sig.contains('/') && !sig.contains('='));
        assert!(signed_url("https://x", "1", &cred, "a", 1, 1).is_err());
        assert!(signed_url("ws://x", "1&a=b", &cred, "a", 1, 1).is_err());
    }

    #[test]
    fn messages_parse_and_codes_are_sorted() {
        let m: ServerMessage = serde_json::from_str(
            r#"{"code":0,"message":"success","voice_id":"v","message_id":"v_1_0","result":{"slice_type":2,"index":1,"start_time":0,"end_time":900,"voice_text_str":"你好","word_size":0,"word_list":[]},"final":0}"#,
        )
        .unwrap();
        assert_eq!(m.result.unwrap().voice_text_str, "你好");
        let last: ServerMessage = serde_json::from_str(
            r#"{"code":0,"message":"success","voice_id":"v","message_id":"m","final":1}"#,
        )
        .unwrap();
        assert_eq!(last.is_final, 1);
        let code_of = |code| {
            failed(&ServerMessage {
                code,
                ..ServerMessage::default()
            })
            .code()
        };
        assert_eq!(code_of(code::AUTH_FAILED), "provider_unavailable");
        assert_eq!(code_of(code::ARREARS), "provider_unavailable");
        assert_eq!(code_of(code::CONCURRENCY), "upstream_rate_limited");
        assert_eq!(code_of(code::UPLOAD_TIMEOUT), "upstream_error");
        assert_eq!(code_of(5000), "upstream_error");
    }

    #[test]
    fn sentences_are_joined_in_order_at_the_final_message() {
        use asr_stream::Protocol;
        let mut s = TencentStream::default();
        let msg = |json: &str| Message::Text(json.to_owned().into());
        for json in [
            r#"{"code":0,"result":{"slice_type":0,"index":0,"voice_text_str":"你"}}"#,
            r#"{"code":0,"result":{"slice_type":2,"index":0,"voice_text_str":"你好。"}}"#,
            r#"{"code":0,"result":{"slice_type":2,"index":1,"voice_text_str":"再见。"}}"#,
        ] {
            assert!(matches!(s.on_message(msg(json)).unwrap(), Step::Continue));
        }
        let Step::Done(t) = s.on_message(msg(r#"{"code":0,"final":1}"#)).unwrap() else {
            panic!("not done");
        };
        assert_eq!(t.text, "你好。再见。");
        assert!(
            s.on_message(msg(r#"{"code":4008,"message":"timeout"}"#))
                .is_err()
        );
    }
}
