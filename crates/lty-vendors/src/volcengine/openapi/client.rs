//! The OpenAPI HTTP client: signs every attempt with [`sign_request`], sends
//! the exact bytes it hashed, and reads errors from `ResponseMetadata.Error`
//! whatever the HTTP status (the service reports many errors in a 200).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Credentials, RTC_REGION, RTC_SERVICE, Request, sign_request};
use crate::http::ClientOptions;
use crate::volcengine::rtc_token::unix_now;

/// The content type lty sends and signs.
const JSON: &str = "application/json";

/// How to reach and authenticate to the OpenAPI.
#[derive(Clone)]
pub struct ClientConfig {
    /// Origin such as `https://rtc.volcengineapi.com` (plain `http://` works;
    /// a trailing `/` is ignored).
    pub base_url: String,
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`, used verbatim.
    pub secret_access_key: String,
    /// STS session token, if the keys are temporary.
    pub session_token: Option<String>,
    /// Time allowed to open the connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole attempt, response body included.
    pub timeout: Duration,
    /// Base delay between retries (doubled each time, plus jitter).
    pub retry_backoff: Duration,
}

impl ClientConfig {
    /// The documented defaults (connect 3 s, whole request 10 s) for `base_url`.
    pub fn new(
        base_url: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(200),
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("access_key_id", &self.access_key_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why an OpenAPI call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    /// The client cannot be built from its configuration.
    #[error("invalid OpenAPI client configuration: {0}")]
    Config(String),
    /// No answer: connection refused or reset, or the body could not be read.
    #[error("transport error: {0}")]
    Transport(String),
    /// No answer within the configured timeout.
    #[error("timed out")]
    Timeout,
    /// An answer that is not an OpenAPI response (not JSON, no `Result`).
    #[error("HTTP {status}: not an OpenAPI response: {message}")]
    InvalidResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        message: String,
    },
    /// The service answered with `ResponseMetadata.Error`.
    #[error("{code}: {message} (HTTP {status})")]
    Vendor {
        /// HTTP status (may be 200).
        status: u16,
        /// `Error.Code`, e.g. `SignatureDoesNotMatch`.
        code: String,
        /// `Error.Message`.
        message: String,
        /// `ResponseMetadata.RequestId`, for the vendor's support.
        request_id: Option<String>,
    },
}

/// Error codes the service documents as transient.
const RETRYABLE_CODES: [&str; 5] = [
    "FlowLimitExceeded",
    "InternalError",
    "InternalServiceError",
    "ServiceUnavailableTemp",
    "InternalServiceTimeout",
];

impl OpenApiError {
    /// Whether another attempt may succeed: transport errors, timeouts,
    /// 429 and 5xx (never a signing or parameter error).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config(_) => false,
            Self::Transport(_) | Self::Timeout => true,
            Self::InvalidResponse { status, .. } => *status == 429 || *status >= 500,
            Self::Vendor { status, code, .. } => {
                *status == 429 || *status >= 500 || RETRYABLE_CODES.contains(&code.as_str())
            }
        }
    }

    /// The vendor's `Error.Code`, when the service answered with one.
    pub fn vendor_code(&self) -> Option<&str> {
        match self {
            Self::Vendor { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The vendor's `RequestId`, when known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Vendor { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// `ResponseMetadata` of every OpenAPI answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseMetadata {
    /// Request id assigned by the service.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Echo of the action.
    #[serde(default)]
    pub action: Option<String>,
    /// Echo of the version.
    #[serde(default)]
    pub version: Option<String>,
    /// `rtc`.
    #[serde(default)]
    pub service: Option<String>,
    /// `cn-north-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Present on failure only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// `ResponseMetadata.Error`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Symbolic code, e.g. `InvalidParameter`.
    #[serde(rename = "Code", default)]
    pub code: String,
    /// Numeric code some services add.
    #[serde(rename = "CodeN", default, skip_serializing_if = "Option::is_none")]
    pub code_n: Option<i64>,
    /// Human-readable explanation.
    #[serde(rename = "Message", default)]
    pub message: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// `ResponseMetadata.RequestId`.
    pub request_id: Option<String>,
    /// `Result` (the string `"ok"` for the voice-chat actions).
    pub result: Value,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "ResponseMetadata", default)]
    metadata: Option<ResponseMetadata>,
    #[serde(rename = "Result", default)]
    result: Option<Value>,
}

