//! A fake S3-compatible bucket (MinIO-like, path-style `/{bucket}/{key}`,
//! or virtual-hosted when the `Host` names the bucket): `PutObject`,
//! `GetObject` (with `Range`), `HeadObject`, `DeleteObject`,
//! `DeleteObjects` and `ListObjectsV2`. Every request must carry a SigV4
//! `Authorization` header or a SigV4 presigned query, recomputed here from
//! the request as received (canonical URI, query and the signed headers,
//! `x-amz-content-sha256` checked against the body); a mismatch is the
//! vendor's 403 `SignatureDoesNotMatch` XML. The `x-amz-date` window (15
//! minutes) and presign expiry are enforced, objects are kept in memory,
//! and the clock can be moved.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use lty_vendors::aws;

use super::bucket::{Bucket, FakeBucket, Object, decode_query, percent_decode};

/// The fake's bucket, region and access key pair (fictional).
pub const BUCKET: &str = "lty-test-media";
pub const REGION: &str = "eu-central-1";
pub const ACCESS_KEY_ID: &str = "AKIALTYTESTEXAMPLE01";
pub const SECRET_ACCESS_KEY: &str = "ltyTestSecretAccessKey/ForTheFakeS3Only+0";

/// Largest `x-amz-date` skew accepted, in seconds.
const MAX_SKEW: i64 = 15 * 60;

/// Marks a [`FakeBucket`] speaking S3 (SigV4).
pub struct S3;

/// A running fake; stopped when dropped.
pub type FakeS3 = FakeBucket<S3>;

impl FakeS3 {
    pub async fn start() -> Self {
        Self::serve(handle).await
    }

    /// Selects the S3 backend and points it at this fake, path-style.
    pub fn configure(&self, config: &mut Config) {
        config.storage.backend = Some("s3".into());
        let s3 = &mut config.storage.s3;
        s3.endpoint = Some(self.url());
        s3.region = REGION.into();
        s3.bucket = Some(BUCKET.into());
        s3.access_key_id = Some(ACCESS_KEY_ID.into());
        s3.secret_access_key = Some(Secret::new(SECRET_ACCESS_KEY));
    }

    /// Stores an object directly, as another writer of the bucket would.
    pub fn insert(&self, key: &str, data: &'static [u8]) {
        let object = Object {
            data: Bytes::from_static(data),
            content_type: "application/octet-stream".into(),
        };
        self.inner
            .lock()
            .unwrap()
            .objects
            .insert(key.to_owned(), object);
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn xml_error(
    inner: &mut Bucket,
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &str,
) -> Response {
    inner.errors.push(code.to_owned());
    let request_id = format!("{:016X}", rand::random::<u64>());
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message>{extra}<RequestId>{request_id}</RequestId></Error>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "application/xml".to_owned()),
            (
                header::HeaderName::from_static("x-amz-request-id"),
                request_id,
            ),
        ],
        body,
    )
        .into_response()
}

