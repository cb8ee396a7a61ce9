//! Families and users: search by phone, nickname, username, MAC or id; a
//! user's devices (online state), subscription, usage and card scans;
//! disable / enable, reset the day's quota and grant a plan, each after a
//! confirmation step.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use lty_core::{MacAddress, PhoneNumber};
use lty_store::sort::{SortKey, UserSort};
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Json, Query as ApiQuery};
use crate::http::admin::devices::DeviceSearchQuery;
use crate::http::admin::users::{ReasonIn, UserSearchQuery};
use crate::http::admin::{self, OptionalJson};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/users", get(search))
        .route("/console/users/{id}", get(view))
        .route("/console/users/{id}/disable", post(disable))
        .route("/console/users/{id}/enable", post(enable))
        .route("/console/users/{id}/reset-quota", post(reset_quota))
        .route("/console/users/{id}/grant", post(grant))
}

const PAGE_SIZE: u64 = 20;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    page: Option<u64>,
    sort: Option<String>,
    order: Option<String>,
}

/// The search page. A full MAC address goes straight to the family that
/// holds the device; a phone number searches phones; anything else is the
/// API's free-text search (id, username, nickname, phone).
async fn search(State(state): State<AppState>, op: Op, Query(q): Query<SearchQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let text = q.q.clone().unwrap_or_default().trim().to_owned();
    let page_no = q.page.unwrap_or(1);
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), UserSort::DEFAULT);
    let form = html! {
        form.search method="get" action="/console/users" role="search" {
            (page::sort_fields(sort, UserSort::DEFAULT))
            label for="q" { (t("users.query")) }
            div.row {
                input #q name="q" type="search" value=(text) autofocus;
                button type="submit" { (t("common.search")) }
            }
        }
    };
    if text.is_empty() {
        let body = html! { (form) p.hint { (t("users.hint")) } };
        return Ok(page::render(&shell, t("users.title"), "users", body).into_response());
    }
    if let Ok(mac) = MacAddress::parse(&text) {
        op.allow(&state, Method::GET, "/api/v1/admin/devices/", None)
            .await?;
        let found = admin::devices::search(
            State(state.clone()),
            op.ctx(),
            ApiQuery(DeviceSearchQuery {
                mac: Some(mac.to_string()),
                ..Default::default()
            }),
        )
        .await
        .or_fail(&op)?
        .0;
        if let Some(b) = found.devices.iter().find_map(|d| d.binding.as_ref()) {
            return Ok(Redirect::to(&format!("/console/users/{}", b.user_id)).into_response());
        }
        let body = html! { (form) (page::empty(&shell, Some(t("users.no_match")))) };
        return Ok(page::render(&shell, t("users.title"), "users", body).into_response());
    }
    op.allow(&state, Method::GET, "/api/v1/admin/users/", None)
        .await?;
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    let mut filter = UserSearchQuery {
        page: Some(page_no),
        page_size: Some(PAGE_SIZE),
        sort: sort_pair.1.clone(),
        order: order_pair.1.clone(),
        ..Default::default()
    };
    match PhoneNumber::parse(&text) {
        Ok(p) if text.len() >= 11 => filter.phone = Some(p.as_str().to_owned()),
        _ => filter.q = Some(text.clone()),
    }
    let found = admin::users::search(State(state.clone()), op.ctx(), ApiQuery(filter))
        .await
        .or_fail(&op)?
        .0;
    let filters = format!(
        "/console/users?{}",
        page::query(&[("q", Some(text.clone()))])
    );
    let base = format!(
        "/console/users?{}",
        page::query(&[("q", Some(text.clone())), sort_pair, order_pair])
    );
    let th = |key, label| page::sort_th(&filters, sort, key, t(label));
    let body = html! {
        (form)
        @if found.users.is_empty() {
            (page::empty(&shell, Some(t("users.no_match"))))
        } @else {
            div.table {
                table #users {
                    thead { tr {
                        (th(UserSort::Id, "common.id")) (th(UserSort::Username, "users.username"))
                        (th(UserSort::Nickname, "users.nickname")) (th(UserSort::Phone, "users.phone"))
                        (th(UserSort::Active, "users.state")) (th(UserSort::Joined, "users.joined"))
                    } }
                    tbody {
                        @for u in &found.users {
                            tr {
                                td { a href={"/console/users/" (u.id)} { (u.id) } }
                                td { a href={"/console/users/" (u.id)} { (u.username) } }
                                td { (u.nickname.as_deref().unwrap_or("—")) }
                                td { (u.phone.as_deref().unwrap_or("—")) }
                                td { (if u.is_active { t("users.active") } else { t("users.disabled") }) }
                                td { (page::time(&u.date_joined)) }
                            }
                        }
                    }
                }
            }
            (page::pager(&shell, &base, found.page.page, found.page.page_size, found.page.total))
        }
    };
    Ok(page::render(&shell, t("users.title"), "users", body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}

/// Flash keys a redirect may name.
const DONE: &[&str] = &[
    "user.done.disable",
    "user.done.enable",
    "user.done.reset",
    "user.done.grant",
];

/// One user: account, devices with online state, subscription, usage,
/// card scans, and the support actions.
async fn view(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/users/{id}/",
        Some(id.to_string()),
    )
    .await?;
    let d = admin::users::view(State(state.clone()), op.ctx(), crate::extract::Path(id))
        .await
        .or_fail(&op)?
        .0;
    let plans = admin::plans::list_plans(
        State(state.clone()),
        op.ctx(),
        ApiQuery(admin::plans::PlanListQuery {
            page: Some(1),
            page_size: Some(100),
            ..Default::default()
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    // Unlocked achievements with their names: plain reads, covered by the
    // `user.view` entry the handler wrote.
    let unlocks = state.db.unlocks_of_user(id).await.or_fail(&op)?;
    let defs = state.db.achievements().await.or_fail(&op)?;
    let unlocked: Vec<_> = unlocks
        .iter()
        .map(|u| {
            let name = defs
                .iter()
                .find(|a| a.id == u.achievement_id)
                .map_or_else(|| u.achievement_id.to_string(), |a| a.name.clone());
            (name, u.unlocked_at)
        })
        .collect();
    let done = q.done.as_deref().filter(|k| DONE.contains(k));
    let u = &d.user;
    let sub = &d.subscription;
    let body = html! {
        (page::flash(&shell, done))
        section.card {
            dl.facts {
                dt { (t("common.id")) } dd { (u.id) }
                dt { (t("users.username")) } dd { (u.username) }
                dt { (t("users.nickname")) } dd { (u.nickname.as_deref().unwrap_or("—")) }
                dt { (t("users.phone")) } dd { (u.phone.as_deref().unwrap_or("—")) }
                dt { (t("users.state")) } dd #account-state .{ (if u.is_active { "ok" } else { "bad" }) } {
                    (if u.is_active { t("users.active") } else { t("users.disabled") })
                }
                dt { (t("users.joined")) } dd { (page::time(&u.date_joined)) }
            }
            div.actions {
                @if u.is_active {
                    form method="post" action={"/console/users/" (u.id) "/disable"} {
                        (shell.csrf_field())
                        label for="reason" { (t("user.reason")) }
                        input #reason name="reason" type="text" maxlength="500";
                        button.danger type="submit" #disable { (t("user.disable")) }
                    }
                } @else {
                    form method="post" action={"/console/users/" (u.id) "/enable"} {
                        (shell.csrf_field())
                        label for="reason" { (t("user.reason")) }
                        input #reason name="reason" type="text" maxlength="500";
                        button.primary type="submit" #enable { (t("user.enable")) }
                    }
                }
            }
        }
        section.card {
            h2 { (t("user.devices")) }
            @if d.devices.is_empty() {
                (page::empty(&shell, Some(t("user.no_devices"))))
            } @else {
                div.table { table {
                    thead { tr {
                        th { (t("user.mac")) } th { (t("user.device_name")) } th { (t("users.state")) }
                        th { (t("user.last_seen")) } th { (t("user.bound_at")) }
                    } }
                    tbody {
                        @for dev in &d.devices {
                            tr data-mac=(dev.binding.mac_address) {
                                td { a href={"/console/devices?mac=" (super::session::url_encode(&dev.binding.mac_address))} { code { (dev.binding.mac_address) } } }
                                td { (dev.binding.name.as_deref().unwrap_or("—")) }
                                td { span.badge.{ (if dev.online { "ok" } else { "off" }) } {
                                    (if dev.online { t("common.online") } else { t("common.offline") })
                                } }
                                td { (page::time_opt(dev.last_seen.as_ref())) }
                                td { (page::time(&dev.binding.bound_at)) }
                            }
                        }
                    }
                } }
            }
        }
        section.card {
            h2 { (t("user.subscription")) }
            dl.facts {
                dt { (t("user.plan")) } dd #plan { (sub.plan.name) " (" (sub.plan.code) ")" }
                dt { (t("user.ends_at")) } dd { (page::time_opt(sub.ends_at.as_ref())) }
            }
            form.grid method="post" action={"/console/users/" (u.id) "/grant"} {
                (shell.csrf_field())
                div {
                    label for="plan_id" { (t("user.grant_plan")) }
                    select #plan_id name="plan_id" required {
                        @for p in plans.plans.iter().filter(|p| p.is_active) {
                            option value=(p.plan.id) { (p.plan.name) " (" (p.plan.code) ")" }
                        }
                    }
                }
                div {
                    label for="days" { (t("user.grant_days")) }
                    input #days name="days" type="number" min="1" max="3660" value="30" required;
                }
                div { button.primary type="submit" #grant { (t("user.grant")) } }
            }
        }
        section.card {
            h2 { (t("user.usage")) }
            dl.facts {
                dt { (t("user.chat_today")) } dd #chat-today { (d.usage.chat_messages_today) }
                dt { (t("user.conversations")) } dd { (d.usage.conversations) }
                dt { (t("user.voice_running")) } dd { (d.usage.voice_sessions_running) }
                @for (k, v) in &d.usage.totals { dt { code { (k) } } dd { (v) } }
            }
            div.actions {
                form method="post" action={"/console/users/" (u.id) "/reset-quota"} {
                    (shell.csrf_field())
                    button type="submit" #reset-quota { (t("user.reset_quota")) }
                }
                a.button #conversations href={"/console/users/" (u.id) "/conversations"} { (t("conv.open")) }
            }
        }
        section.card {
            h2 { (t("user.achievements")) }
            @if unlocked.is_empty() {
                (page::empty(&shell, None))
            } @else {
                ul #achievements {
                    @for (name, at) in &unlocked { li { (name) " · " (page::time(at)) } }
                }
            }
        }
        section.card {
            h2 { (t("user.cards")) }
            @if d.card_history.is_empty() {
                (page::empty(&shell, None))
            } @else {
                div.table { table {
                    thead { tr { th { (t("cards.batch")) } th { (t("cards.kind")) } th { (t("user.mac")) } th { (t("audit.time")) } } }
                    tbody {
                        @for s in &d.card_history {
                            tr {
                                td { a href={"/console/cards/" (s.batch_id)} { (s.batch_id) } }
                                td { (s.kind.as_str()) " " (s.content_ref.as_deref().unwrap_or("")) }
                                td { code { (s.mac_address.as_deref().unwrap_or("—")) } }
                                td { (page::time(&s.scanned_at)) }
                            }
                        }
                    }
                } }
            }
        }
    };
    let title = format!(
        "{} · {}",
        t("nav.users"),
        u.nickname.as_deref().unwrap_or(&u.username)
    );
    Ok(page::render(&shell, &title, "users", body).into_response())
}

/// A confirmed (or to-be-confirmed) action's form.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    confirm: Option<String>,
    reason: Option<String>,
    plan_id: Option<i64>,
    days: Option<u32>,
}

