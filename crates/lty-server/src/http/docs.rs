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

    // Every `mac_address` of a body is parsed by `MacAddress::parse`; the
    // fields of [`BODY_TEXT`] and [`BODY_PATTERNS`], a voice-chat command
    // and a plan's personas are checked by their handlers as stated here.
    for (name, schema) in api.components.iter_mut().flat_map(|c| c.schemas.iter_mut()) {
        let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object)) = schema else {
            continue;
        };
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(mac))) =
            object.properties.get_mut("mac_address")
        {
            mac.pattern.get_or_insert_with(|| MAC_PATTERN.to_owned());
        }
        let patterns = BODY_TEXT
            .iter()
            .filter(|(s, _, _)| s == name)
            .map(|(_, field, rule)| (*field, rule.pattern()))
            .chain(
                BODY_PATTERNS
                    .iter()
                    .filter(|(s, _, _)| s == name)
                    .map(|(_, field, pattern)| (*field, (*pattern).to_owned())),
            );
        if name == "VoiceChatUpdateIn"
            && let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(command))) =
                object.properties.get_mut("command")
        {
            command.pattern = Some(voice_command_pattern());
        }
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Array(list))) =
            object.properties.get_mut("personas")
            && matches!(name.as_str(), "PlanIn" | "PlanPatchIn")
        {
            // `check_personas`: at most 50 slugs of 1 to 32 characters.
            list.max_items = Some(50);
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut list.items
                && let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(slug)) =
                    item.as_mut()
            {
                slug.min_length = Some(1);
                slug.max_length = Some(32);
            }
        }
        for (field, pattern) in patterns {
            if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(text))) =
                object.properties.get_mut(field)
            {
                text.pattern = Some(pattern);
            }
        }
    }
    for (path, item) in api.paths.paths.iter_mut() {
        for parameter in item.parameters.iter_mut().flatten() {
            constrain(path, "", parameter);
        }
        for (method, op) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
            ("head", &mut item.head),
            ("options", &mut item.options),
            ("trace", &mut item.trace),
        ] {
            let Some(op) = op else { continue };
            for parameter in op.parameters.iter_mut().flatten() {
                constrain(path, method, parameter);
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

/// A phone number as `PhoneNumber::parse` takes it, in its plain
/// spellings: a mainland mobile number (optionally with `86`, `+86` or
/// `0086`), or another country's E.164 number after `+` or `00`. The parser
/// also takes spaces, `-`, `.` and brackets between digits.
pub const PHONE_PATTERN: &str =
    r"^(?:(?:\+|00)?86)?1[3-9][0-9]{9}$|^(?:\+|00)(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13})$";

/// White space `str::trim` removes (Unicode `White_Space`), any amount,
/// as a pattern literal.
macro_rules! trimmed_space {
    () => {
        r"[\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*"
    };
}

/// A search fragment of a MAC: at most 17 of hex digits, `:` and `-`.
pub const MAC_FRAGMENT_PATTERN: &str = concat!(
    "^",
    trimmed_space!(),
    "[0-9A-Fa-f:-]{0,17}",
    trimmed_space!(),
    "$"
);

/// The characters `str::trim` removes (Unicode `White_Space`), as the
/// inside of a regex class.
const TRIMMED: &str = r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Which control characters (`char::is_control`) a text field refuses.
#[derive(Debug, Clone, Copy)]
pub enum Controls {
    /// Any: the field is not checked for them.
    Allowed,
    /// All of them: one printable line.
    Refused,
    /// All but tab, line feed and carriage return.
    ExceptLineBreaks,
    /// All but tab and line feed.
    ExceptTabAndLineFeed,
}

impl Controls {
    fn class(self) -> &'static str {
        match self {
            Self::Allowed => "",
            Self::Refused => r"\x00-\x1F\x7F-\x9F",
            Self::ExceptLineBreaks => r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F",
            Self::ExceptTabAndLineFeed => r"\x00-\x08\x0B-\x1F\x7F-\x9F",
        }
    }
}

/// A text field checked as lty checks its text: trimmed of white space,
/// then `min` (0 or 1) to `max` characters, with the [`Controls`] rule.
/// `min` 0: blank means "not given".
#[derive(Debug, Clone, Copy)]
pub struct Text {
    pub min: usize,
    pub max: usize,
    pub controls: Controls,
}

impl Text {
    const fn new(min: usize, max: usize, controls: Controls) -> Self {
        Self { min, max, controls }
    }

    /// The rule as a pattern: optional white space, then the trimmed text
    /// (starting and ending with a character that is neither white space
    /// nor a refused control), then optional white space.
    pub fn pattern(&self) -> String {
        let refused = self.controls.class();
        let inner = if refused.is_empty() {
            r"[\s\S]".to_owned()
        } else {
            format!("[^{refused}]")
        };
        let edge = format!("[^{TRIMMED}{refused}]");
        let body = if self.max <= 1 {
            edge
        } else {
            format!("{edge}(?:{inner}{{0,{}}}{edge})?", self.max - 2)
        };
        let optional = if self.min == 0 { "?" } else { "" };
        format!("^[{TRIMMED}]*(?:{body}){optional}[{TRIMMED}]*$")
    }
}

use Controls::{Allowed, ExceptLineBreaks, ExceptTabAndLineFeed, Refused};

/// Text fields of request bodies: (schema, property, rule), each as its
/// handler checks it.
pub const BODY_TEXT: &[(&str, &str, Text)] = &[
    ("ChatIn", "message", Text::new(1, 2_000, Allowed)),
    ("MultiChatIn", "message", Text::new(1, 2_000, Allowed)),
    ("TtsIn", "text", Text::new(1, 500, ExceptTabAndLineFeed)),
    ("ProfilePatchIn", "nickname", Text::new(1, 64, Refused)),
    ("BindIn", "name", Text::new(0, 64, Refused)),
    ("ActivateIn", "name", Text::new(0, 64, Refused)),
    ("DevicePatch", "name", Text::new(0, 64, Refused)),
    ("ReasonIn", "reason", Text::new(0, 500, Allowed)),
    ("PushTestIn", "message", Text::new(0, 200, Refused)),
    ("PersonaIn", "name", Text::new(1, 64, Refused)),
    (
        "PersonaIn",
        "system_prompt",
        Text::new(1, 4_000, ExceptLineBreaks),
    ),
    ("PersonaIn", "greeting", Text::new(0, 500, ExceptLineBreaks)),
    ("PersonaIn", "voice_id", Text::new(0, 64, Refused)),
    ("PersonaPatchIn", "name", Text::new(1, 64, Refused)),
    (
        "PersonaPatchIn",
        "system_prompt",
        Text::new(1, 4_000, ExceptLineBreaks),
    ),
    (
        "PersonaPatchIn",
        "greeting",
        Text::new(0, 500, ExceptLineBreaks),
    ),
    ("PersonaPatchIn", "voice_id", Text::new(0, 64, Refused)),
    ("PlanIn", "name", Text::new(1, 64, Refused)),
    ("PlanPatchIn", "name", Text::new(1, 64, Refused)),
    ("AchievementIn", "name", Text::new(1, 64, Refused)),
    (
        "AchievementIn",
        "description",
        Text::new(0, 500, ExceptLineBreaks),
    ),
    ("AchievementIn", "icon", Text::new(0, 1_024, Refused)),
    ("AchievementPatchIn", "name", Text::new(1, 64, Refused)),
    (
        "AchievementPatchIn",
        "description",
        Text::new(0, 500, ExceptLineBreaks),
    ),
    ("AchievementPatchIn", "icon", Text::new(0, 1_024, Refused)),
    ("VoiceChatStartIn", "persona", Text::new(0, 2_000, Allowed)),
    (
        "VoiceChatStartIn",
        "welcome_message",
        Text::new(0, 200, Allowed),
    ),
    ("VoiceChatStartIn", "voice", Text::new(0, 64, Allowed)),
    ("VoiceChatUpdateIn", "text", Text::new(0, 2_000, Allowed)),
];

/// A voice-chat command as `update` takes it: lty's names, `persona` (or
/// `system_prompt`), or a Volcengine command name in any case.
fn voice_command_pattern() -> String {
    use lty_vendors::volcengine::voice_chat::Command;
    let mut names: Vec<String> = ["persona", "system_prompt"]
        .into_iter()
        .chain(Command::ALL.iter().map(|c| c.lty_name()))
        .map(str::to_owned)
        .collect();
    names.extend(Command::ALL.iter().map(|c| {
        c.vendor_name()
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphabetic() {
                    format!("[{}{}]", ch.to_ascii_uppercase(), ch.to_ascii_lowercase())
                } else {
                    ch.to_string()
                }
            })
            .collect()
    }));
    format!("^(?:{})$", names.join("|"))
}

