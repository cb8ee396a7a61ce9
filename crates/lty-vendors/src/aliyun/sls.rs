//! Aliyun SLS (Log Service): the V1 `Authorization: LOG AccessKeyId:Signature`
//! request signature, the `PutLogs` headers, the `LogGroup` protobuf body
//! (hand-encoded; field numbers below), deflate body compression, and a
//! `PutLogs` client.
//!
//! SLS signs like OSS V1 with two differences that are easy to miss:
//! `Content-MD5` is the **uppercase hex** MD5 of the bytes sent (not Base64),
//! and the canonical headers are the `x-log-*` and `x-acs-*` ones. The
//! resource is the path plus every query parameter, raw. `x-log-date` is never
//! sent (it would replace `Date` in the signature).

use super::digest::{check_header, hmac_sha1_base64, md5};
use super::{AccessKey, Method, SignError, time};
use crate::http::ClientOptions;

/// `x-log-apiversion` this signer speaks.
pub const API_VERSION: &str = "0.6.0";
/// `x-log-signaturemethod` of the V1 scheme.
pub const SIGNATURE_METHOD: &str = "hmac-sha1";
/// `Content-Type` of a `PutLogs` body.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// `Content-MD5` as SLS wants it: uppercase hex of the MD5 of the bytes
/// sent (after compression).
pub fn content_md5_hex(body: &[u8]) -> String {
    hex::encode_upper(md5(body))
}

/// `Date` header value for a Unix time (RFC 1123, GMT).
pub fn http_date(unix_seconds: u64) -> String {
    time::http_date(unix_seconds)
}

/// `CanonicalizedLOGHeaders`: every header whose lowercased name starts
/// with `x-log-` or `x-acs-`, as `name:trimmed-value\n`, sorted by name.
pub fn canonicalized_log_headers(headers: &[(&str, &str)]) -> Result<String, SignError> {
    let mut lines: Vec<(String, &str)> = Vec::new();
    for (name, value) in headers {
        check_header(name, value)?;
        let lower = name.trim().to_ascii_lowercase();
        if lower.starts_with("x-log-") || lower.starts_with("x-acs-") {
            lines.push((lower, value.trim()));
        }
    }
    lines.sort();
    if let Some(w) = lines.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SignError::Duplicate(w[0].0.clone()));
    }
    Ok(lines.iter().map(|(n, v)| format!("{n}:{v}\n")).collect())
}

/// `CanonicalizedResource`: the path, then `?` and every query parameter
/// as `k=v` (raw, `k=` when empty) sorted by name and joined with `&`.
pub fn canonicalized_resource(path: &str, query: &[(&str, &str)]) -> String {
    // Unlike OSS, every parameter is signed, and an empty value keeps its
    // `=` (`logstoreName=` in the vendor's example 1).
    let mut pairs = query.to_vec();
    pairs.sort();
    let mut resource = path.to_owned();
    for (i, (k, v)) in pairs.iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(k);
        resource.push('=');
        resource.push_str(v);
    }
    resource
}

/// The V1 string to sign; MD5 and type are empty for requests without body.
pub fn sls_string_to_sign(
    method: Method,
    content_md5: &str,
    content_type: &str,
    date: &str,
    canonicalized_log_headers: &str,
    canonicalized_resource: &str,
) -> String {
    format!(
        "{}\n{content_md5}\n{content_type}\n{date}\n{canonicalized_log_headers}{canonicalized_resource}",
        method.as_str()
    )
}

/// V1 signature: Base64 of HMAC-SHA1 keyed with the AccessKeySecret.
pub fn sls_signature(access_key_secret: &str, string_to_sign: &str) -> Result<String, SignError> {
    hmac_sha1_base64(access_key_secret.as_bytes(), string_to_sign.as_bytes())
}

/// One SLS request, described as it will be sent.
#[derive(Debug, Clone, Copy)]
pub struct SlsRequest<'a> {
    /// The method actually sent.
    pub method: Method,
    /// Request path, e.g. `/logstores/<logstore>/shards/lb`.
    pub path: &'a str,
    /// Query parameters, all of them signed.
    pub query: &'a [(&'a str, &'a str)],
    /// `Content-MD5` (uppercase hex), when there is a body.
    pub content_md5: Option<&'a str>,
    /// `Content-Type`, when there is a body.
    pub content_type: Option<&'a str>,
    /// Other headers sent; the `x-log-*` and `x-acs-*` ones are signed.
    pub headers: &'a [(&'a str, &'a str)],
}