/// Unix seconds of an `X-Amz-Date` (`YYYYMMDD'T'HHMMSS'Z'`).
fn parse_amz_date(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// What a request proved about itself.
struct Auth {
    /// Access key id, scope date, region, service.
    credential: String,
    signed_headers: String,
    signature: String,
    amz_date: String,
    payload_hash: String,
    presigned: bool,
}

/// Checks the credential scope `AK/date/region/s3/aws4_request`; `Err` is
/// the vendor error to answer.
fn check_scope(credential: &str, amz_date: &str) -> Result<String, (StatusCode, &'static str)> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [id, date, region, service, terminator] = parts[..] else {
        return Err((StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed"));
    };
    if id != ACCESS_KEY_ID {
        return Err((StatusCode::FORBIDDEN, "InvalidAccessKeyId"));
    }
    if region != REGION
        || service != "s3"
        || terminator != "aws4_request"
        || Some(date) != amz_date.get(..8)
    {
        return Err((StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed"));
    }
    Ok(format!("{date}/{region}/{service}/aws4_request"))
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
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let Some(path) = percent_decode(uri.path()) else {
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
    let param = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };

    // Virtual-hosted (`bucket.host`) or path-style (`/bucket/key`).
    let host = header("host");
    let (bucket, key) = match host.strip_prefix(&format!("{BUCKET}.")) {
        Some(_) => (BUCKET.to_owned(), path.trim_start_matches('/').to_owned()),
        None => {
            let rest = path.trim_start_matches('/');
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            (bucket.to_owned(), key.to_owned())
        }
    };
    if bucket != BUCKET {
        return xml_error(
            inner,
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
            &format!("<BucketName>{}</BucketName>", escape(&bucket)),
        );
    }

    // Authentication: a presigned query, an Authorization header, or an
    // anonymous GET on a public-read bucket.
    let now = inner.now();
    let auth = if let Some(algorithm) = param("X-Amz-Algorithm") {
        if algorithm != aws::ALGORITHM {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
                "",
            );
        }
        let (
            Some(credential),
            Some(amz_date),
            Some(expires),
            Some(signed_headers),
            Some(signature),
        ) = (
            param("X-Amz-Credential"),
            param("X-Amz-Date"),
            param("X-Amz-Expires").and_then(|e| e.parse::<i64>().ok()),
            param("X-Amz-SignedHeaders"),
            param("X-Amz-Signature"),
        )
        else {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
                "",
            );
        };
        if !(1..=604_800).contains(&expires) {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be between 1 and 604800 seconds",
                "",
            );
        }
        let Some(signed_at) = parse_amz_date(&amz_date) else {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Date must be in the ISO8601 Long Format",
                "",
            );
        };
        if now > signed_at + expires {
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Request has expired",
                "",
            );
        }
        if signed_at > now + MAX_SKEW {
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Request is not valid yet",
                "",
            );
        }
        Auth {
            credential,
            signed_headers,
            signature,
            amz_date,
            payload_hash: aws::UNSIGNED_PAYLOAD.to_owned(),
            presigned: true,
        }
    } else if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        let fields = value
            .strip_prefix(aws::ALGORITHM)
            .map(|rest| {
                rest.split(',')
                    .filter_map(|f| f.trim().split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<BTreeMap<String, String>>()
            })
            .unwrap_or_default();
        let (Some(credential), Some(signed_headers), Some(signature)) = (
            fields.get("Credential"),
            fields.get("SignedHeaders"),
            fields.get("Signature"),
        ) else {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed.",
                "",
            );
        };
        let amz_date = header("x-amz-date");
        let Some(signed_at) = parse_amz_date(&amz_date) else {
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "AWS authentication requires a valid Date or x-amz-date header",
                "",
            );
        };
        if (signed_at - now).abs() > MAX_SKEW {
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                "",
            );
        }
        let payload_hash = header("x-amz-content-sha256");
        if payload_hash.is_empty() {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
                "",
            );
        }
        if payload_hash != aws::UNSIGNED_PAYLOAD && payload_hash != aws::hex_encode_hash(&body) {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                "",
            );
        }
        let signed: Vec<&str> = signed_headers.split(';').collect();
        if !signed.contains(&"host")
            || !signed.contains(&"x-amz-date")
            || !signed.contains(&"x-amz-content-sha256")
        {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                "host, x-amz-date and x-amz-content-sha256 must be signed",
                "",
            );
        }
        Auth {
            credential: credential.clone(),
            signed_headers: signed_headers.clone(),
            signature: signature.clone(),
            amz_date,
            payload_hash,
            presigned: false,
        }
    } else if inner.public_read && matches!(method, Method::GET | Method::HEAD) && !key.is_empty() {
        inner.requests.push(format!("{method} {key} (anonymous)"));
        return object_response(inner, &method, &key, &headers);
    } else {
        return xml_error(
            inner,
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Access Denied",
            "",
        );
    };

    let scope = match check_scope(&auth.credential, &auth.amz_date) {
        Ok(scope) => scope,
        Err((status, code)) => {
            return xml_error(
                inner,
                status,
                code,
                "The credential is not valid for this bucket.",
                "",
            );
        }
    };
    // The canonical request, rebuilt from what arrived.
    let mut signed_values: Vec<(String, String)> = Vec::new();
    for name in auth.signed_headers.split(';') {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return xml_error(
                inner,
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "There were headers present in the request which were not signed",
                "",
            );
        }
        signed_values.push((name.to_owned(), values.join(",")));
    }
    let pairs: Vec<(&str, &str)> = signed_values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (canonical_headers, signed_headers) = aws::canonical_headers(&pairs);
    let signed_query: Vec<(&str, &str)> = query
        .iter()
        .filter(|(n, _)| !(auth.presigned && n == "X-Amz-Signature"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let canonical_request = aws::canonical_request(
        method.as_str(),
        &aws::canonical_uri(&path),
        &aws::canonical_query_string(&signed_query),
        &canonical_headers,
        &signed_headers,
        &auth.payload_hash,
    );
    let string_to_sign = aws::string_to_sign(&auth.amz_date, &scope, &canonical_request);
    let key_bytes = aws::signing_key(
        SECRET_ACCESS_KEY,
        &auth.amz_date[..8],
        REGION,
        aws::S3_SERVICE,
    );
    let expected = aws::signature(&key_bytes, &string_to_sign);
    if expected != auth.signature {
        let extra = format!(
            "<AWSAccessKeyId>{ACCESS_KEY_ID}</AWSAccessKeyId><StringToSign>{}</StringToSign>\
             <SignatureProvided>{}</SignatureProvided><CanonicalRequest>{}</CanonicalRequest>",
            escape(&string_to_sign),
            escape(&auth.signature),
            escape(&canonical_request)
        );
        return xml_error(
            inner,
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            &extra,
        );
    }

    let presigned = if auth.presigned { " (presigned)" } else { "" };
    match (&method, key.is_empty()) {
        (&Method::GET, true) if param("list-type").as_deref() == Some("2") => {
            inner
                .requests
                .push(format!("LIST {}", param("prefix").unwrap_or_default()));
            list_objects_v2(inner, &param)
        }
        (&Method::POST, true) if param("delete").is_some() => {
            delete_objects(inner, &headers, &body)
        }
        (&Method::PUT, false) => {
            inner.requests.push(format!("PUT {key}{presigned}"));
            let etag = format!("\"{}\"", aws::hex_encode_hash(&body)[..32].to_owned());
            let content_type = header("content-type");
            inner.objects.insert(
                key,
                Object {
                    data: body,
                    content_type,
                },
            );
            (StatusCode::OK, [(header::ETAG, etag)]).into_response()
        }
        (&Method::GET | &Method::HEAD, false) => {
            inner.requests.push(format!("{method} {key}{presigned}"));
            object_response(inner, &method, &key, &headers)
        }
        (&Method::DELETE, false) => {
            inner.requests.push(format!("DELETE {key}{presigned}"));
            inner.objects.remove(&key);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => xml_error(
            inner,
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "A header or query you provided implies functionality that is not implemented.",
            "",
        ),
    }
}

/// `GetObject` / `HeadObject`, honouring a single `Range: bytes=a-b`.
fn object_response(
    inner: &mut Bucket,
    method: &Method,
    key: &str,
    headers: &HeaderMap,
) -> Response {
    let Some(object) = inner.objects.get(key).cloned() else {
        if method == Method::HEAD {
            // HEAD answers carry no body, so no error document either.
            inner.errors.push("NoSuchKey".into());
            return StatusCode::NOT_FOUND.into_response();
        }
        return xml_error(
            inner,
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
            &format!("<Key>{}</Key>", escape(key)),
        );
    };
    let etag = format!("\"{}\"", &aws::hex_encode_hash(&object.data)[..32]);
    let last_modified = "Wed, 25 Nov 2026 00:00:00 GMT";
    let len = object.data.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let start: usize = a.parse().ok()?;
            let end: usize = if b.is_empty() {
                len.checked_sub(1)?
            } else {
                b.parse::<usize>().ok()?.min(len.checked_sub(1)?)
            };
            (start <= end).then_some((start, end))
        });
    let common = [
        (header::CONTENT_TYPE, object.content_type.clone()),
        (header::ETAG, etag),
        (header::LAST_MODIFIED, last_modified.to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
    ];
    match range {
        Some((start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            common,
            [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))],
            object.data.slice(start..=end),
        )
            .into_response(),
        None if method == Method::HEAD => (
            StatusCode::OK,
            common,
            [(header::CONTENT_LENGTH, len.to_string())],
        )
            .into_response(),
        None => (StatusCode::OK, common, object.data).into_response(),
    }
}

