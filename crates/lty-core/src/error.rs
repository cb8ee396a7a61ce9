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
    /// A refusal with a code of its own (`quota_exceeded`,
    /// `sms_code_invalid`, ...), its class, and what a client needs to act
    /// on it.
    #[error("{}", .0.message)]
    Coded(Box<Coded>),
}

/// The class of a [`Coded`] error: what kind of refusal it is, which the
/// server maps to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong (400).
    Invalid,
    /// No or wrong credentials (401).
    Unauthenticated,
    /// Not allowed (403).
    Forbidden,
    /// Nothing there (404).
    NotFound,
    /// The input is too large (413).
    TooLarge,
    /// The input's format is not one this server reads (415).
    UnsupportedMedia,
    /// Well-formed input with nothing to act on (422).
    Unprocessable,
    /// A limit is reached; retry later (429).
    Limited,
    /// An outside provider failed (502).
    Upstream,
    /// A provider or backend cannot be used now (503).
    Unavailable,
}

/// A refusal with a stable code; see [`Error::Coded`].
#[derive(Debug)]
pub struct Coded {
    pub kind: ErrorKind,
    /// Stable snake_case code clients switch on.
    pub code: &'static str,
    /// Human-readable explanation, safe to show.
    pub message: String,
    /// Structured facts for the client (limits, reset times, fields).
    pub details: Option<serde_json::Value>,
    /// Seconds to wait before retrying, when that is known.
    pub retry_after_secs: Option<u64>,
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

    /// A [`Coded`] error of `kind` with `code` and `message`.
    pub fn coded(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self::Coded(Box::new(Coded {
            kind,
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }))
    }

    /// Adds structured details to a [`Coded`] error (other errors are
    /// returned as they are).
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        if let Self::Coded(c) = &mut self {
            c.details = Some(details);
        }
        self
    }

    /// Adds a retry delay to a [`Coded`] error (other errors are returned
    /// as they are).
    #[must_use]
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let Self::Coded(c) = &mut self {
            c.retry_after_secs = Some(secs);
        }
        self
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
            Self::Coded(c) => c.code,
        }
    }
}
