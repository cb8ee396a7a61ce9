//! Console sessions. Logging in goes through [`crate::app::admin::login`]
//! (the API's lockout included) and keeps the admin token it issues in the
//! `lty_console` cookie (`HttpOnly`, `SameSite=Strict`, `Path=/console`,
//! `Secure` when the request came over TLS), so a console session is an
//! admin session: same expiry, revoked at logout. Every POST carries a
//! CSRF token derived from the session token ([`csrf_token`]), checked by
//! [`csrf_guard`] before any handler runs; the login form, which has no
//! session yet, uses a double-submit cookie instead.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use lty_core::admin::Admin;
use lty_core::token::TokenKind;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::i18n::Lang;
use super::page::{self, Shell};
use crate::app::ratelimit::ClientIp;
use crate::error::ApiError;
use crate::http::admin::{AdminCtx, AuditActor, policy};
use crate::state::AppState;

/// The session cookie: the admin token.
pub const SESSION_COOKIE: &str = "lty_console";
/// The login form's double-submit cookie.
const LOGIN_CSRF_COOKIE: &str = "lty_console_login";
/// The language switch's cookie (`zh` or `en`).
pub const LANG_COOKIE: &str = "lty_lang";
/// The form field (or `X-CSRF-Token` header) carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// Largest console form body read by the CSRF check.
const FORM_LIMIT: usize = 64 * 1024;
/// The console's one upload form (a firmware image, `multipart/form-data`).
pub const UPLOAD_PATH: &str = "/console/firmware/upload";
/// Largest body of the upload form: the image and the form around it.
const UPLOAD_LIMIT: usize = crate::app::xiaozhi::firmware::MAX_IMAGE_BYTES + FORM_LIMIT;

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: a keyed hash of its (secret, `HttpOnly`)
/// token, so it is bound to the session and unknown to other sites.
pub fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"lty-console-csrf\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the request came over TLS: `public_base_url` is `https`, or a
/// trusted proxy says so in `X-Forwarded-Proto`.
fn over_tls(parts: &Parts, state: &AppState) -> bool {
    if state
        .config
        .public_base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        return true;
    }
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let trusted = peer.is_some_and(|ip| state.config.limits.trusted_proxies.contains(ip));
    trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The signed-in operator of a console request. Without a valid session
/// the request is redirected to the login page.
#[derive(Debug, Clone)]
pub struct Op {
    pub admin: Admin,
    pub actor: AuditActor,
    pub csrf: String,
    pub lang: Lang,
    token: String,
}

impl Op {
    /// The page shell of this operator.
    pub fn shell(&self) -> Shell {
        Shell {
            lang: self.lang,
            admin: Some((self.admin.username.clone(), self.admin.role)),
            csrf: self.csrf.clone(),
        }
    }

    /// The context the admin handlers take.
    pub fn ctx(&self) -> AdminCtx {
        AdminCtx {
            admin: self.admin.clone(),
            actor: self.actor.clone(),
        }
    }

    /// The admin token behind the session (for handlers taking
    /// [`crate::auth::AuthAdmin`]).
    pub fn auth(&self) -> crate::auth::AuthAdmin {
        crate::auth::AuthAdmin {
            admin: self.admin.clone(),
            token: self.token.clone(),
        }
    }

    /// Applies the policy of the API route `method path` (role, automatic
    /// audit entry with `target`), as the API does for the same action.
    pub async fn allow(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        target: Option<String>,
    ) -> Result<(), page::Fail> {
        policy::enforce_route(state, &self.admin, &self.actor, &method, path, target)
            .await
            .map_err(|e| self.fail(e))
    }

    /// An error page for `err`.
    pub fn fail(&self, err: impl Into<ApiError>) -> page::Fail {
        page::Fail::new(self.shell(), err.into())
    }
}

/// The language of a request: the switch's cookie, else `Accept-Language`
/// (English only when preferred over Chinese), else Chinese.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    match cookie(headers, LANG_COOKIE) {
        Some("en") => return Lang::En,
        Some("zh") => return Lang::Zh,
        _ => {}
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first listed language that is either; browsers list by preference.
    for tag in accept.split(',') {
        let tag = tag
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if tag.starts_with("zh") {
            return Lang::Zh;
        }
        if tag.starts_with("en") {
            return Lang::En;
        }
    }
    Lang::Zh
}

fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| parts.method == Method::GET && p.starts_with("/console/"))
        .unwrap_or("/console/");
    Redirect::to(&format!("/console/login?next={}", url_encode(next))).into_response()
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl FromRequestParts<AppState> for Op {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = lang_of(&parts.headers);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(to_login(parts));
        };
        let id = match state.tokens.resolve(TokenKind::Admin, &token).await {
            Ok(Some(id)) => id,
            Ok(None) => return Err(to_login(parts)),
            Err(e) => return Err(page::Fail::new(Shell::anonymous(lang), e.into()).into_response()),
        };
        let admin = match state.db.admin(id).await {
            Ok(Some(a)) if a.is_active => a,
            Ok(_) => return Err(to_login(parts)),
            Err(e) => return Err(page::Fail::new(Shell::anonymous(lang), e.into()).into_response()),
        };
        tracing::Span::current().record("admin_id", admin.id);
        let actor = AuditActor::from_parts(&admin, parts, state);
        Ok(Self {
            csrf: csrf_token(&token),
            admin,
            actor,
            lang,
            token,
        })
    }
}

/// The console's own content only: no inline script, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Refuses a POST whose CSRF token (form field `_csrf` or header
/// `X-CSRF-Token`) does not match its session (or, for the login form, its
/// double-submit cookie) with `403`; adds the security headers of every
/// console response. In the upload form (`multipart/form-data`) the token
/// is the form's first part, `_csrf`, so it is checked before the file is
/// looked at.
pub async fn csrf_guard(req: Request, next: Next) -> Response {
    let mut res = check_csrf(req, next).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    res
}

async fn check_csrf(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let lang = lang_of(req.headers());
    let expected = if req.uri().path() == "/console/login" {
        cookie(req.headers(), LOGIN_CSRF_COOKIE).map(str::to_owned)
    } else {
        cookie(req.headers(), SESSION_COOKIE).map(csrf_token)
    };
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let limit = if multipart && req.uri().path() == UPLOAD_PATH {
        UPLOAD_LIMIT
    } else {
        FORM_LIMIT
    };
    if expected.is_none() {
        // No session (or login cookie): nothing could match, and the body
        // (up to an image) is not worth reading.
        return csrf_refused(lang);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        let err = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the form is larger than {limit} bytes"),
        );
        return page::Fail::new(Shell::anonymous(lang), err).into_response();
    };
    let sent = match header_token {
        Some(t) => Some(t),
        None if multipart => first_part_token(&parts.headers, &bytes).await,
        None => url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.into_owned()),
    };
    match (expected, sent) {
        (Some(e), Some(s)) if same(&e, &s) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => csrf_refused(lang),
    }
}

/// The `_csrf` value of a `multipart/form-data` body when it is the
/// form's first part (browsers send fields in document order).
async fn first_part_token(headers: &HeaderMap, body: &bytes::Bytes) -> Option<String> {
    use axum::extract::FromRequest;
    // The token part is small: its start is enough, and keeps the parser
    // from taking the whole image in one piece.
    let start = body.slice(..body.len().min(FORM_LIMIT));
    let mut req = Request::new(Body::from(start));
    *req.headers_mut() = headers.clone();
    let mut form = axum::extract::Multipart::from_request(req, &())
        .await
        .ok()?;
    let field = form.next_field().await.ok()??;
    if field.name() != Some(CSRF_FIELD) {
        return None;
    }
    let text = field.text().await.ok()?;
    (text.len() <= 128).then_some(text)
}

fn csrf_refused(lang: Lang) -> Response {
    let err = ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "the form's CSRF token is missing or does not match the session",
    );
    page::Fail::new(Shell::anonymous(lang), err).into_response()
}

/// `/console` → `/console/`.
pub async fn to_home() -> Redirect {
    Redirect::permanent("/console/")
}

/// `?next=` of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// A local console path to go to after login, or the dashboard.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/console/".to_owned(),
    }
}

/// The login page, with a fresh double-submit CSRF cookie.
pub async fn login_form(
    State(state): State<AppState>,
    req_parts: Parts,
    Query(q): Query<NextQuery>,
) -> Response {
    login_page(
        &state,
        &req_parts,
        lang_of(&req_parts.headers),
        q.next.as_deref(),
        None,
        "",
    )
}

