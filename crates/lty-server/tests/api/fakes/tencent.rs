//! A fake Tencent Cloud API 3.0 endpoint for `TextToVoice` and
//! `SentenceRecognition`: parses `Authorization` strictly, recomputes the
//! TC3-HMAC-SHA256 signature from the request as received, and answers
//! every error, signature errors included, in HTTP 200 with the
//! `{"Response":{"Error":...}}` envelope, like the vendor.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lty_server::config::{Config, Secret};
use lty_vendors::tencent::tc3;
use serde_json::{Value, json};

use super::{FakeServer, header, tone};

/// The fake's key pair (fictional).
pub const SECRET_ID: &str = "AKIDexampleTencentSpeechForLtyTests";
pub const SECRET_KEY: &str = "exampleTencentSecretForLtyTestsOnly";

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
}

/// A running fake; stopped when dropped.
pub struct FakeTencent {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTencent {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        inner.lock().unwrap().transcript = "你好，小朋友".into();
        let server = FakeServer::start_handler(handle, inner.clone()).await;
        Self { server, inner }
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
