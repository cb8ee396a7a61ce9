//! A user's conversations, read-only: the list and one conversation's
//! messages. Both are audited by the API's handlers (`conversation.list`,
//! `conversation.view`), as when read through the API.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Path as ApiPath, Query as ApiQuery};
use crate::http::admin::{self, PageQuery};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/users/{id}/conversations", get(list))
        .route("/console/conversations/{id}", get(view))
}

#[derive(Debug, Default, Deserialize)]
pub struct PageNo {
    page: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Query(q): Query<PageNo>,
) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/users/{id}/conversations/",
        Some(id.to_string()),
    )
    .await?;
    let list = admin::conversations::list(
        State(state),
        op.ctx(),
        ApiPath(id),
        ApiQuery(PageQuery {
            page: q.page,
            page_size: Some(20),
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let body = html! {
        p { a href={"/console/users/" (id)} { "← " (t("nav.users")) " " (id) } }
        @if list.conversations.is_empty() {
            (page::empty(&shell, None))
        } @else {
            div.table { table #conversations {
                thead { tr { th { (t("common.id")) } th { (t("conv.title_col")) } th { (t("conv.updated")) } th { (t("common.created")) } } }
                tbody {
                    @for c in &list.conversations {
                        tr {
                            td { a href={"/console/conversations/" (c.id)} { (c.id) } }
                            td { a href={"/console/conversations/" (c.id)} { (c.title) } }
                            td { (page::time(&c.updated_at)) }
                            td { (page::time(&c.created_at)) }
                        }
                    }
                }
            } }
            (page::pager(&shell, &format!("/console/users/{id}/conversations"), list.page.page, list.page.page_size, list.page.total))
        }
    };
    Ok(page::render(&shell, t("conv.title"), "users", body).into_response())
}

async fn view(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Query(q): Query<PageNo>,
) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    op.allow(
        &state,
        Method::GET,
        "/api/v1/admin/conversations/{id}/",
        Some(id.to_string()),
    )
    .await?;
    let d = admin::conversations::view(
        State(state),
        op.ctx(),
        ApiPath(id),
        ApiQuery(PageQuery {
            page: q.page,
            page_size: Some(50),
        }),
    )
    .await
    .or_fail(&op)?
    .0;
    let user = d.conversation.user_id;
    let body = html! {
        p { a href={"/console/users/" (user) "/conversations"} { "← " (t("conv.title")) } }
        @if d.messages.is_empty() {
            (page::empty(&shell, None))
        } @else {
            ol.messages #messages {
                @for m in &d.messages {
                    li.{ (m.role) } {
                        span.meta { (if m.role == "user" { t("conv.child") } else { t("conv.assistant") }) " · " (page::time(&m.created_at)) @if m.moderated { " · " (t("conv.moderated")) } }
                        p { (m.content) }
                    }
                }
            }
            (page::pager(&shell, &format!("/console/conversations/{id}"), d.page.page, d.page.page_size, d.page.total))
        }
    };
    Ok(page::render(&shell, &d.conversation.title, "users", body).into_response())
}
