//! TC3-HMAC-SHA256, the signature of Tencent Cloud API 3.0, and the
//! response envelope every API 3.0 call answers with.
//!
//! ```text
//! CanonicalRequest = METHOD \n URI \n QUERY \n HEADERS \n SIGNED_HEADERS \n hex(SHA256(body))
//! StringToSign     = "TC3-HMAC-SHA256" \n timestamp \n date/service/tc3_request \n hex(SHA256(CanonicalRequest))
//! kSigning         = HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request")
//! Authorization    = TC3-HMAC-SHA256 Credential=id/scope, SignedHeaders=..., Signature=hex(HMAC(kSigning, StringToSign))
//! ```
//!
//! Header values are lowercased in the canonical form (unlike Aliyun ACS3),
//! the date is the **UTC** date of the timestamp, and the service comes from
//! the caller, never from the host, so a fake on `127.0.0.1` signs alike.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{Credential, SignError};
use crate::sha256mac::{derive_key, hmac_sha256_hex};

/// Algorithm name, first word of `Authorization` and of the string to sign.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The `Content-Type` lty sends and signs for JSON bodies; it must reach the
/// server byte for byte.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// UTC calendar date `YYYY-MM-DD` of a Unix timestamp: the `Date` of the
/// credential scope. A local-time date would break every call between
/// 00:00 and 08:00 Beijing time.
pub fn tc3_date(timestamp: u64) -> String {
    let days = (timestamp / 86_400) as i64;
    // Inverse of days-from-civil (Howard Hinnant), eras starting in March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `CredentialScope`: `date/service/tc3_request`.
pub fn credential_scope(date: &str, service: &str) -> String {
    format!("{date}/{service}/tc3_request")
}

/// `HashedRequestPayload`: lowercase hex SHA-256 of the exact body bytes.
pub fn hashed_payload(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// A canonical request and the `SignedHeaders` list it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// The canonical request text.
    pub canonical_request: String,
    /// Lowercase header names, sorted, joined with `;`.
    pub signed_headers: String,
}

/// Builds the canonical request. Every header in `headers` is signed as
/// `lowercase(name):lowercase(trim(value))`, sorted by name.
/// `canonical_query` is empty for POST and the URL-encoded query for GET.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    hashed_payload: &str,
) -> Result<CanonicalRequest, SignError> {
    let mut lines: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let bad = |s: &str| s.chars().any(char::is_control);
        if name.trim().is_empty() || bad(name) || bad(value) {
            return Err(SignError::InvalidHeader((*name).to_owned()));
        }
        // The server lowercases values too, so `TextToVoice` is signed as
        // `texttovoice`.
        lines.push((
            name.trim().to_ascii_lowercase(),
            value.trim().to_lowercase(),
        ));
    }
    lines.sort();
    if let Some(w) = lines.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SignError::Duplicate(w[0].0.clone()));
    }
    let canonical_headers: String = lines.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = lines
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    // Header lines end in "\n" and the parts are joined with "\n": the blank
    // line before SignedHeaders is intended.
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}"
    );
    Ok(CanonicalRequest {
        canonical_request,
        signed_headers,
    })
}

/// `StringToSign`. `timestamp` must be the same decimal text as the
/// `X-TC-Timestamp` header.
pub fn string_to_sign(timestamp: u64, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{credential_scope}\n{}",
        hashed_payload(canonical_request.as_bytes())
    )
}

/// The derived key `kSigning` (raw 32 bytes, not hex): `date`, then
/// `service`, then `tc3_request`, starting from `"TC3" + SecretKey`.
pub fn signing_key(secret_key: &str, date: &str, service: &str) -> Result<[u8; 32], SignError> {
    Ok(derive_key(
        format!("TC3{secret_key}").as_bytes(),
        &[date.as_bytes(), service.as_bytes(), b"tc3_request"],
    ))
}

