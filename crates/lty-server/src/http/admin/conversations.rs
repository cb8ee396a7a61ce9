//! Read-only access to a user's AI conversations for support. Every view
//! is written to the audit log before anything is answered.

use axum::extract::State;
use chrono::{DateTime, Utc};
use lty_core::chat::Conversation;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::user_not_found;
use super::{AdminCtx, PageInfo, PageQuery, not_found};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::ai::MessageOut;
use crate::state::AppState;

/// Conversation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(view))
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminConversationOut {
    pub id: i64,
    pub user_id: i64,
    pub persona_id: Option<i64>,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Conversation> for AdminConversationOut {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            user_id: c.user_id,
            persona_id: c.persona_id,
            title: c.title,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A page of a user's conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminConversationListOut {
    pub conversations: Vec<AdminConversationOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// A user's conversations, latest activity first (ties by id). Audited as
/// `conversation.list`.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/conversations/", tag = "admin", operation_id = "admin_user_conversations",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "user id"), PageQuery),
    responses(
        (status = 200, body = AdminConversationListOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AdminConversationListOut>> {
    let (offset, limit, page, size) = q.window()?;
    state.db.user(id).await?.ok_or_else(user_not_found)?;
    let found = state.db.conversations_of_user(id, offset, limit).await?;
    ctx.audit(
        &state,
        "conversation.list",
        "user",
        id,
        json!({ "page": page, "page_size": size }),
    )
    .await?;
    Ok(Json(AdminConversationListOut {
        conversations: found.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(found.total, page, size),
    }))
}

/// A conversation with a page of its messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminConversationDetailOut {
    pub conversation: AdminConversationOut,
    /// Oldest first (by id).
    pub messages: Vec<MessageOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// One conversation with a page of its messages, oldest first. Audited as
/// `conversation.view` (with the user and page).
#[utoipa::path(get, path = "/api/v1/admin/conversations/{id}/", tag = "admin", operation_id = "admin_conversation_view",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "conversation id"), PageQuery),
    responses(
        (status = 200, body = AdminConversationDetailOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ))]
pub async fn view(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AdminConversationDetailOut>> {
    let (offset, limit, page, size) = q.window()?;
    let conversation = state
        .db
        .conversation(id)
        .await?
        .ok_or_else(|| not_found("conversation", "conversation_not_found"))?;
    let messages = state.db.messages(id, offset, limit).await?;
    ctx.audit(
        &state,
        "conversation.view",
        "conversation",
        id,
        json!({ "user_id": conversation.user_id, "page": page, "page_size": size }),
    )
    .await?;
    Ok(Json(AdminConversationDetailOut {
        conversation: conversation.into(),
        messages: messages.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(messages.total, page, size),
    }))
}
