//! A fake Aliyun Visual Intelligence: the imagerecog gateway
//! (`TaggingImage`, at `/`), the openplatform gateway
//! (`AuthorizeFileUpload`, at `/openplatform/`) and the vendor's temporary
//! OSS bucket (PostObject, at `/oss/`).
//!
//! Both gateways recompute the RPC signature V1 from the parameters as
//! received (query string and form body together) and refuse a wrong one,
//! a reused nonce or a stale timestamp with the vendor's POP error body.
//! `AuthorizeFileUpload` grants one key in the temporary bucket with a POST
//! policy signed by the bucket's own key; the PostObject must carry exactly
//! that policy, signature and key, the fields in order with `file` last,
//! else it answers an OSS XML error; accepted bytes are kept.
//!
//! `TaggingImage` downloads only from OSS in cn-shanghai
//! (`*.oss-cn-shanghai.aliyuncs.com`); any other URL fails with the
//! vendor's download error. A URL in the temporary bucket is served from
//! the uploads (a key never uploaded fails the same way); any other bucket
//! is fetched, path and query as given, from the origin set by
//! [`FakeAliyunVi::download_from`] (the OSS fake in tests).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Multipart, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lty_server::config::{Config, Secret};
use lty_vendors::aliyun::Method as PopMethod;
use lty_vendors::aliyun::oss::{object_path, oss_signature};
use lty_vendors::aliyun::pop::{canonicalized_query, rpc_signature, rpc_string_to_sign};
use serde_json::{Value, json};

use super::FakeServer;
use super::aliyun_sms::{decode_pairs, parse_timestamp, pop_error_from, request_id};

/// The fake's AccessKey pair (fictional).
pub const ACCESS_KEY_ID: &str = "LTAIexampleViKeyForLtyTests";
pub const ACCESS_KEY_SECRET: &str = "exampleViSecretForLtyTestsOnly";
/// VI downloads only from hosts ending so (OSS in cn-shanghai).
pub const ALLOWED_HOST_SUFFIX: &str = ".oss-cn-shanghai.aliyuncs.com";
/// The temporary bucket and its endpoint, as granted.
pub const TEMP_BUCKET: &str = "lty-fake-viapi-temp";
pub const TEMP_ENDPOINT: &str = "oss-cn-shanghai.aliyuncs.com";
/// The bucket's own AccessKey pair, which signs the POST policies.
pub const TEMP_ACCESS_KEY_ID: &str = "LTAIexampleViTempBucketKey";
const TEMP_ACCESS_KEY_SECRET: &str = "exampleViTempBucketSecretOnly";
/// Largest upload a policy allows.
const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// One PostObject the temporary bucket accepted.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    /// Form field names in the order received.
    pub fields: Vec<String>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// One upload `AuthorizeFileUpload` granted.
#[derive(Debug, Clone)]
struct Grant {
    key: String,
    policy: String,
    signature: String,
}

