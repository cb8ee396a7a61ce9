//! The HTTP surface: one module per resource, each exporting `router()`,
//! merged here with the cross-cutting layers (request ids, tracing, metrics,
//! body limit, panic catching) and the JSON fallbacks for unknown routes and
//! methods.

pub mod achievements;
pub mod admin;
pub mod admin_auth;
pub mod ai;
pub mod card_qr;
pub mod cards;
pub mod custom_llm;
pub mod device_credentials;
pub mod devices;
pub mod docs;
pub mod health;
pub mod image;
pub mod media;
pub mod rtc;
pub mod speech;
pub mod subscriptions;
mod upload;
pub mod users;
pub mod voice_chat;
pub mod xiaozhi;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::{RandomRequestId, track_metrics};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every documented route, with its OpenAPI description.
pub fn api_router() -> (Router<AppState>, OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(docs::base_openapi())
        .merge(health::router())
        .merge(devices::router())
        .merge(users::router())
        .merge(admin_auth::router())
        .merge(admin::router())
        .merge(device_credentials::router())
        .merge(rtc::router())
        .merge(voice_chat::router())
        .merge(speech::router())
        .merge(ai::router())
        .merge(image::router())
        .merge(custom_llm::router())
        .merge(subscriptions::router())
        .merge(cards::router())
        .merge(card_qr::router())
        .merge(achievements::router())
        .merge(xiaozhi::router())
        .split_for_parts();
    docs::add_shared_responses(&mut api);
    (router, api)
}

/// The complete OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> OpenApi {
    api_router().1
}

/// The application: routes, docs and layers, bound to `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.body_limit;
    let (api, openapi) = api_router();
    api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        admin::audit::record_outcomes,
    ))
    .route_layer(axum::middleware::from_fn(track_metrics))
    .merge(docs::router(openapi))
    .merge(media::router())
    .merge(crate::ws::router())
    .merge(crate::xiaozhi::router())
    .merge(crate::console::router())
    .fallback(|| async { ApiError::route_not_found() })
    .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
    .layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(X_REQUEST_ID, RandomRequestId))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let id = req
                            .extensions()
                            .get::<RequestId>()
                            .and_then(|id| id.header_value().to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            // Never a credential (docs/security.md).
                            path = %crate::telemetry::redact_path(req.uri().path()),
                            request_id = %id,
                            // Recorded once known: the matched route
                            // (telemetry::track_metrics) and the
                            // authenticated account (auth.rs).
                            route = tracing::field::Empty,
                            user_id = tracing::field::Empty,
                            admin_id = tracing::field::Empty,
                        )
                    })
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
            .layer(CatchPanicLayer::custom(panic_response)),
    )
    .layer(DefaultBodyLimit::max(body_limit))
    .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic hook (telemetry::install_panic_hook) has logged it, rate
    // limited; a line per panic here would undo that.
    let mut res = ApiError::internal().into_response();
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}
