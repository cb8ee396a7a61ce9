//! The page shell (header, navigation, language switch, logout), error
//! pages, confirmation steps, pagination, sortable column headers and
//! small formatting helpers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lty_core::admin::AdminRole;
use lty_store::sort::{Direction, Sort, SortKey};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::i18n::Lang;
use super::session::CSRF_FIELD;
use crate::error::ApiError;

/// What every page shows around its content.
#[derive(Debug, Clone)]
pub struct Shell {
    pub lang: Lang,
    /// The signed-in admin's name and role.
    pub admin: Option<(String, AdminRole)>,
    pub csrf: String,
}

impl Shell {
    /// The shell of a page seen before logging in.
    pub fn anonymous(lang: Lang) -> Self {
        Self {
            lang,
            admin: None,
            csrf: String::new(),
        }
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(CSRF_FIELD) value=(self.csrf); }
    }
}

const NAV: &[(&str, &str, &str)] = &[
    ("dashboard", "/console/", "nav.dashboard"),
    ("users", "/console/users", "nav.users"),
    ("devices", "/console/devices", "nav.devices"),
    ("cards", "/console/cards", "nav.cards"),
    ("plans", "/console/plans", "nav.catalog"),
    ("voice", "/console/voice-sessions", "nav.voice"),
    ("firmware", "/console/firmware", "nav.firmware"),
    ("audit", "/console/audit", "nav.audit"),
];

