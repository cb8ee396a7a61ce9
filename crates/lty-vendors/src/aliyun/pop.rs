//! Aliyun POP gateway: percent-encoding, RPC signature V1 (HMAC-SHA1),
//! ACS3-HMAC-SHA256 (signature V3) and the JSON response envelope.
//!
//! These are the schemes of every RPC-style Aliyun API lty calls (SMS
//! `SendSms`, NLS `CreateToken`, Visual Intelligence). The functions are
//! pure: the caller supplies the clock reading and the nonce, and gets back
//! exactly the bytes to send, so a fake gateway can recompute the same
//! signature from what it received.

use serde::{Deserialize, Deserializer};

use super::digest::{hmac_sha1_base64, hmac_sha256_hex, sha256_hex};
use super::{AccessKey, Method, SignError, time};

/// `SignatureMethod` of RPC signature V1.
pub const SIGNATURE_METHOD: &str = "HMAC-SHA1";
/// `SignatureVersion` of RPC signature V1.
pub const SIGNATURE_VERSION: &str = "1.0";
/// Name of the V3 algorithm, first word of its `Authorization` header.
pub const ACS3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Parameters the RPC V1 signer sets itself; callers may not pass them.
const RPC_RESERVED: [&str; 10] = [
    "AccessKeyId",
    "Action",
    "Format",
    "SecurityToken",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
];

/// POP percent-encoding: the UTF-8 bytes of `s`, with `A–Z a–z 0–9 - _ . ~`
/// kept and every other byte written `%XX` (uppercase hex).
///
/// Space becomes `%20` (never `+`), `*` becomes `%2A` and `~` stays as is,
/// which is where form encoders usually differ.
pub fn pop_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// RPC `Timestamp` / ACS3 `x-acs-date` for a Unix time: UTC
/// `YYYY-MM-DDThh:mm:ssZ`, no fraction, no offset.
pub fn pop_timestamp(unix_seconds: u64) -> String {
    time::iso8601(unix_seconds)
}

/// A fresh UUIDv4 for `SignatureNonce` / `x-acs-signature-nonce`.
///
/// The gateway rejects a nonce it has seen recently (`SignatureNonceUsed`),
/// so every request, including every retry, needs a new one.
pub fn signature_nonce() -> String {
    let mut bytes: [u8; 16] = rand::random();
    // RFC 9562 version 4 / variant 10 bits.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------------------
// RPC signature V1
// ---------------------------------------------------------------------------

/// `CanonicalizedQuery` of RPC V1 (also the ACS3 canonical query string):
/// each key and value POP-encoded, pairs sorted by encoded key (then value),
/// joined as `k=v` with `&`; an empty value gives `k=`.
///
/// Pass every parameter that is sent, query string and form body together,
/// except `Signature`.
pub fn canonicalized_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (pop_encode(k.as_ref()), pop_encode(v.as_ref())))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// RPC V1 `StringToSign`: `METHOD&%2F&` followed by the canonical query
/// encoded a second time (so `%3A` becomes `%253A`).
pub fn rpc_string_to_sign(method: Method, canonicalized_query: &str) -> String {
    format!(
        "{}&{}&{}",
        method.as_str(),
        pop_encode("/"),
        pop_encode(canonicalized_query)
    )
}

/// RPC V1 `Signature`: Base64 of HMAC-SHA1 keyed with `AccessKeySecret + "&"`.
pub fn rpc_signature(access_key_secret: &str, string_to_sign: &str) -> Result<String, SignError> {
    // The trailing "&" is part of the key even without a token secret.
    let key = format!("{access_key_secret}&");
    hmac_sha1_base64(key.as_bytes(), string_to_sign.as_bytes())
}

/// One RPC-style API call: what the business code decides.
#[derive(Debug, Clone, Copy)]
pub struct RpcCall<'a> {
    /// `Action`, e.g. `SendSms`.
    pub action: &'a str,
    /// `Version`, the product's API version date, e.g. `2017-05-25`.
    pub version: &'a str,
    /// Business parameters including `RegionId`; structured values are JSON
    /// text. Must not repeat a name nor use one of the common parameters.
    pub params: &'a [(&'a str, &'a str)],
}