/// One tagging request the fake answered.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub image_url: String,
    /// The downloaded image.
    pub image: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    tagged: Vec<Tagged>,
    rejected: Vec<String>,
    nonces: HashSet<String>,
    /// `(value, confidence)` answered for every image.
    tags: Vec<(String, f64)>,
    /// Where `/media/...` paths are downloaded from.
    origin: Option<SocketAddr>,
    /// Gateway errors for the next `TaggingImage` calls: `(status, code)`.
    script: VecDeque<(u16, &'static str)>,
    /// Gateway errors for the next `AuthorizeFileUpload` calls.
    authorize_script: VecDeque<(u16, &'static str)>,
    /// OSS errors for the next PostObjects.
    upload_script: VecDeque<(u16, &'static str)>,
    grants: Vec<Grant>,
    uploads: BTreeMap<String, Upload>,
    /// OSS error codes answered to PostObjects, oldest first.
    upload_errors: Vec<String>,
}

/// A running fake; stopped when dropped.
pub struct FakeAliyunVi {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeAliyunVi {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        inner.lock().unwrap().tags = vec![
            ("猫".into(), 92.5),
            ("动物".into(), 88.0),
            ("草地".into(), 4.0),
        ];
        let app = axum::Router::new()
            .route("/openplatform/", axum::routing::any(handle))
            .route("/oss/", axum::routing::any(post_object))
            .fallback(handle)
            .with_state(inner.clone());
        Self {
            server: FakeServer::start(app).await,
            inner,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        let vi = &mut config.aliyun.vi;
        vi.endpoint = Some(self.server.url());
        vi.region = Some("cn-shanghai".into());
        vi.access_key_id = Some(ACCESS_KEY_ID.into());
        vi.access_key_secret = Some(Secret::new(ACCESS_KEY_SECRET));
        vi.openplatform_endpoint = Some(format!("http://{}/openplatform", self.server.addr));
        vi.upload_base_url = Some(format!("http://{}/oss", self.server.addr));
    }

    /// Fetches images on OSS buckets other than the temporary one from the
    /// server listening at `addr`.
    pub fn download_from(&self, addr: SocketAddr) {
        self.inner.lock().unwrap().origin = Some(addr);
    }

    /// Answers these tags from now on.
    pub fn set_tags(&self, tags: &[(&str, f64)]) {
        self.inner.lock().unwrap().tags = tags.iter().map(|(v, c)| ((*v).into(), *c)).collect();
    }

    /// Answers the next correctly signed `TaggingImage` with a gateway error.
    pub fn script(&self, status: u16, code: &'static str) {
        self.inner.lock().unwrap().script.push_back((status, code));
    }

    /// Answers the next correctly signed `AuthorizeFileUpload` with a
    /// gateway error.
    pub fn script_authorize(&self, status: u16, code: &'static str) {
        self.inner
            .lock()
            .unwrap()
            .authorize_script
            .push_back((status, code));
    }

    /// Answers the next valid PostObject with an OSS error.
    pub fn script_upload(&self, status: u16, code: &'static str) {
        self.inner
            .lock()
            .unwrap()
            .upload_script
            .push_back((status, code));
    }

    /// Object keys `AuthorizeFileUpload` granted, oldest first.
    pub fn grants(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner.grants.iter().map(|g| g.key.clone()).collect()
    }

    /// PostObjects the temporary bucket accepted, by key.
    pub fn uploads(&self) -> Vec<Upload> {
        self.inner
            .lock()
            .unwrap()
            .uploads
            .values()
            .cloned()
            .collect()
    }

    /// OSS error codes answered to PostObjects, oldest first.
    pub fn upload_errors(&self) -> Vec<String> {
        self.inner.lock().unwrap().upload_errors.clone()
    }

    /// The URL VI is given for an uploaded key.
    pub fn temp_url(key: &str) -> String {
        format!("http://{TEMP_BUCKET}.{TEMP_ENDPOINT}{}", object_path(key))
    }

    /// Answered tagging requests, oldest first.
    pub fn tagged(&self) -> Vec<Tagged> {
        self.inner.lock().unwrap().tagged.clone()
    }

    /// `Code`s of refused requests, oldest first.
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }
}

fn pop_error(status: u16, code: &str, message: &str) -> Response {
    pop_error_from("aliyuncs.com", status, code, message)
}

fn is_image(b: &[u8]) -> bool {
    b.starts_with(&[0xff, 0xd8, 0xff])
        || b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(b"GIF8")
        || (b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP")
}

fn oss_error(inner: &Arc<Mutex<Inner>>, status: u16, code: &str, message: &str) -> Response {
    inner.lock().unwrap().upload_errors.push(code.to_owned());
    let request_id = format!("{:024X}", rand::random::<u128>() >> 32);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  \
         <Message>{message}</Message>\n  <RequestId>{request_id}</RequestId>\n  \
         <HostId>{TEMP_BUCKET}.{TEMP_ENDPOINT}</HostId>\n</Error>\n"
    );
    (
        StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/xml".to_owned()),
            ("x-oss-request-id", request_id),
        ],
        body,
    )
        .into_response()
}

/// The temporary bucket's PostObject.
async fn post_object(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let error = |status: u16, code: &str, message: &str| oss_error(&inner, status, code, message);
    if method != Method::POST {
        return error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed.",
        );
    }
    let Ok(mut form) = form else {
        return error(
            400,
            "InvalidArgument",
            "The body must be multipart/form-data.",
        );
    };
    let mut fields: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut file: Option<(Option<String>, Option<String>, Vec<u8>)> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return error(400, "InvalidArgument", "Malformed multipart body."),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if file.is_some() {
            // OSS ignores everything after the file: a field there is a bug.
            return error(
                400,
                "InvalidArgument",
                &format!("The file field must be the last one, not before {name}."),
            );
        }
        fields.push(name.clone());
        if name == "file" {
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let Ok(data) = field.bytes().await else {
                return error(400, "InvalidArgument", "Malformed file field.");
            };
            file = Some((file_name, content_type, data.to_vec()));
        } else {
            let Ok(text) = field.text().await else {
                return error(400, "InvalidArgument", "Malformed form field.");
            };
            values.insert(name, text);
        }
    }
    for required in [
        "OSSAccessKeyId",
        "policy",
        "Signature",
        "key",
        "success_action_status",
    ] {
        if !values.contains_key(required) {
            return error(
                400,
                "InvalidArgument",
                &format!("{required} is missing from the form."),
            );
        }
    }
    let Some((file_name, content_type, data)) = file else {
        return error(400, "InvalidArgument", "The file field is missing.");
    };
    if values["OSSAccessKeyId"] != TEMP_ACCESS_KEY_ID {
        return error(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        );
    }
    let key = values["key"].clone();
    let grant = inner
        .lock()
        .unwrap()
        .grants
        .iter()
        .find(|g| g.key == key)
        .cloned();
    let Some(grant) = grant else {
        return error(
            403,
            "AccessDenied",
            "Invalid according to Policy: Policy Condition failed: [\"eq\", \"$key\"]",
        );
    };
    if values["policy"] != grant.policy {
        return error(403, "AccessDenied", "Invalid according to Policy.");
    }
    let expected = oss_signature(TEMP_ACCESS_KEY_SECRET, &values["policy"]).unwrap();
    if values["Signature"] != expected || values["Signature"] != grant.signature {
        return error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    if values["success_action_status"] != "201" {
        return error(400, "InvalidArgument", "success_action_status must be 201.");
    }
    if data.len() > MAX_UPLOAD {
        return error(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the policy.",
        );
    }
    let next = inner.lock().unwrap().upload_script.pop_front();
    if let Some((status, code)) = next {
        return error(status, code, "scripted failure");
    }
    inner.lock().unwrap().uploads.insert(
        key.clone(),
        Upload {
            key: key.clone(),
            fields,
            file_name,
            content_type,
            data,
        },
    );
    let location = FakeAliyunVi::temp_url(&key);
    (
        StatusCode::CREATED,
        [("content-type", "application/xml")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Bucket>{TEMP_BUCKET}</Bucket>\
             <Location>{location}</Location><Key>{key}</Key><ETag>\"fake\"</ETag></PostResponse>"
        ),
    )
        .into_response()
}