/// A whole page: `title`, the navigation with `active` marked, `body`.
pub fn render(shell: &Shell, title: &str, active: &str, body: Markup) -> Markup {
    let t = |k| shell.lang.t(k);
    let other = match shell.lang {
        Lang::Zh => "en",
        Lang::En => "zh",
    };
    html! {
        (DOCTYPE)
        html lang=(shell.lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (t("app.name")) }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console/" { (t("app.name")) }
                    @if shell.admin.is_some() {
                        nav aria-label=(t("nav.menu")) {
                            @for (id, href, key) in NAV {
                                a href=(href) aria-current=[(*id == active).then_some("page")] { (t(key)) }
                            }
                        }
                    }
                    div.who {
                        a href={"/console/lang/" (other)} hreflang=(other) { (t("lang.switch")) }
                        @if let Some((name, role)) = &shell.admin {
                            span.admin { (name) " (" (role.as_str()) ")" }
                            form.inline method="post" action="/console/logout" {
                                (shell.csrf_field())
                                button.link type="submit" { (t("nav.logout")) }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A failed console action or page: the error page with the API's code
/// and message, at the API's status.
#[derive(Debug)]
pub struct Fail(Box<FailInner>);

#[derive(Debug)]
struct FailInner {
    shell: Shell,
    err: ApiError,
}

impl Fail {
    pub fn new(shell: Shell, err: ApiError) -> Self {
        Self(Box::new(FailInner { shell, err }))
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let FailInner { shell, err } = *self.0;
        let t = |k| shell.lang.t(k);
        let status = err.status();
        let summary = match (status, err.code()) {
            (_, "csrf_failed") => t("err.csrf"),
            (StatusCode::FORBIDDEN, _) => t("err.forbidden"),
            (StatusCode::NOT_FOUND, _) => t("err.not_found"),
            (StatusCode::BAD_REQUEST, _) => t("err.invalid"),
            _ => t("err.title"),
        };
        if status.is_server_error() {
            tracing::warn!(code = err.code(), "console action failed");
        }
        let body = html! {
            div.flash.error role="alert" {
                p { strong { (summary) } }
                p { code { (err.code()) } ": " (err.message()) }
            }
            p {
                a href="/console/" { (t("err.home")) }
            }
        };
        (status, render(&shell, t("err.title"), "", body)).into_response()
    }
}

/// Turns errors into a [`Fail`] page.
pub trait OrFail<T> {
    fn or_fail(self, op: &super::session::Op) -> Result<T, Fail>;
}

impl<T, E: Into<ApiError>> OrFail<T> for Result<T, E> {
    fn or_fail(self, op: &super::session::Op) -> Result<T, Fail> {
        self.map_err(|e| op.fail(e))
    }
}

/// What a console handler answers.
pub type PageResult = Result<Response, Fail>;

/// A confirmation step: `question`, the facts in `details`, and a form
/// posting `fields` again to `action` with `confirm=1`.
pub fn confirm(
    shell: &Shell,
    title: &str,
    question: &str,
    details: Markup,
    action: &str,
    fields: &[(&str, String)],
    cancel: &str,
) -> Response {
    let t = |k| shell.lang.t(k);
    let body = html! {
        div.confirm {
            p.question { (question) }
            (details)
            form method="post" action=(action) {
                (shell.csrf_field())
                input type="hidden" name="confirm" value="1";
                @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
                button.primary type="submit" #confirm { (t("common.confirm")) }
                " "
                a.button href=(cancel) { (t("common.cancel")) }
            }
        }
    };
    render(shell, title, "", body).into_response()
}

/// A success banner for `?done=key`.
pub fn flash(shell: &Shell, done: Option<&str>) -> Markup {
    html! {
        @if let Some(key) = done {
            p.flash.ok role="status" { (shell.lang.t(key)) }
        }
    }
}

/// `base` (a path, perhaps with a query) with `pair` appended to its
/// query.
fn with_param(base: &str, pair: &str) -> String {
    let sep = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{sep}{pair}")
}

/// "Previous / page n of m / next" links keeping the other query
/// parameters of `base` (a path with its query, without `page`).
pub fn pager(shell: &Shell, base: &str, page: u64, page_size: u64, total: u64) -> Markup {
    let t = |k| shell.lang.t(k);
    let pages = total.div_ceil(page_size.max(1)).max(1);
    let sep = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() => "",
        Some(_) => "&",
    };
    html! {
        nav.pager aria-label="pagination" {
            @if page > 1 {
                a rel="prev" href={(base) (sep) "page=" (page - 1)} { "← " (t("common.prev")) }
            }
            span { (t("common.total")) " " (total) " · " (page) " / " (pages) }
            @if page < pages {
                a rel="next" href={(base) (sep) "page=" (page + 1)} { (t("common.next")) " →" }
            }
        }
    }
}

/// The order a console listing shows: its query's `sort` and `order`
/// when they name one of the listing's keys and a direction, else
/// `default` (an unknown key or order is ignored, never an error page). A
/// key without an order ascends.
pub fn sort_of<K: SortKey>(sort: Option<&str>, order: Option<&str>, default: Sort<K>) -> Sort<K> {
    let key = sort.and_then(K::parse);
    let dir = order.and_then(Direction::parse);
    match (key, dir) {
        (None, None) => default,
        (None, Some(dir)) => Sort {
            key: default.key,
            dir,
        },
        (Some(key), dir) => Sort {
            key,
            dir: dir.unwrap_or(Direction::Asc),
        },
    }
}

/// The `sort` and `order` query pairs of `s`, for links and the API.
pub fn sort_pairs<K: SortKey>(s: Sort<K>) -> [(&'static str, Option<String>); 2] {
    [
        ("sort", Some(s.key.name().to_owned())),
        ("order", Some(s.dir.as_str().to_owned())),
    ]
}

/// Hidden `sort` and `order` fields, so a filter form keeps an order
/// chosen from the headers (none for the list's `default`, which may
/// depend on the filters).
pub fn sort_fields<K: SortKey>(s: Sort<K>, default: Sort<K>) -> Markup {
    html! {
        @if s != default {
            input type="hidden" name="sort" value=(s.key.name());
            input type="hidden" name="order" value=(s.dir.as_str());
        }
    }
}

/// A column header that sorts the listing by `key`: a link to `base` (the
/// listing's path with its filters, without `sort`, `order` and `page`)
/// that sorts by `key`, ascending first and reversed when it is the
/// current order; the current column carries `aria-sort`.
pub fn sort_th<K: SortKey>(base: &str, current: Sort<K>, key: K, label: &str) -> Markup {
    let active = current.key == key;
    let ascending = current.dir == Direction::Asc;
    let next = if active && ascending {
        Direction::Desc
    } else {
        Direction::Asc
    };
    let href = with_param(
        base,
        &format!("sort={}&order={}", key.name(), next.as_str()),
    );
    let aria = active.then_some(if ascending { "ascending" } else { "descending" });
    html! {
        th aria-sort=[aria] {
            a.sort href=(href) data-sort=(key.name()) {
                (label)
                @if active { span.arrow aria-hidden="true" { (if ascending { " ▲" } else { " ▼" }) } }
            }
        }
    }
}

/// The empty state of a listing.
pub fn empty(shell: &Shell, text: Option<&str>) -> Markup {
    html! { p.empty { (text.unwrap_or(shell.lang.t("common.none"))) } }
}

/// A UTC time as `YYYY-MM-DD HH:MM` (UTC).
pub fn time(at: &DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M")) } }
}

/// An optional time, or a dash.
pub fn time_opt(at: Option<&DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { "—" },
    }
}

/// Query strings built from the present pairs.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// Inline SVG markup the charts build (already escaped).
pub fn svg(raw: String) -> Markup {
    PreEscaped(raw)
}