impl ActionForm {
    fn confirmed(&self) -> bool {
        self.confirm.as_deref() == Some("1")
    }
}

fn done(id: i64, key: &str) -> PageResult {
    Ok(Redirect::to(&format!("/console/users/{id}?done={key}")).into_response())
}

fn reason_body(form: &ActionForm) -> OptionalJson<ReasonIn> {
    OptionalJson(Some(ReasonIn {
        reason: form.reason.clone(),
    }))
}

async fn disable(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    set_active(state, op, id, form, false).await
}

async fn enable(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    set_active(state, op, id, form, true).await
}

async fn set_active(
    state: AppState,
    op: Op,
    id: i64,
    form: ActionForm,
    active: bool,
) -> PageResult {
    let t = |k| op.lang.t(k);
    let (verb, route) = if active {
        ("enable", "/api/v1/admin/users/{id}/enable/")
    } else {
        ("disable", "/api/v1/admin/users/{id}/disable/")
    };
    op.allow(&state, Method::POST, route, Some(id.to_string()))
        .await?;
    if !form.confirmed() {
        let question = if active {
            t("user.confirm_enable")
        } else {
            t("user.confirm_disable")
        };
        let details = html! {
            dl.facts {
                dt { (t("common.id")) } dd { (id) }
                @if let Some(r) = form.reason.as_deref().filter(|r| !r.trim().is_empty()) {
                    dt { (t("user.reason")) } dd { (r) }
                }
            }
        };
        return Ok(page::confirm(
            &op.shell(),
            t(if active {
                "user.enable"
            } else {
                "user.disable"
            }),
            question,
            details,
            &format!("/console/users/{id}/{verb}"),
            &[("reason", form.reason.clone().unwrap_or_default())],
            &format!("/console/users/{id}"),
        ));
    }
    let path = crate::extract::Path(id);
    let result = if active {
        admin::users::enable(State(state), op.ctx(), path, reason_body(&form)).await
    } else {
        admin::users::disable(State(state), op.ctx(), path, reason_body(&form)).await
    };
    result.or_fail(&op)?;
    done(
        id,
        if active {
            "user.done.enable"
        } else {
            "user.done.disable"
        },
    )
}

