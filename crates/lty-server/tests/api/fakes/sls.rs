//! A fake Aliyun SLS `PutLogs` endpoint: checks the headers, the
//! 15-minute `Date` window and the uppercase-hex `Content-MD5`, recomputes
//! the `LOG` signature from the request as received (refusing a wrong one
//! with `SignatureNotMatch`), inflates the body per `x-log-compresstype`,
//! checks `x-log-bodyrawsize`, decodes the `LogGroup` protobuf and records
//! every log. It can be switched to answer with an error (5xx, quota) or to
//! hang without answering, as an unreachable service would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lty_vendors::aliyun::Method as SlsMethod;
use lty_vendors::aliyun::sls::{
    LogGroup, canonicalized_log_headers, canonicalized_resource, content_md5_hex, decode_body,
    sls_signature, sls_string_to_sign,
};
use serde_json::json;

use super::FakeServer;

/// The fake's project, logstore and AccessKey pair (fictional).
pub const PROJECT: &str = "lty-test-project";
pub const STORE: &str = "lty-test-store";
pub const ACCESS_KEY_ID: &str = "LTAIexampleSlsKeyForLtyTests";
pub const ACCESS_KEY_SECRET: &str = "exampleSlsSecretForLtyTestsOnly";

/// How the fake answers correctly signed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept and record.
    Accept,
    /// Answer HTTP `status` with this `errorCode`, recording nothing.
    Fail(u16, &'static str),
    /// Never answer (the connection stays open): an unreachable service as
    /// a client with a timeout experiences it.
    Hang,
}

/// One log as received, with its group's metadata.
#[derive(Debug, Clone)]
pub struct Received {
    pub time: u32,
    pub contents: Vec<(String, String)>,
    pub topic: Option<String>,
    pub source: Option<String>,
    pub compress_type: Option<String>,
}

impl Received {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.contents
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

struct Inner {
    mode: Mode,
    /// Scripted answers for the next requests, before `mode` applies.
    script: Vec<Mode>,
    logs: Vec<Received>,
    rejected: Vec<String>,
    requests: usize,
}

/// A running fake; stopped when dropped.
pub struct FakeSls {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSls {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            mode: Mode::Accept,
            script: Vec::new(),
            logs: Vec::new(),
            rejected: Vec::new(),
            requests: 0,
        }));
        let server = FakeServer::start_handler(handle, inner.clone()).await;
        Self { server, inner }
    }

    /// The `ALIYUN_LOG_ENDPOINT` value that points lty here.
    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// `ALIYUN_LOG_*` variables pointing lty at this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("ALIYUN_LOG_PROJECT", PROJECT.to_owned()),
            ("ALIYUN_LOG_STORE", STORE.to_owned()),
            ("ALIYUN_LOG_ENDPOINT", self.endpoint()),
            ("ALIYUN_LOG_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("ALIYUN_LOG_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// Answers the next `n` correctly signed requests with `mode`.
    pub fn script(&self, mode: Mode, n: usize) {
        let mut inner = self.inner.lock().unwrap();
        for _ in 0..n {
            inner.script.push(mode);
        }
    }

    /// Every accepted log, oldest first.
    pub fn logs(&self) -> Vec<Received> {
        self.inner.lock().unwrap().logs.clone()
    }

    /// `errorCode`s answered so far (checks failed or scripted), oldest first.
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }

    /// Requests received, answered or not.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }

    /// Waits (up to `within`) for an accepted log matching `pred`.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(r) = self.logs().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn sls_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("x-log-requestid", "FAKE-SLS-ERROR")],
        axum::Json(json!({ "errorCode": code, "errorMessage": message })),
    )
        .into_response()
}

