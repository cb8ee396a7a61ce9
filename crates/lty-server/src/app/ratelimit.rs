//! Fixed-window rate limits over the [`Cache`](lty_core::ports::Cache)
//! port (`INCR` with an expiry, so with Redis every instance counts in the
//! same window), and the client IP they are keyed by (resolved from a
//! request in [`crate::extract`]).
//!
//! Keys are `ratelimit:{rule}:{subject}`. A request over the limit gets
//! `429 {"code":"rate_limited"}` with `Retry-After` set to the seconds left
//! in the window.

use std::net::IpAddr;
use std::time::Duration;

use lty_core::Result;

use crate::config::RateLimit;
use crate::state::AppState;

/// Counts one request of `subject` under `rule` and refuses it when the
/// window's count passes `limit.max`. A disabled limit costs nothing.
pub async fn check(
    state: &AppState,
    rule: &'static str,
    subject: &str,
    limit: RateLimit,
) -> Result<()> {
    if !limit.enabled() {
        return Ok(());
    }
    let key = format!("ratelimit:{rule}:{subject}");
    let window = Duration::from_secs(limit.window_secs);
    let (count, left) = state.cache.incr(&key, window).await?;
    if u64::try_from(count).unwrap_or(0) <= limit.max {
        return Ok(());
    }
    metrics::counter!("lty_rate_limited_total", "rule" => rule).increment(1);
    let secs = left.min(window).as_secs_f64().ceil().max(1.0) as u64;
    Err(lty_core::Error::RateLimited {
        retry_after_secs: secs,
    })
}

/// [`check`] keyed by the client IP, skipping loopback clients when
/// `limits.exempt_loopback` is set.
pub async fn check_ip(
    state: &AppState,
    rule: &'static str,
    ip: &ClientIp,
    limit: RateLimit,
) -> Result<()> {
    if state.config.limits.exempt_loopback && ip.0.is_loopback() {
        return Ok(());
    }
    check(state, rule, &ip.0.to_string(), limit).await
}

/// The client's IP address: the connection's peer, or, when the peer is a
/// trusted proxy, the nearest untrusted address in `X-Forwarded-For`
/// (see [`ClientIp::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);