/// `ListObjectsV2`: `prefix`, `delimiter`, `max-keys`, `start-after` and
/// `continuation-token` (the last key or prefix of the previous page).
fn list_objects_v2(inner: &Bucket, param: &dyn Fn(&str) -> Option<String>) -> Response {
    let prefix = param("prefix").unwrap_or_default();
    let delimiter = param("delimiter").unwrap_or_default();
    let max_keys: usize = param("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let after = param("continuation-token")
        .or_else(|| param("start-after"))
        .unwrap_or_default();
    let mut contents = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last = String::new();
    for (key, object) in inner.objects.range(prefix.clone()..) {
        if !key.starts_with(&prefix) {
            break;
        }
        let entry = match key[prefix.len()..].find(delimiter.as_str()) {
            Some(i) if !delimiter.is_empty() => {
                let common = key[..prefix.len() + i + delimiter.len()].to_owned();
                if prefixes.last() == Some(&common) {
                    continue;
                }
                Err(common)
            }
            _ => Ok((key, object)),
        };
        let name = match &entry {
            Ok((key, _)) => (*key).clone(),
            Err(common) => common.clone(),
        };
        if name.as_str() <= after.as_str() {
            continue;
        }
        if contents.len() + prefixes.len() == max_keys {
            truncated = true;
            break;
        }
        last = name;
        match entry {
            Ok((key, object)) => contents.push(format!(
                "<Contents><Key>{}</Key><LastModified>2026-11-25T00:00:00.000Z</LastModified>\
                 <ETag>&quot;{}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                escape(key),
                &aws::hex_encode_hash(&object.data)[..32],
                object.data.len()
            )),
            Err(common) => prefixes.push(common),
        }
    }
    let common: String = prefixes
        .iter()
        .map(|p| {
            format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                escape(p)
            )
        })
        .collect();
    let next = if truncated {
        format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            escape(&last)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Name>{BUCKET}</Name><Prefix>{}</Prefix><Delimiter>{}</Delimiter><MaxKeys>{max_keys}</MaxKeys>\
         <KeyCount>{}</KeyCount><IsTruncated>{truncated}</IsTruncated>{next}{}{common}</ListBucketResult>",
        escape(&prefix),
        escape(&delimiter),
        contents.len() + prefixes.len(),
        contents.concat()
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

/// `DeleteObjects`: `<Delete><Object><Key>…</Key></Object>…</Delete>`,
/// guarded by `Content-MD5` when sent.
fn delete_objects(inner: &mut Bucket, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(md5) = headers.get("content-md5").and_then(|v| v.to_str().ok()) {
        // Content-MD5 is the same base64 MD5 on OSS and S3.
        if md5 != lty_vendors::aliyun::oss::content_md5(body) {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "InvalidDigest",
                "The Content-MD5 you specified was invalid.",
                "",
            );
        }
    }
    let text = String::from_utf8_lossy(body);
    let mut deleted = String::new();
    let mut count = 0;
    for part in text.split("<Key>").skip(1) {
        let Some((key, _)) = part.split_once("</Key>") else {
            return xml_error(
                inner,
                StatusCode::BAD_REQUEST,
                "MalformedXML",
                "The XML you provided was not well-formed.",
                "",
            );
        };
        let key = unescape(key);
        inner.objects.remove(&key);
        deleted.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(&key)));
        count += 1;
    }
    inner.requests.push(format!("DELETE-OBJECTS {count}"));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{deleted}</DeleteResult>"
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}