/// `Signature`: lowercase hex HMAC-SHA256 of the string to sign.
pub fn signature(signing_key: &[u8], string_to_sign: &str) -> Result<String, SignError> {
    Ok(hmac_sha256_hex(signing_key, string_to_sign.as_bytes()))
}

/// `Authorization` value: one space after each comma, none inside the lists.
pub fn tc3_authorization(
    secret_id: &str,
    credential_scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={secret_id}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// One API 3.0 call: `POST /` with a JSON body.
#[derive(Debug, Clone, Copy)]
pub struct Tc3Call<'a> {
    /// Service of the credential scope (`tts`, `asr`): a client constant.
    pub service: &'a str,
    /// `Host` as sent, `:port` included when the client sends one.
    pub host: &'a str,
    /// `X-TC-Action`, e.g. `TextToVoice`.
    pub action: &'a str,
    /// `X-TC-Version`, e.g. `2019-08-23`.
    pub version: &'a str,
    /// `X-TC-Region`, when the API wants one.
    pub region: Option<&'a str>,
    /// `X-TC-Language` (`zh-CN`, `en-US`) for error messages.
    pub language: Option<&'a str>,
    /// Unix seconds; the server allows five minutes of skew.
    pub timestamp: u64,
    /// The exact JSON bytes that will be sent.
    pub payload: &'a [u8],
}

/// The result of [`sign`]: every header to send, plus the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tc3Signed {
    /// Headers to send: `Authorization` first, then `Content-Type`, `Host`
    /// and the `X-TC-*` headers.
    pub headers: Vec<(String, String)>,
    /// For debugging `AuthFailure.SignatureFailure`.
    pub canonical_request: String,
    /// For debugging `AuthFailure.SignatureFailure`.
    pub string_to_sign: String,
    /// The `Authorization` value.
    pub authorization: String,
}

/// Signs an API 3.0 `POST /` call, signing `content-type`, `host` and
/// `x-tc-action` as the current vendor documentation does.
pub fn sign(call: &Tc3Call<'_>, credential: &Credential) -> Result<Tc3Signed, SignError> {
    let signed = [
        ("content-type", JSON_CONTENT_TYPE),
        ("host", call.host),
        ("x-tc-action", call.action),
    ];
    let canonical = canonical_request("POST", "/", "", &signed, &hashed_payload(call.payload))?;
    let date = tc3_date(call.timestamp);
    let scope = credential_scope(&date, call.service);
    let string_to_sign = string_to_sign(call.timestamp, &scope, &canonical.canonical_request);
    let key = signing_key(&credential.secret_key, &date, call.service)?;
    let signature = signature(&key, &string_to_sign)?;
    let authorization = tc3_authorization(
        &credential.secret_id,
        &scope,
        &canonical.signed_headers,
        &signature,
    );
    let mut headers = vec![
        ("Authorization".to_owned(), authorization.clone()),
        ("Content-Type".to_owned(), JSON_CONTENT_TYPE.to_owned()),
        ("Host".to_owned(), call.host.to_owned()),
        ("X-TC-Action".to_owned(), call.action.to_owned()),
        ("X-TC-Version".to_owned(), call.version.to_owned()),
        ("X-TC-Timestamp".to_owned(), call.timestamp.to_string()),
    ];
    // Unsigned headers: present only when they carry something.
    let optional = [
        ("X-TC-Region", call.region),
        ("X-TC-Language", call.language),
        ("X-TC-Token", credential.token.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(Tc3Signed {
        headers,
        canonical_request: canonical.canonical_request,
        string_to_sign,
        authorization,
    })
}

// ---------------------------------------------------------------------------
// Response envelope
// ---------------------------------------------------------------------------

/// Every API 3.0 body: `{"Response": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope<T> {
    /// The `Response` object.
    #[serde(rename = "Response")]
    pub response: T,
}

/// `Response` of a failed call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorResponse {
    /// `Response.Error`.
    #[serde(rename = "Error")]
    pub error: ErrorDetail,
    /// `Response.RequestId`.
    #[serde(rename = "RequestId", default)]
    pub request_id: String,
}

