//! xiaozhi firmware releases: the list by board, and retiring a release
//! or offering it again (superadmin). Uploads go through the API
//! (`POST /api/v1/admin/firmware/`, a raw body of several megabytes).

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Json, Path as ApiPath, Query as ApiQuery};
use crate::http::admin;
use crate::http::admin::firmware::{FirmwareQuery, FirmwareStateIn};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/firmware", get(list))
        .route("/console/firmware/{id}/state", post(set_state))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    board: Option<String>,
    page: Option<u64>,
    done: Option<String>,
}

async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(&state, Method::GET, "/api/v1/admin/firmware/", None)
        .await?;
    let list = admin::firmware::list(
        State(state),
        op.ctx(),
        ApiQuery(FirmwareQuery {
            page: q.page,
            page_size: Some(20),
            board: q.board.clone(),
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let base = format!(
        "/console/firmware?{}",
        page::query(&[("board", q.board.clone())])
    );
    let done = q.done.as_deref().filter(|k| *k == "catalog.done");
    let body = html! {
        (page::flash(&shell, done))
        form.filters method="get" action="/console/firmware" {
            div { label for="board" { (t("fw.board")) } input #board name="board" type="text" value=(q.board.clone().unwrap_or_default()); }
            div { button type="submit" { (t("common.filter")) } }
        }
        p.hint { (t("fw.upload_hint")) }
        @if list.releases.is_empty() {
            (page::empty(&shell, None))
        } @else {
            div.table { table #firmware {
                thead { tr {
                    th { (t("common.id")) } th { (t("fw.board")) } th { (t("fw.version")) } th { (t("fw.size")) }
                    th { (t("plans.active")) } th { (t("common.created")) } th { (t("common.actions")) }
                } }
                tbody {
                    @for r in &list.releases {
                        tr {
                            td { (r.id) }
                            td { code { (r.board) } }
                            td { a href=(r.url) { (r.version) } }
                            td { (r.size) }
                            td { (if r.is_active { t("common.yes") } else { t("common.no") }) }
                            td { (page::time(&r.created_at)) }
                            td {
                                form method="post" action={"/console/firmware/" (r.id) "/state"} {
                                    (shell.csrf_field())
                                    input type="hidden" name="active" value=(if r.is_active { "0" } else { "1" });
                                    button type="submit" { (if r.is_active { t("plans.retire") } else { t("fw.offer") }) }
                                }
                            }
                        }
                    }
                }
            } }
            (page::pager(&shell, &base, list.page.page, list.page.page_size, list.page.total))
        }
    };
    Ok(page::render(&shell, t("fw.title"), "firmware", body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct StateForm {
    active: Option<String>,
}

async fn set_state(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(f): Form<StateForm>,
) -> PageResult {
    op.allow(
        &state,
        Method::PATCH,
        "/api/v1/admin/firmware/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::firmware::set_active(
        State(state),
        op.ctx(),
        ApiPath(id),
        Json(FirmwareStateIn {
            is_active: f.active.as_deref() == Some("1"),
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/firmware?done=catalog.done").into_response())
}
