//! Running voice-chat sessions, and stopping one.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Path as ApiPath, Query as ApiQuery};
use crate::http::admin;
use crate::http::admin::sessions::SessionQuery;
use crate::state::AppState;
use lty_store::sort::{SessionSort, SortKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/voice-sessions", get(list))
        .route("/console/voice-sessions/{task_id}/stop", post(stop))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(&state, Method::GET, "/api/v1/admin/voice-sessions/", None)
        .await?;
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), SessionSort::DEFAULT);
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    let base = format!(
        "/console/voice-sessions?{}",
        page::query(&[sort_pair.clone(), order_pair.clone()])
    );
    let th = |key, label| page::sort_th("/console/voice-sessions", sort, key, t(label));
    let list = admin::sessions::list(
        State(state),
        op.ctx(),
        ApiQuery(SessionQuery {
            page: q.page,
            page_size: Some(20),
            sort: sort_pair.1,
            order: order_pair.1,
            ..Default::default()
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let done = q.done.as_deref().filter(|k| *k == "voice.done");
    let body = html! {
        (page::flash(&shell, done))
        @if list.sessions.is_empty() {
            (page::empty(&shell, None))
        } @else {
            div.table { table #sessions {
                thead { tr {
                    (th(SessionSort::Task, "voice.task")) (th(SessionSort::User, "voice.user")) (th(SessionSort::Status, "voice.status"))
                    (th(SessionSort::Started, "voice.started")) th { (t("voice.running")) } th { (t("common.actions")) }
                } }
                tbody {
                    @for s in &list.sessions {
                        tr data-task=(s.task_id) {
                            td { code { (s.task_id) } }
                            td { a href={"/console/users/" (s.user_id)} { (s.user_id) } }
                            td { (s.status) }
                            td { (page::time(&s.started_at)) }
                            td { (s.running_secs) }
                            td {
                                form method="post" action={"/console/voice-sessions/" (s.task_id) "/stop"} {
                                    (shell.csrf_field())
                                    button.danger type="submit" data-confirm=(t("voice.confirm_stop")) { (t("voice.stop")) }
                                }
                            }
                        }
                    }
                }
            } }
            (page::pager(&shell, &base, list.page.page, list.page.page_size, list.page.total))
        }
    };
    Ok(page::render(&shell, t("voice.title"), "voice", body).into_response())
}

async fn stop(State(state): State<AppState>, op: Op, Path(task_id): Path<String>) -> PageResult {
    op.allow(
        &state,
        Method::POST,
        "/api/v1/admin/voice-sessions/{task_id}/stop/",
        Some(task_id.clone()),
    )
    .await?;
    admin::sessions::stop(State(state), op.ctx(), ApiPath(task_id))
        .await
        .or_fail(&op)?;
    Ok(Redirect::to("/console/voice-sessions?done=voice.done").into_response())
}