/// `Response.Error`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// `Code`, e.g. `AuthFailure.SignatureFailure`.
    #[serde(rename = "Code")]
    pub code: String,
    /// `Message`; wording changes over time, never match on it.
    #[serde(rename = "Message", default)]
    pub message: String,
}

/// A failure reported inside an HTTP 200 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tencent cloud {code}: {message} (request {request_id})")]
pub struct ApiError {
    /// Vendor error code.
    pub code: String,
    /// Vendor message.
    pub message: String,
    /// `RequestId`, for the logs and for the vendor's support.
    pub request_id: String,
}

impl ApiError {
    /// Whether the vendor documents the code as transient (rate limit or
    /// internal error), so a bounded, backed-off retry may succeed.
    pub fn is_retryable(&self) -> bool {
        let family = |prefix: &str| {
            self.code == prefix
                || self
                    .code
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        family("InternalError") || family("RequestLimitExceeded")
    }
}

/// A successful `Response`: its `RequestId` and the API's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse<T> {
    /// `Response.RequestId`.
    pub request_id: String,
    /// The other fields of `Response`.
    pub data: T,
}

/// Why a body is not a successful API 3.0 response.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// `Response.Error` is present.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The body is not an API 3.0 envelope, or `Response` does not match `T`.
    #[error("not a Tencent Cloud API 3.0 response")]
    Malformed(#[source] serde_json::Error),
}