/// Reads an answer: success iff there is no `ResponseMetadata.Error` and a
/// `Result` is present, whatever `status` says.
pub fn parse_response(status: u16, body: &[u8]) -> Result<ApiResponse, OpenApiError> {
    let invalid = |message: String| OpenApiError::InvalidResponse { status, message };
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    let metadata = envelope.metadata.unwrap_or_default();
    if let Some(error) = metadata.error {
        return Err(OpenApiError::Vendor {
            status,
            code: error.code,
            message: error.message,
            request_id: metadata.request_id,
        });
    }
    match envelope.result {
        Some(result) if (200..300).contains(&status) => Ok(ApiResponse {
            request_id: metadata.request_id,
            result,
        }),
        Some(_) => Err(invalid(
            "an error status without ResponseMetadata.Error".into(),
        )),
        None => Err(invalid("no Result and no ResponseMetadata.Error".into())),
    }
}

/// Client for the RTC OpenAPI (region `cn-north-1`, service `rtc`).
///
/// Cloning shares the connection pool.
#[derive(Clone)]
pub struct OpenApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]/path` without a query.
    endpoint: String,
    /// The `Host` header the HTTP client sends: host, plus `:port` when
    /// the port is not the scheme's default.
    host: String,
    /// Decoded path, as signed.
    path: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    retry_backoff: Duration,
}

impl std::fmt::Debug for OpenApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApiClient")
            .field("endpoint", &self.inner.endpoint)
            .field("access_key_id", &self.inner.access_key_id)
            .finish_non_exhaustive()
    }
}

impl OpenApiClient {
    /// Builds a client; fails on a base URL that is not `http(s)://host`.
    pub fn new(config: ClientConfig) -> Result<Self, OpenApiError> {
        let bad = |m: &str| OpenApiError::Config(format!("base URL {:?}: {m}", config.base_url));
        let url = url::Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(bad("must be an http(s) origin without a query"));
        }
        let host_name = url.host_str().ok_or_else(|| bad("has no host"))?;
        // `Url::port` is None for the scheme's default port, exactly when the
        // HTTP client leaves the port out of `Host`.
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        let path = url.path().to_owned();
        let endpoint = format!("{}://{}{}", url.scheme(), host, path);
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| OpenApiError::Config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                host,
                path,
                access_key_id: config.access_key_id,
                secret_access_key: config.secret_access_key,
                session_token: config.session_token,
                retry_backoff: config.retry_backoff,
            }),
        })
    }

    /// Calls `action` once (no retry).
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        action: &str,
        version: &str,
        body: &B,
    ) -> Result<ApiResponse, OpenApiError> {
        self.call_with_retries(action, version, body, 0).await
    }

    /// Calls `action`, retrying up to `retries` times on retryable errors
    /// with jittered exponential backoff. The body is serialized once and
    /// every attempt is signed afresh (new `X-Date`).
    #[tracing::instrument(skip_all, err(Display), fields(action = action))]
    pub async fn call_with_retries<B: Serialize + ?Sized>(
        &self,
        action: &str,
        version: &str,
        body: &B,
        retries: u32,
    ) -> Result<ApiResponse, OpenApiError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| OpenApiError::Config(format!("cannot serialize the body: {e}")))?;
        let mut attempt = 0;
        loop {
            match self.attempt(action, version, &body).await {
                Ok(res) => {
                    tracing::debug!(request_id = res.request_id.as_deref(), "ok");
                    return Ok(res);
                }
                Err(err) if attempt < retries && err.is_retryable() => {
                    let delay = self.backoff(attempt);
                    tracing::warn!(error = %err, attempt, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.inner.retry_backoff.saturating_mul(1 << attempt.min(6));
        let jitter_ms = u64::try_from(self.inner.retry_backoff.as_millis()).unwrap_or(0);
        base + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    async fn attempt(
        &self,
        action: &str,
        version: &str,
        body: &[u8],
    ) -> Result<ApiResponse, OpenApiError> {
        let inner = &self.inner;
        let query = [("Action", action), ("Version", version)];
        let headers = [("Host", inner.host.as_str()), ("Content-Type", JSON)];
        let request = Request {
            method: "POST",
            path: &inner.path,
            query: &query,
            headers: &headers,
            body,
        };
        let credentials = Credentials {
            access_key_id: &inner.access_key_id,
            secret_access_key: &inner.secret_access_key,
            session_token: inner.session_token.as_deref(),
        };
        let signed = sign_request(&request, &credentials, RTC_REGION, RTC_SERVICE, unix_now());

        let mut header_map = HeaderMap::new();
        header_map.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        for (name, value) in signed.headers() {
            let value = HeaderValue::from_str(value)
                .map_err(|_| OpenApiError::Config(format!("{name} is not a valid header")))?;
            header_map.insert(HeaderName::from_static(lower(name)), value);
        }
        let url = format!("{}?{}", inner.endpoint, signed.canonical_query_string);
        let response = inner
            .http
            .post(url)
            .headers(header_map)
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        parse_response(status, &bytes)
    }
}

/// Lower-case names of the signer's headers (`HeaderName::from_static`
/// needs them so).
fn lower(name: &str) -> &'static str {
    match name {
        "X-Date" => "x-date",
        "X-Content-Sha256" => "x-content-sha256",
        "X-Security-Token" => "x-security-token",
        _ => "authorization",
    }
}

fn transport(err: reqwest::Error) -> OpenApiError {
    if err.is_timeout() {
        OpenApiError::Timeout
    } else {
        // Without the URL: it carries nothing secret, but keeps logs short.
        OpenApiError::Transport(err.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_needs_a_result_and_no_error() {
        let ok = br#"{"ResponseMetadata":{"RequestId":"r1","Action":"StopVoiceChat","Version":"2024-12-01","Service":"rtc","Region":"cn-north-1"},"Result":"ok"}"#;
        let res = parse_response(200, ok).unwrap();
        assert_eq!(res.request_id.as_deref(), Some("r1"));
        assert_eq!(res.result, Value::from("ok"));
    }

    #[test]
    fn errors_are_read_from_response_metadata_even_in_a_200() {
        let body = br#"{"ResponseMetadata":{"RequestId":"r2","Error":{"Code":"InvalidParameter","Message":"task not running"}}}"#;
        for status in [200, 400] {
            let err = parse_response(status, body).unwrap_err();
            assert_eq!(err.vendor_code(), Some("InvalidParameter"));
            assert_eq!(err.request_id(), Some("r2"));
            assert!(!err.is_retryable());
        }
        // An error wins over a Result sent alongside it.
        let both = br#"{"ResponseMetadata":{"Error":{"Code":"InternalError","Message":"x"}},"Result":"ok"}"#;
        let err = parse_response(200, both).unwrap_err();
        assert!(err.is_retryable(), "InternalError is transient");
    }

    #[test]
    fn non_openapi_answers_are_invalid_responses() {
        for (status, body) in [
            (200, &b"<html>gateway</html>"[..]),
            (200, br#"{"ResponseMetadata":{}}"#),
            (502, br#"{"Result":"ok"}"#),
        ] {
            let err = parse_response(status, body).unwrap_err();
            assert!(matches!(err, OpenApiError::InvalidResponse { .. }), "{err}");
            assert_eq!(err.is_retryable(), status >= 500);
        }
    }

    #[test]
    fn retryable_errors_are_transport_429_and_5xx() {
        let vendor = |status, code: &str| OpenApiError::Vendor {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
        };
        assert!(vendor(429, "FlowLimitExceeded").is_retryable());
        assert!(vendor(503, "ServiceUnavailableTemp").is_retryable());
        assert!(vendor(200, "FlowLimitExceeded").is_retryable());
        assert!(!vendor(401, "SignatureDoesNotMatch").is_retryable());
        assert!(!vendor(404, "InvalidActionOrVersion").is_retryable());
        assert!(OpenApiError::Timeout.is_retryable());
        assert!(OpenApiError::Transport("reset".into()).is_retryable());
        assert!(!OpenApiError::Config("x".into()).is_retryable());
    }

    #[test]
    fn the_host_header_keeps_only_non_default_ports() {
        let host = |base: &str| {
            OpenApiClient::new(ClientConfig::new(base, "ak", "sk"))
                .unwrap()
                .inner
                .host
                .clone()
        };
        assert_eq!(
            host("https://rtc.volcengineapi.com"),
            "rtc.volcengineapi.com"
        );
        assert_eq!(
            host("https://rtc.volcengineapi.com:443/"),
            "rtc.volcengineapi.com"
        );
        assert_eq!(host("http://127.0.0.1:18080/"), "127.0.0.1:18080");
        assert_eq!(host("http://127.0.0.1:80"), "127.0.0.1");
        for bad in ["ftp://x", "not a url", "http://h/?a=b"] {
            assert!(
                OpenApiClient::new(ClientConfig::new(bad, "ak", "sk")).is_err(),
                "{bad}"
            );
        }
    }
}
