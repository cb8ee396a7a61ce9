//! Users: search (id, phone, username, free text), one user with devices,
//! subscription, card history and usage, disable / enable, and resetting
//! the daily chat quota.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use lty_core::PhoneNumber;
use lty_core::user::{DeviceBinding, User};
use lty_store::admin_queries::UserSearch;
use lty_store::sort::{SortKey, UserSort};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCtx, OptionalJson, PageInfo, PageQuery, not_found};
use crate::app::devices;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::cards::HistoryItemOut;
use crate::http::subscriptions::{SubscriptionOut, subscription_of};
use crate::state::AppState;

/// User routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(view))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(reset_quota))
}

/// Card scans shown on a user's page.
const SCAN_HISTORY: u64 = 50;

pub(super) fn user_not_found() -> ApiError {
    not_found("user", "user_not_found")
}

/// A user as operators see it (the phone number in full).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserOut {
    pub id: i64,
    pub username: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    /// False once disabled: tokens stop working and logins are refused.
    pub is_active: bool,
    pub date_joined: DateTime<Utc>,
}

impl From<User> for AdminUserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            nickname: u.nickname,
            avatar_url: u.avatar_url,
            phone: u.phone,
            is_active: u.is_active,
            date_joined: u.date_joined,
        }
    }
}

/// User search filters; every given one must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearchQuery {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    /// Free text: a user id, or part of a username, nickname or phone
    /// number (at most 64 characters).
    pub q: Option<String>,
    /// A phone number in any accepted form (`13812345678`, `+86 138...`).
    pub phone: Option<String>,
    /// Exact username.
    pub username: Option<String>,
    /// Exact user id.
    pub id: Option<i64>,
    pub is_active: Option<bool>,
    /// Sort key: `id`, `username`, `nickname`, `phone`, `joined`, `active` (default `id` ascending). Ties are broken by id.
    #[param(schema_with = sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else the listing's own
    /// order).
    #[param(schema_with = super::sorting::order_schema)]
    pub order: Option<String>,
}

fn sort_keys() -> utoipa::openapi::schema::Object {
    super::sorting::keys_schema::<UserSort>()
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListOut {
    pub users: Vec<AdminUserOut>,
    #[serde(flatten)]
    pub page: PageInfo,
}

fn text_filter(field: &'static str, v: Option<String>) -> ApiResult<Option<String>> {
    match v.map(|s| s.trim().to_owned()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.chars().count() > 64 || s.chars().any(char::is_control) => Err(
            lty_core::Error::validation(field, "must be at most 64 printable characters").into(),
        ),
        Some(s) => Ok(Some(s)),
    }
}

/// Searches users by id, phone number, username or free text, by id or
/// in the order asked (audited as `user.search`).
#[utoipa::path(get, path = "/api/v1/admin/users/", tag = "admin", operation_id = "admin_users_search",
    security(("admin_bearer" = [])),
    params(UserSearchQuery),
    responses(
        (status = 200, body = UserListOut),
        (status = 400, description = "bad filter or paging", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Query(q): Query<UserSearchQuery>,
) -> ApiResult<Json<UserListOut>> {
    let (offset, limit, page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .window()?;
    let phone = match text_filter("phone", q.phone)? {
        Some(p) => Some(PhoneNumber::parse(&p)?.as_str().to_owned()),
        None => None,
    };
    let search = UserSearch {
        q: text_filter("q", q.q)?,
        phone,
        username: text_filter("username", q.username)?,
        id: q.id,
        is_active: q.is_active,
    };
    let sort = super::sorting::resolve(q.sort.as_deref(), q.order.as_deref(), UserSort::DEFAULT)?;
    let found = state.db.search_users(&search, sort, offset, limit).await?;
    ctx.actor
        .record(
            &state,
            "user.search",
            Some("user"),
            None,
            json!({
            "q": search.q,
            "phone": search.phone,
            "username": search.username,
            "id": search.id,
            "is_active": search.is_active,
            "page": page,
            "results": found.items.len(),
            }),
        )
        .await?;
    Ok(Json(UserListOut {
        users: found.items.into_iter().map(Into::into).collect(),
        page: PageInfo::new(found.total, page, size),
    }))
}

/// A device binding of the user, current or ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminBindingOut {
    pub id: i64,
    pub user_id: i64,
    #[schema(value_type = String, example = "02:00:00:00:00:05")]
    pub mac_address: String,
    pub name: Option<String>,
    pub bound_at: DateTime<Utc>,
    pub unbound_at: Option<DateTime<Utc>>,
}

impl From<DeviceBinding> for AdminBindingOut {
    fn from(b: DeviceBinding) -> Self {
        Self {
            id: b.id,
            user_id: b.user_id,
            mac_address: b.mac_address.to_string(),
            name: b.name,
            bound_at: b.bound_at,
            unbound_at: b.unbound_at,
        }
    }
}

/// A device the user holds now, with its online state.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDeviceOut {
    #[serde(flatten)]
    pub binding: AdminBindingOut,
    /// Seen within the last 5 minutes.
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
}

/// Usage counters of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUsageOut {
    /// Chat messages counted against today's quota (UTC day).
    pub chat_messages_today: i64,
    /// Conversations over all time.
    pub conversations: u64,
    /// Running totals per event kind (`chat_message`, `voice_minutes`,
    /// `card_scanned`, ...).
    pub totals: BTreeMap<String, i64>,
    /// Voice-chat sessions running now.
    pub voice_sessions_running: usize,
}

