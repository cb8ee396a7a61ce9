//! Volcengine OpenAPI request signing (`HMAC-SHA256`), as pure functions,
//! and the HTTP [`client`] that uses them.
//!
//! The function names follow the vendor's signing documentation:
//! `CanonicalRequest` → `StringToSign` (with the `CredentialScope`) →
//! `kSigning` → `Signature` → `Authorization`. [`sign_request`] runs the whole
//! chain for one request; the steps are public so tests and fakes can check
//! each intermediate value.

pub mod client;

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::sha256mac::{derive_key, hmac_sha256_hex};

pub use client::{ApiResponse, ClientConfig, OpenApiClient, OpenApiError, parse_response};

/// The only signing algorithm Volcengine's OpenAPI accepts.
pub const ALGORITHM: &str = "HMAC-SHA256";
/// Region lty signs RTC OpenAPI calls for (a constant, never taken from the URL).
pub const RTC_REGION: &str = "cn-north-1";
/// Service name of the RTC OpenAPI in the credential scope.
pub const RTC_SERVICE: &str = "rtc";
/// `HexEncode(Hash(""))`: the payload hash of an empty body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Header names [`sign_request`] sets itself; copies in the caller's list are ignored.
const OWN_HEADERS: [&str; 4] = [
    "x-date",
    "x-content-sha256",
    "x-security-token",
    "authorization",
];

/// AK/SK credentials, plus the session token that comes with STS credentials.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// `AccessKeyId` (`AKLT…`).
    pub access_key_id: &'a str,
    /// `SecretAccessKey`, used verbatim as the HMAC key (never Base64-decoded).
    pub secret_access_key: &'a str,
    /// STS session token, sent and signed as `X-Security-Token`.
    pub session_token: Option<&'a str>,
}

/// The parts of an HTTP request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method (upper-cased for signing).
    pub method: &'a str,
    /// Decoded URL path; empty means `/`.
    pub path: &'a str,
    /// Decoded query pairs, in any order (e.g. `Action`, `Version`).
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign, each name once; must include `Host` (with `:port` when
    /// it is not the scheme default) and normally `Content-Type`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes that will be sent.
    pub body: &'a [u8],
}

/// Result of [`sign_request`]: the headers to add and every intermediate value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `X-Date` header value, `YYYYMMDD'T'HHMMSS'Z'`.
    pub x_date: String,
    /// `X-Content-Sha256` header value: hex SHA-256 of the body.
    pub x_content_sha256: String,
    /// `X-Security-Token` header value, with STS credentials only.
    pub x_security_token: Option<String>,
    /// `Authorization` header value.
    pub authorization: String,
    /// The query string to send: the canonical one, so the server decodes
    /// exactly what was signed.
    pub canonical_query_string: String,
    /// `CanonicalRequest` that was hashed.
    pub canonical_request: String,
    /// `StringToSign` that was signed.
    pub string_to_sign: String,
    /// `SignedHeaders`, e.g. `content-type;host;x-content-sha256;x-date`.
    pub signed_headers: String,
    /// `Signature`, 64 lowercase hex characters.
    pub signature: String,
}

impl SignedRequest {
    /// The headers to add to the request, in addition to the caller's own.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![
            ("X-Date", self.x_date.as_str()),
            ("X-Content-Sha256", self.x_content_sha256.as_str()),
        ];
        if let Some(token) = &self.x_security_token {
            headers.push(("X-Security-Token", token.as_str()));
        }
        headers.push(("Authorization", self.authorization.as_str()));
        headers
    }
}

/// Signs `request` as of `timestamp` (Unix seconds, UTC).
///
/// Adds and signs `X-Date`, `X-Content-Sha256` and, with a session token,
/// `X-Security-Token`, together with the caller's headers.
pub fn sign_request(
    request: &Request<'_>,
    credentials: &Credentials<'_>,
    region: &str,
    service: &str,
    timestamp: u64,
) -> SignedRequest {
    let x_date = format_x_date(timestamp);
    let x_content_sha256 = hex_encode_hash(request.body);
    let x_security_token = credentials.session_token.map(str::to_owned);

    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .copied()
        .filter(|(name, _)| !OWN_HEADERS.iter().any(|own| name.eq_ignore_ascii_case(own)))
        .collect();
    headers.push(("x-date", &x_date));
    headers.push(("x-content-sha256", &x_content_sha256));
    if let Some(token) = &x_security_token {
        headers.push(("x-security-token", token));
    }

    let (canonical_headers, signed_headers) = canonical_headers(&headers);
    let canonical_query_string = canonical_query_string(request.query);
    let canonical_request = canonical_request(
        request.method,
        &canonical_uri(request.path),
        &canonical_query_string,
        &canonical_headers,
        &signed_headers,
        &x_content_sha256,
    );
    let short_date = short_date(&x_date);
    let scope = credential_scope(short_date, region, service);
    let string_to_sign = string_to_sign(&x_date, &scope, &canonical_request);
    let key = signing_key(credentials.secret_access_key, short_date, region, service);
    let signature = signature(&key, &string_to_sign);
    let authorization = authorization(
        credentials.access_key_id,
        &scope,
        &signed_headers,
        &signature,
    );
    SignedRequest {
        x_date,
        x_content_sha256,
        x_security_token,
        authorization,
        canonical_query_string,
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
    }
}