/// Parses an API 3.0 body. Success and failure both come with HTTP 200 and
/// differ only by `Response.Error`, so the HTTP status says nothing here
/// (a non-200 is a transport error for the caller to handle).
pub fn parse_response<T: DeserializeOwned>(body: &[u8]) -> Result<ApiResponse<T>, ResponseError> {
    let Envelope { response } =
        serde_json::from_slice::<Envelope<serde_json::Map<String, serde_json::Value>>>(body)
            .map_err(ResponseError::Malformed)?;
    // Checked before `T`, whose required fields an error body lacks.
    if response.contains_key("Error") {
        let failed: ErrorResponse = serde_json::from_value(serde_json::Value::Object(response))
            .map_err(ResponseError::Malformed)?;
        return Err(ApiError {
            code: failed.error.code,
            message: failed.error.message,
            request_id: failed.request_id,
        }
        .into());
    }
    let mut response = response;
    let request_id = match response.remove("RequestId") {
        Some(serde_json::Value::String(id)) => id,
        _ => String::new(),
    };
    let data = serde_json::from_value(serde_json::Value::Object(response))
        .map_err(ResponseError::Malformed)?;
    Ok(ApiResponse { request_id, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Body of the DescribeInstances example in Tencent Cloud's "签名方法 v3"
    /// (cloud.tencent.com/document/api/213/30654), as `json.dumps` prints it.
    const DOC_BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    /// The example key pair exactly as the document's earlier revision and
    /// TencentCloud/signature-process-demo print it (asterisks included).
    const DOC_ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******";
    const DOC_KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3*******";
    const DOC_TS: u64 = 1_551_113_065;

    #[test]
    fn doc_example_hashes_match_the_published_intermediates() {
        // Printed on the current revision of the page (keys masked there, the
        // hashes are not): payload hash, canonical request, its hash.
        assert_eq!(
            hashed_payload(DOC_BODY.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let c = canonical_request(
            "POST",
            "/",
            "",
            &[
                ("Content-Type", JSON_CONTENT_TYPE),
                ("Host", "cvm.tencentcloudapi.com"),
            ],
            &hashed_payload(DOC_BODY.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            c.canonical_request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\n\
             host:cvm.tencentcloudapi.com\n\ncontent-type;host\n\
             35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let scope = credential_scope(&tc3_date(DOC_TS), "cvm");
        assert_eq!(scope, "2019-02-25/cvm/tc3_request");
        let sts = string_to_sign(DOC_TS, &scope, &c.canonical_request);
        assert_eq!(
            sts,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n\
             5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        // Earlier revision of the same page: signature with the printed key.
        let key = signing_key(DOC_KEY, "2019-02-25", "cvm").unwrap();
        let sig = signature(&key, &sts).unwrap();
        assert_eq!(
            sig,
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
        assert_eq!(
            tc3_authorization(DOC_ID, &scope, &c.signed_headers, &sig),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
        );
    }

    #[test]
    fn sign_matches_the_doc_example_that_signs_x_tc_action() {
        // Same page, revision that signs x-tc-action (value lowercased), and
        // TencentCloud/signature-process-demo signature-v3/python/demo.py.
        let call = Tc3Call {
            service: "cvm",
            host: "cvm.tencentcloudapi.com",
            action: "DescribeInstances",
            version: "2017-03-12",
            region: Some("ap-guangzhou"),
            language: None,
            timestamp: DOC_TS,
            payload: DOC_BODY.as_bytes(),
        };
        let signed = sign(&call, &Credential::new(DOC_ID, DOC_KEY)).unwrap();
        assert_eq!(
            signed.canonical_request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\n\
             host:cvm.tencentcloudapi.com\nx-tc-action:describeinstances\n\n\
             content-type;host;x-tc-action\n\
             35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            signed.authorization,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host;x-tc-action, \
             Signature=be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
        );
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Authorization",
                "Content-Type",
                "Host",
                "X-TC-Action",
                "X-TC-Version",
                "X-TC-Timestamp",
                "X-TC-Region"
            ]
        );
        assert!(
            signed
                .headers
                .contains(&("X-TC-Timestamp".into(), "1551113065".into()))
        );
    }

    #[test]
    fn get_example_of_the_2018_document_reproduces() {
        // Tencent Cloud API 3.0 "签名方法 v3", 2018 revision (GET
        // DescribeInstances?Limit=10&Offset=0, keys …EXAMPLE, timestamp
        // 1539084154). Its canonical-request listing shows another host, but
        // the printed hash and signature are those of cvm.tencentcloudapi.com.
        let c = canonical_request(
            "GET",
            "/",
            "Limit=10&Offset=0",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "cvm.tencentcloudapi.com"),
            ],
            &hashed_payload(b""),
        )
        .unwrap();
        let scope = credential_scope(&tc3_date(1_539_084_154), "cvm");
        assert_eq!(scope, "2018-10-09/cvm/tc3_request");
        let sts = string_to_sign(1_539_084_154, &scope, &c.canonical_request);
        assert!(sts.ends_with("91c9c192c14460df6c1ffc69e34e6c5e90708de2a6d282cccf957dbf1aa7f3a7"));
        let key = signing_key("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "2018-10-09", "cvm").unwrap();
        assert_eq!(
            tc3_authorization(
                "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
                &scope,
                &c.signed_headers,
                &signature(&key, &sts).unwrap()
            ),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2018-10-09/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"
        );
    }

    #[test]
    fn scope_date_is_the_utc_date_just_before_midnight() {
        // 1551113065 is 2019-02-26 00:44:25 in Beijing but 2019-02-25 in UTC
        // (the pitfall the vendor document warns about).
        assert_eq!(tc3_date(1_551_113_065), "2019-02-25");
        assert_eq!(tc3_date(1_551_139_199), "2019-02-25");
        assert_eq!(tc3_date(1_551_139_200), "2019-02-26");
        assert_eq!(tc3_date(951_782_400), "2000-02-29");
        assert_eq!(tc3_date(0), "1970-01-01");
    }

    #[test]
    fn chinese_text_is_hashed_as_the_exact_utf8_bytes() {
        let raw = r#"{"Text":"你好"}"#;
        let escaped = r#"{"Text":"\u4f60\u597d"}"#;
        assert_ne!(
            hashed_payload(raw.as_bytes()),
            hashed_payload(escaped.as_bytes())
        );
        let call = |payload: &'static str| Tc3Call {
            service: "tts",
            host: "127.0.0.1:9000",
            action: "TextToVoice",
            version: "2019-08-23",
            region: None,
            language: None,
            timestamp: 1_700_000_000,
            payload: payload.as_bytes(),
        };
        let cred = Credential::new("id", "key").with_token("tok");
        let a = sign(&call(raw), &cred).unwrap();
        let b = sign(&call(escaped), &cred).unwrap();
        assert_ne!(a.authorization, b.authorization);
        assert!(a.headers.contains(&("X-TC-Token".into(), "tok".into())));
        assert!(a.canonical_request.contains("\nhost:127.0.0.1:9000\n"));
    }

    #[test]
    fn header_injection_and_duplicates_are_refused() {
        assert_eq!(
            canonical_request("POST", "/", "", &[("host", "a\r\nx: y")], "h"),
            Err(SignError::InvalidHeader("host".into()))
        );
        assert_eq!(
            canonical_request("POST", "/", "", &[("Host", "a"), ("host", "b")], "h"),
            Err(SignError::Duplicate("host".into()))
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Tts {
        #[serde(rename = "Audio")]
        audio: String,
        #[serde(rename = "SessionId")]
        session_id: String,
    }

    #[test]
    fn success_envelope_yields_request_id_and_fields() {
        let body = br#"{"Response":{"Audio":"UklGRg==","SessionId":"s1","Subtitles":[],"RequestId":"b5b41468-520d-4192-b42f-595cc34b6c1c"}}"#;
        let ok: ApiResponse<Tts> = parse_response(body).unwrap();
        assert_eq!(ok.request_id, "b5b41468-520d-4192-b42f-595cc34b6c1c");
        assert_eq!(
            ok.data,
            Tts {
                audio: "UklGRg==".into(),
                session_id: "s1".into()
            }
        );
    }

    #[test]
    fn error_envelope_is_an_api_error_whatever_the_fields() {
        // The error example of the "签名方法 v3" page, "返回结果 / 错误返回结果".
        let body = br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated. Please check your signature is correct."},"RequestId":"ed93f3cb-f35e-473f-b9f3-0d451b8b79c6"}}"#;
        match parse_response::<Tts>(body) {
            Err(ResponseError::Api(e)) => {
                assert_eq!(e.code, "AuthFailure.SignatureFailure");
                assert_eq!(e.request_id, "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6");
                assert!(!e.is_retryable());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_response::<Tts>(b"<html></html>"),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            parse_response::<Tts>(br#"{"Response":{"RequestId":"r"}}"#),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn rate_limits_and_internal_errors_are_retryable() {
        for (code, retry) in [
            ("InternalError", true),
            ("InternalError.ErrorGetRoute", true),
            ("RequestLimitExceeded", true),
            ("RequestLimitExceeded.UinLimitExceeded", true),
            ("InternalErrorish", false),
            ("LimitExceeded", false),
            ("AuthFailure.SignatureExpire", false),
        ] {
            let e = ApiError {
                code: code.into(),
                message: String::new(),
                request_id: String::new(),
            };
            assert_eq!(e.is_retryable(), retry, "{code}");
        }
    }

    proptest! {
        #[test]
        fn signing_never_panics_on_arbitrary_utf8(
            host in any::<String>(), action in any::<String>(), key in any::<String>(),
            body in any::<String>(), ts in any::<u64>()
        ) {
            let call = Tc3Call {
                service: &action,
                host: &host,
                action: &action,
                version: &body,
                region: Some(&host),
                language: None,
                timestamp: ts,
                payload: body.as_bytes(),
            };
            let _ = sign(&call, &Credential::new(host.clone(), key));
        }

        #[test]
        fn scope_date_is_always_a_ten_character_date(ts in 0u64..253_402_300_800) {
            let d = tc3_date(ts);
            prop_assert_eq!(d.len(), 10);
            prop_assert_eq!(&d[4..5], "-");
            prop_assert_eq!(&d[7..8], "-");
        }

        #[test]
        fn parsing_arbitrary_bodies_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_response::<serde_json::Value>(&body);
        }
    }
}
