//! The SMS port: sending a login code to a phone. Production sends through
//! Aliyun SMS; embedded mode prints the code to the log.

use async_trait::async_trait;

use crate::Result;
use crate::phone::PhoneNumber;

/// Sends one-time login codes by SMS.
///
/// Errors use the domain variants so callers can answer clearly: a number
/// the provider refuses is a `Validation` error on `phone`, provider flow
/// control is `RateLimited`, anything else is `Upstream`.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends `code` to `phone`.
    async fn send_code(&self, phone: &PhoneNumber, code: &str) -> Result<()>;
    /// A short name for logs and readiness (`aliyun`, `console`).
    fn name(&self) -> &'static str;
}