fn login_page(
    state: &AppState,
    parts: &Parts,
    lang: Lang,
    next: Option<&str>,
    error: Option<String>,
    username: &str,
) -> Response {
    let token = lty_core::token::generate_token();
    let t = |k| lang.t(k);
    let next = safe_next(next);
    let body = html! {
        div.login {
            h1 { (t("app.name")) }
            @if let Some(e) = &error { p.flash.error role="alert" { (e) } }
            form method="post" action="/console/login" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                input type="hidden" name="next" value=(next);
                label for="username" { (t("login.username")) }
                input #username name="username" type="text" autocomplete="username" required value=(username) autofocus;
                label for="password" { (t("login.password")) }
                input #password name="password" type="password" autocomplete="current-password" required;
                button type="submit" { (t("login.submit")) }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let secure = over_tls(parts, state);
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_CSRF_COOKIE, &token, 3600, secure),
        )],
        page::render(&Shell::anonymous(lang), t("login.title"), "", body),
    )
        .into_response()
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    pub next: Option<String>,
}

/// Logs in with [`crate::app::admin::login`] (per-IP rate limit, lockout)
/// and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    parts: Parts,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let lang = lang_of(&parts.headers);
    let username = form.username.trim().to_owned();
    let result =
        crate::http::admin_auth::authenticate(&state, &ip, Some(&username), Some(&form.password))
            .await;
    match result {
        Ok((admin, token)) => {
            tracing::info!(admin_id = admin.id, "admin logged in to the console");
            let secure = over_tls(&parts, &state);
            let max_age = i64::try_from(lty_core::token::TOKEN_TTL.as_secs()).unwrap_or(86_400);
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, safe_next(form.next.as_deref())),
                    (
                        header::SET_COOKIE,
                        set_cookie(SESSION_COOKIE, &token, max_age, secure),
                    ),
                ],
            )
                .into_response()
        }
        Err(e) => {
            let message = match e.code() {
                "invalid_credentials" => lang.t("login.bad").to_owned(),
                "admin_locked" => lang.t("login.locked").to_owned(),
                "rate_limited" => lang.t("login.limited").to_owned(),
                "validation_error" => lang.t("login.missing").to_owned(),
                _ => e.message().to_owned(),
            };
            let mut res = login_page(
                &state,
                &parts,
                lang,
                form.next.as_deref(),
                Some(message),
                &username,
            );
            if e.status() != StatusCode::UNAUTHORIZED {
                *res.status_mut() = e.status();
            }
            res
        }
    }
}

/// Revokes the session's token and clears the cookie.
pub async fn logout(State(state): State<AppState>, parts: Parts) -> Response {
    if let Some(token) = cookie(&parts.headers, SESSION_COOKIE)
        && let Err(e) = state.tokens.revoke(TokenKind::Admin, token).await
    {
        return page::Fail::new(Shell::anonymous(lang_of(&parts.headers)), e.into())
            .into_response();
    }
    let secure = over_tls(&parts, &state);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login".to_owned()),
            (
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", 0, secure),
            ),
        ],
    )
        .into_response()
}

/// `?back=` of the language switch.
#[derive(Debug, Default, Deserialize)]
pub struct BackQuery {
    pub back: Option<String>,
}

/// Remembers the chosen language (`zh` or `en`) and goes back.
pub async fn switch_lang(
    State(state): State<AppState>,
    parts: Parts,
    Path(lang): Path<String>,
    Query(q): Query<BackQuery>,
) -> Response {
    let lang = if lang == "en" { "en" } else { "zh" };
    let secure = over_tls(&parts, &state);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, safe_next(q.back.as_deref())),
            (
                header::SET_COOKIE,
                set_cookie(LANG_COOKIE, lang, 365 * 86_400, secure),
            ),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let a = csrf_token("token-a");
        assert_eq!(a, csrf_token("token-a"));
        assert_ne!(a, csrf_token("token-b"));
        assert!(same(&a, &csrf_token("token-a")));
        assert!(!same(&a, &a[1..]));
    }

    #[test]
    fn only_local_console_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/console/users?q=1")), "/console/users?q=1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console/");
        assert_eq!(safe_next(Some("/console//evil.example")), "/console/");
        assert_eq!(safe_next(None), "/console/");
    }

    #[test]
    fn chinese_is_the_default_and_english_is_chosen_when_preferred() {
        let mut h = HeaderMap::new();
        assert_eq!(lang_of(&h), Lang::Zh);
        h.insert(
            header::ACCEPT_LANGUAGE,
            "en-US,en;q=0.9,zh;q=0.5".parse().unwrap(),
        );
        assert_eq!(lang_of(&h), Lang::En);
        h.insert(header::ACCEPT_LANGUAGE, "zh-CN,en;q=0.5".parse().unwrap());
        assert_eq!(lang_of(&h), Lang::Zh);
        h.insert(header::COOKIE, "lty_lang=en".parse().unwrap());
        assert_eq!(lang_of(&h), Lang::En);
    }
}
