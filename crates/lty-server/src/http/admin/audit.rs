//! The audit log: recording entries (who, what, when, from where) and the
//! read-only listing `GET /api/v1/admin/audit/`. There is no route that
//! changes or deletes an entry.

use axum::extract::State;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use lty_core::admin::Admin;
use lty_store::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use lty_store::sort::{AuditSort, SortKey};
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
    /// Where the request's entries are noted for [`record_outcomes`].
    slot: Option<AuditSlot>,
}

/// The ids of the audit entries a request wrote, so that its outcome can
/// be added to them when it ends ([`record_outcomes`]).
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

impl AuditSlot {
    fn push(&self, id: i64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }

    fn take(&self) -> Vec<i64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn last(&self) -> Option<i64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .copied()
    }
}

/// Largest created-resource body read back for its id.
const CREATED_BODY_LIMIT: usize = 256 * 1024;

/// Completes the audit entries of an admin request once it has been
/// answered: `ok` (2xx), `refused` (4xx) or `failed` (5xx) with the status
/// and error code, and, for a `201`, the created resource's `id` as the
/// target when the entry had none. Entries are written ahead of the action
/// (so nothing happens unaudited); a request refused before its entry was
/// written (no valid token, a wrong role, a malformed body on a route that
/// audits in its handler) leaves none. See docs/admin.md.
pub async fn record_outcomes(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !req.uri().path().starts_with("/api/v1/admin/") {
        return next.run(req).await;
    }
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let res = next.run(req).await;
    let ids = slot.take();
    if ids.is_empty() {
        return res;
    }
    let status = res.status();
    let outcome = if status.is_success() {
        "ok"
    } else if status.is_client_error() {
        "refused"
    } else {
        "failed"
    };
    // Only a create's answer and error answers are read: both are small.
    let (res, body) = if status == axum::http::StatusCode::CREATED || !status.is_success() {
        read_json_body(res).await
    } else {
        (res, None)
    };
    let code = body
        .as_ref()
        .filter(|_| !status.is_success())
        .and_then(|b| b.get("code").cloned());
    let created = body
        .as_ref()
        .filter(|_| status == axum::http::StatusCode::CREATED)
        .and_then(created_id);
    let result = serde_json::json!({ "status": status.as_u16(), "code": code });
    for id in ids {
        if let Err(err) = state
            .db
            .finish_audit(id, outcome, created.clone(), result.clone())
            .await
        {
            tracing::error!(%err, id, "cannot record the outcome of an admin action");
        }
    }
    res
}

/// The id a create answered with: `id`, or the `id` of its one object field
/// (`{"batch": {"id": ...}}`).
fn created_id(body: &Value) -> Option<String> {
    let id = body.get("id").or_else(|| {
        body.as_object()?
            .values()
            .find_map(|v| v.as_object()?.get("id"))
    })?;
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The JSON body of a small JSON response, with the response rebuilt
/// around the bytes read.
async fn read_json_body(
    res: axum::response::Response,
) -> (axum::response::Response, Option<Value>) {
    use http_body_util::BodyExt;
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return (res, None);
    }
    let (parts, body) = res.into_parts();
    let limited = http_body_util::Limited::new(body, CREATED_BODY_LIMIT);
    match limited.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let value = serde_json::from_slice(&bytes).ok();
            (
                axum::response::Response::from_parts(parts, axum::body::Body::from(bytes)),
                value,
            )
        }
        Err(_) => (
            axum::response::Response::from_parts(parts, axum::body::Body::empty()),
            None,
        ),
    }
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
            slot: parts.extensions.get::<AuditSlot>().cloned(),
        }
    }

    /// Adds `extra` (a JSON object) to the details of the last entry this
    /// request wrote: what is known only once the action is done, such as
    /// the state after a change. Best effort: the action has happened.
    pub async fn annotate_last(&self, state: &AppState, extra: Value) {
        let Some(id) = self.slot.as_ref().and_then(AuditSlot::last) else {
            return;
        };
        if let Err(err) = state.db.annotate_audit(id, extra).await {
            tracing::error!(%err, id, "cannot complete an admin audit entry");
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
        if let Some(slot) = &self.slot {
            slot.push(id);
        }
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
    /// Sort key: `time`, `operator`, `action`, `target` (type, then id) (default `time` descending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else the listing's own
    /// order).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<AuditSort>()
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
    /// `pending` while the request runs, then `ok`, `refused` (answered
    /// 4xx: nothing was changed) or `failed` (5xx); `details.result` holds
    /// the status and error code. `null` for entries older than outcomes.
    pub outcome: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The action's parameters; for changes `before` and `after` (secrets
    /// excluded); `result` once the request has ended.
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
            outcome: e.outcome,
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

/// The audit log, newest first (by id) unless `sort` and `order` say
/// otherwise, filtered. Read-only: entries are
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
    let sort = super::sorting::resolve(q.sort.as_deref(), q.order.as_deref(), AuditSort::DEFAULT)?;
    let entries = state.db.audit_entries(&filter, sort, offset, limit).await?;
    Ok(Json(AuditListOut {
        entries: entries.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(entries.total, page, size),
    }))
}