/// Everything support needs about one user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetailOut {
    pub user: AdminUserOut,
    /// Devices bound now.
    pub devices: Vec<UserDeviceOut>,
    /// Every binding the user ever had, newest first.
    pub binding_history: Vec<AdminBindingOut>,
    pub subscription: SubscriptionOut,
    /// The latest card scans, newest first.
    pub card_history: Vec<HistoryItemOut>,
    pub usage: AdminUsageOut,
}

/// One user with devices, subscription, card history and usage (audited
/// as `user.view`).
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/", tag = "admin", operation_id = "admin_user_view",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, body = UserDetailOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ))]
pub async fn view(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserDetailOut>> {
    let user = state.db.user(id).await?.ok_or_else(user_not_found)?;
    let mut devices = Vec::new();
    for b in state.db.bindings_of_user(id).await? {
        let (online, last_seen) = devices::online_state(&state, &b.mac_address).await?;
        devices.push(UserDeviceOut {
            binding: b.into(),
            online,
            last_seen,
        });
    }
    let history = state.db.binding_rows_of_user(id).await?;
    let subscription = subscription_of(&state, id).await?;
    let scans = state.db.scans_of_user(id, SCAN_HISTORY).await?;
    let chat_today = state
        .cache
        .get(&crate::app::chat::quota_key(id, Utc::now()))
        .await?
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let conversations = state.db.conversations_of_user(id, 0, 1).await?.total;
    let totals = state.db.progress_of_user(id).await?.into_iter().collect();
    let voice = state.db.sessions_of_user(id).await?.len();
    ctx.audit(&state, "user.view", "user", id, json!({}))
        .await?;
    Ok(Json(UserDetailOut {
        user: user.into(),
        devices,
        binding_history: history.into_iter().map(Into::into).collect(),
        subscription,
        card_history: scans
            .into_iter()
            .map(|s| HistoryItemOut {
                card_id: s.card.id,
                batch_id: s.batch.id,
                kind: s.batch.kind,
                content_ref: s.batch.content_ref,
                mac_address: s.mac_address,
                scanned_at: s.scanned_at,
            })
            .collect(),
        usage: AdminUsageOut {
            chat_messages_today: chat_today,
            conversations,
            totals,
            voice_sessions_running: voice,
        },
    }))
}

/// Why an account is disabled or enabled, for the audit log.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReasonIn {
    /// At most 500 characters.
    pub reason: Option<String>,
}