/// The result of [`sign_rpc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcSigned {
    /// The string that was signed, for debugging `SignatureDoesNotMatch`.
    pub string_to_sign: String,
    /// The Base64 signature (before encoding for the wire).
    pub signature: String,
    /// Every parameter, `Signature` last, POP-encoded and joined with `&`:
    /// the query string of a GET (`https://host/?…`) or the
    /// `application/x-www-form-urlencoded` body of a POST.
    pub signed_query: String,
}

/// The common RPC V1 parameters for a call (everything but `Signature`),
/// in the order they are documented.
pub fn rpc_common_params(
    key: &AccessKey,
    call: &RpcCall<'_>,
    timestamp: u64,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut params = vec![
        ("AccessKeyId".to_owned(), key.id.clone()),
        ("Action".to_owned(), call.action.to_owned()),
        ("Version".to_owned(), call.version.to_owned()),
        // The gateway defaults to XML.
        ("Format".to_owned(), "JSON".to_owned()),
        ("SignatureMethod".to_owned(), SIGNATURE_METHOD.to_owned()),
        ("SignatureVersion".to_owned(), SIGNATURE_VERSION.to_owned()),
        ("SignatureNonce".to_owned(), nonce.to_owned()),
        ("Timestamp".to_owned(), pop_timestamp(timestamp)),
    ];
    if let Some(token) = &key.security_token {
        params.push(("SecurityToken".to_owned(), token.clone()));
    }
    params
}

/// Signs an RPC call with signature V1.
///
/// `method` must be the method actually used (GET or POST): it is part of
/// the string to sign. `timestamp` is Unix seconds; `nonce` must be unique
/// per request (see [`signature_nonce`]).
pub fn sign_rpc(
    method: Method,
    call: &RpcCall<'_>,
    key: &AccessKey,
    timestamp: u64,
    nonce: &str,
) -> Result<RpcSigned, SignError> {
    reject_duplicates(call.params.iter().map(|(k, _)| *k))?;
    if let Some((name, _)) = call.params.iter().find(|(k, _)| RPC_RESERVED.contains(k)) {
        return Err(SignError::ReservedParameter((*name).to_owned()));
    }
    let mut params = rpc_common_params(key, call, timestamp, nonce);
    params.extend(
        call.params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let query = canonicalized_query(&params);
    let string_to_sign = rpc_string_to_sign(method, &query);
    let signature = rpc_signature(&key.secret, &string_to_sign)?;
    // Base64 carries `+ / =`, which the server would otherwise decode wrongly.
    let signed_query = format!("{query}&Signature={}", pop_encode(&signature));
    Ok(RpcSigned {
        string_to_sign,
        signature,
        signed_query,
    })
}

fn reject_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), SignError> {
    let mut seen: Vec<&str> = names.collect();
    seen.sort_unstable();
    match seen.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(SignError::Duplicate(w[0].to_owned())),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// ACS3-HMAC-SHA256 (signature V3)
// ---------------------------------------------------------------------------

/// `x-acs-content-sha256` of an empty body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// ACS3 `CanonicalURI` of a request path: each `/`-separated segment
/// POP-encoded, `/` kept; `/` for RPC-style APIs and for an empty path.
pub fn acs3_canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(pop_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical request and the `SignedHeaders` list it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs3Canonical {
    /// `METHOD\nURI\nQUERY\nHEADERS\nSIGNED_HEADERS\nPAYLOAD_HASH`.
    pub canonical_request: String,
    /// Lowercase header names, sorted, joined with `;`.
    pub signed_headers: String,
}

/// Builds the ACS3 canonical request.
///
/// `canonical_uri` comes from [`acs3_canonical_uri`]; `query` holds the raw
/// query parameters; every header in `headers` is signed (name lowercased,
/// value trimmed, case kept). `hashed_payload` is the `x-acs-content-sha256`
/// value.
pub fn acs3_canonical_request(
    method: Method,
    canonical_uri: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    hashed_payload: &str,
) -> Result<Acs3Canonical, SignError> {
    let mut lines: Vec<(String, &str)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        super::digest::check_header(name, value)?;
        lines.push((name.trim().to_ascii_lowercase(), value.trim()));
    }
    lines.sort();
    reject_duplicates(lines.iter().map(|(n, _)| n.as_str()))?;
    let canonical_headers: String = lines.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = lines
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    // The header block ends in "\n" and is then joined with "\n", which
    // leaves the blank line the server expects before SignedHeaders.
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.as_str(),
        canonical_uri,
        canonicalized_query(query),
        canonical_headers,
        signed_headers,
        hashed_payload
    );
    Ok(Acs3Canonical {
        canonical_request,
        signed_headers,
    })
}

