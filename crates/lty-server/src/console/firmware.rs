//! xiaozhi firmware releases: the list by board (sortable), uploading a
//! release, and retiring one or offering it again (superadmin, as in the
//! API). The upload form is `multipart/form-data` with the CSRF token as its
//! first part ([`super::session::csrf_guard`]); the image goes through the
//! API's handler (`POST /api/v1/admin/firmware/`): same checks, same
//! `firmware.create` audit entry.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::{CSRF_FIELD, Op, UPLOAD_PATH};
use crate::extract::{Json, Path as ApiPath, Query as ApiQuery};
use crate::http::admin;
use crate::http::admin::firmware::{FirmwareQuery, FirmwareStateIn, FirmwareUploadQuery};
use crate::state::AppState;
use lty_store::sort::{FirmwareSort, SortKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/firmware", get(list))
        .route("/console/firmware/{id}/state", post(set_state))
        .route(
            UPLOAD_PATH,
            // The image has the API's own limit (8 MiB), checked as it is read.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    board: Option<String>,
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// Flash keys a redirect may name.
const DONE: &[&str] = &["catalog.done", "fw.uploaded"];

async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(&state, Method::GET, "/api/v1/admin/firmware/", None)
        .await?;
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), FirmwareSort::DEFAULT);
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    let list = admin::firmware::list(
        State(state),
        op.ctx(),
        ApiQuery(FirmwareQuery {
            page: q.page,
            page_size: Some(20),
            board: q.board.clone(),
            sort: sort_pair.1.clone(),
            order: order_pair.1.clone(),
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let unsorted = format!(
        "/console/firmware?{}",
        page::query(&[("board", q.board.clone())])
    );
    let base = format!(
        "/console/firmware?{}",
        page::query(&[("board", q.board.clone()), sort_pair, order_pair])
    );
    let th = |key, label| page::sort_th(&unsorted, sort, key, t(label));
    let done = q.done.as_deref().filter(|k| DONE.contains(k));
    let body = html! {
        (page::flash(&shell, done))
        section.card {
            h2 { (t("fw.upload")) }
            form.stack #upload method="post" action=(UPLOAD_PATH) enctype="multipart/form-data" data-busy=(t("fw.uploading")) {
                // First, so the CSRF check finds it before the image.
                input type="hidden" name=(CSRF_FIELD) value=(shell.csrf);
                label for="up-board" { (t("fw.board")) }
                input #up-board name="board" type="text" required maxlength="64" pattern=r"[a-z0-9._\-]{1,64}" placeholder="bread-compact-wifi";
                label for="up-version" { (t("fw.version")) }
                input #up-version name="version" type="text" required maxlength="32" pattern=r"[0-9]+(\.[0-9]+)*" placeholder="1.6.2";
                label for="up-notes" { (t("fw.notes")) }
                input #up-notes name="notes" type="text" maxlength="500";
                label for="up-file" { (t("fw.file")) }
                input #up-file name="file" type="file" accept=".bin,application/octet-stream" required;
                button.primary type="submit" { (t("fw.submit")) }
                progress.busy hidden aria-label=(t("fw.uploading")) {}
            }
            p.hint { (t("fw.upload_hint")) }
        }
        form.filters method="get" action="/console/firmware" {
            (page::sort_fields(sort, FirmwareSort::DEFAULT))
            div { label for="board" { (t("fw.board")) } input #board name="board" type="text" value=(q.board.clone().unwrap_or_default()); }
            div { button type="submit" { (t("common.filter")) } }
        }
        @if list.releases.is_empty() {
            (page::empty(&shell, None))
        } @else {
            div.table { table #firmware {
                thead { tr {
                    th { (t("common.id")) } (th(FirmwareSort::Board, "fw.board")) (th(FirmwareSort::Version, "fw.version")) (th(FirmwareSort::Size, "fw.size"))
                    (th(FirmwareSort::Active, "plans.active")) (th(FirmwareSort::Created, "common.created")) th { (t("common.actions")) }
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

/// Uploads a release through the API's handler (role policy, checks of
/// the image, `firmware.create` audit entry), then lists it.
async fn upload(State(state): State<AppState>, op: Op, req: Request) -> PageResult {
    op.allow(&state, Method::POST, "/api/v1/admin/firmware/", None)
        .await?;
    admin::firmware::upload(
        State(state),
        op.ctx(),
        ApiQuery(FirmwareUploadQuery::default()),
        req,
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/firmware?done=fw.uploaded").into_response())
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
