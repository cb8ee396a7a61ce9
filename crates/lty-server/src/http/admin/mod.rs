//! The admin API under `/api/v1/admin/`: users, devices, conversations
//! (read-only), the catalog (personas, plans, achievements), voice-chat
//! sessions, stats and the audit log. Who may call what, and what is
//! audited, is the table in [`policy`]; every admin route (those of other
//! modules included) is checked against it by [`crate::auth::AuthAdmin`].
//! docs/admin.md describes every route.

pub mod achievements;
pub mod audit;
mod catalog;
pub mod conversations;
pub mod devices;
pub mod firmware;
pub mod personas;
pub mod plans;
pub mod policy;
pub mod sessions;
pub mod sorting;
pub mod stats;
pub mod users;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lty_core::admin::Admin;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AuthAdmin;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use audit::AuditActor;
pub(crate) use catalog::text;

/// The admin API routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(users::router())
        .merge(devices::router())
        .merge(conversations::router())
        .merge(personas::router())
        .merge(plans::router())
        .merge(achievements::router())
        .merge(sessions::router())
        .merge(stats::router())
        .merge(audit::router())
        .merge(firmware::router())
}

/// Largest `page_size` of admin listings.
pub const MAX_PAGE_SIZE: u64 = 100;

/// Largest `page` number of any listing: offsets computed from it stay far
/// from overflow.
pub const MAX_PAGE: u64 = 1_000_000;

/// Largest `offset` of `?limit=&offset=` listings, for the same reason.
pub const MAX_OFFSET: u64 = 100_000_000;

/// `?page=&page_size=` of admin listings.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number, 1 to 1000000 (default 1).
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    pub page_size: Option<u64>,
}

impl PageQuery {
    /// `(page, page_size)` after defaults, or a 400 naming the bad field.
    pub fn resolve(self) -> Result<(u64, u64), lty_core::Error> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(lty_core::Error::validation("page", "must be 1 to 1000000"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(lty_core::Error::validation(
                "page_size",
                format!("must be 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        Ok((page, size))
    }

    /// `(offset, limit, page, page_size)`.
    pub fn window(self) -> Result<(u64, u64, u64, u64), lty_core::Error> {
        let (page, size) = self.resolve()?;
        Ok(((page - 1) * size, size, page, size))
    }
}

/// The paging part of every admin listing.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PageInfo {
    /// Items over all pages.
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}

impl PageInfo {
    /// Paging for a listing of `total` items.
    pub fn new(total: u64, page: u64, page_size: u64) -> Self {
        Self {
            total,
            page,
            page_size,
        }
    }
}

/// The caller of an admin route with what its audit entries need (who, from
/// where, which request). Authenticates and applies the role policy like
/// [`AuthAdmin`].
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub admin: Admin,
    pub actor: AuditActor,
}

impl FromRequestParts<AppState> for AdminCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = AuthAdmin::from_request_parts(parts, state).await?;
        let actor = AuditActor::from_parts(&auth.admin, parts, state);
        Ok(Self {
            admin: auth.admin,
            actor,
        })
    }
}

impl AdminCtx {
    /// Records an audit entry; an error means nothing may be done or
    /// returned.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target_type: &str,
        target_id: impl ToString,
        details: Value,
    ) -> ApiResult<i64> {
        self.actor
            .record(
                state,
                action,
                Some(target_type),
                Some(target_id.to_string()),
                details,
            )
            .await
    }

    /// Runs `write` after recording its audit entry (`action`), so that no
    /// write happens unaudited. When the write then fails, a second entry
    /// `{action}.failed` with the error code is recorded (best effort) and
    /// the error is returned.
    pub async fn audited<T, F>(
        &self,
        state: &AppState,
        action: &str,
        target_type: &str,
        target_id: impl ToString,
        details: Value,
        write: F,
    ) -> ApiResult<T>
    where
        F: std::future::Future<Output = ApiResult<T>>,
    {
        let target_id = Some(target_id.to_string());
        self.audited_on(state, action, target_type, target_id, details, write)
            .await
    }

    /// [`Self::audited`] for a create: the entry names no target until the
    /// request answers `201`, when the created id is filled in.
    pub async fn audited_create<T, F>(
        &self,
        state: &AppState,
        action: &str,
        target_type: &str,
        details: Value,
        write: F,
    ) -> ApiResult<T>
    where
        F: std::future::Future<Output = ApiResult<T>>,
    {
        self.audited_on(state, action, target_type, None, details, write)
            .await
    }

    async fn audited_on<T, F>(
        &self,
        state: &AppState,
        action: &str,
        target_type: &str,
        target_id: Option<String>,
        details: Value,
        write: F,
    ) -> ApiResult<T>
    where
        F: std::future::Future<Output = ApiResult<T>>,
    {
        self.actor
            .record(state, action, Some(target_type), target_id.clone(), details)
            .await?;
        match write.await {
            Ok(v) => Ok(v),
            Err(err) => {
                let failed = format!("{action}.failed");
                let details = serde_json::json!({
                    "code": err.code(),
                    "status": err.status().as_u16(),
                });
                if let Err(e) = self
                    .actor
                    .record(state, &failed, Some(target_type), target_id, details)
                    .await
                {
                    tracing::error!(
                        code = e.code(),
                        action,
                        "cannot record a failed admin action"
                    );
                }
                Err(err)
            }
        }
    }
}

/// `404` for a missing admin target.
pub fn not_found(what: &'static str, code: &'static str) -> ApiError {
    lty_core::Error::NotFound { what, code }.into()
}

/// An optional JSON body: an empty body or `null` is `None`; anything else
/// must be a JSON object of `T` (`400 malformed_json` / `invalid_body`
/// otherwise).
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> axum::extract::FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        use axum::http::StatusCode;
        let bytes = crate::extract::body_bytes(req, state).await?;
        // No body at all is "no options"; white space alone is a body that
        // is not JSON (`malformed_json` below).
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        match crate::extract::first_byte(&bytes) {
            None | Some(b'{' | b'n') => {}
            Some(_) => {
                return Err(
                    lty_core::Error::validation("body", "must be a JSON object, or null").into(),
                );
            }
        }
        serde_json::from_slice::<Option<T>>(&bytes)
            .or_else(|e| crate::extract::integral_floats_as_integers(&bytes).ok_or(e))
            .map(Self)
            .map_err(|e| {
                if e.is_syntax() || e.is_eof() {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        format!("the body is not valid JSON: {e}"),
                    )
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
                }
            })
    }
}