fn reason(body: OptionalJson<ReasonIn>) -> ApiResult<Option<String>> {
    let Some(body) = body.0 else {
        return Ok(None);
    };
    match body.reason.map(|r| r.trim().to_owned()) {
        Some(r) if r.chars().count() > 500 => {
            Err(lty_core::Error::validation("reason", "must be at most 500 characters").into())
        }
        Some(r) if r.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A user's new account state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountStateOut {
    pub id: i64,
    pub is_active: bool,
}

/// Disables a user: every token of theirs stops working at once (`403`),
/// logins (MAC, SMS, WeChat) are refused, and their open device sockets
/// are closed on every instance (close code 4001). Audited as
/// `user.disable`.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable/", tag = "admin", operation_id = "admin_user_disable",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body(content = Option<ReasonIn>, description = "optional"),
    responses(
        (status = 200, body = AccountStateOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    body: OptionalJson<ReasonIn>,
) -> ApiResult<Json<AccountStateOut>> {
    set_account_state(&state, &ctx, id, body, false).await
}

/// Enables a disabled user again (new logins work; old tokens that have
/// not expired work again). Audited as `user.enable`.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable/", tag = "admin", operation_id = "admin_user_enable",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body(content = Option<ReasonIn>, description = "optional"),
    responses(
        (status = 200, body = AccountStateOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    body: OptionalJson<ReasonIn>,
) -> ApiResult<Json<AccountStateOut>> {
    set_account_state(&state, &ctx, id, body, true).await
}

/// Enables or disables user `id`, audited as `user.enable` /
/// `user.disable` with the reason: the account flag, the cache marker
/// token-only routes read, and (disabling) the user's open sockets.
async fn set_account_state(
    state: &AppState,
    ctx: &AdminCtx,
    id: i64,
    body: OptionalJson<ReasonIn>,
    active: bool,
) -> ApiResult<Json<AccountStateOut>> {
    let reason = reason(body)?;
    let user = state.db.user(id).await?.ok_or_else(user_not_found)?;
    let action = if active {
        "user.enable"
    } else {
        "user.disable"
    };
    let details = json!({
        "reason": reason,
        "before": { "is_active": user.is_active },
        "after": { "is_active": active },
    });
    ctx.audited(state, action, "user", id, details, async {
        state
            .db
            .set_user_active(id, active)
            .await?
            .ok_or_else(user_not_found)?;
        crate::app::auth::mark_disabled(state, id, !active).await?;
        if !active {
            crate::ws::kick_user(state, id).await?;
        }
        let done = if active {
            "user enabled"
        } else {
            "user disabled"
        };
        tracing::info!(user_id = id, admin_id = ctx.admin.id, "{done}");
        Ok(())
    })
    .await?;
    Ok(Json(AccountStateOut {
        id,
        is_active: active,
    }))
}

/// The quota reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaResetOut {
    pub id: i64,
    /// Chat messages counted today before the reset.
    pub chat_messages_before: i64,
}

/// Resets today's chat-message count of a user to zero. Audited as
/// `user.reset_quota`.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/reset-quota/", tag = "admin", operation_id = "admin_user_reset_quota",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, body = QuotaResetOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    ))]
pub async fn reset_quota(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
) -> ApiResult<Json<QuotaResetOut>> {
    state.db.user(id).await?.ok_or_else(user_not_found)?;
    let key = crate::app::chat::quota_key(id, Utc::now());
    let before = state
        .cache
        .get(&key)
        .await?
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let details = json!({ "chat_messages_before": before });
    ctx.audited(&state, "user.reset_quota", "user", id, details, async {
        state.cache.delete(&key).await?;
        Ok(())
    })
    .await?;
    Ok(Json(QuotaResetOut {
        id,
        chat_messages_before: before,
    }))
}
