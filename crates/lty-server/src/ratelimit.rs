//! Fixed-window rate limits over the [`Cache`](lty_core::ports::Cache)
//! port (`INCR` with an expiry, so with Redis every instance counts in the
//! same window), and the client IP they are keyed by.
//!
//! Keys are `ratelimit:{rule}:{subject}`. A request over the limit gets
//! `429 {"code":"rate_limited"}` with `Retry-After` set to the seconds left
//! in the window.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::{LimitsConfig, RateLimit};
use crate::state::AppState;

pub use crate::config::{IpNet, TrustedProxies};

/// Counts one request of `subject` under `rule` and refuses it when the
/// window's count passes `limit.max`. A disabled limit costs nothing.
pub async fn check(
    state: &AppState,
    rule: &'static str,
    subject: &str,
    limit: RateLimit,
) -> lty_core::Result<()> {
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
) -> lty_core::Result<()> {
    if state.config.limits.exempt_loopback && ip.0.is_loopback() {
        return Ok(());
    }
    check(state, rule, &ip.0.to_string(), limit).await
}

/// The client's IP address: the connection's peer, or, when the peer is a
/// trusted proxy, the nearest untrusted address in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Resolves the client IP of a request from its peer address and
    /// headers.
    pub fn resolve(peer: Option<SocketAddr>, headers: &HeaderMap, limits: &LimitsConfig) -> Self {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip().to_canonical());
        let proxies = &limits.trusted_proxies;
        if proxies.is_empty() || !proxies.contains(peer) {
            return Self(peer);
        }
        // Walk the chain from the nearest hop outwards; the first address
        // not ours is the client. Anything further left is client-supplied.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !proxies.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Self(client)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(Self::resolve(peer, &parts.headers, &state.config.limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(proxies: &str) -> LimitsConfig {
        LimitsConfig {
            trusted_proxies: proxies.parse().unwrap(),
            ..LimitsConfig::default()
        }
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        let l = limits("");
        let ip = ClientIp::resolve(peer("203.0.113.9"), &xff("198.51.100.1"), &l);
        assert_eq!(ip.0.to_string(), "203.0.113.9");
    }

    #[test]
    fn forwarded_chains_are_walked_from_the_right_past_trusted_hops() {
        let l = limits("10.0.0.0/8, 192.0.2.1");
        let h = xff("6.6.6.6, 198.51.100.7, 10.1.2.3");
        let ip = ClientIp::resolve(peer("192.0.2.1"), &h, &l);
        assert_eq!(ip.0.to_string(), "198.51.100.7");
        // An untrusted peer's header is ignored.
        let ip = ClientIp::resolve(peer("203.0.113.9"), &h, &l);
        assert_eq!(ip.0.to_string(), "203.0.113.9");
        // Garbage stops the walk at the last good hop.
        let ip = ClientIp::resolve(peer("10.0.0.1"), &xff("junk, 10.0.0.2"), &l);
        assert_eq!(ip.0.to_string(), "10.0.0.2");
    }
}
