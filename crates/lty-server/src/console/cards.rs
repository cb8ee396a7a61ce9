//! Card batches: create one (with a progress display while the cards are
//! generated), list batches with their usage, download a batch as CSV or
//! ZIP (streamed by the API's export handlers), disable a batch or a card,
//! look up a code.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use lty_core::card::CardKind;
use lty_store::sort::{BatchSort, SortKey};
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::{Op, url_encode};
use crate::extract::{Json, Path as ApiPath, Query as ApiQuery};
use crate::http::admin;
use crate::http::cards::{self as api, BatchIn, BatchOut, CardUsageOut, DisableIn};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/cards", get(list).post(create))
        .route("/console/cards/lookup", get(lookup))
        .route("/console/cards/code/{code}/disable", post(disable_card))
        .route("/console/cards/{id}", get(view))
        .route("/console/cards/{id}/disable", post(disable_batch))
        .route("/console/cards/{id}/export.csv", get(export_csv))
        .route("/console/cards/{id}/export.zip", get(export_zip))
}

const PAGE_SIZE: u64 = 20;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

fn usage_cells(u: &CardUsageOut) -> Markup {
    html! { td { (u.scans) } td { (u.unique_users) } td { (u.redeemed) } }
}

fn kind_text(op: &Op, kind: CardKind) -> &'static str {
    match kind {
        CardKind::Content => op.lang.t("cards.kind.content"),
        CardKind::Membership => op.lang.t("cards.kind.membership"),
    }
}

fn state_badge(op: &Op, disabled: bool) -> Markup {
    html! {
        span.badge.{ (if disabled { "bad" } else { "ok" }) } {
            (if disabled { op.lang.t("cards.disabled") } else { op.lang.t("cards.enabled") })
        }
    }
}

/// Batches, newest first unless sorted by a column header, with usage;
/// the create and lookup forms.
async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(&state, Method::GET, "/api/v1/admin/card-batches/", None)
        .await?;
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), BatchSort::DEFAULT);
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    // One more than a page tells whether there is a next one.
    let batches = api::list_batches(
        State(state.clone()),
        op.auth(),
        ApiQuery(api::PageQuery {
            limit: Some(PAGE_SIZE + 1),
            offset: Some((page_no - 1) * PAGE_SIZE),
            sort: sort_pair.1.clone(),
            order: order_pair.1.clone(),
        }),
    )
    .await
    .or_fail(&op)?
    .0
    .batches;
    let more = batches.len() as u64 > PAGE_SIZE;
    let mut rows = Vec::new();
    for b in batches.into_iter().take(PAGE_SIZE as usize) {
        let usage = state.db.card_usage(None, Some(b.id)).await.or_fail(&op)?;
        rows.push((b, CardUsageOut::from(usage)));
    }
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
    let done = q.done.as_deref().filter(|k| *k == "cards.done.disable");
    let base = format!("/console/cards?{}", page::query(&[sort_pair, order_pair]));
    let th = |key, label| page::sort_th("/console/cards", sort, key, t(label));
    let body = html! {
        (page::flash(&shell, done))
        div.columns {
            section.card {
                h2 { (t("cards.create")) }
                form.stack #create-batch method="post" action="/console/cards" data-busy=(t("cards.working")) {
                    (shell.csrf_field())
                    label for="kind" { (t("cards.kind")) }
                    select #kind name="kind" {
                        option value="membership" { (t("cards.kind.membership")) }
                        option value="content" { (t("cards.kind.content")) }
                    }
                    label for="count" { (t("cards.count")) }
                    input #count name="count" type="number" min="1" max="100000" value="100" required;
                    label for="plan_id" { (t("cards.plan")) }
                    select #plan_id name="plan_id" {
                        option value="" { "—" }
                        @for p in plans.plans.iter().filter(|p| p.is_active) {
                            option value=(p.plan.id) { (p.plan.name) " (" (p.plan.code) ")" }
                        }
                    }
                    label for="days" { (t("cards.days")) }
                    input #days name="days" type="number" min="1" max="3660" value="30";
                    label for="content_ref" { (t("cards.content_ref")) }
                    input #content_ref name="content_ref" type="text" maxlength="256";
                    label for="notes" { (t("cards.notes")) }
                    input #notes name="notes" type="text" maxlength="500";
                    button.primary type="submit" { (t("cards.submit")) }
                    progress.busy hidden aria-label=(t("cards.working")) {}
                }
            }
            section.card {
                h2 { (t("cards.lookup")) }
                form.stack method="get" action="/console/cards/lookup" {
                    label for="code" { (t("cards.code")) }
                    input #code name="code" type="text" required placeholder="ABCD-EFGH-JKMN-PQR4";
                    button type="submit" { (t("common.search")) }
                }
            }
        }
        section.card {
            h2 { (t("cards.title")) }
            @if rows.is_empty() {
                (page::empty(&shell, None))
            } @else {
                div.table { table #batches {
                    thead { tr {
                        (th(BatchSort::Id, "common.id")) (th(BatchSort::Kind, "cards.kind")) (th(BatchSort::Count, "cards.count"))
                        (th(BatchSort::Notes, "cards.notes")) th { (t("cards.scans")) } th { (t("cards.users")) }
                        th { (t("cards.redeemed")) } (th(BatchSort::Disabled, "cards.state")) (th(BatchSort::Created, "common.created"))
                    } }
                    tbody {
                        @for (b, u) in &rows {
                            tr {
                                td { a href={"/console/cards/" (b.id)} { (b.id) } }
                                td { (kind_text(&op, b.kind)) }
                                td { (b.count) }
                                td { (b.notes.as_deref().unwrap_or("—")) }
                                (usage_cells(u))
                                td { (state_badge(&op, b.disabled)) }
                                td { (page::time(&b.created_at)) }
                            }
                        }
                    }
                } }
                nav.pager aria-label="pagination" {
                    @if page_no > 1 { a rel="prev" href={(base) "&page=" (page_no - 1)} { "← " (t("common.prev")) } }
                    span { (page_no) }
                    @if more { a rel="next" href={(base) "&page=" (page_no + 1)} { (t("common.next")) " →" } }
                }
            }
        }
    };
    Ok(page::render(&shell, t("cards.title"), "cards", body).into_response())
}

