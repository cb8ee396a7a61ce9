//! The operator console at `/console/`: server-rendered HTML pages (maud)
//! over the same admin handlers, role policy and audit log as
//! `/api/v1/admin/` — every action first passes
//! [`crate::http::admin::policy::enforce_route`] for the API route it
//! mirrors, then calls that route's handler function, so the console can do
//! nothing the API would refuse. Sessions, CSRF and the language are in
//! [`session`]; the page shell in [`page`]. docs/console.md shows each page.

mod achievements;
mod assets;
mod audit;
mod cards;
mod catalog;
mod conversations;
mod dashboard;
mod devices;
mod firmware;
mod i18n;
mod page;
mod personas;
mod session;
mod users;
mod voice;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub use i18n::Lang;

/// The console's routes, with the CSRF check on every state-changing
/// request.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(session::to_home))
        .route("/console/", get(dashboard::show))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/lang/{lang}", get(session::switch_lang))
        .route("/console/assets/{file}", get(assets::serve))
        .merge(users::router())
        .merge(cards::router())
        .merge(catalog::router())
        .merge(personas::router())
        .merge(achievements::router())
        .merge(voice::router())
        .merge(conversations::router())
        .merge(firmware::router())
        .merge(devices::router())
        .merge(audit::router())
        .layer(axum::middleware::from_fn(session::csrf_guard))
}
