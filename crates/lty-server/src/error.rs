//! `ApiError`: the one error response type. Every error leaves the server as
//! `{"code": "snake_case", "message": "...", "details"?: {...}}` with a 4xx or
//! 5xx status; 5xx bodies never carry internals (the cause is logged once).

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `validation_error`.
    pub code: Cow<'static, str>,
    /// Human-readable explanation.
    pub message: String,
    /// Extra structured information (e.g. the offending field).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: Cow::Borrowed(code),
                message: message.into(),
                details: None,
            },
            retry_after: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.body.details = Some(details);
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.body.message
    }

    /// 404 for a route that does not exist.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 405 for a known route with another method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
    }

    /// 500 with no internals; the caller logs the cause.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        )
    }
}

impl From<lty_core::Error> for ApiError {
    fn from(err: lty_core::Error) -> Self {
        use lty_core::Error as E;
        let code = err.code();
        match err {
            E::Validation { field, message } => {
                Self::new(StatusCode::BAD_REQUEST, code, format!("{field}: {message}"))
                    .with_details(json!({ "field": field }))
            }
            E::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, code, err.to_string()),
            E::Unauthenticated { message } => Self::new(StatusCode::UNAUTHORIZED, code, message),
            E::Forbidden { message } => Self::new(StatusCode::FORBIDDEN, code, message),
            E::Conflict { message, .. } => Self::new(StatusCode::CONFLICT, code, message),
            E::RateLimited { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    code,
                    format!("too many requests; retry in {retry_after_secs} s"),
                )
                .with_details(json!({ "retry_after": retry_after_secs }));
                e.retry_after = Some(retry_after_secs);
                e
            }
            E::ProviderNotConfigured { provider } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                format!("{provider} is not configured on this server"),
            )
            .with_details(json!({ "provider": provider })),
            E::Upstream { provider, message } => {
                tracing::warn!(provider, %message, "upstream provider failed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    code,
                    format!("{provider} did not answer correctly"),
                )
                .with_details(json!({ "provider": provider }))
            }
            E::Coded(c) => {
                use lty_core::ErrorKind as K;
                let status = match c.kind {
                    K::Invalid => StatusCode::BAD_REQUEST,
                    K::Unauthenticated => StatusCode::UNAUTHORIZED,
                    K::Forbidden => StatusCode::FORBIDDEN,
                    K::NotFound => StatusCode::NOT_FOUND,
                    K::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                    K::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    K::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
                    K::Limited => StatusCode::TOO_MANY_REQUESTS,
                    K::Upstream => StatusCode::BAD_GATEWAY,
                    K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                };
                let c = *c;
                let mut e = Self::new(status, c.code, c.message);
                e.body.details = c.details;
                e.retry_after = c.retry_after_secs;
                e
            }
            E::Backend(backend) => {
                tracing::error!(service = backend.service, error = %backend.message, "backend failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "a backing service is unavailable; try again shortly",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than this server accepts",
                )
            }
            other => Self::new(StatusCode::BAD_REQUEST, "invalid_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            rejection.body_text(),
        )
    }
}

/// Handler result type.
pub type ApiResult<T> = Result<T, ApiError>;