/// The result of signing: the headers the signer adds and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlsSigned {
    /// Headers added by the signer: `Date`, `x-acs-security-token` for STS
    /// keys, `Authorization` last. [`sign_put_logs`] adds the body headers too.
    pub headers: Vec<(String, String)>,
    /// For debugging signature mismatches.
    pub string_to_sign: String,
    /// `LOG <AccessKeyId>:<Signature>`.
    pub authorization: String,
}

/// Signs an SLS request dated `date` (Unix seconds; the service accepts
/// 15 minutes of skew).
pub fn sign(req: &SlsRequest<'_>, key: &AccessKey, date: u64) -> Result<SlsSigned, SignError> {
    let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
    if headers
        .iter()
        .any(|(n, _)| n.trim().eq_ignore_ascii_case("x-log-date"))
    {
        // Documented as overriding Date yet left out of signing: never send it.
        return Err(SignError::ReservedParameter("x-log-date".into()));
    }
    if let Some(token) = &key.security_token {
        if headers
            .iter()
            .any(|(n, _)| n.trim().eq_ignore_ascii_case("x-acs-security-token"))
        {
            return Err(SignError::ReservedParameter("x-acs-security-token".into()));
        }
        headers.push(("x-acs-security-token", token));
    }
    let date = http_date(date);
    let string_to_sign = sls_string_to_sign(
        req.method,
        req.content_md5.unwrap_or(""),
        req.content_type.unwrap_or(""),
        &date,
        &canonicalized_log_headers(&headers)?,
        &canonicalized_resource(req.path, req.query),
    );
    let signature = sls_signature(&key.secret, &string_to_sign)?;
    let authorization = format!("LOG {}:{signature}", key.id);
    let mut out = vec![("Date".to_owned(), date)];
    if let Some(token) = &key.security_token {
        out.push(("x-acs-security-token".to_owned(), token.clone()));
    }
    out.push(("Authorization".to_owned(), authorization.clone()));
    Ok(SlsSigned {
        headers: out,
        string_to_sign,
        authorization,
    })
}

/// `x-log-compresstype` of a `PutLogs` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressType {
    /// Raw LZ4 block, no frame and no size prefix.
    Lz4,
    /// zlib stream.
    Deflate,
}

impl CompressType {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lz4 => "lz4",
            Self::Deflate => "deflate",
        }
    }
}

/// Path of `PutLogs` for a logstore (load-balanced shard).
pub fn put_logs_path(logstore: &str) -> String {
    format!("/logstores/{logstore}/shards/lb")
}

/// Signs a `PutLogs` request: `POST` [`put_logs_path`] with `body` as sent
/// (already compressed when `compression` is set) and `raw_size` the length
/// of the uncompressed protobuf. Returns every header to send except `Host`
/// and `Content-Length`, which the HTTP client sets.
pub fn sign_put_logs(
    logstore: &str,
    body: &[u8],
    raw_size: usize,
    compression: Option<CompressType>,
    key: &AccessKey,
    date: u64,
) -> Result<SlsSigned, SignError> {
    let md5 = content_md5_hex(body);
    let raw_size = raw_size.to_string();
    // `x-log-bodyrawsize` is only required for compressed bodies; the
    // official SDKs always send it, and so does lty.
    let mut headers = vec![
        ("x-log-apiversion", API_VERSION),
        ("x-log-bodyrawsize", raw_size.as_str()),
        ("x-log-signaturemethod", SIGNATURE_METHOD),
    ];
    if let Some(c) = compression {
        headers.push(("x-log-compresstype", c.as_str()));
    }
    let path = put_logs_path(logstore);
    let req = SlsRequest {
        method: Method::Post,
        path: &path,
        query: &[],
        content_md5: Some(&md5),
        content_type: Some(PROTOBUF_CONTENT_TYPE),
        headers: &headers,
    };
    let mut signed = sign(&req, key, date)?;
    let mut all: Vec<(String, String)> = vec![
        ("Content-Type".to_owned(), PROTOBUF_CONTENT_TYPE.to_owned()),
        ("Content-MD5".to_owned(), md5.clone()),
    ];
    all.extend(
        headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    all.append(&mut signed.headers);
    signed.headers = all;
    Ok(signed)
}

// ---------------------------------------------------------------------------
// LogGroup protobuf (proto2), hand-encoded: the schema has five small messages.
//
//   message Log      { required uint32 Time = 1; repeated Content Contents = 2;
//                      optional fixed32 TimeNs = 4; }
//   message Content  { required string Key = 1; required string Value = 2; }
//   message LogTag   { required string Key = 1; required string Value = 2; }
//   message LogGroup { repeated Log Logs = 1; optional string Reserved = 2;
//                      optional string Topic = 3; optional string Source = 4;
//                      repeated LogTag LogTags = 6; }
// ---------------------------------------------------------------------------

/// One log entry (`message Log`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    /// `Time`: Unix seconds.
    pub time: u32,
    /// `Contents`: key/value pairs in order.
    pub contents: Vec<(String, String)>,
    /// `TimeNs`: the sub-second nanoseconds, if known.
    pub time_ns: Option<u32>,
}

