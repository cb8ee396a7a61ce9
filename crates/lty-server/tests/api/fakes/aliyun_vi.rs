//! A fake Aliyun Visual Intelligence gateway (imagerecog `TaggingImage`,
//! RPC style): recomputes the signature V1 from the parameters as received
//! (query string and form body together), refuses a wrong one, a reused
//! nonce or a stale timestamp with the vendor's POP error body, accepts
//! image URLs only on an allow-listed host, downloads the image like the
//! vendor does and answers its tags.
//!
//! The app under test hands out URLs with the port it was configured with
//! (`127.0.0.1:0` in tests), so the fake fetches the URL's path from the
//! origin set by [`FakeAliyunVi::download_from`].

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use lty_vendors::aliyun::Method as PopMethod;
use lty_vendors::aliyun::pop::{canonicalized_query, rpc_signature, rpc_string_to_sign};
use serde_json::{Value, json};

/// The fake's AccessKey pair (fictional).
pub const ACCESS_KEY_ID: &str = "LTAIexampleViKeyForLtyTests";
pub const ACCESS_KEY_SECRET: &str = "exampleViSecretForLtyTestsOnly";
/// The only image host it downloads from.
pub const ALLOWED_HOST: &str = "127.0.0.1";

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
    /// Gateway errors for the next calls: `(status, code)`.
    script: VecDeque<(u16, &'static str)>,
}

/// A running fake; stopped when dropped.
pub struct FakeAliyunVi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAliyunVi {
    fn drop(&mut self) {
        self.task.abort();
    }
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
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task }
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        let vi = &mut config.aliyun.vi;
        vi.endpoint = Some(format!("http://{}", self.addr));
        vi.region = Some("cn-shanghai".into());
        vi.access_key_id = Some(ACCESS_KEY_ID.into());
        vi.access_key_secret = Some(Secret::new(ACCESS_KEY_SECRET));
    }

    /// Downloads images from the app listening at `addr`.
    pub fn download_from(&self, addr: SocketAddr) {
        self.inner.lock().unwrap().origin = Some(addr);
    }

    /// Answers these tags from now on.
    pub fn set_tags(&self, tags: &[(&str, f64)]) {
        self.inner.lock().unwrap().tags = tags.iter().map(|(v, c)| ((*v).into(), *c)).collect();
    }

    /// Answers the next correctly signed call with a gateway error.
    pub fn script(&self, status: u16, code: &'static str) {
        self.inner.lock().unwrap().script.push_back((status, code));
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
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({
            "RequestId": request_id(),
            "HostId": "imagerecog.cn-shanghai.aliyuncs.com",
            "Code": code,
            "Message": message,
            "Recommend": format!("https://next.api.aliyun.com/troubleshoot?q={code}"),
        })),
    )
        .into_response()
}

fn request_id() -> String {
    format!(
        "{:08X}-FAKE-4000-8000-{:012X}",
        rand::random::<u32>(),
        rand::random::<u64>() >> 16
    )
}

fn decode_pairs(s: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s).into_owned().collect()
}

/// `YYYY-MM-DDThh:mm:ssZ` to Unix seconds.
fn parse_timestamp(s: &str) -> Option<u64> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ").ok()?;
    u64::try_from(t.and_utc().timestamp()).ok()
}

fn is_image(b: &[u8]) -> bool {
    b.starts_with(&[0xff, 0xd8, 0xff])
        || b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(b"GIF8")
        || (b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP")
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
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
    for (name, want) in [
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Format", "JSON"),
        ("Version", "2019-09-30"),
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
    if get("Action").as_deref() != Some("TaggingImage") {
        return reject(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        );
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
    if parsed.host_str() != Some(ALLOWED_HOST) {
        return reject(
            400,
            "InvalidImage.Region",
            "The image must be stored in OSS in the same region.",
        );
    }
    let origin = inner.lock().unwrap().origin;
    let Some(origin) = origin else {
        return reject(
            400,
            "InvalidImage.Download",
            "Failed to download the image.",
        );
    };
    let download = format!("http://{origin}{}", parsed.path());
    let image = match reqwest::get(&download).await {
        Ok(r) if r.status().is_success() => r.bytes().await.unwrap_or_default().to_vec(),
        _ => {
            return reject(
                400,
                "InvalidImage.Download",
                "Failed to download the image.",
            );
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