/// A fresh grant: a key in the temporary bucket and its signed policy.
fn grant_upload(inner: &Arc<Mutex<Inner>>) -> Value {
    let key = format!("{ACCESS_KEY_ID}/{:032x}", rand::random::<u128>());
    let expiration = chrono::Utc::now() + chrono::Duration::minutes(30);
    let policy = json!({
        "expiration": expiration.format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
        "conditions": [
            {"bucket": TEMP_BUCKET},
            ["eq", "$key", key],
            ["content-length-range", 0, MAX_UPLOAD],
        ],
    });
    let policy = STANDARD.encode(policy.to_string());
    let signature = oss_signature(TEMP_ACCESS_KEY_SECRET, &policy).unwrap();
    inner.lock().unwrap().grants.push(Grant {
        key: key.clone(),
        policy: policy.clone(),
        signature: signature.clone(),
    });
    json!({
        "RequestId": request_id(),
        "AccessKeyId": TEMP_ACCESS_KEY_ID,
        "Bucket": TEMP_BUCKET,
        "Endpoint": TEMP_ENDPOINT,
        "ObjectKey": key,
        "EncodedPolicy": policy,
        "Signature": signature,
        "UseAccelerate": false,
    })
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let openplatform = uri.path() == "/openplatform/";
    let reject = |status: u16, code: &str, message: &str| {
        inner.lock().unwrap().rejected.push(code.to_owned());
        pop_error(status, code, message)
    };
    let pop_method = match method {
        Method::GET => PopMethod::Get,
        Method::POST => PopMethod::Post,
        _ => return reject(405, "UnsupportedHTTPMethod", "GET or POST"),
    };
    let mut params = decode_pairs(uri.query().unwrap_or("").as_bytes());
    params.extend(decode_pairs(&body));
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    for required in [
        "AccessKeyId",
        "Action",
        "Version",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
        "Signature",
    ] {
        if get(required).is_none() {
            return reject(
                400,
                "MissingParameter",
                &format!("{required} is mandatory for this action."),
            );
        }
    }
    if get("AccessKeyId").as_deref() != Some(ACCESS_KEY_ID) {
        return reject(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        );
    }
    let unsigned: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .cloned()
        .collect();
    let sts = rpc_string_to_sign(pop_method, &canonicalized_query(&unsigned));
    let expected = rpc_signature(ACCESS_KEY_SECRET, &sts).unwrap();
    if get("Signature").as_deref() != Some(expected.as_str()) {
        return reject(
            400,
            "SignatureDoesNotMatch",
            &format!(
                "Specified signature is not matched with our calculation. server string to sign is:{sts}"
            ),
        );
    }
    let (action, version) = if openplatform {
        ("AuthorizeFileUpload", "2019-12-19")
    } else {
        ("TaggingImage", "2019-09-30")
    };
    for (name, want) in [
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Format", "JSON"),
        ("Version", version),
        ("RegionId", "cn-shanghai"),
    ] {
        if get(name).as_deref() != Some(want) {
            return reject(400, "InvalidParameter", &format!("{name} must be {want}"));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match get("Timestamp").as_deref().and_then(parse_timestamp) {
        Some(ts) if now.abs_diff(ts) <= 900 => {}
        Some(_) => {
            return reject(
                400,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.",
            );
        }
        None => {
            return reject(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            );
        }
    }
    let nonce = get("SignatureNonce").unwrap_or_default();
    if !inner.lock().unwrap().nonces.insert(nonce) {
        return reject(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        );
    }
    if get("Action").as_deref() != Some(action) {
        return reject(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        );
    }
    if openplatform {
        if get("Product").as_deref() != Some("imagerecog") {
            return reject(400, "InvalidParameter", "Product must be imagerecog");
        }
        let next = inner.lock().unwrap().authorize_script.pop_front();
        if let Some((status, code)) = next {
            return reject(status, code, "scripted failure");
        }
        return axum::Json(grant_upload(&inner)).into_response();
    }
    let next = inner.lock().unwrap().script.pop_front();
    if let Some((status, code)) = next {
        return reject(status, code, "scripted failure");
    }
    let Some(image_url) = get("ImageURL") else {
        return reject(
            400,
            "MissingImageURL",
            "ImageURL is mandatory for this action.",
        );
    };
    let Ok(parsed) = url::Url::parse(&image_url) else {
        return reject(400, "InvalidParameter.ImageURL", "ImageURL is not a URL.");
    };
    let host = parsed.host_str().unwrap_or_default().to_owned();
    if !host.ends_with(ALLOWED_HOST_SUFFIX) {
        return reject(
            400,
            "InvalidImage.Download",
            "Failed to download the image: it must be stored in OSS in cn-shanghai.",
        );
    }
    let image = if host == format!("{TEMP_BUCKET}.{TEMP_ENDPOINT}") {
        let uploaded = inner
            .lock()
            .unwrap()
            .uploads
            .values()
            .find(|u| object_path(&u.key) == parsed.path())
            .map(|u| u.data.clone());
        match uploaded {
            Some(data) => data,
            None => {
                return reject(
                    400,
                    "InvalidImage.Download",
                    "Failed to download the image: no such object.",
                );
            }
        }
    } else {
        let origin = inner.lock().unwrap().origin;
        let Some(origin) = origin else {
            return reject(
                400,
                "InvalidImage.Download",
                "Failed to download the image.",
            );
        };
        let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
        let download = format!("http://{origin}{}{query}", parsed.path());
        match reqwest::get(&download).await {
            Ok(r) if r.status().is_success() => r.bytes().await.unwrap_or_default().to_vec(),
            _ => {
                return reject(
                    400,
                    "InvalidImage.Download",
                    "Failed to download the image.",
                );
            }
        }
    };
    if !is_image(&image) {
        return reject(400, "InvalidImage.Content", "The image content is invalid.");
    }
    let tags: Vec<Value> = {
        let mut inner = inner.lock().unwrap();
        inner.tagged.push(Tagged {
            image_url: image_url.clone(),
            image,
        });
        inner
            .tags
            .iter()
            .map(|(v, c)| json!({ "Value": v, "Confidence": c }))
            .collect()
    };
    axum::Json(json!({
        "RequestId": request_id(),
        "Data": { "Tags": tags },
    }))
    .into_response()
}
