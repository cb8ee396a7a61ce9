//! Aliyun SLS (Log Service): the V1 `Authorization: LOG AccessKeyId:Signature`
//! request signature, the `PutLogs` headers, and the `LogGroup` protobuf body.
//!
//! SLS signs like OSS V1 with two differences that are easy to miss:
//! `Content-MD5` is the **uppercase hex** MD5 of the bytes sent (not Base64),
//! and the canonical headers are the `x-log-*` and `x-acs-*` ones. The
//! resource is the path plus every query parameter, raw. `x-log-date` is never
//! sent (it would replace `Date` in the signature).

use super::digest::{check_header, hmac_sha1_base64, md5};
use super::{AccessKey, Method, SignError, time};

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
