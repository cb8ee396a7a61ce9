//! A fake Aliyun SMS gateway (dysmsapi `SendSms`): recomputes the RPC
//! signature V1 from the parameters as received (query string and form
//! body together), refuses a wrong one, a reused nonce or a stale
//! timestamp with the vendor's error body, records every accepted message,
//! and can be told to answer the next call with a business error in HTTP
//! 200, a gateway throttling error, or slowly.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use lty_vendors::aliyun::Method as PopMethod;
use lty_vendors::aliyun::pop::{canonicalized_query, rpc_signature, rpc_string_to_sign};
use serde_json::{Value, json};

use super::FakeServer;

/// The fake's AccessKey pair and approved signature/template (fictional).
pub const ACCESS_KEY_ID: &str = "LTAIexampleSmsKeyForLtyTests";
pub const ACCESS_KEY_SECRET: &str = "exampleSmsSecretForLtyTestsOnly";
pub const SIGN_NAME: &str = "灵童测试";
pub const TEMPLATE_CODE: &str = "SMS_100000001";

/// One message the fake accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub phone_numbers: String,
    pub sign_name: String,
    pub template_code: String,
    pub template_param: Value,
}

/// A scripted answer for the next correctly signed call.
#[derive(Debug, Clone)]
pub enum Script {
    /// HTTP 200 with this business `Code` (e.g. `isv.BUSINESS_LIMIT_CONTROL`).
    Business(&'static str),
    /// A gateway error: HTTP `status` with this `Code`.
    Gateway(u16, &'static str),
    /// Send the message, but answer only after this long.
    Delay(Duration),
}

#[derive(Default)]
struct Inner {
    sent: Vec<Sent>,
    rejected: Vec<String>,
    nonces: HashSet<String>,
    script: VecDeque<Script>,
}

/// A running fake; stopped when dropped.
pub struct FakeAliyunSms {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeAliyunSms {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let server = FakeServer::start_handler(handle, inner.clone()).await;
        Self { server, inner }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        let sms = &mut config.aliyun.sms;
        sms.endpoint = self.url();
        sms.access_key_id = Some(ACCESS_KEY_ID.into());
        sms.access_key_secret = Some(Secret::new(ACCESS_KEY_SECRET));
        sms.sign_name = Some(SIGN_NAME.into());
        sms.template_code = Some(TEMPLATE_CODE.into());
    }

    /// Every accepted message, oldest first.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().sent.clone()
    }

    /// `Code`s of refused requests, oldest first.
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }

    /// The code in the latest message to `phone` (as sent: 11 digits for
    /// mainland numbers).
    pub fn last_code(&self, phone: &str) -> String {
        self.sent()
            .iter()
            .rev()
            .find(|s| s.phone_numbers == phone)
            .and_then(|s| s.template_param["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no SMS to {phone}"))
    }

    /// Scripts the answer to the next correctly signed call.
    pub fn script(&self, s: Script) {
        self.inner.lock().unwrap().script.push_back(s);
    }
}

fn pop_error(status: u16, code: &str, message: &str) -> Response {
    pop_error_from("dysmsapi.aliyuncs.com", status, code, message)
}

/// A POP gateway error body (`RequestId`, `HostId`, `Code`, `Message`,
/// `Recommend`) with HTTP `status`, as answered by the gateway at `host_id`.
pub fn pop_error_from(host_id: &str, status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (
        status,
        axum::Json(json!({
            "RequestId": request_id(),
            "HostId": host_id,
            "Code": code,
            "Message": message,
            "Recommend": format!("https://next.api.aliyun.com/troubleshoot?q={code}"),
        })),
    )
        .into_response()
}

fn business(code: &str, message: &str) -> Response {
    axum::Json(json!({"RequestId": request_id(), "Code": code, "Message": message})).into_response()
}

/// A POP `RequestId` (a fake UUID).
pub fn request_id() -> String {
    format!(
        "{:08X}-FAKE-4000-8000-{:012X}",
        rand::random::<u32>(),
        rand::random::<u64>() >> 16
    )
}

