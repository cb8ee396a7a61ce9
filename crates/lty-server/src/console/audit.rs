//! The audit log, read-only: filters by operator, action (or prefix),
//! target and time.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::Query as ApiQuery;
use crate::http::admin;
use crate::http::admin::audit::AuditQuery;
use crate::state::AppState;
use lty_store::sort::{AuditSort, SortKey};

pub fn router() -> Router<AppState> {
    Router::new().route("/console/audit", get(list))
}

/// The filter form; empty fields are absent.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    admin_id: Option<String>,
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    since: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    until: Option<String>,
    page: Option<u64>,
    sort: Option<String>,
    order: Option<String>,
}

fn day(
    op: &Op,
    field: &'static str,
    v: Option<&str>,
    next: bool,
) -> Result<Option<DateTime<Utc>>, page::Fail> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        op.fail(lty_core::Error::validation(
            field,
            "must be a date YYYY-MM-DD",
        ))
    })?;
    let d = if next { d.succ_opt().unwrap_or(d) } else { d };
    Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

async fn list(State(state): State<AppState>, op: Op, Query(f): Query<Filter>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(&state, Method::GET, "/api/v1/admin/audit/", None)
        .await?;
    let admin_id =
        match f
            .admin_id
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                op.fail(lty_core::Error::validation("admin_id", "must be a number"))
            })?),
            None => None,
        };
    let sort = page::sort_of(f.sort.as_deref(), f.order.as_deref(), AuditSort::DEFAULT);
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    let list = admin::audit::list(
        State(state),
        op.ctx(),
        ApiQuery(AuditQuery {
            page: f.page,
            page_size: Some(50),
            admin_id,
            action: f.action.clone(),
            target_type: f.target_type.clone(),
            target_id: f.target_id.clone(),
            since: day(&op, "since", f.since.as_deref(), false)?,
            until: day(&op, "until", f.until.as_deref(), true)?,
            sort: sort_pair.1.clone(),
            order: order_pair.1.clone(),
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let filters = [
        ("admin_id", f.admin_id.clone()),
        ("action", f.action.clone()),
        ("target_type", f.target_type.clone()),
        ("target_id", f.target_id.clone()),
        ("since", f.since.clone()),
        ("until", f.until.clone()),
    ];
    let unsorted = format!("/console/audit?{}", page::query(&filters));
    let base = format!("{unsorted}&{}", page::query(&[sort_pair, order_pair]));
    let th = |key, label| page::sort_th(&unsorted, sort, key, t(label));
    let body = html! {
        form.filters method="get" action="/console/audit" {
            (page::sort_fields(sort, AuditSort::DEFAULT))
            div { label for="admin_id" { (t("audit.admin")) } input #admin_id name="admin_id" type="number" value=(v(&f.admin_id)); }
            div { label for="action" { (t("audit.action")) } input #action name="action" type="text" value=(v(&f.action)); }
            div { label for="target_type" { (t("audit.target_type")) } input #target_type name="target_type" type="text" value=(v(&f.target_type)); }
            div { label for="target_id" { (t("audit.target_id")) } input #target_id name="target_id" type="text" value=(v(&f.target_id)); }
            div { label for="since" { (t("audit.since")) } input #since name="since" type="date" value=(v(&f.since)); }
            div { label for="until" { (t("audit.until")) } input #until name="until" type="date" value=(v(&f.until)); }
            div { button type="submit" { (t("common.filter")) } }
        }
        @if list.entries.is_empty() {
            (page::empty(&shell, None))
        } @else {
            div.table { table #audit {
                thead { tr {
                    (th(AuditSort::Time, "audit.time")) (th(AuditSort::Operator, "audit.operator")) (th(AuditSort::Action, "audit.action_col"))
                    (th(AuditSort::Target, "audit.target")) th { (t("audit.details")) } th { (t("audit.ip")) }
                } }
                tbody {
                    @for e in &list.entries {
                        tr {
                            td { (page::time(&e.created_at)) }
                            td { (e.admin_username) " (" (e.admin_id) ")" }
                            td.action { code { (e.action) } }
                            td { (e.target_type.as_deref().unwrap_or("")) " " (e.target_id.as_deref().unwrap_or("")) }
                            td.details { code { (e.details.to_string()) } }
                            td { (e.ip.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
            (page::pager(&shell, &base, list.page.page, list.page.page_size, list.page.total))
        }
    };
    Ok(page::render(&shell, t("audit.title"), "audit", body).into_response())
}
