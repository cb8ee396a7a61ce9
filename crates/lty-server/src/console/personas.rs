//! Personas in the catalogue (superadmin writes): list, create, edit,
//! retire, through the admin API's handlers.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::catalog::{CatalogPage, find_paged, subnav};
use super::page::{self, OrFail, PageResult};
use super::session::Op;
use crate::extract::{Json, Path as ApiPath, Query as ApiQuery};
use crate::http::admin;
use crate::http::admin::personas::PersonaListQuery;
use crate::http::admin::personas::{AdminPersonaOut, PersonaIn, PersonaPatchIn};
use crate::state::AppState;
use lty_store::sort::{PersonaSort, Sort, SortKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/personas", get(list).post(create))
        .route("/console/personas/{id}", get(edit).post(update))
        .route("/console/personas/{id}/retire", post(retire))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<u64>,
    done: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn persona_page(state: AppState, op: Op, n: u64) -> CatalogPage<AdminPersonaOut> {
    let l = page_of(&state, &op, n, PersonaSort::DEFAULT).await?;
    Ok((l.personas, l.page))
}

async fn page_of(
    state: &AppState,
    op: &Op,
    page_no: u64,
    sort: Sort<PersonaSort>,
) -> Result<admin::personas::AdminPersonaListOut, page::Fail> {
    op.allow(state, Method::GET, "/api/v1/admin/personas/", None)
        .await?;
    Ok(admin::personas::list_personas(
        State(state.clone()),
        op.ctx(),
        ApiQuery(PersonaListQuery {
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

fn fields(op: &Op, p: Option<&AdminPersonaOut>) -> Markup {
    let t = |k| op.lang.t(k);
    html! {
        label for="name" { (t("plans.name")) }
        input #name name="name" type="text" maxlength="64" required value=[p.map(|p| p.name.as_str())];
        label for="system_prompt" { (t("personas.prompt")) }
        textarea #system_prompt name="system_prompt" rows="6" maxlength="4000" required { (p.map_or("", |p| p.system_prompt.as_str())) }
        label for="greeting" { (t("personas.greeting")) }
        input #greeting name="greeting" type="text" maxlength="500" value=[p.map(|p| p.greeting.as_str())];
        label for="voice_id" { (t("personas.voice")) }
        input #voice_id name="voice_id" type="text" maxlength="64" value=[p.and_then(|p| p.voice_id.as_deref())];
        label for="age_min" { (t("personas.age_min")) }
        input #age_min name="age_min" type="number" min="0" max="18" value=(p.map_or(3, |p| p.age_min));
        label for="age_max" { (t("personas.age_max")) }
        input #age_max name="age_max" type="number" min="0" max="18" value=(p.map_or(12, |p| p.age_max));
    }
}

async fn list(State(state): State<AppState>, op: Op, Query(q): Query<ListQuery>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let sort = page::sort_of(q.sort.as_deref(), q.order.as_deref(), PersonaSort::DEFAULT);
    let list = page_of(&state, &op, q.page.unwrap_or(1), sort).await?;
    let th = |key, label| page::sort_th("/console/personas", sort, key, t(label));
    let base = format!("/console/personas?{}", page::query(&page::sort_pairs(sort)));
    let done = q.done.as_deref().filter(|k| *k == "catalog.done");
    let body = html! {
        (subnav(&op, "personas"))
        (page::flash(&shell, done))
        section.card {
            @if list.personas.is_empty() {
                (page::empty(&shell, None))
            } @else {
                div.table { table #personas {
                    thead { tr {
                        (th(PersonaSort::Id, "common.id")) (th(PersonaSort::Slug, "personas.slug")) (th(PersonaSort::Name, "plans.name"))
                        (th(PersonaSort::Ages, "personas.ages")) (th(PersonaSort::Active, "plans.active")) th { (t("common.actions")) }
                    } }
                    tbody {
                        @for p in &list.personas {
                            tr data-slug=(p.slug) {
                                td { (p.id) }
                                td { code { (p.slug) } }
                                td.name { (p.name) }
                                td { (p.age_min) "–" (p.age_max) }
                                td { (if p.is_active { t("common.yes") } else { t("common.no") }) }
                                td { a href={"/console/personas/" (p.id)} { (t("plans.edit")) } }
                            }
                        }
                    }
                } }
                (page::pager(&shell, &base, list.page.page, list.page.page_size, list.page.total))
            }
        }
        section.card {
            h2 { (t("personas.create")) }
            form.stack method="post" action="/console/personas" {
                (shell.csrf_field())
                label for="slug" { (t("personas.slug")) }
                input #slug name="slug" type="text" pattern="[a-z0-9_-]{1,32}" required;
                (fields(&op, None))
                button.primary type="submit" { (t("common.save")) }
            }
        }
    };
    Ok(page::render(&shell, t("personas.title"), "plans", body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct PersonaForm {
    slug: Option<String>,
    name: String,
    system_prompt: String,
    #[serde(default)]
    greeting: String,
    voice_id: Option<String>,
    age_min: Option<i32>,
    age_max: Option<i32>,
}

async fn create(State(state): State<AppState>, op: Op, Form(f): Form<PersonaForm>) -> PageResult {
    op.allow(&state, Method::POST, "/api/v1/admin/personas/", None)
        .await?;
    admin::personas::create_persona(
        State(state),
        op.ctx(),
        Json(PersonaIn {
            slug: f.slug.unwrap_or_default(),
            name: f.name,
            system_prompt: f.system_prompt,
            greeting: f.greeting,
            voice_id: f.voice_id,
            age_min: f.age_min,
            age_max: f.age_max,
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/personas?done=catalog.done").into_response())
}

async fn edit(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    let shell = op.shell();
    let t = |k| op.lang.t(k);
    let found = find_paged(&state, &op, persona_page, |p| p.id == id).await?;
    let Some(p) = found else {
        return Err(op.fail(lty_core::Error::NotFound {
            what: "persona",
            code: "persona_not_found",
        }));
    };
    let body = html! {
        (subnav(&op, "personas"))
        section.card {
            form.stack #edit-persona method="post" action={"/console/personas/" (id)} {
                (shell.csrf_field())
                p { code { (p.slug) } }
                (fields(&op, Some(&p)))
                button.primary type="submit" #save { (t("common.save")) }
            }
        }
        @if p.is_active {
            form method="post" action={"/console/personas/" (id) "/retire"} {
                (shell.csrf_field())
                button.danger type="submit" #retire { (t("plans.retire")) }
            }
        }
    };
    Ok(page::render(&shell, t("personas.edit_title"), "plans", body).into_response())
}

async fn update(
    State(state): State<AppState>,
    op: Op,
    Path(id): Path<i64>,
    Form(f): Form<PersonaForm>,
) -> PageResult {
    op.allow(
        &state,
        Method::PATCH,
        "/api/v1/admin/personas/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::personas::update_persona(
        State(state),
        op.ctx(),
        ApiPath(id),
        Json(PersonaPatchIn {
            name: Some(f.name),
            system_prompt: Some(f.system_prompt),
            greeting: Some(f.greeting),
            voice_id: Some(f.voice_id.unwrap_or_default()),
            age_min: f.age_min,
            age_max: f.age_max,
            is_active: None,
        }),
    )
    .await
    .or_fail(&op)?;
    Ok(Redirect::to("/console/personas?done=catalog.done").into_response())
}

async fn retire(State(state): State<AppState>, op: Op, Path(id): Path<i64>) -> PageResult {
    op.allow(
        &state,
        Method::DELETE,
        "/api/v1/admin/personas/{id}/",
        Some(id.to_string()),
    )
    .await?;
    admin::personas::delete_persona(State(state), op.ctx(), ApiPath(id))
        .await
        .or_fail(&op)?;
    Ok(Redirect::to("/console/personas?done=catalog.done").into_response())
}
