//! Achievement definitions in the catalogue (operator): list, create,
//! edit, retire, through the admin API's handlers.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use lty_core::achievement::AchievementRule;
use maud::{Markup, html};
use serde::Deserialize;

use super::catalog::{CatalogPage, find_paged, subnav};
use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Json, Path as ApiPath, Query as ApiQuery};
use crate::http::achievements::AchievementIn;
use crate::http::admin;
use crate::http::admin::achievements::AchievementListQuery;
use crate::http::admin::achievements::{AchievementPatchIn, AdminAchievementOut};
use crate::state::AppState;
use lty_store::sort::{AchievementSort, Sort, SortKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/achievements", get(list).post(create))
        .route("/console/achievements/{id}", get(edit).post(update))
        .route("/console/achievements/{id}/retire", post(retire))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn achievement_page(state: AppState, op: Op, n: u64) -> CatalogPage<AdminAchievementOut> {
    let l = page_of(&state, &op, n, AchievementSort::DEFAULT).await?;
    Ok((l.achievements, l.page))
}

async fn page_of(
    state: &AppState,
    op: &Op,
    page_no: u64,
    sort: Sort<AchievementSort>,
) -> Result<admin::achievements::AdminAchievementListOut, page::Fail> {
    op.allow(state, Method::GET, "/api/v1/admin/achievements/", None)
        .await?;
    Ok(admin::achievements::list_achievements(
        State(state.clone()),
        op.ctx(),
        ApiQuery(AchievementListQuery {
            page: Some(page_no),
            page_size: Some(50),
            sort: Some(sort.key.name().to_owned()),
            order: Some(sort.dir.as_str().to_owned()),
        }),
    )
    .await
    .or_fail(op)?
    .0)
}

fn fields(op: &Op, a: Option<&AdminAchievementOut>) -> Markup {
    let t = |k| op.lang.t(k);
    let a = a.map(|a| &a.achievement);
    html! {
        label for="name" { (t("plans.name")) }
        input #name name="name" type="text" maxlength="64" required value=[a.map(|a| a.name.as_str())];
        label for="description" { (t("achievements.description")) }
        input #description name="description" type="text" maxlength="500" value=[a.map(|a| a.description.as_str())];
        label for="icon" { (t("achievements.icon")) }
        input #icon name="icon" type="text" maxlength="256" value=[a.and_then(|a| a.icon.as_deref())];
        label for="threshold" { (t("achievements.threshold")) }
        input #threshold name="threshold" type="number" min="1" required value=(a.map_or(1, |a| a.threshold));
    }
}

async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let sort = page::sort_of(
        q.sort.as_deref(),
        q.order.as_deref(),
        AchievementSort::DEFAULT,
    );
    let list = page_of(&state, &op, q.page.unwrap_or(1), sort).await?;
    let th = |key, label| page::sort_th("/console/achievements", sort, key, t(label));
    let base = format!(
        "/console/achievements?{}",
        page::query(&page::sort_pairs(sort))
    );
    let done = q.done.as_deref().filter(|k| *k == "catalog.done");
    let body = html! {
        (subnav(&op, "achievements"))
        (page::flash(&shell, done))
        section.card {
            @if list.achievements.is_empty() {
                (page::empty(&shell, None))
            } @else {
                div.table { table #achievements {
                    thead { tr {
                        (th(AchievementSort::Id, "common.id")) (th(AchievementSort::Code, "plans.code")) (th(AchievementSort::Name, "plans.name"))
                        (th(AchievementSort::Event, "achievements.event")) (th(AchievementSort::Threshold, "achievements.threshold"))
                        (th(AchievementSort::Active, "plans.active")) th { (t("common.actions")) }
                    } }
                    tbody {
                        @for a in &list.achievements {
                            tr data-code=(a.achievement.code) {
                                td { (a.achievement.id) }
                                td { code { (a.achievement.code) } }
                                td.name { (a.achievement.name) }
                                td { code { (a.achievement.event_kind) } }
                                td { (a.achievement.threshold) }
                                td { (if a.is_active { t("common.yes") } else { t("common.no") }) }
                                td { a href={"/console/achievements/" (a.achievement.id)} { (t("plans.edit")) } }
                            }
                        }
                    }
                } }
                (page::pager(&shell, &base, list.page.page, list.page.page_size, list.page.total))
            }
        }
        section.card {
            h2 { (t("achievements.create")) }
            form.stack method="post" action="/console/achievements" {
                (shell.csrf_field())
                label for="code" { (t("plans.code")) }
                input #code name="code" type="text" pattern="[a-z0-9_]{1,32}" required;
                label for="event_kind" { (t("achievements.event")) }
                input #event_kind name="event_kind" type="text" required placeholder="card_scanned";
                label for="rule" { (t("achievements.rule")) }
                select #rule name="rule" {
                    option value="total" { (t("achievements.total")) }
                    option value="streak" { (t("achievements.streak")) }
                }
                (fields(&op, None))
                button.primary type="submit" { (t("common.save")) }
            }
        }
    };
    Ok(page::render(&shell, t("achievements.title"), "plans", body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct AchievementForm {
    code: Option<String>,
    event_kind: Option<String>,
    rule: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    icon: Option<String>,
    threshold: i64,
}

async fn create(
    State(state): State<AppState>,
    op: Op,
    Form(f): Form<AchievementForm>,
) -> PageResult {
    op.allow(&state, Method::POST, "/api/v1/admin/achievements/", None)
        .await?;
    let rule = match f.rule.as_deref() {
        Some("streak") => AchievementRule::Streak,
        _ => AchievementRule::Total,
    };
    crate::http::achievements::create(
        State(state),
        op.auth(),
        Json(AchievementIn {
            code: f.code.unwrap_or_default(),
            name: f.name,
            description: f.description,
            icon: f.icon.filter(|i| !i.trim().is_empty()),
            event_kind: f.event_kind.unwrap_or_default(),
            threshold: f.threshold,
            rule: Some(rule),
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/achievements?done=catalog.done").into_response())
}

async fn edit(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let found = find_paged(&state, &op, achievement_page, |a| a.achievement.id == id).await?;
    let Some(a) = found else {
        return Err(op.fail(lty_core::Error::NotFound {
            what: "achievement",
            code: "achievement_not_found",
        }));
    };
    let body = html! {
        (subnav(&op, "achievements"))
        section.card {
            form.stack #edit-achievement method="post" action={"/console/achievements/" (id)} {
                (shell.csrf_field())
                p { code { (a.achievement.code) } " · " code { (a.achievement.event_kind) } }
                (fields(&op, Some(&a)))
                button.primary type="submit" #save { (t("common.save")) }
            }
        }
        @if a.is_active {
            form method="post" action={"/console/achievements/" (id) "/retire"} {
                (shell.csrf_field())
                button.danger type="submit" #retire { (t("plans.retire")) }
            }
        }
    };
    Ok(page::render(&shell, t("achievements.edit_title"), "plans", body).into_response())
}

async fn update(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(f): Form<AchievementForm>,
) -> PageResult {
    op.allow(
        &state,
        Method::PATCH,
        "/api/v1/admin/achievements/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::achievements::update_achievement(
        State(state),
        op.ctx(),
        ApiPath(id),
        Json(AchievementPatchIn {
            name: Some(f.name),
            description: Some(f.description),
            icon: Some(f.icon.unwrap_or_default()),
            threshold: Some(f.threshold),
            is_active: None,
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/achievements?done=catalog.done").into_response())
}

async fn retire(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    op.allow(
        &state,
        Method::DELETE,
        "/api/v1/admin/achievements/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::achievements::delete_achievement(State(state), op.ctx(), ApiPath(id))
        .await
        .or_fail(&op)?;
    Ok(Redirect::to("/console/achievements?done=catalog.done").into_response())
}
