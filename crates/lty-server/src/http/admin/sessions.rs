//! Voice-chat sessions: the Volcengine agents lty started and has not yet
//! stopped, and stopping one (a runaway agent is billed while it runs).

use axum::extract::State;
use chrono::{DateTime, Utc};
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use lty_store::sort::{SessionSort, SortKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, PageInfo, PageQuery, not_found};
use crate::app::voice_chat::{is_task_id, stop_session};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Session routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stop))
}

/// Session filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    pub user_id: Option<i64>,
    /// `starting` or `running`.
    #[param(pattern = "^ *(starting|running)? *$")]
    pub status: Option<String>,
    /// Sort key: `started`, `task`, `user`, `status` (default `started` ascending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else the listing's own
    /// order).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<SessionSort>()
}

/// A voice agent session.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceSessionOut {
    /// The Volcengine `TaskId`.
    pub task_id: String,
    pub user_id: i64,
    pub room_id: String,
    pub agent_user_id: String,
    /// `starting` or `running`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    /// Seconds since it started.
    pub running_secs: i64,
    /// Since when the room has had no user, if it is empty.
    pub offline_since: Option<DateTime<Utc>>,
}

impl VoiceSessionOut {
    fn new(s: VoiceChatSession, now: DateTime<Utc>) -> Self {
        Self {
            running_secs: (now - s.started_at).num_seconds().max(0),
            task_id: s.task_id,
            user_id: s.user_id,
            room_id: s.room_id,
            agent_user_id: s.agent_user_id,
            status: s.status.as_str().to_owned(),
            started_at: s.started_at,
            offline_since: s.offline_since,
        }
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceSessionListOut {
    pub sessions: Vec<VoiceSessionOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// Voice-chat sessions not yet stopped, oldest first unless `sort` and
/// `order` say otherwise (ties by task id).
#[utoipa::path(get, path = "/api/v1/admin/voice-sessions/", tag = "admin", operation_id = "admin_voice_sessions",
    security(("admin_bearer" = [])),
    params(SessionQuery),
    responses(
        (status = 200, body = VoiceSessionListOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _ctx: AdminCtx,
    Query(q): Query<SessionQuery>,
) -> ApiResult<Json<VoiceSessionListOut>> {
    let (offset, limit, page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .window()?;
    let status = match q.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("starting") => Some(SessionStatus::Starting),
        Some("running") => Some(SessionStatus::Running),
        Some(_) => {
            return Err(
                lty_core::Error::validation("status", "must be starting or running").into(),
            );
        }
    };
    let sort =
        super::sorting::resolve(q.sort.as_deref(), q.order.as_deref(), SessionSort::DEFAULT)?;
    let mut sessions: Vec<VoiceChatSession> = state.db.list_sessions(q.user_id, sort).await?;
    sessions.retain(|s| status.is_none_or(|st| s.status == st));
    let total = sessions.len() as u64;
    let now = Utc::now();
    let items = sessions
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|s| VoiceSessionOut::new(s, now))
        .collect();
    Ok(Json(VoiceSessionListOut {
        sessions: items,
        page: PageInfo::new(total, page, size),
    }))
}

/// A stopped session.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceSessionStopOut {
    pub task_id: String,
    pub user_id: i64,
    pub stopped: bool,
}

/// Stops a voice agent (Volcengine `StopVoiceChat`) and forgets it; the
/// user's voice minutes are counted as when they stop it themselves.
/// Audited as `voice_session.stop`.
#[utoipa::path(post, path = "/api/v1/admin/voice-sessions/{task_id}/stop/", tag = "admin", operation_id = "admin_voice_session_stop",
    security(("admin_bearer" = [])),
    params(("task_id" = String, Path, description = "32 hex digits")),
    responses(
        (status = 200, body = VoiceSessionStopOut),
        (status = 400, description = "malformed task id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`voice_session_not_found`", body = ErrorBody),
        (status = 502, description = "Volcengine failed; the session stays listed for the sweeper", body = ErrorBody),
        (status = 503, description = "Volcengine is not configured", body = ErrorBody),
    ))]
pub async fn stop(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(task_id): Path<String>,
) -> ApiResult<Json<VoiceSessionStopOut>> {
    if !is_task_id(&task_id) {
        return Err(
            lty_core::Error::validation("task_id", "must be 32 lower-case hex digits").into(),
        );
    }
    let session = state
        .db
        .session(&task_id)
        .await?
        .ok_or_else(|| not_found("voice chat session", "voice_session_not_found"))?;
    let details = json!({
        "user_id": session.user_id,
        "room_id": session.room_id,
        "started_at": session.started_at,
    });
    ctx.audited(
        &state,
        "voice_session.stop",
        "voice_session",
        &task_id,
        details,
        async { Ok(stop_session(&state, &session).await?) },
    )
    .await?;
    crate::app::voice_chat::count_minutes(&state, &session).await;
    Ok(Json(VoiceSessionStopOut {
        task_id,
        user_id: session.user_id,
        stopped: true,
    }))
}