/// ACS3 `StringToSign`: the algorithm name, a newline, and the lowercase hex
/// SHA-256 of the canonical request.
pub fn acs3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ACS3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// ACS3 signature: lowercase hex HMAC-SHA256 keyed with the bare secret
/// (no `&`, unlike V1).
pub fn acs3_signature(access_key_secret: &str, string_to_sign: &str) -> Result<String, SignError> {
    hmac_sha256_hex(access_key_secret.as_bytes(), string_to_sign.as_bytes())
}

/// ACS3 `Authorization` value; no spaces after the commas (Tencent's TC3
/// has them, Aliyun's does not).
pub fn acs3_authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// One request to sign with ACS3.
#[derive(Debug, Clone, Copy)]
pub struct Acs3Call<'a> {
    /// The method actually sent.
    pub method: Method,
    /// `Host` as sent, port included when the client sends one.
    pub host: &'a str,
    /// Raw request path; `/` for RPC-style APIs.
    pub path: &'a str,
    /// `x-acs-action`.
    pub action: &'a str,
    /// `x-acs-version`.
    pub version: &'a str,
    /// Query parameters (RPC parameters go here when there is no form body).
    pub query: &'a [(&'a str, &'a str)],
    /// `Content-Type` of the body; `None` when there is no body.
    pub content_type: Option<&'a str>,
    /// Exact body bytes that will be sent.
    pub body: &'a [u8],
}

/// The result of [`sign_acs3`]: everything to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs3Signed {
    /// Headers to send, names lowercase, `authorization` last.
    pub headers: Vec<(String, String)>,
    /// Encoded query string to append after `?` (empty when there is none);
    /// the same encoding that was signed.
    pub query: String,
    /// For debugging `SignatureDoesNotMatch`.
    pub canonical_request: String,
    /// For debugging `SignatureDoesNotMatch`.
    pub string_to_sign: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// Signs a request with ACS3-HMAC-SHA256: signs `host`, every `x-acs-*`
/// header it sets and `content-type` when there is a body.
pub fn sign_acs3(
    call: &Acs3Call<'_>,
    key: &AccessKey,
    timestamp: u64,
    nonce: &str,
) -> Result<Acs3Signed, SignError> {
    reject_duplicates(call.query.iter().map(|(k, _)| *k))?;
    let payload_hash = sha256_hex(call.body);
    let date = pop_timestamp(timestamp);
    let mut headers: Vec<(&str, &str)> = vec![
        ("host", call.host),
        ("x-acs-action", call.action),
        ("x-acs-content-sha256", &payload_hash),
        ("x-acs-date", &date),
        ("x-acs-signature-nonce", nonce),
        ("x-acs-version", call.version),
    ];
    if let Some(token) = &key.security_token {
        headers.push(("x-acs-security-token", token));
    }
    if let Some(content_type) = call.content_type {
        headers.push(("content-type", content_type));
    }
    let canonical = acs3_canonical_request(
        call.method,
        &acs3_canonical_uri(call.path),
        call.query,
        &headers,
        &payload_hash,
    )?;
    let string_to_sign = acs3_string_to_sign(&canonical.canonical_request);
    let signature = acs3_signature(&key.secret, &string_to_sign)?;
    let authorization = acs3_authorization(&key.id, &canonical.signed_headers, &signature);
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    out.push(("authorization".to_owned(), authorization.clone()));
    Ok(Acs3Signed {
        headers: out,
        query: canonicalized_query(call.query),
        canonical_request: canonical.canonical_request,
        string_to_sign,
        authorization,
    })
}

// ---------------------------------------------------------------------------
// Response envelope
// ---------------------------------------------------------------------------

