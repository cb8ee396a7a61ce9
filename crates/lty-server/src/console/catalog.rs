//! The catalogue: plans (create, edit, retire). Changing plans needs the
//! superadmin role, as in the API: operators see the forms and are refused
//! with the policy's `403`.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use lty_core::admin::AdminRole;
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Json, Path as ApiPath, Query as ApiQuery};
use crate::http::admin;
use crate::http::admin::plans::{AdminPlanOut, PlanListQuery, PlanPatchIn};
use crate::http::subscriptions::PlanIn;
use crate::state::AppState;
use lty_store::sort::{PlanSort, Sort, SortKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/plans", get(list).post(create))
        .route("/console/plans/{id}", get(edit).post(update))
        .route("/console/plans/{id}/retire", post(retire))
}

/// Links between the catalogue's pages.
pub fn subnav(op: &Op, active: &str) -> Markup {
    let t = |k| op.lang.t(k);
    html! {
        nav.range aria-label=(t("nav.catalog")) {
            @for (id, href, key) in [
                ("plans", "/console/plans", "plans.title"),
                ("personas", "/console/personas", "personas.title"),
                ("achievements", "/console/achievements", "achievements.title"),
            ] {
                a href=(href) aria-current=[(id == active).then_some("page")] { (t(key)) }
            }
        }
    }
}

/// A page of a catalogue listing and its paging.
pub type CatalogPage<T> = Result<(Vec<T>, crate::http::admin::PageInfo), page::Fail>;

/// The first item `is` picks from a paged listing, page after page
/// (catalogues are small).
pub async fn find_paged<T, F>(
    state: &AppState,
    op: &Op,
    fetch: fn(AppState, Op, u64) -> F,
    is: impl Fn(&T) -> bool,
) -> Result<Option<T>, page::Fail>
where
    F: std::future::Future<Output = CatalogPage<T>>,
{
    let mut page_no = 1;
    loop {
        let (items, info) = fetch(state.clone(), op.clone(), page_no).await?;
        if let Some(found) = items.into_iter().find(&is) {
            return Ok(Some(found));
        }
        if info.page * info.page_size >= info.total {
            return Ok(None);
        }
        page_no += 1;
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn plans(
    state: &AppState,
    op: &Op,
    page_no: u64,
    sort: Sort<PlanSort>,
) -> Result<admin::plans::AdminPlanListOut, page::Fail> {
    let [sort_pair, order_pair] = page::sort_pairs(sort);
    op.allow(state, Method::GET, "/api/v1/admin/plans/", None)
        .await?;
    Ok(admin::plans::list_plans(
        State(state.clone()),
        op.ctx(),
        ApiQuery(PlanListQuery {
            page: Some(page_no),
            page_size: Some(20),
            sort: sort_pair.1,
            order: order_pair.1,
        }),
    )
    .await
    .or_fail(op)?
    .0)
}

async fn plan_page(state: AppState, op: Op, n: u64) -> CatalogPage<AdminPlanOut> {
    let l = plans(&state, &op, n, PlanSort::DEFAULT).await?;
    Ok((l.plans, l.page))
}

/// The plan fields of the create and edit forms.
fn fields(op: &Op, p: Option<&AdminPlanOut>) -> Markup {
    let t = |k| op.lang.t(k);
    html! {
        label for="name" { (t("plans.name")) }
        input #name name="name" type="text" maxlength="64" required value=[p.map(|p| p.plan.name.as_str())];
        label for="daily_ai_messages" { (t("plans.messages")) }
        input #daily_ai_messages name="daily_ai_messages" type="number" min="0" required value=[p.map(|p| p.plan.daily_ai_messages)];
        label for="daily_voice_minutes" { (t("plans.minutes")) }
        input #daily_voice_minutes name="daily_voice_minutes" type="number" min="0" required value=[p.map(|p| p.plan.daily_voice_minutes)];
        label for="price_cents" { (t("plans.price")) }
        input #price_cents name="price_cents" type="number" min="0" required value=[p.map(|p| p.plan.price_cents)];
        label for="currency" { (t("plans.currency")) }
        input #currency name="currency" type="text" pattern="[A-Z]{3}" maxlength="3" required value=(p.map_or("CNY", |p| p.plan.currency.as_str()));
    }
}

/// Every plan, with the create form.
async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let page_no = q.page.unwrap_or(1);
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), PlanSort::DEFAULT);
    let list = plans(&state, &op, page_no, sort).await?;
    let th = |key, label| page::sort_th("/console/plans", sort, key, t(label));
    let base = format!("/console/plans?{}", page::query(&page::sort_pairs(sort)));
    let done = q.done.as_deref().filter(|k| *k == "plans.done");
    let superadmin = op.admin.role.includes(AdminRole::Superadmin);
    let body = html! {
        (subnav(&op, "plans"))
        (page::flash(&shell, done))
        @if !superadmin { p.hint { (t("plans.superadmin")) } }
        section.card {
            @if list.plans.is_empty() {
                (page::empty(&shell, None))
            } @else {
                div.table { table #plans {
                    thead { tr {
                        (th(PlanSort::Id, "common.id")) (th(PlanSort::Code, "plans.code")) (th(PlanSort::Name, "plans.name"))
                        (th(PlanSort::Messages, "plans.messages")) (th(PlanSort::Minutes, "plans.minutes")) (th(PlanSort::Price, "plans.price"))
                        (th(PlanSort::Active, "plans.active")) th { (t("common.actions")) }
                    } }
                    tbody {
                        @for p in &list.plans {
                            tr data-code=(p.plan.code) {
                                td { (p.plan.id) }
                                td { code { (p.plan.code) } }
                                td.name { (p.plan.name) }
                                td { (p.plan.daily_ai_messages) }
                                td { (p.plan.daily_voice_minutes) }
                                td { (p.plan.price_cents) " " (p.plan.currency) }
                                td { (if p.is_active { t("common.yes") } else { t("common.no") }) }
                                td { a href={"/console/plans/" (p.plan.id)} { (t("plans.edit")) } }
                            }
                        }
                    }
                } }
                (page::pager(&shell, &base, list.page.page, list.page.page_size, list.page.total))
            }
        }
        section.card {
            h2 { (t("plans.create")) }
            form.stack method="post" action="/console/plans" {
                (shell.csrf_field())
                label for="code" { (t("plans.code")) }
                input #code name="code" type="text" pattern="[a-z0-9_-]{1,32}" required;
                (fields(&op, None))
                button.primary type="submit" { (t("common.save")) }
            }
        }
    };
    Ok(page::render(&shell, t("plans.title"), "plans", body).into_response())
}