/// Other checked fields of request bodies: (schema, property, pattern).
const BODY_PATTERNS: &[(&str, &str, &str)] = &[
    ("SmsSendIn", "phone", PHONE_PATTERN),
    ("SmsLoginIn", "phone", PHONE_PATTERN),
    ("SmsLoginIn", "code", SMS_CODE_PATTERN),
    ("AchievementIn", "code", EVENT_CODE_PATTERN),
    ("AchievementIn", "event_kind", EVENT_CODE_PATTERN),
    ("PlanIn", "code", SLUG_PATTERN),
    ("PersonaIn", "slug", SLUG_PATTERN),
    ("PlanIn", "currency", CURRENCY_PATTERN),
    ("PlanPatchIn", "currency", CURRENCY_PATTERN),
    ("WechatCodeIn", "code", WECHAT_CODE_PATTERN),
    ("ProfilePatchIn", "avatar_url", AVATAR_URL_PATTERN),
    ("BatchIn", "expires_at", DATE_TIME_PATTERN),
    ("AdminLoginIn", "username", NOT_BLANK_PATTERN),
];

/// Text with something besides white space in it (unanchored: found
/// anywhere).
const NOT_BLANK_PATTERN: &str =
    r"[^\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// An RFC 3339 date and time in its plain form (`2026-05-01T08:00:00Z`,
