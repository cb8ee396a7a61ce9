//! The audit log: recording entries (who, what, when, from where) and the
//! read-only listing `GET /api/v1/admin/audit/`. There is no route that
//! changes or deletes an entry.

use axum::extract::State;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use lty_core::admin::Admin;
use lty_store::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_http::request_id::RequestId;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, PageInfo, PageQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ClientIp;
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Who performs an admin action, from where, in which request.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub admin_id: i64,
    pub admin_username: String,
    /// The client IP, derived like the rate limits do (trusted proxies).
    pub ip: String,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
}

impl AuditActor {
    /// The actor of the request `parts`, authenticated as `admin`.
    pub fn from_parts(admin: &Admin, parts: &Parts, state: &AppState) -> Self {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        let ip = ClientIp::resolve(peer, &parts.headers, &state.config.limits);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .map(|s| s.chars().take(128).collect());
        Self {
            admin_id: admin.id,
            admin_username: admin.username.clone(),
            ip: ip.0.to_string(),
            request_id,
        }
    }

    /// Stores an entry; a failure is an error the caller must not swallow.
    pub async fn record(
        &self,
        state: &AppState,
        action: &str,
        target_type: Option<&str>,
        target_id: Option<String>,
        details: Value,
    ) -> ApiResult<i64> {
        let id = state
            .db
            .insert_audit(NewAuditEntry {
                admin_id: self.admin_id,
                admin_username: self.admin_username.clone(),
                action: action.to_owned(),
                target_type: target_type.map(str::to_owned),
                target_id: target_id.map(|t| t.chars().take(128).collect()),
                details,
                ip: Some(self.ip.clone()),
                request_id: self.request_id.clone(),
            })
            .await
            .inspect_err(
                |e| tracing::error!(error = %e, action, "cannot write the admin audit log"),
            )?;
        Ok(id)
    }
}

/// Audit log filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    pub admin_id: Option<i64>,
    /// An action code (`user.disable`), or a prefix ending in `.`
    /// (`user.`).
    pub action: Option<String>,
    /// `user`, `device`, `conversation`, `persona`, `plan`, `achievement`,
    /// `card_batch`, `card`, `voice_session`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub id: i64,
    pub admin_id: i64,
    pub admin_username: String,
    /// Stable action code (`user.disable`, `conversation.view`, ...);
    /// `{action}.failed` records a write that failed after it was
    /// audited.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The action's parameters.
    #[schema(value_type = Object)]
    pub details: Value,
    /// Client IP.
    pub ip: Option<String>,
    /// `X-Request-Id` of the request.
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            admin_id: e.admin_id,
            admin_username: e.admin_username,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            details: e.details,
            ip: e.ip,
            request_id: e.request_id,
            created_at: e.created_at,
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditListOut {
    pub entries: Vec<AuditEntryOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

fn short(field: &'static str, v: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match v.map(|s| s.trim().to_owned()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => {
            Err(lty_core::Error::validation(
                field,
                format!("must be at most {max} printable characters"),
            )
            .into())
        }
        Some(s) => Ok(Some(s)),
    }
}

/// The audit log, newest first (by id), filtered. Read-only: entries are
/// never changed or deleted through the API.
#[utoipa::path(get, path = "/api/v1/admin/audit/", tag = "admin", operation_id = "admin_audit_list",
    security(("admin_bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditListOut),
        (status = 400, description = "bad filter or paging", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditListOut>> {
    let (offset, limit, page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .window()?;
    if let (Some(s), Some(u)) = (q.since, q.until)
        && s >= u
    {
        return Err(lty_core::Error::validation("until", "must be after since").into());
    }
    let filter = AuditFilter {
        admin_id: q.admin_id,
        action: short("action", q.action, 64)?,
        target_type: short("target_type", q.target_type, 32)?,
        target_id: short("target_id", q.target_id, 128)?,
        since: q.since,
        until: q.until,
    };
    let entries = state.db.audit_entries(&filter, offset, limit).await?;
    Ok(Json(AuditListOut {
        entries: entries.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(entries.total, page, size),
    }))
}
