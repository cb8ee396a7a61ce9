//! Extractors whose rejections are [`ApiError`]s, so malformed input gets
//! the same JSON error shape as everything else; the client's address
//! ([`ClientIp`]) as the rate limits see it; and the `X-Device-*`
//! signature headers ([`DeviceSignature`]) read once for the device routes.

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
/// A body must be a JSON object: serde would read an array into a struct
/// field by field (`[null, null]` as a patch clearing two fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json",
            ));
        }
        let bytes = body_bytes(req, state).await?;
        // An empty body is left to the parser (`malformed_json`).
        if first_byte(&bytes).is_some_and(|b| b != b'{') {
            return Err(lty_core::Error::validation("body", "must be a JSON object").into());
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => integral_floats_as_integers(&bytes)
                .map(Self)
                .ok_or_else(|| rejection.into()),
        }
    }
}

/// `bytes` read into `T` with every number written with a zero fraction
/// (`3.0`, `1e3`) taken as the integer it is, as JSON Schema counts it:
/// the second try after `T` refused the body as written. `None` when the
/// body has no such number or is still refused.
pub(crate) fn integral_floats_as_integers<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Option<T> {
    fn fix(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) else {
                    return false;
                };
                // Within ±2^63 the conversion is exact (`f` is an integer).
                let int = if (-9.2e18..9.2e18).contains(&f) {
                    serde_json::Number::from(f as i64)
                } else if (0.0..1.8e19).contains(&f) {
                    serde_json::Number::from(f as u64)
                } else {
                    return false;
                };
                *n = int;
                true
            }
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, v| fix(v) | c),
            serde_json::Value::Object(map) => map.values_mut().fold(false, |c, v| fix(v) | c),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !fix(&mut value) {
        return None;
    }
    T::deserialize(value).ok()
}

/// Whether the request says its body is JSON: `application/json` or
/// `application/*+json`, parameters aside.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// The request body within the body limit (`413 payload_too_large` past it).
pub(crate) async fn body_bytes<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<bytes::Bytes, ApiError> {
    use axum::http::StatusCode;
    bytes::Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts",
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    })
}

/// The first byte of `body` that is not white space.
pub(crate) fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

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

/// The `X-Device-*` headers of a device request with the method and target
/// they sign (docs/device-auth.md), for [`crate::app::device_auth`]. Never
/// refuses a request: whether a signature is needed, and good, is the
/// service's call. Documented as the four optional header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSignature {
    /// The request method, as signed.
    pub method: String,
    /// The path and query exactly as sent on the request line.
    pub target: String,
    /// What was sent of the four headers.
    pub headers: DeviceHeaders,
}

/// What a request carried of the four `X-Device-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceHeaders {
    /// All four, trimmed.
    Sent {
        mac: String,
        timestamp: String,
        nonce: String,
        signature: String,
    },
    /// At least one is absent (legacy devices send none).
    Missing,
    /// This header, the first in the order above that is sent with bytes
    /// other than visible ASCII.
    NotAscii(&'static str),
}

impl DeviceHeaders {
    fn read(headers: &axum::http::HeaderMap) -> Self {
        use crate::app::device_auth::{
            HEADER_MAC, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP,
        };
        let text = |name: &'static str| match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| name),
        };
        let sent = || -> Result<_, &'static str> {
            Ok((
                text(HEADER_MAC)?,
                text(HEADER_TIMESTAMP)?,
                text(HEADER_NONCE)?,
                text(HEADER_SIGNATURE)?,
            ))
        };
        match sent() {
            Ok((Some(mac), Some(timestamp), Some(nonce), Some(signature))) => Self::Sent {
                mac,
                timestamp,
                nonce,
                signature,
            },
            Ok(_) => Self::Missing,
            Err(name) => Self::NotAscii(name),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeviceSignature {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        // Behind a nested router `parts.uri` is cut short; the device
        // signed the target it sent.
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(&parts.uri, |o| &o.0);
        Ok(Self {
            method: parts.method.as_str().to_owned(),
            target: uri
                .path_and_query()
                .map_or(uri.path(), |pq| pq.as_str())
                .to_owned(),
            headers: DeviceHeaders::read(&parts.headers),
        })
    }
}

impl utoipa::IntoParams for DeviceSignature {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        [
            ("X-Device-Mac", "signed requests: the device's MAC"),
            ("X-Device-Timestamp", "signed requests: Unix seconds"),
            ("X-Device-Nonce", "signed requests: single-use nonce"),
            ("X-Device-Signature", "signed requests: hex HMAC-SHA256"),
        ]
        .into_iter()
        .map(|(name, description)| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .description(Some(description))
                .required(utoipa::openapi::Required::False)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                        .build(),
                ))
                .build()
        })
        .collect()
    }
}

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