/// `X-Date` for a Unix time: UTC `YYYYMMDD'T'HHMMSS'Z'`, e.g. `20250304T050607Z`.
pub fn format_x_date(timestamp: u64) -> String {
    let days = timestamp / 86_400;
    let secs = timestamp % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`,
/// restricted to non-negative days so it stays in unsigned arithmetic).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The date part (`YYYYMMDD`) of an `X-Date`, used in the scope and key.
pub fn short_date(x_date: &str) -> &str {
    x_date.get(..8).unwrap_or(x_date)
}

/// `HexEncode(Hash(data))`: lowercase hex SHA-256, for the payload and the
/// canonical request.
pub fn hex_encode_hash(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Appends `s` percent-encoded: every byte except `A–Z a–z 0–9 - _ . ~`
/// becomes `%XX` with upper-case hex (space → `%20`, `/` → `%2F`).
pub fn uri_encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `CanonicalURI`: `/` for an empty path, else each `/`-separated segment
/// percent-encoded.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(segment, &mut out);
    }
    out
}

/// `CanonicalQueryString`: pairs percent-encoded, sorted by encoded key
/// (stable, so a repeated key keeps its order), joined as `k=v&…`.
///
/// It is also the query string to send.
pub fn canonical_query_string(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(k, &mut ek);
            uri_encode(v, &mut ev);
            (ek, ev)
        })
        .collect();
    // `sort_by` is stable: equal keys keep their relative order.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
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

/// `CanonicalHeaders` and `SignedHeaders` for the headers to sign.
///
/// Names are lower-cased and sorted, values trimmed; `host` also loses a
/// default port (`:80`, `:443`). `CanonicalHeaders` ends with a newline.
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut entries: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let mut value = value.trim();
            if name == "host" {
                value = value
                    .strip_suffix(":80")
                    .or_else(|| value.strip_suffix(":443"))
                    .unwrap_or(value);
            }
            (name, value)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical = String::new();
    let mut signed = String::new();
    for (i, (name, value)) in entries.iter().enumerate() {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
        if i > 0 {
            signed.push(';');
        }
        signed.push_str(name);
    }
    (canonical, signed)
}

/// `CanonicalRequest`: method, URI, query, headers (which end in a newline,
/// hence the blank line), signed header names and payload hash, joined by `\n`.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query_string: &str,
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    format!(
        "{}\n{canonical_uri}\n{canonical_query_string}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}",
        method.to_ascii_uppercase()
    )
}

/// `CredentialScope`: `YYYYMMDD/region/service/request`.
pub fn credential_scope(short_date: &str, region: &str, service: &str) -> String {
    format!("{short_date}/{region}/{service}/request")
}

/// `StringToSign`: algorithm, `X-Date`, scope and the canonical request's hash.
pub fn string_to_sign(x_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{x_date}\n{credential_scope}\n{}",
        hex_encode_hash(canonical_request.as_bytes())
    )
}

/// `kSigning`: the secret key chained through date, region, service and
/// `"request"` (no prefix on the secret, unlike AWS's `"AWS4"`).
pub fn signing_key(
    secret_access_key: &str,
    short_date: &str,
    region: &str,
    service: &str,
) -> [u8; 32] {
    derive_key(
        secret_access_key.as_bytes(),
        &[
            short_date.as_bytes(),
            region.as_bytes(),
            service.as_bytes(),
            b"request",
        ],
    )
}

/// `Signature`: lowercase hex `HMAC-SHA256(kSigning, StringToSign)`.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hmac_sha256_hex(signing_key, string_to_sign.as_bytes())
}

/// `Authorization` header value.
pub fn authorization(
    access_key_id: &str,
    credential_scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Spec §2.5 (fictional keys).
    const AK: &str = "AKLTexampleAccessKeyForLtyDocs0001";
    const SK: &str = "ExampleSecretKeyForLtyDocsDoNotUse==";
    const NOW: u64 = 1_741_064_767; // 2025-03-04T05:06:07Z
    const BODY: &[u8] = br#"{"AppId":"5f3c0e1d2b4a69788796a5b4","RoomId":"room_42","TaskId":"0d8f5b7e9c2a4e61b3f4a5c6d7e8f901"}"#;
    const QUERY: &[(&str, &str)] = &[("Action", "StopVoiceChat"), ("Version", "2024-12-01")];

    fn credentials() -> Credentials<'static> {
        Credentials {
            access_key_id: AK,
            secret_access_key: SK,
            session_token: None,
        }
    }

    fn stop_voice_chat(host: &str) -> SignedRequest {
        let headers = [("Host", host), ("Content-Type", "application/json")];
        let request = Request {
            method: "POST",
            path: "/",
            query: QUERY,
            headers: &headers,
            body: BODY,
        };
        sign_request(&request, &credentials(), RTC_REGION, RTC_SERVICE, NOW)
    }

    #[test]
    fn worked_example_matches_every_intermediate_value() {
        assert_eq!(BODY.len(), 99);
        let signed = stop_voice_chat("rtc.volcengineapi.com");
        let hash = "13ecce92b47a32ee41ff43200e557529da546feec2f5c7591a344f02e76549b9";
        assert_eq!(signed.x_date, "20250304T050607Z");
        assert_eq!(signed.x_content_sha256, hash);
        assert_eq!(
            signed.canonical_request,
            format!(
                "POST\n/\nAction=StopVoiceChat&Version=2024-12-01\n\
                 content-type:application/json\nhost:rtc.volcengineapi.com\n\
                 x-content-sha256:{hash}\nx-date:20250304T050607Z\n\n\
                 content-type;host;x-content-sha256;x-date\n{hash}"
            )
        );
        assert_eq!(
            hex_encode_hash(signed.canonical_request.as_bytes()),
            "ac060fa7781d42e3011cd3baf3db61c2744682bfffb23531191cafc152003cc1"
        );
        assert_eq!(
            signed.string_to_sign,
            "HMAC-SHA256\n20250304T050607Z\n20250304/cn-north-1/rtc/request\n\
             ac060fa7781d42e3011cd3baf3db61c2744682bfffb23531191cafc152003cc1"
        );
        assert_eq!(
            hex::encode(signing_key(SK, "20250304", RTC_REGION, RTC_SERVICE)),
            "d79e26d924b8cdde036243e45a4051db1caec516db143165f1c3998456737183"
        );
        assert_eq!(
            signed.authorization,
            "HMAC-SHA256 Credential=AKLTexampleAccessKeyForLtyDocs0001/20250304/cn-north-1/rtc/request, \
             SignedHeaders=content-type;host;x-content-sha256;x-date, \
             Signature=12203202ed236b06e3633c4d3dd7241699aaf103f71274399bd42098134ff0da"
        );
        assert_eq!(
            signed.canonical_query_string,
            "Action=StopVoiceChat&Version=2024-12-01"
        );
    }

    #[test]
    fn worked_example_against_a_local_port_signs_the_port() {
        // Spec §2.5, same request sent to http://127.0.0.1:18080/.
        let signed = stop_voice_chat("127.0.0.1:18080");
        assert!(
            signed
                .canonical_request
                .contains("\nhost:127.0.0.1:18080\n")
        );
        assert_eq!(
            signed.signature,
            "7f785f91c6502621833801628619b9660ec8981e66e3e20913d7a3155c30d5d6"
        );
    }

    #[test]
    fn default_ports_are_dropped_from_host() {
        let plain = stop_voice_chat("rtc.volcengineapi.com");
        assert_eq!(stop_voice_chat("rtc.volcengineapi.com:443"), plain);
        assert_eq!(stop_voice_chat(" rtc.volcengineapi.com:80 "), plain);
    }

    #[test]
    fn rtc_cli_signer_vector() {
        // github.com/volcengine/VolcEngineRTC_CLI, internal/openapi/signer_test.go
        // (TestSignDeterministicVector, commit c62f0fb9e26e43fbd172409f9d35c4e3581a4a19):
        // AK "AKLTtest", SK "topsecretkey", 2024-12-01T00:00:00Z, StartVoiceChat.
        let headers = [
            ("Host", "rtc.volcengineapi.com"),
            ("Content-Type", "application/json"),
        ];
        let request = Request {
            method: "POST",
            path: "/",
            query: &[("Action", "StartVoiceChat"), ("Version", "2024-12-01")],
            headers: &headers,
            body: br#"{"AppId":"app","RoomId":"room","TaskId":"task"}"#,
        };
        let credentials = Credentials {
            access_key_id: "AKLTtest",
            secret_access_key: "topsecretkey",
            session_token: None,
        };
        let signed = sign_request(
            &request,
            &credentials,
            RTC_REGION,
            RTC_SERVICE,
            1_733_011_200,
        );
        assert_eq!(signed.x_date, "20241201T000000Z");
        assert_eq!(
            signed.signature,
            "43c65ebca204b0bd8fba66f7af061705e2856067638aa8cf3aa74025b0362606"
        );
        assert!(
            signed
                .authorization
                .starts_with("HMAC-SHA256 Credential=AKLTtest/20241201/cn-north-1/rtc/request, SignedHeaders=content-type;host;x-content-sha256;x-date, Signature=")
        );
    }

    // Access key pair of Volcengine's signing documentation examples.
    const DOC_AK: &str = "AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg";
    const DOC_SK: &str = "WkRZeE1EQmxPVGhsWWpWak5HVmtNbUUxTXpZeU9UVXlOMlE1TmpZeVlqTQ==";

    /// Runs the documented step chain for a request that signs only
    /// `host;x-date` (the documentation's examples do not send X-Content-Sha256).
    fn doc_chain(
        method: &str,
        query: &[(&str, &str)],
        host: &str,
        x_date: &str,
        body: &[u8],
        region: &str,
        service: &str,
    ) -> (String, [u8; 32], String, String) {
        let (headers, signed_headers) = canonical_headers(&[("Host", host), ("X-Date", x_date)]);
        let request = canonical_request(
            method,
            &canonical_uri(""),
            &canonical_query_string(query),
            &headers,
            &signed_headers,
            &hex_encode_hash(body),
        );
        let scope = credential_scope(short_date(x_date), region, service);
        let key = signing_key(DOC_SK, short_date(x_date), region, service);
        let sig = signature(&key, &string_to_sign(x_date, &scope, &request));
        let auth = authorization(DOC_AK, &scope, &signed_headers, &sig);
        (hex_encode_hash(request.as_bytes()), key, sig, auth)
    }

    #[test]
    fn documentation_get_list_users_example() {
        // Volcengine docs "签名过程Demo", https://www.volcengine.com/docs/6369/67270:
        // GET iam ListUsers at 20240619T071306Z, every intermediate value published.
        let (hash, key, sig, auth) = doc_chain(
            "GET",
            &[
                ("Action", "ListUsers"),
                ("Version", "2018-01-01"),
                ("Limit", "10"),
                ("Offset", "0"),
            ],
            "iam.volcengineapi.com",
            "20240619T071306Z",
            b"",
            "cn-beijing",
            "iam",
        );
        assert_eq!(format_x_date(1_718_781_186), "20240619T071306Z");
        assert_eq!(
            hash,
            "5ed5bca3905e1fcbf789abb56a17c2d819674a3bcfa468ae476bd1ea80d135cb"
        );
        assert_eq!(
            hex::encode(key),
            "abee62e533a58934c49954459a3c3237d2fccea517c9a7c8a2651d8ea7779826"
        );
        assert_eq!(
            sig,
            "e31c4558bcfe08a286001f59cedbf0791ffd0b2362f10e55ee2627467bcdde93"
        );
        assert_eq!(
            auth,
            "HMAC-SHA256 Credential=AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg/20240619/cn-beijing/iam/request, \
             SignedHeaders=host;x-date, \
             Signature=e31c4558bcfe08a286001f59cedbf0791ffd0b2362f10e55ee2627467bcdde93"
        );
    }

    #[test]
    fn documentation_billing_examples() {
        // Volcengine docs "签名方法", https://www.volcengine.com/docs/6369/67269:
        // GET QueryBalanceAcct and POST ListBill at 20250329T180937Z, values as
        // quoted by several public client test suites (page not read directly).
        assert_eq!(format_x_date(1_743_271_777), "20250329T180937Z");
        let host = "billing.volcengineapi.com";
        let get = doc_chain(
            "GET",
            &[("Action", "QueryBalanceAcct"), ("Version", "2022-01-01")],
            host,
            "20250329T180937Z",
            b"",
            "cn-beijing",
            "billing",
        );
        assert_eq!(
            get.0,
            "43171c1658c64b5db55c58d54988a4598d2d09a5613136beaa5eef40eae6e2c1"
        );
        assert_eq!(
            get.2,
            "1eda9e7e6b1728151a8e8791fdaf67cfbd28bd5c80d0fce2eb208746cf483105"
        );
        let post = doc_chain(
            "POST",
            &[("Action", "ListBill"), ("Version", "2022-01-01")],
            host,
            "20250329T180937Z",
            br#"{"Limit":10,"BillPeriod":"2023-08"}"#,
            "cn-beijing",
            "billing",
        );
        assert_eq!(
            post.0,
            "27383e3b56d03850f5634483527fbddcbf06cf98de1bc8a6679ef2300bff3b15"
        );
        assert_eq!(
            post.3,
            "HMAC-SHA256 Credential=AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg/20250329/cn-beijing/billing/request, \
             SignedHeaders=host;x-date, \
             Signature=5e8480ceea12d0000a23c054151c50dd02c1a7dec835004057d19f13d53a7658"
        );
    }

    #[test]
    fn canonical_query_string_encodes_and_sorts_stably() {
        // Spec §2.3 example.
        let query = [
            ("Version", "2024-12-01"),
            ("Action", "ListX"),
            ("q", "a b*~/é"),
            ("Action", "Z"),
            ("empty", ""),
        ];
        assert_eq!(
            canonical_query_string(&query),
            "Action=ListX&Action=Z&Version=2024-12-01&empty=&q=a%20b%2A~%2F%C3%A9"
        );
        assert_eq!(canonical_query_string(&[]), "");
    }

    #[test]
    fn canonical_uri_encodes_each_segment() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a b/c+d/é~"), "/a%20b/c%2Bd/%C3%A9~");
    }

    #[test]
    fn x_date_handles_epoch_leap_days_and_the_u32_limit() {
        assert_eq!(format_x_date(0), "19700101T000000Z");
        assert_eq!(format_x_date(1_709_251_199), "20240229T235959Z");
        assert_eq!(format_x_date(951_782_400), "20000229T000000Z");
        assert_eq!(format_x_date(951_868_800), "20000301T000000Z");
        assert_eq!(format_x_date(u64::from(u32::MAX)), "21060207T062815Z");
        assert_eq!(short_date("20250304T050607Z"), "20250304");
    }

    #[test]
    fn empty_body_hash_is_the_well_known_constant() {
        assert_eq!(hex_encode_hash(b""), EMPTY_PAYLOAD_SHA256);
    }

    #[test]
    fn session_token_is_sent_and_signed() {
        let headers = [("Host", "rtc.volcengineapi.com")];
        let request = Request {
            method: "post",
            path: "",
            query: QUERY,
            headers: &headers,
            body: b"",
        };
        let credentials = Credentials {
            session_token: Some("STS-TOKEN"),
            ..credentials()
        };
        let signed = sign_request(&request, &credentials, RTC_REGION, RTC_SERVICE, NOW);
        assert_eq!(
            signed.signed_headers,
            "host;x-content-sha256;x-date;x-security-token"
        );
        assert!(signed.canonical_request.starts_with("POST\n/\n"));
        assert!(
            signed
                .canonical_request
                .contains("\nx-security-token:STS-TOKEN\n\n")
        );
        let names: Vec<&str> = signed.headers().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "X-Date",
                "X-Content-Sha256",
                "X-Security-Token",
                "Authorization"
            ]
        );
        // The token changes the signature.
        let without = sign_request(&request, &self::credentials(), RTC_REGION, RTC_SERVICE, NOW);
        assert_ne!(signed.signature, without.signature);
    }

    #[test]
    fn caller_copies_of_signer_headers_are_replaced() {
        let headers = [
            ("Host", "rtc.volcengineapi.com"),
            ("Content-Type", "application/json"),
            ("X-Date", "19990101T000000Z"),
            ("x-content-sha256", "stale"),
            ("Authorization", "stale"),
        ];
        let request = Request {
            method: "POST",
            path: "/",
            query: QUERY,
            headers: &headers,
            body: BODY,
        };
        let signed = sign_request(&request, &credentials(), RTC_REGION, RTC_SERVICE, NOW);
        assert_eq!(signed, stop_voice_chat("rtc.volcengineapi.com"));
    }
}