/// The fields every POP JSON response may carry. Successful bodies carry
/// `RequestId` (and, for some APIs such as `SendSms`, `Code: "OK"`) next to
/// their own fields, which callers parse separately.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PopEnvelope {
    /// Vendor request id; always log it.
    #[serde(default)]
    pub request_id: Option<String>,
    /// `OK` for a successful `SendSms`, an error code otherwise; some APIs
    /// omit it on success. Numeric codes are read as their decimal text.
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
    /// Human-readable text; not stable, never match on it.
    #[serde(default)]
    pub message: Option<String>,
    /// Gateway host that answered (error bodies only).
    #[serde(default)]
    pub host_id: Option<String>,
    /// Diagnosis URL (error bodies only).
    #[serde(default)]
    pub recommend: Option<String>,
}

/// A failure reported by a POP API, at the gateway (HTTP 4xx/5xx) or by the
/// business logic inside an HTTP 200 (`SendSms` with `Code` other than `OK`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aliyun {code}: {message}")]
pub struct PopError {
    /// HTTP status of the response.
    pub status: u16,
    /// Vendor `Code`, e.g. `SignatureDoesNotMatch`, `isv.BUSINESS_LIMIT_CONTROL`.
    pub code: String,
    /// Vendor `Message`.
    pub message: String,
    /// Vendor `RequestId`.
    pub request_id: Option<String>,
    /// Vendor `Recommend` URL.
    pub recommend: Option<String>,
}

impl PopError {
    /// Whether the vendor documents the code as transient (flow control or
    /// an internal error), so a bounded, backed-off retry may succeed.
    pub fn is_retryable(&self) -> bool {
        self.code == "Throttling"
            || self.code.starts_with("Throttling.")
            || self.code == "InternalError"
            || self.code == "ServiceUnavailable"
    }
}