/// `...T08:00:00.5+08:00`). The days of a month are stated up to 28:
/// later days parse too, but a pattern cannot tell the months apart.
const DATE_TIME_PATTERN: &str = concat!(
    r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])",
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?",
    r"(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])$"
);

/// A currency code: three upper-case letters.
const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";

/// A WeChat authorization code, trimmed: 1 to 256 printable ASCII
/// characters.
const WECHAT_CODE_PATTERN: &str =
    concat!("^", trimmed_space!(), "[!-~]{1,256}", trimmed_space!(), "$");

/// An avatar URL in the plain form of what the profile takes (an http(s)
/// URL with a host, at most 1024 characters): a lower-case host name, an
/// optional port and path.
const AVATAR_URL_PATTERN: &str = r"^https?://[a-z][a-z0-9]{0,30}(?:\.[a-z][a-z0-9]{0,30}){0,4}(?::[0-9]{1,4})?(?:/[!-~]{0,800})?$";

/// A device serial number, trimmed: 1 to 32 printable ASCII characters.
const SERIAL_PATTERN: &str = concat!("^", trimmed_space!(), "[!-~]{1,32}", trimmed_space!(), "$");

/// An SMS login code: six digits, white space around them ignored.
const SMS_CODE_PATTERN: &str = concat!("^", trimmed_space!(), "[0-9]{6}", trimmed_space!(), "$");

/// A phone filter: blank (no filter) or a number.
const PHONE_FILTER_PATTERN: &str = concat!(
    "^",
    trimmed_space!(),
    "$|",
    r"^(?:(?:\+|00)?86)?1[3-9][0-9]{9}$|^(?:\+|00)(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13})$"
);

/// A code of the catalog (achievement, event kind): 1 to 32 of `a-z`,
/// `0-9`, `_`.
const EVENT_CODE_PATTERN: &str = "^[a-z0-9_]{1,32}$";

/// A plan code or persona slug, trimmed: 1 to 32 of `a-z`, `0-9`, `_`, `-`.
const SLUG_PATTERN: &str = concat!(
    "^",
    trimmed_space!(),
    "[a-z0-9_-]{1,32}",
    trimmed_space!(),
    "$"
);