/// The fields of both forms.
#[derive(Debug, Default, Deserialize)]
pub struct PlanForm {
    code: Option<String>,
    name: String,
    daily_ai_messages: u32,
    daily_voice_minutes: u32,
    price_cents: i64,
    currency: String,
}

async fn create(State(state): State<AppState>, op: Op, Form(f): Form<PlanForm>) -> PageResult {
    op.allow(&state, Method::POST, "/api/v1/admin/plans/", None)
        .await?;
    crate::http::subscriptions::create_plan(
        State(state),
        op.auth(),
        Json(PlanIn {
            code: f.code.unwrap_or_default(),
            name: f.name,
            daily_ai_messages: f.daily_ai_messages,
            daily_voice_minutes: f.daily_voice_minutes,
            personas: Vec::new(),
            price_cents: f.price_cents,
            currency: f.currency.trim().to_owned(),
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/plans?done=plans.done").into_response())
}

/// The edit form of one plan.
async fn edit(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let found = find_paged(&state, &op, plan_page, |p| p.plan.id == id).await?;
    let Some(p) = found else {
        return Err(op.fail(lty_core::Error::NotFound {
            what: "plan",
            code: "plan_not_found",
        }));
    };
    let body = html! {
        (subnav(&op, "plans"))
        section.card {
            form.stack #edit-plan method="post" action={"/console/plans/" (id)} {
                (shell.csrf_field())
                p { code { (p.plan.code) } }
                (fields(&op, Some(&p)))
                button.primary type="submit" #save { (t("common.save")) }
            }
        }
        @if p.is_active {
            form method="post" action={"/console/plans/" (id) "/retire"} {
                (shell.csrf_field())
                button.danger type="submit" #retire { (t("plans.retire")) }
            }
        }
    };
    Ok(page::render(&shell, t("plans.edit_title"), "plans", body).into_response())
}

async fn update(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(f): Form<PlanForm>,
) -> PageResult {
    op.allow(
        &state,
        Method::PATCH,
        "/api/v1/admin/plans/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::plans::update_plan(
        State(state),
        op.ctx(),
        ApiPath(id),
        Json(PlanPatchIn {
            name: Some(f.name),
            daily_ai_messages: Some(f.daily_ai_messages),
            daily_voice_minutes: Some(f.daily_voice_minutes),
            personas: None,
            price_cents: Some(f.price_cents),
            currency: Some(f.currency.trim().to_owned()),
            is_active: None,
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/plans?done=plans.done").into_response())
}

async fn retire(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    op.allow(
        &state,
        Method::DELETE,
        "/api/v1/admin/plans/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::plans::delete_plan(State(state), op.ctx(), ApiPath(id))
        .await
        .or_fail(&op)?;
    Ok(Redirect::to("/console/plans?done=plans.done").into_response())
}
