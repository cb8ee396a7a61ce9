//! Extractors whose rejections are [`ApiError`]s, so malformed input gets
//! the same JSON error shape as everything else, and the client's address
//! ([`ClientIp`]) as the rate limits see it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::FromRequest;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use crate::app::ratelimit::ClientIp;
use crate::config::LimitsConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// JSON body (requires `Content-Type: application/json`) and JSON response.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query string.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A body that is JSON or `application/x-www-form-urlencoded`, for legacy
/// routes whose clients may send either.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrForm<T>(pub T);

impl<S, T> FromRequest<S> for JsonOrForm<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let axum::Form(value) = axum::Form::<T>::from_request(req, state)
                .await
                .map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
            Ok(Self(value))
        } else {
            let Json(value) = Json::<T>::from_request(req, state).await?;
            Ok(Self(value))
        }
    }
}

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