/// A batch of logs sharing topic, source and tags (`message LogGroup`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogGroup {
    /// `Logs`.
    pub logs: Vec<Log>,
    /// `Topic`.
    pub topic: Option<String>,
    /// `Source`, typically the sending host.
    pub source: Option<String>,
    /// `LogTags` key/value pairs.
    pub tags: Vec<(String, String)>,
}

/// Why bytes are not a `LogGroup`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends inside a field.
    #[error("protobuf truncated")]
    Truncated,
    /// A varint is longer than 10 bytes or does not fit its field.
    #[error("protobuf varint overflow")]
    Overflow,
    /// A known field arrived with another wire type, or an unknown wire type.
    #[error("protobuf field {0} has an unexpected wire type")]
    WireType(u32),
    /// A string field is not UTF-8.
    #[error("protobuf string is not UTF-8")]
    Utf8,
    /// A `required` field is missing.
    #[error("protobuf required field `{0}` is missing")]
    Missing(&'static str),
}

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from((field << 3) | wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `Content` and `LogTag` share one layout: `Key = 1`, `Value = 2`.
fn pair_bytes(key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 4);
    put_bytes(&mut out, 1, key.as_bytes());
    put_bytes(&mut out, 2, value.as_bytes());
    out
}

impl Log {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_tag(&mut out, 1, VARINT);
        put_varint(&mut out, u64::from(self.time));
        for (k, v) in &self.contents {
            put_bytes(&mut out, 2, &pair_bytes(k, v));
        }
        if let Some(ns) = self.time_ns {
            put_tag(&mut out, 4, FIXED32);
            out.extend_from_slice(&ns.to_le_bytes());
        }
        out
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut log = Log::default();
        let mut time = None;
        let mut r = Reader { buf };
        while let Some((field, wire)) = r.tag()? {
            match (field, wire) {
                (1, VARINT) => {
                    time = Some(u32::try_from(r.varint()?).map_err(|_| DecodeError::Overflow)?)
                }
                (2, LEN) => log.contents.push(decode_pair(r.bytes()?)?),
                (4, FIXED32) => log.time_ns = Some(r.fixed32()?),
                (1 | 2 | 4, _) => return Err(DecodeError::WireType(field)),
                _ => r.skip(wire, field)?,
            }
        }
        log.time = time.ok_or(DecodeError::Missing("Time"))?;
        Ok(log)
    }
}

impl LogGroup {
    /// Serializes the group as the `PutLogs` body (before compression).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for log in &self.logs {
            put_bytes(&mut out, 1, &log.encode());
        }
        if let Some(topic) = &self.topic {
            put_bytes(&mut out, 3, topic.as_bytes());
        }
        if let Some(source) = &self.source {
            put_bytes(&mut out, 4, source.as_bytes());
        }
        for (k, v) in &self.tags {
            put_bytes(&mut out, 6, &pair_bytes(k, v));
        }
        out
    }

    /// Parses an uncompressed `PutLogs` body (what a fake SLS receives).
    /// Unknown fields, including `Reserved`, are skipped.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut group = LogGroup::default();
        let mut r = Reader { buf };
        while let Some((field, wire)) = r.tag()? {
            match (field, wire) {
                (1, LEN) => group.logs.push(Log::decode(r.bytes()?)?),
                (3, LEN) => group.topic = Some(utf8(r.bytes()?)?),
                (4, LEN) => group.source = Some(utf8(r.bytes()?)?),
                (6, LEN) => group.tags.push(decode_pair(r.bytes()?)?),
                (1 | 3 | 4 | 6, _) => return Err(DecodeError::WireType(field)),
                // `Reserved` and any field added later are skipped, as
                // proto2 readers do.
                _ => r.skip(wire, field)?,
            }
        }
        Ok(group)
    }
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8)
}

fn decode_pair(buf: &[u8]) -> Result<(String, String), DecodeError> {
    let (mut key, mut value) = (None, None);
    let mut r = Reader { buf };
    while let Some((field, wire)) = r.tag()? {
        match (field, wire) {
            (1, LEN) => key = Some(utf8(r.bytes()?)?),
            (2, LEN) => value = Some(utf8(r.bytes()?)?),
            (1 | 2, _) => return Err(DecodeError::WireType(field)),
            _ => r.skip(wire, field)?,
        }
    }
    Ok((
        key.ok_or(DecodeError::Missing("Key"))?,
        value.ok_or(DecodeError::Missing("Value"))?,
    ))
}