/// The checks of a `PutLogs` request; `Err((status, code, message))`.
fn verify(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<LogGroupWithMeta, (u16, &'static str, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if method != Method::POST {
        return Err((405, "MethodNotAllowed", format!("{method} not allowed")));
    }
    let path = uri.path();
    if path != format!("/logstores/{STORE}/shards/lb") {
        return Err((404, "LogStoreNotExist", format!("no logstore at {path}")));
    }
    for (name, want) in [
        ("content-type", Some("application/x-protobuf")),
        ("x-log-apiversion", Some("0.6.0")),
        ("x-log-signaturemethod", Some("hmac-sha1")),
        ("x-log-bodyrawsize", None),
        ("content-md5", None),
        ("date", None),
        ("authorization", None),
    ] {
        match (header(name), want) {
            (None, _) => return Err((400, "MissingHeader", format!("{name} is missing"))),
            (Some(got), Some(want)) if got != want => {
                return Err((400, "InvalidHeader", format!("{name}: {got}")));
            }
            _ => {}
        }
    }
    if header("x-log-date").is_some() {
        return Err((400, "InvalidHeader", "x-log-date is not expected".into()));
    }
    let date = header("date").unwrap_or_default();
    let sent = chrono::DateTime::parse_from_rfc2822(date)
        .map_err(|_| (400, "InvalidDate", format!("Date {date} is not RFC 1123")))?;
    if (chrono::Utc::now().timestamp() - sent.timestamp()).abs() > 15 * 60 {
        return Err((
            400,
            "RequestTimeTooSkewed",
            format!("Date {date} is too far off"),
        ));
    }
    let md5 = header("content-md5").unwrap_or_default();
    if md5 != content_md5_hex(body) {
        return Err((
            400,
            "InvalidContentMD5",
            format!("Content-MD5 {md5} does not match"),
        ));
    }
    // Recompute the signature from the headers as received.
    let log_headers: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let canonical = canonicalized_log_headers(&log_headers)
        .map_err(|e| (400, "InvalidHeader", e.to_string()))?;
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let string_to_sign = sls_string_to_sign(
        SlsMethod::Post,
        md5,
        header("content-type").unwrap_or_default(),
        date,
        &canonical,
        &canonicalized_resource(path, &query),
    );
    let auth = header("authorization").unwrap_or_default();
    let Some((id, signature)) = auth
        .strip_prefix("LOG ")
        .and_then(|rest| rest.split_once(':'))
    else {
        return Err((
            401,
            "Unauthorized",
            format!("malformed Authorization {auth}"),
        ));
    };
    if id != ACCESS_KEY_ID {
        return Err((401, "Unauthorized", format!("AccessKeyId {id} not found")));
    }
    let expected = sls_signature(ACCESS_KEY_SECRET, &string_to_sign).unwrap();
    if signature != expected {
        return Err((
            401,
            "SignatureNotMatch",
            format!("signature mismatch; string to sign was {string_to_sign:?}"),
        ));
    }
    let raw_size: usize = header("x-log-bodyrawsize")
        .unwrap_or_default()
        .parse()
        .map_err(|_| (400, "InvalidHeader", "x-log-bodyrawsize".to_owned()))?;
    let compress_type = header("x-log-compresstype").map(str::to_owned);
    let raw = decode_body(compress_type.as_deref(), body, raw_size)
        .map_err(|e| (400, "InvalidBody", e.to_string()))?;
    let group = LogGroup::decode(&raw).map_err(|e| (400, "InvalidProtobuf", e.to_string()))?;
    Ok(LogGroupWithMeta {
        group,
        compress_type,
    })
}

struct LogGroupWithMeta {
    group: LogGroup,
    compress_type: Option<String>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.lock().unwrap().requests += 1;
    let checked = verify(&method, &uri, &headers, &body);
    let received = match checked {
        Ok(r) => r,
        Err((status, code, message)) => {
            inner.lock().unwrap().rejected.push(code.to_owned());
            return sls_error(status, code, &message);
        }
    };
    let mode = {
        let mut inner = inner.lock().unwrap();
        if inner.script.is_empty() {
            inner.mode
        } else {
            inner.script.remove(0)
        }
    };
    match mode {
        Mode::Accept => {}
        Mode::Fail(status, code) => {
            inner.lock().unwrap().rejected.push(code.to_owned());
            return sls_error(status, code, "scripted failure");
        }
        Mode::Hang => std::future::pending::<()>().await,
    }
    let LogGroupWithMeta {
        group,
        compress_type,
    } = received;
    let mut inner = inner.lock().unwrap();
    for log in group.logs {
        inner.logs.push(Received {
            time: log.time,
            contents: log.contents,
            topic: group.topic.clone(),
            source: group.source.clone(),
            compress_type: compress_type.clone(),
        });
    }
    drop(inner);
    (StatusCode::OK, [("x-log-requestid", "FAKE-SLS-OK")]).into_response()
}