/// A firmware board name, trimmed: 1 to 64 of `a-z`, `0-9`, `.`, `-`, `_`.
const BOARD_PATTERN: &str = concat!(
    "^",
    trimmed_space!(),
    "[a-z0-9._-]{1,64}",
    trimmed_space!(),
    "$"
);

/// A firmware version, trimmed: numbers of 1 to 9 digits joined by dots.
const VERSION_PATTERN: &str = concat!(
    "^",
    trimmed_space!(),
    r"[0-9]{1,9}(?:\.[0-9]{1,9})*",
    trimmed_space!(),
    "$"
);

/// Other checked query parameters: (method, path, name, pattern).
const QUERY_PATTERNS: &[(&str, &str, &str, &str)] = &[
    ("post", "/api/v1/admin/firmware/", "board", BOARD_PATTERN),
    (
        "post",
        "/api/v1/admin/firmware/",
        "version",
        VERSION_PATTERN,
    ),
    ("get", "/api/v1/admin/audit/", "since", DATE_TIME_PATTERN),
    ("get", "/api/v1/admin/audit/", "until", DATE_TIME_PATTERN),
];

/// Text query parameters of admin searches: (method, path, name, rule).
const QUERY_TEXT: &[(&str, &str, &str, Text)] = &[
    (
        "get",
        "/api/v1/admin/users/",
        "q",
        Text::new(0, 64, Refused),
    ),
    (
        "get",
        "/api/v1/admin/users/",
        "username",
        Text::new(0, 64, Refused),
    ),
    (
        "get",
        "/api/v1/admin/audit/",
        "action",
        Text::new(0, 64, Refused),
    ),
    (
        "get",
        "/api/v1/admin/audit/",
        "target_type",
        Text::new(0, 32, Refused),
    ),
    (
        "get",
        "/api/v1/admin/audit/",
        "target_id",
        Text::new(0, 128, Refused),
    ),
];

/// States on a parameter of the operation `method path` the limits lty's
/// shared parsers enforce for its name: `page` (1 to 1 000 000),
/// `page_size` (1 to 100), a MAC (`mac` in a path, `mac_address`, the
/// `Device-Id` header) or a MAC fragment (`mac` in a query), a card `code`
/// and a `task_id` in a path, a `phone` filter, and the parameters of
/// [`QUERY_TEXT`] and [`QUERY_PATTERNS`].
fn constrain(path: &str, method: &str, parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{RefOr, Schema};

    let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else {
        return;
    };
    let in_path = matches!(parameter.parameter_in, ParameterIn::Path);
    let in_query = matches!(parameter.parameter_in, ParameterIn::Query);
    let in_header = matches!(parameter.parameter_in, ParameterIn::Header);
    let name = parameter.name.as_str();
    let here = |m: &str, p: &str, n: &str| in_query && m == method && p == path && n == name;
    if let Some((.., rule)) = QUERY_TEXT.iter().find(|(m, p, n, _)| here(m, p, n)) {
        schema.pattern = Some(rule.pattern());
        return;
    }
    if let Some((.., pattern)) = QUERY_PATTERNS.iter().find(|(m, p, n, _)| here(m, p, n)) {
        schema.pattern = Some((*pattern).to_owned());
        return;
    }
    match name {
        "page" => {
            schema.minimum = Some(1.into());
            schema.maximum = Some(1_000_000.into());
        }
        "page_size" => {
            schema.minimum = Some(1.into());
            schema.maximum = Some(100.into());
        }
        "mac" if in_path => schema.pattern = Some(MAC_PATTERN.to_owned()),
        "mac" if in_query => schema.pattern = Some(MAC_FRAGMENT_PATTERN.to_owned()),
        "mac_address" => schema.pattern = Some(MAC_PATTERN.to_owned()),
        "Device-Id" if in_header => schema.pattern = Some(MAC_PATTERN.to_owned()),
        "code" if in_path => schema.pattern = Some(CARD_CODE_PATTERN.to_owned()),
        "task_id" if in_path => schema.pattern = Some(TASK_ID_PATTERN.to_owned()),
        "serial" if in_path => schema.pattern = Some(SERIAL_PATTERN.to_owned()),
        "phone" if in_query => schema.pattern = Some(PHONE_FILTER_PATTERN.to_owned()),
        _ => {}
    }
}