/// A cursor over protobuf bytes that never indexes out of bounds.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Ten 7-bit groups cover 64 bits; an eleventh is malformed input.
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.take(1)?.first().ok_or(DecodeError::Truncated)?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Overflow)
    }

    fn tag(&mut self) -> Result<Option<(u32, u32)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = u32::try_from(self.varint()?).map_err(|_| DecodeError::Overflow)?;
        Ok(Some((key >> 3, key & 7)))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Overflow)?;
        self.take(len)
    }

    fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, wire: u32, field: u32) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            _ => Err(DecodeError::WireType(field)),
        }
    }
}

// ---------------------------------------------------------------------------
// Body compression and the PutLogs client.
// ---------------------------------------------------------------------------

/// Largest uncompressed body SLS accepts in one `PutLogs` (3 MiB).
pub const MAX_RAW_BODY: usize = 3 * 1024 * 1024;
/// Most logs SLS accepts in one `PutLogs`.
pub const MAX_LOGS_PER_REQUEST: usize = 4096;

/// Compresses a `PutLogs` body for `x-log-compresstype: deflate` (a zlib
/// stream, as the service expects).
pub fn deflate(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(raw.len() / 2 + 16),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail; an error here would be a flate2 bug,
    // and an empty body then fails the receiver's size check loudly.
    if enc.write_all(raw).is_err() {
        return Vec::new();
    }
    enc.finish().unwrap_or_default()
}

/// Why a received `PutLogs` body could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The zlib stream is corrupt.
    #[error("body is not a valid zlib stream")]
    Corrupt,
    /// The inflated size differs from `x-log-bodyrawsize`.
    #[error("inflated body has {actual} bytes, x-log-bodyrawsize says {declared}")]
    SizeMismatch {
        /// `x-log-bodyrawsize`.
        declared: usize,
        /// What the stream inflated to (reading stops one byte past the
        /// declared size).
        actual: usize,
    },
    /// A compression this crate does not decode (`lz4`) or an unknown one.
    #[error("unsupported x-log-compresstype `{0}`")]
    Unsupported(String),
}

/// Reverses the body encoding of a `PutLogs` request as received:
/// `compress_type` is the `x-log-compresstype` header, `raw_size` the
/// `x-log-bodyrawsize` one. Inflation stops one byte past `raw_size`, so a
/// hostile stream cannot expand without bound.
pub fn decode_body(
    compress_type: Option<&str>,
    body: &[u8],
    raw_size: usize,
) -> Result<Vec<u8>, BodyError> {
    use std::io::Read;
    let out = match compress_type {
        None => body.to_vec(),
        Some("deflate") => {
            let limit = u64::try_from(raw_size)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            let mut out = Vec::with_capacity(raw_size.min(MAX_RAW_BODY));
            flate2::read::ZlibDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|_| BodyError::Corrupt)?;
            out
        }
        Some(other) => return Err(BodyError::Unsupported(other.to_owned())),
    };
    if out.len() != raw_size {
        return Err(BodyError::SizeMismatch {
            declared: raw_size,
            actual: out.len(),
        });
    }
    Ok(out)
}

/// The `PutLogs` URL. An `endpoint` with a scheme (`http://127.0.0.1:9000`,
/// a proxy, a fake) is used as the base URL as is; a bare region endpoint
/// (`cn-hangzhou.log.aliyuncs.com`) becomes `https://<project>.<endpoint>`.
pub fn put_logs_url(endpoint: &str, project: &str, logstore: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    let path = put_logs_path(logstore);
    if endpoint.contains("://") {
        format!("{endpoint}{path}")
    } else {
        format!("https://{project}.{endpoint}{path}")
    }
}

/// The error body of a refused SLS request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SlsErrorBody {
    /// `errorCode`, e.g. `SignatureNotMatch`, `WriteQuotaExceed`.
    #[serde(rename = "errorCode", default)]
    pub code: String,
    /// `errorMessage`.
    #[serde(rename = "errorMessage", default)]
    pub message: String,
}

/// Why a `PutLogs` call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutLogsError {
    /// SLS answered with an error status.
    #[error("SLS refused PutLogs: HTTP {status} {code}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// `errorCode` (empty when the body was not the JSON error shape).
        code: String,
        /// `errorMessage`.
        message: String,
    },
    /// No answer within the client timeout.
    #[error("SLS did not answer in time")]
    Timeout,
    /// Connecting or reading failed.
    #[error("SLS request failed: {0}")]
    Transport(String),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The batch exceeds the service's per-request limits.
    #[error("batch too large: {0}")]
    TooLarge(String),
}

