//! A fake Aliyun OSS bucket, reached on `127.0.0.1` as a CNAME bound to the
//! bucket would be: `PutObject`, `GetObject`, `HeadObject`, `DeleteObject`
//! and a bucket-level `GET` (ListObjects, empty). It recomputes the V1
//! header signature and the V1 presigned-URL signature from the request as
//! received, enforces the 15-minute `Date` window, presign expiry and
//! `Content-MD5`, answers the vendor's XML errors with `x-oss-request-id`,
//! and keeps objects in memory so tests can assert the key layout. Its
//! clock can be moved.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use lty_vendors::aliyun::Method as OssMethod;
use lty_vendors::aliyun::oss::{
    canonicalized_oss_headers, canonicalized_resource, content_md5, oss_signature,
    oss_string_to_sign,
};

use super::bucket::{Bucket, FakeBucket, Object, decode_query, percent_decode};

/// The fake's bucket and AccessKey pair (fictional).
pub const BUCKET: &str = "lty-test-media";
pub const ACCESS_KEY_ID: &str = "LTAIexampleOssKeyForLtyTests";
pub const ACCESS_KEY_SECRET: &str = "exampleOssSecretForLtyTestsOnly";

/// Largest `Date` skew accepted, in seconds.
const MAX_SKEW: i64 = 15 * 60;

/// Marks a [`FakeBucket`] speaking OSS.
pub struct Oss;

/// A running fake; stopped when dropped.
pub type FakeOss = FakeBucket<Oss>;

impl FakeOss {
    pub async fn start() -> Self {
        Self::serve(handle).await
    }

    /// Points the OSS settings of `config` at this fake (endpoint and host).
    pub fn configure(&self, config: &mut Config) {
        let oss = &mut config.aliyun.oss;
        oss.access_key_id = Some(ACCESS_KEY_ID.into());
        oss.access_key_secret = Some(Secret::new(ACCESS_KEY_SECRET));
        oss.bucket = Some(BUCKET.into());
        oss.endpoint = Some(self.url());
        oss.host = Some(self.url());
    }
}

fn xml_error(
    inner: &mut Bucket,
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &str,
) -> Response {
    inner.errors.push(code.to_owned());
    let request_id = format!("{:024X}", rand::random::<u128>() >> 32);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  \
         <Message>{message}</Message>\n  <RequestId>{request_id}</RequestId>\n  \
         <HostId>{BUCKET}.oss-cn-hangzhou.aliyuncs.com</HostId>\n{extra}</Error>\n"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "application/xml".to_owned()),
            (
                header::HeaderName::from_static("x-oss-request-id"),
                request_id,
            ),
        ],
        body,
    )
        .into_response()
}

fn oss_method(method: &Method) -> Option<OssMethod> {
    Some(match *method {
        Method::GET => OssMethod::Get,
        Method::PUT => OssMethod::Put,
        Method::HEAD => OssMethod::Head,
        Method::DELETE => OssMethod::Delete,
        Method::POST => OssMethod::Post,
        _ => return None,
    })
}

