//! The domain error type. Every variant has a stable snake_case code that
//! clients can switch on; the server maps each one to an HTTP status.

use std::fmt;

/// Result alias used across lty's core and adapters.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of a backing service (database, cache, pub/sub, blob store).
///
/// The message is logged, never returned to clients.
#[derive(Debug, thiserror::Error)]
#[error("{service}: {message}")]
pub struct BackendError {
    /// Which backend failed: `database`, `redis`, `blob`.
    pub service: &'static str,
    /// The backend's own description of the failure.
    pub message: String,
}

impl BackendError {
    /// A failure of `service` described by `err`.
    pub fn new(service: &'static str, err: impl fmt::Display) -> Self {
        Self {
            service,
            message: err.to_string(),
        }
    }
}

/// Domain errors with semantic variants.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation; `field` names the offending field.
    #[error("{message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    /// The addressed thing does not exist (or is not visible to the caller).
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        code: &'static str,
    },
    /// No or invalid credentials.
    #[error("{message}")]
    Unauthenticated { message: &'static str },
    /// Authenticated but not allowed.
    #[error("{message}")]
    Forbidden { message: &'static str },
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many requests; retry after the given number of seconds.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// A feature needs an outside provider that has no credentials.
    #[error("{provider} is not configured")]
    ProviderNotConfigured { provider: &'static str },
    /// An outside provider answered with an error or not at all.
    #[error("{provider} failed: {message}")]
    Upstream {
        provider: &'static str,
        message: String,
    },
    /// A backing service failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl Error {
    /// A validation error on `field`.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            field,
            message: message.into(),
        }
    }

    /// A not-found error with the generic `not_found` code.
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound {
            what,
            code: "not_found",
        }
    }

    /// The stable snake_case code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_error",
            Self::NotFound { code, .. } => code,
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::Forbidden { .. } => "forbidden",
            Self::Conflict { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::ProviderNotConfigured { .. } => "provider_not_configured",
            Self::Upstream { .. } => "upstream_error",
            Self::Backend(_) => "service_unavailable",
        }
    }
}
