//! API documentation served from the binary: `/openapi.json`, Swagger UI at
//! `/swagger/` and ReDoc at `/redoc/`, with no resource loaded from outside.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lty",
        description = "Backend for AI companion devices, their parents' app and operators. \
            Errors are always `{\"code\", \"message\", \"details\"?}` with a 4xx/5xx status.",
    ),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "user", description = "Accounts: device, SMS and WeChat login, profile, logout"),
        (name = "device-auth", description = "Per-device secrets for signed device requests (docs/device-auth.md)"),
        (name = "admin", description = "Operator accounts: admin login and logout"),
        (name = "device", description = "Device bindings, pushes and online status"),
        (name = "rtc", description = "Volcengine RTC tokens for the family's room"),
        (name = "speech", description = "Text to speech and speech recognition on the configured provider"),
        (name = "voice-chat", description = "A Volcengine voice agent in the family's room, and its callbacks"),
        (name = "ai", description = "Chat with a companion persona (JSON or server-sent events), conversations, personas"),
        (name = "subscription", description = "Plans, the caller's subscription, and admin grants"),
        (name = "card", description = "Content and membership cards: scan, redeem, history; batches for operators (docs/cards.md)"),
        (name = "achievement", description = "Achievements with the caller's progress; definitions for operators"),
        (name = "xiaozhi", description = "xiaozhi-esp32 devices: OTA check, activation, firmware (docs/xiaozhi.md)"),
    ),
    components(schemas(crate::error::ErrorBody)),
)]
struct ApiDoc;

/// The OpenAPI document before routes are added: info, tags, security.
pub fn base_openapi() -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("`Authorization: Bearer {token}` from a login route"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "admin_bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "`Authorization: Bearer {admin_token}` from /api/v1/admin/login/",
                ))
                .build(),
        ),
    );
    api
}

const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lty API reference</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"#;

/// Routes for the documents and the two viewers.
pub fn router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/swagger").url("/openapi.json", openapi))
        .route("/redoc", get(|| async { Redirect::permanent("/redoc/") }))
        .route("/redoc/", get(|| async { Html(REDOC_HTML) }))
        .route(
            "/redoc/redoc.standalone.js",
            get(|| async {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            "application/javascript; charset=utf-8",
                        ),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    REDOC_JS,
                )
                    .into_response()
            }),
        )
}