async fn handle(
    State(inner): State<Arc<Mutex<Bucket>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let inner = &mut *inner;
    let Some(key) = percent_decode(uri.path().trim_start_matches('/')) else {
        return xml_error(inner, StatusCode::BAD_REQUEST, "InvalidURI", "bad path", "");
    };
    let Some(query) = decode_query(uri.query()) else {
        return xml_error(
            inner,
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "bad query",
            "",
        );
    };
    let Some(verb) = oss_method(&method) else {
        return xml_error(
            inner,
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method",
            "",
        );
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let mut sent: Vec<(&str, &str)> = Vec::new();
    for (name, value) in &headers {
        let Ok(value) = value.to_str() else {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "header",
                "",
            );
        };
        sent.push((name.as_str(), value));
    }
    let oss_headers = match canonicalized_oss_headers(&sent) {
        Ok(h) => h,
        Err(_) => {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "headers",
                "",
            );
        }
    };
    let get = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let now = inner.now();
    let presigned = get("Signature").is_some();
    let (signature, date_or_expires, signed_query): (String, String, Vec<(&str, &str)>) =
        if presigned {
            if get("OSSAccessKeyId") != Some(ACCESS_KEY_ID) {
                return xml_error(
                    inner,
                    StatusCode::FORBIDDEN,
                    "InvalidAccessKeyId",
                    "The OSS Access Key Id you provided does not exist in our records.",
                    "",
                );
            }
            let Some(expires) = get("Expires").and_then(|e| e.parse::<i64>().ok()) else {
                return xml_error(
                    inner,
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "Expires is missing or invalid.",
                    "",
                );
            };
            if now > expires {
                return xml_error(
                    inner,
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "Request has expired.",
                    "",
                );
            }
            let rest = query
                .iter()
                .filter(|(n, _)| !matches!(n.as_str(), "OSSAccessKeyId" | "Expires" | "Signature"))
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            (
                get("Signature").unwrap_or("").to_owned(),
                expires.to_string(),
                rest,
            )
        } else if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let auth = auth.to_str().unwrap_or("");
            let Some((id, signature)) = auth.strip_prefix("OSS ").and_then(|a| a.split_once(':'))
            else {
                return xml_error(
                    inner,
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "Authorization header is invalid.",
                    "",
                );
            };
            if id != ACCESS_KEY_ID {
                return xml_error(
                    inner,
                    StatusCode::FORBIDDEN,
                    "InvalidAccessKeyId",
                    "The OSS Access Key Id you provided does not exist in our records.",
                    "",
                );
            }
            let date = header("date");
            let Ok(parsed) = chrono::DateTime::parse_from_rfc2822(date) else {
                return xml_error(
                    inner,
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "OSS authentication requires a valid Date.",
                    "",
                );
            };
            if (parsed.timestamp() - now).abs() > MAX_SKEW {
                return xml_error(
                    inner,
                    StatusCode::FORBIDDEN,
                    "RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.",
                    "",
                );
            }
            let all = query
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            (signature.to_owned(), date.to_owned(), all)
        } else if inner.public_read && method == Method::GET {
            (String::new(), String::new(), Vec::new())
        } else {
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
                "",
            );
        };
    if !signature.is_empty() || presigned {
        let string_to_sign = oss_string_to_sign(
            verb,
            header("content-md5"),
            header("content-type"),
            &date_or_expires,
            &oss_headers,
            &canonicalized_resource(BUCKET, &key, &signed_query),
        );
        let expected = oss_signature(ACCESS_KEY_SECRET, &string_to_sign).unwrap();
        if expected != signature {
            let extra = format!(
                "  <StringToSign>{}</StringToSign>\n  <SignatureProvided>{signature}</SignatureProvided>\n  <OSSAccessKeyId>{ACCESS_KEY_ID}</OSSAccessKeyId>\n",
                string_to_sign.replace('&', "&amp;").replace('<', "&lt;")
            );
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                &extra,
            );
        }
    }
    let md5 = header("content-md5");
    if !md5.is_empty() && md5 != content_md5(&body) {
        return xml_error(
            inner,
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
            "",
        );
    }
    inner.requests.push(format!(
        "{method} {key}{}",
        if presigned { " (presigned)" } else { "" }
    ));
    let request_id = header::HeaderName::from_static("x-oss-request-id");
    match (method, key.is_empty()) {
        (Method::GET, true) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml")],
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>{BUCKET}</Name>\
                 <Prefix></Prefix><MaxKeys>100</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
            ),
        )
            .into_response(),
        (Method::PUT, false) => {
            let etag = format!("\"{}\"", hex_md5(&body));
            let content_type = header("content-type").to_owned();
            inner.objects.insert(key, Object { data: body, content_type });
            (StatusCode::OK, [(header::ETAG, etag), (request_id, "00".into())]).into_response()
        }
        (Method::GET | Method::HEAD, false) => match inner.objects.get(&key).cloned() {
            Some(object) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, object.content_type)],
                object.data,
            )
                .into_response(),
            None => xml_error(inner, StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.", ""),
        },
        (Method::DELETE, false) => {
            inner.objects.remove(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => xml_error(inner, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "not supported by the fake", ""),
    }
}

fn hex_md5(data: &[u8]) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(content_md5(data))
        .unwrap();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