/// The `name=value` pairs of a query string or form body, decoded.
pub fn decode_pairs(s: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s).into_owned().collect()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let reject = |code: &str| inner.lock().unwrap().rejected.push(code.to_owned());
    let checked = verify_rpc_v1(
        &RpcGateway {
            access_key_id: ACCESS_KEY_ID,
            access_key_secret: ACCESS_KEY_SECRET,
            action: "SendSms",
            version: "2017-05-25",
        },
        &method,
        &uri,
        &body,
        |nonce| inner.lock().unwrap().nonces.insert(nonce.to_owned()),
    );
    let params = match checked {
        Ok(params) => params,
        Err(r) => {
            reject(&r.code);
            return pop_error(r.status, &r.code, &r.message);
        }
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    let next = inner.lock().unwrap().script.pop_front();
    let mut delay = None;
    match next {
        Some(Script::Business(code)) => {
            reject(code);
            return business(code, "scripted failure");
        }
        Some(Script::Gateway(status, code)) => {
            reject(code);
            return pop_error(status, code, "Request was denied due to user flow control.");
        }
        Some(Script::Delay(d)) => delay = Some(d),
        None => {}
    }

    let (Some(phone_numbers), Some(sign_name), Some(template_code)) =
        (get("PhoneNumbers"), get("SignName"), get("TemplateCode"))
    else {
        reject("MissingParameter");
        return pop_error(
            400,
            "MissingParameter",
            "PhoneNumbers, SignName and TemplateCode are required.",
        );
    };
    if sign_name != SIGN_NAME {
        reject("isv.SMS_SIGNATURE_ILLEGAL");
        return business("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名");
    }
    if template_code != TEMPLATE_CODE {
        reject("isv.SMS_TEMPLATE_ILLEGAL");
        return business("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板");
    }
    let template_param: Value = match get("TemplateParam").map(|p| serde_json::from_str(&p)) {
        Some(Ok(v @ Value::Object(_))) if v.as_object().unwrap().values().all(Value::is_string) => {
            v
        }
        _ => {
            reject("isv.INVALID_JSON_PARAM");
            return business("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值");
        }
    };
    if !phone_numbers
        .split(',')
        .all(|p| p.len() >= 8 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        reject("isv.MOBILE_NUMBER_ILLEGAL");
        return business("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号");
    }
    inner.lock().unwrap().sent.push(Sent {
        phone_numbers,
        sign_name,
        template_code,
        template_param,
    });
    // Like the vendor, a slow answer does not stop the message going out.
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    axum::Json(json!({
        "Code": "OK",
        "Message": "OK",
        "BizId": format!("{}^0", rand::random::<u32>()),
        "RequestId": request_id(),
    }))
    .into_response()
}

/// The account and API an RPC gateway fake serves.
pub struct RpcGateway<'a> {
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
    /// The only `Action` accepted.
    pub action: &'a str,
    /// The only `Version` accepted.
    pub version: &'a str,
}

/// Why an RPC gateway fake refused a request: HTTP status, `Code`, `Message`.
#[derive(Debug, Clone)]
pub struct RpcRejection {
    pub status: u16,
    pub code: String,
    pub message: String,
}

fn rejection(status: u16, code: &str, message: impl Into<String>) -> RpcRejection {
    RpcRejection {
        status,
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Checks an RPC signature V1 request as the Aliyun gateway does: the
/// parameters of the query string and form body together, the key id, the
/// signature recomputed with the request's real method, the fixed common
/// parameters, the `Timestamp` window (15 minutes) and the nonce
/// (`nonce_is_new` records it and says whether it was unseen). Returns
/// every parameter received.
pub fn verify_rpc_v1(
    gateway: &RpcGateway<'_>,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    nonce_is_new: impl FnOnce(&str) -> bool,
) -> Result<Vec<(String, String)>, RpcRejection> {
    let pop_method = match *method {
        Method::GET => PopMethod::Get,
        Method::POST => PopMethod::Post,
        _ => return Err(rejection(405, "UnsupportedHTTPMethod", "GET or POST")),
    };
    // The gateway verifies over query and body parameters together.
    let mut params = decode_pairs(uri.query().unwrap_or("").as_bytes());
    params.extend(decode_pairs(body));
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(signature) = get("Signature") else {
        return Err(rejection(
            400,
            "MissingSignature",
            "Signature is mandatory for this action.",
        ));
    };
    if get("AccessKeyId").as_deref() != Some(gateway.access_key_id) {
        return Err(rejection(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    let unsigned: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .cloned()
        .collect();
    let sts = rpc_string_to_sign(pop_method, &canonicalized_query(&unsigned));
    let expected = rpc_signature(gateway.access_key_secret, &sts).unwrap();
    if signature != expected {
        return Err(rejection(
            400,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{sts}"
            ),
        ));
    }
    for (name, want) in [
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Format", "JSON"),
        ("Version", gateway.version),
        ("Action", gateway.action),
    ] {
        if get(name).as_deref() != Some(want) {
            return Err(rejection(
                400,
                "InvalidParameter",
                format!("{name} must be {want}"),
            ));
        }
    }
    match get("Timestamp").as_deref().and_then(parse_timestamp) {
        Some(ts) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            if now.abs_diff(ts) > 900 {
                return Err(rejection(
                    400,
                    "InvalidTimeStamp.Expired",
                    "Specified time stamp or date value is expired.",
                ));
            }
        }
        None => {
            return Err(rejection(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            ));
        }
    }
    let nonce = get("SignatureNonce").unwrap_or_default();
    if nonce.is_empty() || !nonce_is_new(&nonce) {
        return Err(rejection(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(params)
}

/// `YYYY-MM-DDThh:mm:ssZ` to Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ").ok()?;
    u64::try_from(t.and_utc().timestamp()).ok()
}