/// Why a POP response counts as a failure.
#[derive(Debug, thiserror::Error)]
pub enum PopResponseError {
    /// The body names the error.
    #[error(transparent)]
    Api(#[from] PopError),
    /// A non-2xx status whose JSON body has no `Code` (a proxy, not the gateway).
    #[error("aliyun answered HTTP {status} without an error code")]
    Http {
        /// HTTP status of the response.
        status: u16,
    },
    /// The body is not a JSON object.
    #[error("aliyun answered HTTP {status} with a body that is not POP JSON")]
    Malformed {
        /// HTTP status of the response.
        status: u16,
        /// The JSON parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// Classifies a POP response: `Ok` with the envelope when the call
/// succeeded, otherwise the error. Decides on `Code`, not on the status
/// alone: an HTTP 200 whose `Code` is present and not `OK` is a failure.
pub fn check_pop_response(status: u16, body: &[u8]) -> Result<PopEnvelope, PopResponseError> {
    let envelope: PopEnvelope = serde_json::from_slice(body)
        .map_err(|source| PopResponseError::Malformed { status, source })?;
    let success = (200..300).contains(&status);
    match &envelope.code {
        Some(code) if !(success && code == "OK") => Err(PopError {
            status,
            code: code.clone(),
            message: envelope.message.clone().unwrap_or_default(),
            request_id: envelope.request_id.clone(),
            recommend: envelope.recommend.clone(),
        }
        .into()),
        None if !success => Err(PopResponseError::Http { status }),
        _ => Ok(envelope),
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Code>::deserialize(d)?.map(|c| match c {
        Code::Text(s) => s,
        Code::Number(n) => n.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // --- POP encoding: every row of the table in aliyun.md §1 -------------

    #[test]
    fn pop_encode_follows_the_spec_table() {
        let table = [
            (" ", "%20"),
            ("*", "%2A"),
            ("~", "~"),
            ("+", "%2B"),
            ("/", "%2F"),
            (":", "%3A"),
            ("=", "%3D"),
            ("&", "%26"),
            (",", "%2C"),
            ("\"", "%22"),
            ("{", "%7B"),
            ("}", "%7D"),
            ("\u{e9}", "%C3%A9"),
            ("AZaz09-_.~", "AZaz09-_.~"),
        ];
        for (input, want) in table {
            assert_eq!(pop_encode(input), want, "input {input:?}");
        }
    }

    #[test]
    fn pop_encode_writes_chinese_text_per_utf8_byte() {
        assert_eq!(pop_encode("阿里云"), "%E9%98%BF%E9%87%8C%E4%BA%91");
    }

    #[test]
    fn the_empty_payload_hash_is_the_sha256_of_nothing() {
        // aliyun.md §3.1 quotes this constant.
        assert_eq!(sha256_hex(b""), EMPTY_PAYLOAD_SHA256);
    }

    #[test]
    fn signature_nonces_are_uuid_v4_and_differ() {
        let a = signature_nonce();
        let b = signature_nonce();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    // --- RPC V1 -------------------------------------------------------------

    fn describe_regions() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]
    }

    #[test]
    fn rpc_v1_matches_the_ecs_request_signatures_example() {
        // Alibaba Cloud ECS API reference, "Request signatures" (doc-detail
        // 25492), Example: DescribeRegions signed with `testsecret&`.
        let query = canonicalized_query(&describe_regions());
        let sts = rpc_string_to_sign(Method::Get, &query);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            rpc_signature("testsecret", &sts).unwrap(),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn rpc_v1_matches_the_v2_rpc_fixed_parameter_example() {
        // help.aliyun.com "V2版本RPC风格请求体&签名机制" (sdk/product-overview/
        // rpc-mechanism), fixed-parameter example: DescribeDedicatedHosts.
        let key = AccessKey::new("testid", "testsecret");
        let call = RpcCall {
            action: "DescribeDedicatedHosts",
            version: "2014-05-26",
            params: &[("RegionId", "cn-beijing")],
        };
        let signed = sign_rpc(
            Method::Get,
            &call,
            &key,
            1_678_696_470, // 2023-03-13T08:34:30Z
            "edb2b34af0af9a6d14deaf7c1a5315eb",
        )
        .unwrap();
        assert_eq!(
            signed.string_to_sign,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26Format%3DJSON\
             %26RegionId%3Dcn-beijing%26SignatureMethod%3DHMAC-SHA1\
             %26SignatureNonce%3Dedb2b34af0af9a6d14deaf7c1a5315eb%26SignatureVersion%3D1.0\
             %26Timestamp%3D2023-03-13T08%253A34%253A30Z%26Version%3D2014-05-26"
        );
        assert_eq!(signed.signature, "9NaGiOspFP5UPcwX8Iwt2YJXXuk=");
        assert_eq!(
            signed.signed_query,
            "AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-beijing\
             &SignatureMethod=HMAC-SHA1&SignatureNonce=edb2b34af0af9a6d14deaf7c1a5315eb\
             &SignatureVersion=1.0&Timestamp=2023-03-13T08%3A34%3A30Z&Version=2014-05-26\
             &Signature=9NaGiOspFP5UPcwX8Iwt2YJXXuk%3D"
        );
    }

    #[test]
    fn rpc_v1_post_signs_a_different_string_than_get() {
        let query = canonicalized_query(&describe_regions());
        let post = rpc_string_to_sign(Method::Post, &query);
        assert!(post.starts_with("POST&%2F&AccessKeyId%3Dtestid"));
        assert_ne!(
            rpc_signature("testsecret", &post).unwrap(),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn rpc_v1_adds_the_security_token_for_sts_keys() {
        let key = AccessKey::new("id", "secret").with_security_token("tok en");
        let call = RpcCall {
            action: "SendSms",
            version: "2017-05-25",
            params: &[],
        };
        let signed = sign_rpc(Method::Post, &call, &key, 0, "n").unwrap();
        assert!(signed.signed_query.contains("&SecurityToken=tok%20en&"));
        assert!(signed.string_to_sign.contains("SecurityToken%3Dtok%2520en"));
    }

    #[test]
    fn rpc_v1_encodes_star_tilde_space_and_chinese_in_business_params() {
        let key = AccessKey::new("id", "secret");
        let call = RpcCall {
            action: "SendSms",
            version: "2017-05-25",
            params: &[
                ("SignName", "阿里 云*~"),
                ("TemplateParam", r#"{"code":"482913"}"#),
            ],
        };
        let signed = sign_rpc(Method::Get, &call, &key, 0, "n").unwrap();
        assert!(
            signed
                .signed_query
                .contains("SignName=%E9%98%BF%E9%87%8C%20%E4%BA%91%2A~")
        );
        assert!(
            signed
                .signed_query
                .contains("TemplateParam=%7B%22code%22%3A%22482913%22%7D")
        );
    }

    #[test]
    fn rpc_v1_refuses_reserved_and_repeated_parameters() {
        let key = AccessKey::new("id", "secret");
        let reserved = RpcCall {
            action: "SendSms",
            version: "2017-05-25",
            params: &[("Signature", "x")],
        };
        assert_eq!(
            sign_rpc(Method::Get, &reserved, &key, 0, "n"),
            Err(SignError::ReservedParameter("Signature".into()))
        );
        let repeated = RpcCall {
            params: &[("PhoneNumbers", "1"), ("PhoneNumbers", "2")],
            ..reserved
        };
        assert_eq!(
            sign_rpc(Method::Get, &repeated, &key, 0, "n"),
            Err(SignError::Duplicate("PhoneNumbers".into()))
        );
    }

    // --- ACS3 ----------------------------------------------------------------

    #[test]
    fn acs3_matches_the_v3_fixed_parameter_example() {
        // help.aliyun.com "V3版本请求体&签名机制" (sdk/product-overview/
        // v3-request-structure-and-signature), fixed-parameter example:
        // RunInstances with YourAccessKeyId / YourAccessKeySecret.
        let key = AccessKey::new("YourAccessKeyId", "YourAccessKeySecret");
        let call = Acs3Call {
            method: Method::Post,
            host: "ecs.cn-shanghai.aliyuncs.com",
            path: "/",
            action: "RunInstances",
            version: "2014-05-26",
            query: &[
                (
                    "ImageId",
                    "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                ),
                ("RegionId", "cn-shanghai"),
            ],
            content_type: None,
            body: b"",
        };
        let signed = sign_acs3(
            &call,
            &key,
            1_698_315_752, // 2023-10-26T10:22:32Z
            "3156853299f313e23d1673dc12e1703d",
        )
        .unwrap();
        assert_eq!(
            signed.canonical_request,
            "POST\n/\n\
             ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\n\
             x-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\n\
             x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\
             \n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.string_to_sign,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,\
             SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;\
             x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            signed.query,
            "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
        );
    }

    #[test]
    fn acs3_signs_content_type_and_the_body_hash_of_a_form_body() {
        let key = AccessKey::new("id", "secret").with_security_token("tok");
        let body = b"PhoneNumbers=13800000000";
        let call = Acs3Call {
            method: Method::Post,
            host: "127.0.0.1:8080",
            path: "/",
            action: "SendSms",
            version: "2017-05-25",
            query: &[],
            content_type: Some("application/x-www-form-urlencoded"),
            body,
        };
        let signed = sign_acs3(&call, &key, 0, "n").unwrap();
        assert!(signed.authorization.contains(
            "SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;\
             x-acs-security-token;x-acs-signature-nonce;x-acs-version,"
        ));
        let hash = signed
            .headers
            .iter()
            .find(|(n, _)| n == "x-acs-content-sha256")
            .map(|(_, v)| v.clone());
        assert_eq!(hash, Some(sha256_hex(body)));
        assert!(signed.canonical_request.contains("\nhost:127.0.0.1:8080\n"));
        assert_eq!(signed.query, "");
    }

    #[test]
    fn acs3_canonical_headers_keep_value_case_and_trim() {
        let c = acs3_canonical_request(
            Method::Get,
            "/",
            &[],
            &[("X-Acs-Action", "  SendSms "), ("Host", "a.example")],
            EMPTY_PAYLOAD_SHA256,
        )
        .unwrap();
        assert!(
            c.canonical_request
                .contains("\nhost:a.example\nx-acs-action:SendSms\n\nhost;x-acs-action\n")
        );
    }

    #[test]
    fn acs3_refuses_header_injection_and_duplicate_headers() {
        let bad = acs3_canonical_request(
            Method::Get,
            "/",
            &[],
            &[("x-acs-action", "a\nx-acs-evil:1")],
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(bad, Err(SignError::InvalidHeader("x-acs-action".into())));
        let dup = acs3_canonical_request(
            Method::Get,
            "/",
            &[],
            &[("Host", "a"), ("host", "b")],
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(dup, Err(SignError::Duplicate("host".into())));
    }

    #[test]
    fn acs3_canonical_uri_encodes_each_segment() {
        assert_eq!(acs3_canonical_uri("/"), "/");
        assert_eq!(acs3_canonical_uri(""), "/");
        assert_eq!(acs3_canonical_uri("/a b/c*d"), "/a%20b/c%2Ad");
    }

    // --- Response envelope ---------------------------------------------------

    #[test]
    fn send_sms_ok_is_a_success() {
        let body = br#"{"Code":"OK","Message":"OK","BizId":"9006197469364984^0","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990"}"#;
        let env = check_pop_response(200, body).unwrap();
        assert_eq!(
            env.request_id.as_deref(),
            Some("F655A8D5-B967-440B-8683-DAD6FF8DE990")
        );
    }

    #[test]
    fn a_business_failure_inside_http_200_is_an_error() {
        let body = r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1","RequestId":"R1"}"#;
        match check_pop_response(200, body.as_bytes()) {
            Err(PopResponseError::Api(e)) => {
                assert_eq!(e.code, "isv.BUSINESS_LIMIT_CONTROL");
                assert_eq!(e.status, 200);
                assert_eq!(e.request_id.as_deref(), Some("R1"));
                assert!(!e.is_retryable());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_gateway_error_keeps_code_message_and_recommend() {
        let body = br#"{"RequestId":"R2","HostId":"dysmsapi.aliyuncs.com","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation.","Recommend":"https://next.api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch"}"#;
        match check_pop_response(400, body) {
            Err(PopResponseError::Api(e)) => {
                assert_eq!(e.code, "SignatureDoesNotMatch");
                assert_eq!(
                    e.recommend.as_deref(),
                    Some("https://next.api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch")
                );
                assert_eq!(
                    e.to_string(),
                    "aliyun SignatureDoesNotMatch: Specified signature is not matched with our calculation."
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn success_without_code_and_odd_bodies_are_classified() {
        // NLS CreateToken and VI answers carry no Code on success.
        assert!(check_pop_response(200, br#"{"RequestId":"R","Token":{"Id":"t"}}"#).is_ok());
        assert!(matches!(
            check_pop_response(502, br#"{"RequestId":"R"}"#),
            Err(PopResponseError::Http { status: 502 })
        ));
        assert!(matches!(
            check_pop_response(502, b"<html>bad gateway</html>"),
            Err(PopResponseError::Malformed { status: 502, .. })
        ));
        match check_pop_response(503, br#"{"Code":503,"Message":"busy"}"#) {
            Err(PopResponseError::Api(e)) => assert_eq!(e.code, "503"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn throttling_and_internal_errors_are_retryable() {
        for (code, retry) in [
            ("Throttling", true),
            ("Throttling.User", true),
            ("InternalError", true),
            ("ServiceUnavailable", true),
            ("SignatureNonceUsed", false),
            ("InvalidAccessKeyId.NotFound", false),
        ] {
            let e = PopError {
                status: 400,
                code: code.into(),
                message: String::new(),
                request_id: None,
                recommend: None,
            };
            assert_eq!(e.is_retryable(), retry, "{code}");
        }
    }

    proptest! {
        #[test]
        fn pop_encode_emits_only_unreserved_characters_and_percent_escapes(s in any::<String>()) {
            let enc = pop_encode(&s);
            let bytes = enc.as_bytes();
            let mut i = 0;
            let mut decoded = Vec::new();
            while i < bytes.len() {
                let b = bytes[i];
                if b == b'%' {
                    prop_assert!(i + 2 < bytes.len());
                    let hi = bytes[i + 1];
                    let lo = bytes[i + 2];
                    prop_assert!(hi.is_ascii_digit() || (b'A'..=b'F').contains(&hi));
                    prop_assert!(lo.is_ascii_digit() || (b'A'..=b'F').contains(&lo));
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    decoded.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    prop_assert!(b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
                    decoded.push(b);
                    i += 1;
                }
            }
            prop_assert_eq!(decoded, s.into_bytes());
        }

        #[test]
        fn rpc_and_acs3_signing_never_panic_on_arbitrary_utf8(
            k in any::<String>(), v in any::<String>(), secret in any::<String>(), ts in any::<u64>()
        ) {
            let key = AccessKey::new("id", secret);
            let params = [(k.as_str(), v.as_str())];
            let call = RpcCall { action: "A", version: "V", params: &params };
            let _ = sign_rpc(Method::Post, &call, &key, ts, &v);
            let acs3 = Acs3Call {
                method: Method::Post,
                host: &v,
                path: &k,
                action: &k,
                version: &v,
                query: &params,
                content_type: Some(&k),
                body: v.as_bytes(),
            };
            let _ = sign_acs3(&acs3, &key, ts, &k);
        }
    }
}