async fn reset_quota(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let t = |k| op.lang.t(k);
    op.allow(
        &state,
        Method::POST,
        "/api/v1/admin/users/{id}/reset-quota/",
        Some(id.to_string()),
    )
    .await?;
    if !form.confirmed() {
        return Ok(page::confirm(
            &op.shell(),
            t("user.reset_quota"),
            t("user.confirm_reset"),
            html! {},
            &format!("/console/users/{id}/reset-quota"),
            &[],
            &format!("/console/users/{id}"),
        ));
    }
    admin::users::reset_quota(State(state), op.ctx(), crate::extract::Path(id))
        .await
        .or_fail(&op)?;
    done(id, "user.done.reset")
}

async fn grant(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let t = |k| op.lang.t(k);
    let route = "/api/v1/admin/users/{id}/subscription/";
    let (Some(plan_id), Some(days)) = (form.plan_id, form.days) else {
        return Err(op.fail(lty_core::Error::validation(
            "plan_id",
            "choose a plan and days",
        )));
    };
    if !form.confirmed() {
        // The role check only: the automatic audit entry is written once,
        // when the grant is confirmed.
        let plan = state.db.plan(plan_id).await.or_fail(&op)?;
        let user = state.db.user(id).await.or_fail(&op)?;
        let (Some(plan), Some(user)) = (plan, user) else {
            return Err(op.fail(lty_core::Error::not_found("plan")));
        };
        let details = html! {
            dl.facts {
                dt { (t("users.username")) } dd { (user.username) " (" (user.id) ")" }
                dt { (t("user.grant_plan")) } dd { (plan.name) " (" (plan.code) ")" }
                dt { (t("user.grant_days")) } dd { (days) }
            }
        };
        return Ok(page::confirm(
            &op.shell(),
            t("user.grant"),
            t("user.confirm_grant"),
            details,
            &format!("/console/users/{id}/grant"),
            &[("plan_id", plan_id.to_string()), ("days", days.to_string())],
            &format!("/console/users/{id}"),
        ));
    }
    op.allow(&state, Method::POST, route, Some(id.to_string()))
        .await?;
    crate::http::subscriptions::grant(
        State(state),
        op.auth(),
        crate::extract::Path(id),
        Json(crate::http::subscriptions::GrantIn { plan_id, days }),
    )
    .await
    .or_fail(&op)?;
    done(id, "user.done.grant")
}
