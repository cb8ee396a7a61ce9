//! Fixed-window rate limits over the [`Cache`](lty_core::ports::Cache)
//! port (`INCR` with an expiry, so with Redis every instance counts in the
//! same window), and the client IP they are keyed by.
//!
//! Keys are `ratelimit:{rule}:{subject}`. A request over the limit gets
//! `429 {"code":"rate_limited"}` with `Retry-After` set to the seconds left
//! in the window.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{LimitsConfig, RateLimit};
use crate::error::ApiError;
use crate::state::AppState;

/// Counts one request of `subject` under `rule` and refuses it when the
/// window's count passes `limit.max`. A disabled limit costs nothing.
pub async fn check(
    state: &AppState,
    rule: &'static str,
    subject: &str,
    limit: RateLimit,
) -> Result<(), ApiError> {
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
    }
    .into())
}

/// [`check`] keyed by the client IP, skipping loopback clients when
/// `limits.exempt_loopback` is set.
pub async fn check_ip(
    state: &AppState,
    rule: &'static str,
    ip: &ClientIp,
    limit: RateLimit,
) -> Result<(), ApiError> {
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

/// One trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Read from a list or a
/// comma-separated string (`10.0.0.1, 10.1.0.0/16`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(IpNet::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::List(l) => l.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn cidr_blocks_match_v4_v6_and_mapped_addresses() {
        let p: TrustedProxies = "10.0.0.0/8,fd00::/8,127.0.0.1".parse().unwrap();
        for yes in ["10.255.0.1", "fd12::1", "::ffff:10.0.0.5", "127.0.0.1"] {
            assert!(
                p.contains(yes.parse::<IpAddr>().unwrap().to_canonical()),
                "{yes}"
            );
        }
        for no in ["11.0.0.1", "fe80::1", "127.0.0.2"] {
            assert!(!p.contains(no.parse().unwrap()), "{no}");
        }
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("localhost".parse::<TrustedProxies>().is_err());
        let all: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