/// The create form.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    kind: String,
    count: u32,
    plan_id: Option<String>,
    days: Option<String>,
    content_ref: Option<String>,
    notes: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Generates a batch through the API's handler, then shows it.
async fn create(State(state): State<AppState>, op: Op, Form(form): Form<CreateForm>) -> PageResult {
    let kind: CardKind = form.kind.parse().or_fail(&op)?;
    let membership = kind == CardKind::Membership;
    let number = |field: &'static str, v: Option<String>| -> Result<Option<i64>, page::Fail> {
        non_empty(v)
            .map(|s| s.parse::<i64>())
            .transpose()
            .map_err(|_| op.fail(lty_core::Error::validation(field, "must be a number")))
    };
    let plan_id = if membership {
        number("plan_id", form.plan_id)?
    } else {
        None
    };
    let days = if membership {
        number("days", form.days)?.map(|d| u32::try_from(d).unwrap_or(0))
    } else {
        None
    };
    op.allow(&state, Method::POST, "/api/v1/admin/card-batches/", None)
        .await?;
    let (_, Json(batch)) = api::create_batch(
        State(state),
        op.auth(),
        Json(BatchIn {
            kind,
            count: form.count,
            content_ref: if membership {
                None
            } else {
                non_empty(form.content_ref)
            },
            payload: None,
            plan_id,
            days,
            expires_at: None,
            notes: non_empty(form.notes),
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to(&format!(
        "/console/cards/{}?done=cards.done.create",
        batch.id
    ))
    .into_response())
}

/// One batch: facts, usage, downloads, disable / enable.
async fn view(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/card-batches/{id}/",
        Some(id.to_string()),
    )
    .await?;
    let d = api::get_batch(State(state.clone()), op.auth(), ApiPath(id))
        .await
        .or_fail(&op)?
        .0;
    let b: &BatchOut = &d.batch;
    let plan = match b.plan_id {
        Some(id) => state.db.plan(id).await.or_fail(&op)?,
        None => None,
    };
    let done = q
        .done
        .as_deref()
        .filter(|k| ["cards.done.create", "cards.done.disable"].contains(k));
    let body = html! {
        (page::flash(&shell, done))
        section.card {
            dl.facts {
                dt { (t("common.id")) } dd { (b.id) }
                dt { (t("cards.kind")) } dd { (kind_text(&op, b.kind)) }
                dt { (t("cards.count")) } dd #count { (b.count) }
                @if let Some(plan) = &plan { dt { (t("cards.plan")) } dd { (plan.name) " (" (plan.code) ")" } }
                @if let Some(days) = b.days { dt { (t("cards.days")) } dd { (days) } }
                @if let Some(c) = &b.content_ref { dt { (t("cards.content_ref")) } dd { (c) } }
                dt { (t("cards.notes")) } dd { (b.notes.as_deref().unwrap_or("—")) }
                dt { (t("cards.state")) } dd #batch-state { (state_badge(&op, b.disabled)) }
                dt { (t("cards.scans")) } dd { (d.usage.scans) }
                dt { (t("cards.users")) } dd { (d.usage.unique_users) }
                dt { (t("cards.redeemed")) } dd { (d.usage.redeemed) }
                dt { (t("common.created")) } dd { (page::time(&b.created_at)) }
            }
            p.actions {
                a.button.primary #download-zip href={"/console/cards/" (b.id) "/export.zip"} download { (t("cards.download_zip")) }
                " "
                a.button #download-csv href={"/console/cards/" (b.id) "/export.csv"} download { (t("cards.download_csv")) }
            }
            form method="post" action={"/console/cards/" (b.id) "/disable"} {
                (shell.csrf_field())
                input type="hidden" name="disabled" value=(if b.disabled { "0" } else { "1" });
                @if b.disabled {
                    button type="submit" { (t("cards.enable")) }
                } @else {
                    button.danger type="submit" data-confirm=(t("cards.confirm_disable")) { (t("cards.disable")) }
                }
            }
        }
    };
    let title = format!("{} #{}", t("cards.batch"), b.id);
    Ok(page::render(&shell, &title, "cards", body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DisableForm {
    disabled: Option<String>,
}

impl DisableForm {
    fn disabled(&self) -> bool {
        self.disabled.as_deref() != Some("0")
    }
}

async fn disable_batch(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(form): Form<DisableForm>,
) -> PageResult {
    op.allow(
        &state,
        Method::POST,
        "/api/v1/admin/card-batches/{id}/disable/",
        Some(id.to_string()),
    )
    .await?;
    api::disable_batch(
        State(state),
        op.ctx(),
        ApiPath(id),
        Json(DisableIn {
            disabled: form.disabled(),
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to(&format!("/console/cards/{id}?done=cards.done.disable")).into_response())
}

async fn export_csv(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/card-batches/{id}/export.csv",
        Some(id.to_string()),
    )
    .await?;
    api::export_csv(State(state), op.auth(), ApiPath(id))
        .await
        .or_fail(&op)
}

async fn export_zip(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/card-batches/{id}/export.zip",
        Some(id.to_string()),
    )
    .await?;
    api::export_zip(State(state), op.auth(), ApiPath(id))
        .await
        .or_fail(&op)
}

#[derive(Debug, Default, Deserialize)]
pub struct LookupQuery {
    code: Option<String>,
    done: Option<String>,
}

/// One card by code.
async fn lookup(State(state): State<AppState>, op: Op, Query(q): Query<LookupQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let code = q.code.unwrap_or_default().trim().to_owned();
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/cards/{code}/",
        Some(code.clone()),
    )
    .await?;
    let d = api::get_card(State(state), op.auth(), ApiPath(code))
        .await
        .or_fail(&op)?
        .0;
    let done = q.done.as_deref().filter(|k| *k == "cards.done.card");
    let body = html! {
        (page::flash(&shell, done))
        section.card {
            dl.facts {
                dt { (t("cards.code")) } dd { code { (d.card.code) } }
                dt { (t("cards.batch")) } dd { a href={"/console/cards/" (d.batch.id)} { (d.batch.id) } }
                dt { (t("cards.kind")) } dd { (kind_text(&op, d.batch.kind)) }
                dt { (t("cards.state")) } dd { (state_badge(&op, d.card.disabled || d.batch.disabled)) }
                dt { (t("cards.scans")) } dd { (d.usage.scans) }
                dt { (t("cards.redeemed")) } dd { (d.usage.redeemed) }
            }
            form method="post" action={"/console/cards/code/" (url_encode(&d.card.code)) "/disable"} {
                (shell.csrf_field())
                input type="hidden" name="disabled" value=(if d.card.disabled { "0" } else { "1" });
                button type="submit" { (if d.card.disabled { t("cards.enable_card") } else { t("cards.disable_card") }) }
            }
        }
    };
    Ok(page::render(&shell, t("cards.lookup"), "cards", body).into_response())
}

async fn disable_card(
    State(state): State<AppState>,
    op: Op,
    Path(code): Path<String>,
    Form(form): Form<DisableForm>,
) -> PageResult {
    op.allow(
        &state,
        Method::POST,
        "/api/v1/admin/cards/{code}/disable/",
        Some(code.clone()),
    )
    .await?;
    api::disable_card(
        State(state),
        op.ctx(),
        ApiPath(code.clone()),
        Json(DisableIn {
            disabled: form.disabled(),
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to(&format!(
        "/console/cards/lookup?code={}&done=cards.done.card",
        url_encode(&code)
    ))
    .into_response())
}
