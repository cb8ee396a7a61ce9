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

/// Adds to every operation the error answers that lty's shared layers give
/// whatever the handler: `400` where it takes parameters or a body (a value
/// that does not parse or breaks a stated limit), `415` where it takes a
/// body (another content type), `401` and `403` where it needs a token (a
/// missing or expired one; a disabled account or a role without the
/// right). An operation that documents one of these itself keeps its own
/// description. Parameters and `mac_address` body fields get the limits of
/// the shared parsers ([`MAC_PATTERN`] and the rest).
pub fn add_shared_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;

    fn error(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
            .into()
    }

    fn complete(op: &mut Operation) {
        let has_body = op.request_body.is_some();
        let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let secured = op
            .security
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .is_some_and(|s| {
                s.as_array().is_some_and(|reqs| {
                    reqs.iter()
                        .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                })
            });
        let responses = &mut op.responses.responses;
        let mut add = |status: &str, description: &str| {
            responses
                .entry(status.to_owned())
                .or_insert_with(|| error(description));
        };
        if has_body || has_params {
            add(
                "400",
                "`malformed_json`, `invalid_body`, `invalid_query`, `invalid_path` or \
                 `validation_error`: a value that does not parse or breaks a stated limit",
            );
        }
        if has_body {
            add(
                "415",
                "`unsupported_media_type`: the body is not of the documented content type",
            );
        }
        if secured {
            add("401", "no token, or an unknown, expired or revoked one");
            add(
                "403",
                "the account is disabled, or its role lacks the right",
            );
        }
    }

    // Every `mac_address` of a body is parsed by `MacAddress::parse`.
    for schema in api
        .components
        .iter_mut()
        .flat_map(|c| c.schemas.values_mut())
    {
        let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object)) = schema else {
            continue;
        };
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(mac))) =
            object.properties.get_mut("mac_address")
        {
            mac.pattern.get_or_insert_with(|| MAC_PATTERN.to_owned());
        }
    }
    for item in api.paths.paths.values_mut() {
        for parameter in item.parameters.iter_mut().flatten() {
            constrain(parameter);
        }
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            for parameter in op.parameters.iter_mut().flatten() {
                constrain(parameter);
            }
            complete(op);
        }
    }
}

/// A MAC address as `MacAddress::parse` takes it: 12 hex digits, bare or
/// in pairs joined by one kind of separator, `:` or `-`.
pub const MAC_PATTERN: &str = "^(?:[0-9A-Fa-f]{12}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5})$";

/// A card code as typed: 16 symbols of the card alphabet in any case, with
/// dashes or spaces anywhere (the last symbol is a check symbol, which a
/// pattern cannot state: a typo is a `400`).
pub const CARD_CODE_PATTERN: &str = "^[- ]*(?:[2-9A-HJKMNP-Za-hjkmnp-z][- ]*){16}$";

/// A voice-chat task id: 32 lower-case hex digits.
pub const TASK_ID_PATTERN: &str = "^[0-9a-f]{32}$";

/// States on a parameter the limits lty's shared parsers enforce for its
/// name: `page` (1 to 1 000 000), `page_size` (1 to 100), a MAC (`mac` in
/// a path, `mac_address`), a card `code` and a `task_id` in a path.
fn constrain(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{RefOr, Schema};

    let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else {
        return;
    };
    let in_path = matches!(parameter.parameter_in, ParameterIn::Path);
    match parameter.name.as_str() {
        "page" => {
            schema.minimum = Some(1.into());
            schema.maximum = Some(1_000_000.into());
        }
        "page_size" => {
            schema.minimum = Some(1.into());
            schema.maximum = Some(100.into());
        }
        "mac" if in_path => schema.pattern = Some(MAC_PATTERN.to_owned()),
        "mac_address" => schema.pattern = Some(MAC_PATTERN.to_owned()),
        "code" if in_path => schema.pattern = Some(CARD_CODE_PATTERN.to_owned()),
        "task_id" if in_path => schema.pattern = Some(TASK_ID_PATTERN.to_owned()),
        _ => {}
    }
}