impl PutLogsError {
    /// Whether sending the same batch again later may succeed: transport
    /// failures, timeouts, 5xx, 429 and write-quota errors. Signature,
    /// permission and not-found errors are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Transport(_) => true,
            Self::Rejected { status, code, .. } => {
                *status >= 500 || *status == 429 || code.ends_with("QuotaExceed")
            }
            Self::Sign(_) | Self::TooLarge(_) => false,
        }
    }
}

/// Where and as whom a [`SlsClient`] writes.
#[derive(Clone)]
pub struct SlsClientConfig {
    /// Region endpoint (`cn-hangzhou.log.aliyuncs.com`) or a base URL with
    /// scheme; see [`put_logs_url`].
    pub endpoint: String,
    /// The SLS project.
    pub project: String,
    /// The logstore written to.
    pub logstore: String,
    /// The AccessKey pair.
    pub key: AccessKey,
    /// Whether bodies are sent deflate-compressed.
    pub compress: bool,
    /// TCP/TLS connect timeout.
    pub connect_timeout: std::time::Duration,
    /// Whole-request timeout.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for SlsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlsClientConfig")
            .field("endpoint", &self.endpoint)
            .field("project", &self.project)
            .field("logstore", &self.logstore)
            .field("key", &self.key)
            .field("compress", &self.compress)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A `PutLogs` client. It emits no log events of its own, so it can run
/// inside the log pipeline that feeds it.
#[derive(Debug, Clone)]
pub struct SlsClient {
    config: SlsClientConfig,
    url: String,
    http: reqwest::Client,
}

impl SlsClient {
    /// Builds the client (no request is made).
    pub fn new(config: SlsClientConfig) -> Result<Self, PutLogsError> {
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| PutLogsError::Transport(e.to_string()))?;
        let url = put_logs_url(&config.endpoint, &config.project, &config.logstore);
        Ok(Self { config, url, http })
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one `LogGroup`, dated `now` (Unix seconds).
    pub async fn put_logs(&self, group: &LogGroup, now: u64) -> Result<(), PutLogsError> {
        if group.logs.len() > MAX_LOGS_PER_REQUEST {
            return Err(PutLogsError::TooLarge(format!(
                "{} logs, at most {MAX_LOGS_PER_REQUEST}",
                group.logs.len()
            )));
        }
        let raw = group.encode();
        if raw.len() > MAX_RAW_BODY {
            return Err(PutLogsError::TooLarge(format!(
                "{} bytes, at most {MAX_RAW_BODY}",
                raw.len()
            )));
        }
        let raw_size = raw.len();
        let (body, compression) = if self.config.compress {
            (deflate(&raw), Some(CompressType::Deflate))
        } else {
            (raw, None)
        };
        let signed = sign_put_logs(
            &self.config.logstore,
            &body,
            raw_size,
            compression,
            &self.config.key,
            now,
        )?;
        let mut req = self.http.post(&self.url);
        for (name, value) in &signed.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let res = req.body(body).send().await.map_err(transport)?;
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Ok(());
        }
        let bytes = res.bytes().await.map_err(transport)?;
        let parsed: Option<SlsErrorBody> = serde_json::from_slice(&bytes).ok();
        let (code, message) = match parsed {
            Some(b) => (b.code, b.message),
            None => (
                String::new(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned(),
            ),
        };
        Err(PutLogsError::Rejected {
            status,
            code,
            message,
        })
    }
}

fn transport(err: reqwest::Error) -> PutLogsError {
    if err.is_timeout() {
        PutLogsError::Timeout
    } else {
        PutLogsError::Transport(err.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Log Service API reference, "Request signatures" (help.aliyun.com
    /// document_detail/29012), examples 1 and 2; the unmasked secret and id are
    /// those of aliyun/aliyun-log-nodejs-sdk test/unit.test.js.
    fn doc_key() -> AccessKey {
        AccessKey::new("bq2sjzesjmo86kq35behupbq", "4fdO2fTDDnZPU/L7CHNdemB2Nsk=")
    }

    #[test]
    fn get_signature_matches_documentation_example_1() {
        let req = SlsRequest {
            method: Method::Get,
            path: "/logstores",
            query: &[("offset", "0"), ("size", "1000"), ("logstoreName", "")],
            content_md5: None,
            content_type: None,
            headers: &[
                ("x-log-apiversion", "0.6.0"),
                ("x-log-signaturemethod", "hmac-sha1"),
                ("Host", "ali-test-project.regionid.example.com"),
            ],
        };
        let signed = sign(&req, &doc_key(), 1_447_049_476).unwrap();
        assert_eq!(
            signed.string_to_sign,
            "GET\n\n\nMon, 09 Nov 2015 06:11:16 GMT\nx-log-apiversion:0.6.0\n\
             x-log-signaturemethod:hmac-sha1\n/logstores?logstoreName=&offset=0&size=1000"
        );
        assert_eq!(
            signed.authorization,
            "LOG bq2sjzesjmo86kq35behupbq:jEYOTCJs2e88o+y5F4/S5IsnBJQ="
        );
    }

    fn example_2_headers() -> [(&'static str, &'static str); 5] {
        [
            ("x-log-apiversion", "0.6.0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("Content-Length", "52"),
            ("x-log-bodyrawsize", "50"),
            ("x-log-compresstype", "lz4"),
        ]
    }

    #[test]
    fn post_signature_matches_documentation_example_2() {
        let headers = example_2_headers();
        let req = SlsRequest {
            method: Method::Post,
            path: "/logstores/test-logstore",
            query: &[],
            content_md5: Some("1DD45FA4A70A9300CC9FE7305AF2C494"),
            content_type: Some("application/x-protobuf"),
            headers: &headers,
        };
        let signed = sign(&req, &doc_key(), 1_447_048_983).unwrap();
        assert_eq!(
            signed.string_to_sign,
            "POST\n1DD45FA4A70A9300CC9FE7305AF2C494\napplication/x-protobuf\n\
             Mon, 09 Nov 2015 06:03:03 GMT\nx-log-apiversion:0.6.0\nx-log-bodyrawsize:50\n\
             x-log-compresstype:lz4\nx-log-signaturemethod:hmac-sha1\n/logstores/test-logstore"
        );
        assert_eq!(
            signed.authorization,
            "LOG bq2sjzesjmo86kq35behupbq:XWLGYHGg2F2hcfxWxMLiNkGki6g="
        );
    }

    #[test]
    fn sts_signature_matches_the_official_nodejs_sdk_vector() {
        // aliyun/aliyun-log-nodejs-sdk, test/unit.test.js, "client#_sign should
        // sign POST requests correctly with STS token".
        let token = "CAISiwJ1q6Ft5B2yfSjIr5D7Et3+35R02JuKR1P1lk40dt1giPfK1Dz2IHhLdXNrAuEXs/w0mmBQ7v8TlqZdVplOWU3Da+B364xK7Q75jHw5B0zwv9I+k5SANTW5KXyShb3/AYjQSNfaZY3eCTTtnTNyxr3XbCirW0ffX7SClZ9gaKZ8PGD6F00kYu1bPQx/ssQXGGLMPPK2SH7Qj3HXEVBjt3gX6wo9y9zmnZHNukGH3QOqkbVM9t6rGPX+MZkwZqUYesyuwel7epDG1CNt8BVQ/M909vccpmad5YrMUgQJuEvWa7KNo8caKgJmI7M3AbBFp/WlyKMn5raOydSrkE8cePtSVynP+g0hR0dZ+YgagAEFdb+5rO1e+OZ3kcmPKF5Zh2Sni+vF1qzKA/SElND5koQQV6uvVCweKnfzCPMKjY0OXWmfgtcwOTyJ4ABGsTGnILzBNRD/+Gdqe7wclZrj0aDUkTdFf8k7SudZuO9KOPBe8mS3pJoMs1p67mWA/J4Wn0dottbprb5EQOBRxUC6bw==";
        let key = AccessKey::new(
            "STS.NSNYgJ2KUoYaEuDrNazRLg2a6",
            "56Xqw2THF5vTHTNkGWR6uGRKXToKWMi2eLFjppPNV8RR",
        )
        .with_security_token(token);
        let headers = example_2_headers();
        let req = SlsRequest {
            method: Method::Post,
            path: "/logstores/test-logstore",
            query: &[],
            content_md5: Some("1DD45FA4A70A9300CC9FE7305AF2C494"),
            content_type: Some("application/x-protobuf"),
            headers: &headers,
        };
        let signed = sign(&req, &key, 1_447_048_983).unwrap();
        assert_eq!(
            signed.authorization,
            "LOG STS.NSNYgJ2KUoYaEuDrNazRLg2a6:G3R03b6PwVI+zUaLtqezsBDL/j8="
        );
        assert!(
            signed
                .headers
                .contains(&("x-acs-security-token".into(), token.into()))
        );
    }

    #[test]
    fn put_logs_headers_are_complete_and_consistent_with_the_body() {
        let body = LogGroup {
            logs: vec![Log {
                time: 1_447_048_976,
                contents: vec![("TestKey".into(), "TestContent".into())],
                time_ns: None,
            }],
            topic: Some(String::new()),
            source: Some("10.10.10.1".into()),
            tags: vec![],
        }
        .encode();
        let signed = sign_put_logs(
            "lty-events",
            &body,
            body.len(),
            None,
            &doc_key(),
            1_447_048_983,
        )
        .unwrap();
        let get = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("Content-Type"), Some("application/x-protobuf"));
        assert_eq!(get("Content-MD5"), Some(content_md5_hex(&body).as_str()));
        assert_eq!(
            get("x-log-bodyrawsize"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(get("x-log-compresstype"), None);
        assert_eq!(get("Date"), Some("Mon, 09 Nov 2015 06:03:03 GMT"));
        assert!(
            signed
                .string_to_sign
                .ends_with("x-log-signaturemethod:hmac-sha1\n/logstores/lty-events/shards/lb")
        );
        assert_eq!(
            signed.headers.last().map(|(n, _)| n.as_str()),
            Some("Authorization")
        );
        // The signature is the one `sign` produces over the same headers.
        let md5 = content_md5_hex(&body);
        let len = body.len().to_string();
        let hdrs = [
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", len.as_str()),
            ("x-log-signaturemethod", "hmac-sha1"),
        ];
        let again = sign(
            &SlsRequest {
                method: Method::Post,
                path: "/logstores/lty-events/shards/lb",
                query: &[],
                content_md5: Some(&md5),
                content_type: Some(PROTOBUF_CONTENT_TYPE),
                headers: &hdrs,
            },
            &doc_key(),
            1_447_048_983,
        )
        .unwrap();
        assert_eq!(again.authorization, signed.authorization);
    }

    #[test]
    fn content_md5_is_uppercase_hex() {
        // RFC 1321 test suite: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(content_md5_hex(b"abc"), "900150983CD24FB0D6963F7D28E17F72");
    }

    #[test]
    fn x_log_date_and_a_second_token_are_refused() {
        let req = SlsRequest {
            method: Method::Get,
            path: "/logstores",
            query: &[],
            content_md5: None,
            content_type: None,
            headers: &[("X-Log-Date", "x")],
        };
        assert_eq!(
            sign(&req, &doc_key(), 0),
            Err(SignError::ReservedParameter("x-log-date".into()))
        );
        let sts = doc_key().with_security_token("t");
        let req = SlsRequest {
            headers: &[("X-Acs-Security-Token", "other")],
            ..req
        };
        assert_eq!(
            sign(&req, &sts, 0),
            Err(SignError::ReservedParameter("x-acs-security-token".into()))
        );
    }

    #[test]
    fn log_group_encoding_matches_hand_derived_bytes() {
        // Worked by hand from the proto2 schema in aliyun.md §8:
        // LogGroup{Logs=[Log{Time=1, Contents=[{k,v}], TimeNs=2}], Topic="t",
        // Source="s", LogTags=[{a,b}]}.
        let group = LogGroup {
            logs: vec![Log {
                time: 1,
                contents: vec![("k".into(), "v".into())],
                time_ns: Some(2),
            }],
            topic: Some("t".into()),
            source: Some("s".into()),
            tags: vec![("a".into(), "b".into())],
        };
        let want: Vec<u8> = vec![
            0x0a, 0x0f, // Logs, 15 bytes
            0x08, 0x01, // Time = 1
            0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // Contents {k, v}
            0x25, 0x02, 0x00, 0x00, 0x00, // TimeNs fixed32 = 2
            0x1a, 0x01, b't', // Topic
            0x22, 0x01, b's', // Source
            0x32, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // LogTags {a, b}
        ];
        assert_eq!(group.encode(), want);
        assert_eq!(LogGroup::decode(&want), Ok(group));
    }

    #[test]
    fn the_documented_log_encodes_to_forty_six_bytes() {
        // topic="", time=1447048976, source="10.10.10.1", TestKey=TestContent:
        // 32 (Logs) + 2 (Topic) + 12 (Source).
        let group = LogGroup {
            logs: vec![Log {
                time: 1_447_048_976,
                contents: vec![("TestKey".into(), "TestContent".into())],
                time_ns: None,
            }],
            topic: Some(String::new()),
            source: Some("10.10.10.1".into()),
            tags: vec![],
        };
        let bytes = group.encode();
        assert_eq!(bytes.len(), 46);
        assert_eq!(
            &bytes[..8],
            &[0x0a, 0x1e, 0x08, 0x90, 0xee, 0x80, 0xb2, 0x05]
        );
    }

    #[test]
    fn decoding_skips_unknown_fields_and_rejects_bad_input() {
        // Reserved (field 2) is skipped; a Log without Time is refused.
        let mut bytes = vec![0x12, 0x01, b'x'];
        bytes.extend(
            LogGroup {
                topic: Some("t".into()),
                ..LogGroup::default()
            }
            .encode(),
        );
        assert_eq!(
            LogGroup::decode(&bytes).map(|g| g.topic),
            Ok(Some("t".into()))
        );
        assert_eq!(
            LogGroup::decode(&[0x0a, 0x00]),
            Err(DecodeError::Missing("Time"))
        );
        assert_eq!(
            LogGroup::decode(&[0x0a, 0x05, 0x08]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            LogGroup::decode(&[0x1a, 0x01, 0xff]),
            Err(DecodeError::Utf8)
        );
        assert_eq!(
            LogGroup::decode(&[0x08, 0x01]),
            Err(DecodeError::WireType(1))
        );
    }

    #[test]
    fn deflate_bodies_round_trip_and_sizes_are_checked() {
        let raw = LogGroup {
            logs: vec![Log {
                time: 1_700_000_000,
                contents: vec![("message".into(), "hello 你好 ".repeat(50))],
                time_ns: Some(5),
            }],
            ..LogGroup::default()
        }
        .encode();
        let body = deflate(&raw);
        assert!(body.len() < raw.len());
        // A zlib stream starts with CMF 0x78.
        assert_eq!(body.first(), Some(&0x78));
        assert_eq!(
            decode_body(Some("deflate"), &body, raw.len()),
            Ok(raw.clone())
        );
        assert_eq!(decode_body(None, &raw, raw.len()), Ok(raw.clone()));
        assert_eq!(
            decode_body(Some("deflate"), &body, raw.len() - 1),
            Err(BodyError::SizeMismatch {
                declared: raw.len() - 1,
                actual: raw.len()
            })
        );
        assert_eq!(
            decode_body(Some("deflate"), b"not zlib", 8),
            Err(BodyError::Corrupt)
        );
        assert_eq!(
            decode_body(Some("lz4"), &body, raw.len()),
            Err(BodyError::Unsupported("lz4".into()))
        );
    }

    #[test]
    fn put_logs_url_uses_the_project_host_or_a_base_url() {
        assert_eq!(
            put_logs_url("cn-hangzhou.log.aliyuncs.com", "lty", "events"),
            "https://lty.cn-hangzhou.log.aliyuncs.com/logstores/events/shards/lb"
        );
        assert_eq!(
            put_logs_url("http://127.0.0.1:9000/", "lty", "events"),
            "http://127.0.0.1:9000/logstores/events/shards/lb"
        );
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let rejected = |status: u16, code: &str| PutLogsError::Rejected {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(PutLogsError::Timeout.is_retryable());
        assert!(PutLogsError::Transport("refused".into()).is_retryable());
        assert!(rejected(500, "InternalServerError").is_retryable());
        assert!(rejected(403, "WriteQuotaExceed").is_retryable());
        assert!(rejected(403, "ShardWriteQuotaExceed").is_retryable());
        assert!(!rejected(401, "SignatureNotMatch").is_retryable());
        assert!(!rejected(404, "LogStoreNotExist").is_retryable());
        assert!(!PutLogsError::TooLarge("x".into()).is_retryable());
    }

    fn arb_pair() -> impl Strategy<Value = (String, String)> {
        (any::<String>(), any::<String>())
    }

    proptest! {
        #[test]
        fn log_groups_round_trip(
            logs in proptest::collection::vec(
                (any::<u32>(), proptest::collection::vec(arb_pair(), 0..4), any::<Option<u32>>()),
                0..4,
            ),
            topic in any::<Option<String>>(),
            source in any::<Option<String>>(),
            tags in proptest::collection::vec(arb_pair(), 0..3),
        ) {
            let group = LogGroup {
                logs: logs
                    .into_iter()
                    .map(|(time, contents, time_ns)| Log { time, contents, time_ns })
                    .collect(),
                topic,
                source,
                tags,
            };
            prop_assert_eq!(LogGroup::decode(&group.encode()), Ok(group));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = LogGroup::decode(&bytes);
        }

        #[test]
        fn sls_signing_never_panics_on_arbitrary_utf8(
            k in any::<String>(), v in any::<String>(), ts in any::<u64>()
        ) {
            let key = AccessKey::new(k.clone(), v.clone()).with_security_token(v.clone());
            let pairs = [(k.as_str(), v.as_str())];
            let req = SlsRequest {
                method: Method::Post,
                path: &k,
                query: &pairs,
                content_md5: Some(&v),
                content_type: Some(&k),
                headers: &pairs,
            };
            let _ = sign(&req, &key, ts);
            let _ = sign_put_logs(&k, v.as_bytes(), v.len(), Some(CompressType::Lz4), &key, ts);
        }
    }
}
