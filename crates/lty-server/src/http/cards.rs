//! Cards: `/api/card/` for devices and the app (scan, redeem, history) and
//! `/api/v1/admin/card-batches/` for operators (generate, list, disable,
//! export). Code format and redemption rules: docs/cards.md.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lty_core::MacAddress;
use lty_core::achievement::CARD_SCANNED;
use lty_core::card::{Card, CardBatch, CardCode, CardKind, CardUsage, NewBatch};
use lty_store::sort::{BatchSort, SortKey};
use lty_store::subscriptions::Grant;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthAdmin, AuthUserId};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::http::admin::AdminCtx;
use crate::http::subscriptions::{SubscriptionOut, subscription_of};
use crate::state::AppState;
use crate::ws::protocol::device_group;

/// Card routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scan))
        .routes(routes!(redeem))
        .routes(routes!(history))
        .routes(routes!(create_batch, list_batches))
        .routes(routes!(get_batch))
        .routes(routes!(disable_batch))
        .routes(routes!(list_cards))
        .routes(routes!(export_csv))
        .routes(routes!(export_zip))
        .routes(routes!(get_card))
        .routes(routes!(disable_card))
}

/// Rows per page of the CSV export and of card lists.
const PAGE: u64 = 5_000;

fn card_not_found() -> ApiError {
    lty_core::Error::NotFound {
        what: "card",
        code: "card_not_found",
    }
    .into()
}

fn batch_not_found() -> ApiError {
    lty_core::Error::NotFound {
        what: "card batch",
        code: "batch_not_found",
    }
    .into()
}

/// The card behind `code`, refusing unknown (404 `card_not_found`),
/// disabled (403 `card_disabled`) and expired (410 `card_expired`) ones.
async fn usable_card(state: &AppState, code: &str) -> ApiResult<(Card, CardBatch)> {
    let code = CardCode::parse(code)?;
    let (card, batch) = state
        .db
        .card_by_code(&code)
        .await?
        .ok_or_else(card_not_found)?;
    if card.disabled || batch.disabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "card_disabled",
            "this card has been disabled",
        ));
    }
    if batch.is_expired(Utc::now()) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "card_expired",
            "this card has expired",
        ));
    }
    Ok((card, batch))
}

/// A card scan.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScanIn {
    /// The code read from the card (case, spaces and dashes ignored).
    #[schema(
        example = "ABCD-EFGH-JKMN-PQRX",
        pattern = "^[- ]*(?:[2-9A-HJKMNP-Za-hjkmnp-z][- ]*){16}$"
    )]
    pub code: String,
    /// The device that read it, when a device did; it must be bound to the
    /// caller.
    pub mac_address: Option<String>,
}

/// What a scanned card does.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanOut {
    pub card_id: i64,
    pub batch_id: i64,
    #[schema(value_type = String, example = "content")]
    pub kind: CardKind,
    /// What to play (content cards).
    pub content_ref: Option<String>,
    /// Extra data for the device (content cards).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// The plan and days a membership card redeems for (redeem it with
    /// `POST /api/card/redeem/`).
    pub plan_id: Option<i64>,
    pub days: Option<u32>,
    /// Whether `{"type":"card_content",...}` was pushed to the family's
    /// devices (content cards only).
    pub pushed: bool,
}

/// Scans a card: records the scan and, for a content card, pushes
/// `{"type":"card_content",...}` to the caller's device group. Rate-limited
/// per device to stop code guessing.
#[utoipa::path(post, path = "/api/card/scan/", tag = "card",
    security(("bearer" = [])),
    request_body = ScanIn,
    responses(
        (status = 200, body = ScanOut),
        (status = 400, description = "`validation_error`: not a card code or a bad check symbol", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`card_disabled`", body = ErrorBody),
        (status = 404, description = "`card_not_found`, or `device_not_bound`", body = ErrorBody),
        (status = 410, description = "`card_expired`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user_id))]
pub async fn scan(
    State(state): State<AppState>,
    auth: AuthUserId,
    Json(body): Json<ScanIn>,
) -> ApiResult<Json<ScanOut>> {
    let mac = body
        .mac_address
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .map(MacAddress::parse)
        .transpose()?;
    let subject = match &mac {
        Some(m) => m.to_string(),
        None => format!("user:{}", auth.user_id),
    };
    // Counted before the code is looked at, so wrong guesses cost too.
    crate::app::ratelimit::check(
        &state,
        "card_scan",
        &subject,
        state.config.limits.card_scan_per_device,
    )
    .await?;
    if let Some(m) = &mac {
        state
            .db
            .latest_binding(m)
            .await?
            .filter(|b| b.user_id == auth.user_id)
            .ok_or(lty_core::Error::NotFound {
                what: "device binding",
                code: "device_not_bound",
            })?;
    }
    let (card, batch) = usable_card(&state, &body.code).await?;
    state
        .db
        .record_scan(
            card.id,
            auth.user_id,
            mac.as_ref().map(ToString::to_string),
            Utc::now(),
        )
        .await?;
    let mut pushed = false;
    if batch.kind == CardKind::Content {
        let message = json!({
            "type": "card_content",
            "card_id": card.id,
            "batch_id": batch.id,
            "content_ref": batch.content_ref,
            "payload": batch.payload,
            "mac_address": mac.as_ref().map(ToString::to_string),
        });
        match state
            .pubsub
            .publish(
                &device_group(auth.user_id),
                Bytes::from(message.to_string()),
            )
            .await
        {
            Ok(_) => pushed = true,
            Err(err) => tracing::warn!(%err, "cannot push card content"),
        }
    }
    // After the content, so the device plays first and celebrates after.
    crate::app::achievements::record_quietly(&state, auth.user_id, CARD_SCANNED, 1).await;
    Ok(Json(ScanOut {
        card_id: card.id,
        batch_id: batch.id,
        kind: batch.kind,
        content_ref: batch.content_ref,
        payload: batch.payload,
        plan_id: batch.plan_id,
        days: batch.days,
        pushed,
    }))
}

/// A membership card to redeem.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RedeemIn {
    #[schema(
        example = "ABCD-EFGH-JKMN-PQRX",
        pattern = "^[- ]*(?:[2-9A-HJKMNP-Za-hjkmnp-z][- ]*){16}$"
    )]
    pub code: String,
}

/// Redeems a membership card for the caller: its days of its plan are
/// added after any running period of the same plan. A card is redeemed
/// exactly once, whoever tries and however many at the same time.
#[utoipa::path(post, path = "/api/card/redeem/", tag = "card",
    security(("bearer" = [])),
    request_body = RedeemIn,
    responses(
        (status = 200, description = "the caller's subscription after redeeming", body = SubscriptionOut),
        (status = 400, description = "`validation_error`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`card_disabled`", body = ErrorBody),
        (status = 404, description = "`card_not_found`", body = ErrorBody),
        (status = 409, description = "`card_already_redeemed`, or `card_not_redeemable` (a content card)", body = ErrorBody),
        (status = 410, description = "`card_expired`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user_id))]
pub async fn redeem(
    State(state): State<AppState>,
    auth: AuthUserId,
    Json(body): Json<RedeemIn>,
) -> ApiResult<Json<SubscriptionOut>> {
    let (card, batch) = usable_card(&state, &body.code).await?;
    let (Some(plan_id), Some(days), CardKind::Membership) = (batch.plan_id, batch.days, batch.kind)
    else {
        return Err(lty_core::Error::Conflict {
            code: "card_not_redeemable",
            message: "only membership cards can be redeemed".into(),
        }
        .into());
    };
    state
        .db
        .grant_subscription(
            auth.user_id,
            plan_id,
            days,
            Grant::Card(card.id),
            Utc::now(),
        )
        .await?;
    tracing::info!(card_id = card.id, plan_id, days, "membership card redeemed");
    Ok(Json(subscription_of(&state, auth.user_id).await?))
}

/// One scan in the caller's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItemOut {
    pub card_id: i64,
    pub batch_id: i64,
    #[schema(value_type = String)]
    pub kind: CardKind,
    pub content_ref: Option<String>,
    pub mac_address: Option<String>,
    pub scanned_at: DateTime<Utc>,
}

/// The caller's latest scans.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    pub scans: Vec<HistoryItemOut>,
}

/// The caller's 100 latest card scans, newest first.
#[utoipa::path(get, path = "/api/card/history/", tag = "card",
    security(("bearer" = [])),
    responses((status = 200, body = HistoryOut), (status = 401, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    auth: AuthUserId,
) -> ApiResult<Json<HistoryOut>> {
    let scans = state.db.scans_of_user(auth.user_id, 100).await?;
    Ok(Json(HistoryOut {
        scans: scans
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
    }))
}

/// A batch to generate.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchIn {
    #[schema(value_type = String, example = "content", pattern = "^(?:content|membership)$")]
    pub kind: CardKind,
    /// 1 to 100 000 cards.
    #[schema(minimum = 1, maximum = 100000)]
    pub count: u32,
    /// Content cards: what to play, e.g. `story:42` (1 to 256 characters).
    pub content_ref: Option<String>,
    /// Content cards: extra JSON object for the device (at most 4 KiB).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Membership cards: the plan and days (1 to 3660) they redeem for.
    pub plan_id: Option<i64>,
    pub days: Option<u32>,
    /// The cards are refused after this time.
    pub expires_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
}

/// A batch of cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    pub id: i64,
    #[schema(value_type = String)]
    pub kind: CardKind,
    pub count: u32,
    pub content_ref: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub plan_id: Option<i64>,
    pub days: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
    pub disabled: bool,
    /// The admin who generated it.
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<CardBatch> for BatchOut {
    fn from(b: CardBatch) -> Self {
        Self {
            id: b.id,
            kind: b.kind,
            count: b.count,
            content_ref: b.content_ref,
            payload: b.payload,
            plan_id: b.plan_id,
            days: b.days,
            expires_at: b.expires_at,
            notes: b.notes,
            disabled: b.disabled,
            created_by: b.created_by,
            created_at: b.created_at,
        }
    }
}

/// Usage of a card or a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardUsageOut {
    pub scans: u64,
    pub unique_users: u64,
    pub first_scan_at: Option<DateTime<Utc>>,
    pub last_scan_at: Option<DateTime<Utc>>,
    /// Membership cards redeemed.
    pub redeemed: u64,
}

impl From<CardUsage> for CardUsageOut {
    fn from(u: CardUsage) -> Self {
        Self {
            scans: u.scans,
            unique_users: u.unique_users,
            first_scan_at: u.first_scan_at,
            last_scan_at: u.last_scan_at,
            redeemed: u.redeemed,
        }
    }
}

/// Generates a batch of cards in one transaction (operator).
#[utoipa::path(post, path = "/api/v1/admin/card-batches/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    request_body = BatchIn,
    responses(
        (status = 201, body = BatchOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.id))]
pub async fn create_batch(
    State(state): State<AppState>,
    admin: AuthAdmin,
    Json(body): Json<BatchIn>,
) -> ApiResult<(StatusCode, Json<BatchOut>)> {
    let batch = crate::app::cards::create_batch(
        &state.db,
        NewBatch {
            kind: body.kind,
            count: body.count,
            content_ref: body.content_ref,
            payload: body.payload,
            plan_id: body.plan_id,
            days: body.days,
            expires_at: body.expires_at,
            notes: body.notes,
            created_by: Some(admin.admin.id),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(batch.into())))
}

/// `?limit=&offset=&sort=&order=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Batches per answer, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// Batches to skip, 0 to 100000000 (default 0).
    #[param(minimum = 0, maximum = 100_000_000)]
    pub offset: Option<u64>,
    /// Sort key: `id`, `kind`, `count`, `notes`, `disabled`, `created`
    /// (default `id` descending: newest first). Ties are broken by id.
    #[param(schema_with = batch_sort_keys)]
    pub sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`).
    #[param(schema_with = crate::http::admin::sorting::order_schema)]
    pub order: Option<String>,
}

fn batch_sort_keys() -> utoipa::openapi::schema::Object {
    crate::http::admin::sorting::keys_schema::<BatchSort>()
}

/// `limit` when it is `1..=max`, else `400 validation_error`.
fn limit_in(limit: Option<u64>, default: u64, max: u64) -> ApiResult<u64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(lty_core::Error::validation("limit", format!("must be 1 to {max}")).into()),
    }
}

/// Batches, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchListOut {
    pub batches: Vec<BatchOut>,
}

/// Lists batches, newest first unless `sort` and `order` say otherwise
/// (operator).
#[utoipa::path(get, path = "/api/v1/admin/card-batches/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = BatchListOut),
              (status = 400, description = "`validation_error`: `limit` or `offset` out of range", body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn list_batches(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<BatchListOut>> {
    let limit = limit_in(q.limit, 50, 200)?;
    let offset = q.offset.unwrap_or(0);
    if offset > crate::http::admin::MAX_OFFSET {
        return Err(lty_core::Error::validation("offset", "must be 0 to 100000000").into());
    }
    let sort = crate::http::admin::sorting::resolve(
        q.sort.as_deref(),
        q.order.as_deref(),
        BatchSort::DEFAULT,
    )?;
    let batches = state.db.batches(sort, limit, offset).await?;
    Ok(Json(BatchListOut {
        batches: batches.into_iter().map(BatchOut::from).collect(),
    }))
}

/// A batch with its usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchDetailOut {
    pub batch: BatchOut,
    pub usage: CardUsageOut,
}

/// One batch and its usage: scans, unique users, first and last scan,
/// redemptions (operator).
#[utoipa::path(get, path = "/api/v1/admin/card-batches/{id}/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "batch id")),
    responses((status = 200, body = BatchDetailOut), (status = 401, body = ErrorBody),
              (status = 404, description = "`batch_not_found`", body = ErrorBody)))]
pub async fn get_batch(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Path(id): Path<i64>,
) -> ApiResult<Json<BatchDetailOut>> {
    let batch = state.db.batch(id).await?.ok_or_else(batch_not_found)?;
    let usage = state.db.card_usage(None, Some(id)).await?;
    Ok(Json(BatchDetailOut {
        batch: batch.into(),
        usage: usage.into(),
    }))
}

/// Disable or re-enable.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DisableIn {
    /// `true` (default) disables, `false` re-enables.
    #[serde(default = "yes")]
    pub disabled: bool,
}

fn yes() -> bool {
    true
}

/// Disables (or re-enables) every card of a batch (operator). Audited as
/// `card_batch.disable` with the state before and after.
#[utoipa::path(post, path = "/api/v1/admin/card-batches/{id}/disable/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "batch id")),
    request_body = DisableIn,
    responses((status = 200, body = BatchOut), (status = 401, body = ErrorBody),
              (status = 404, description = "`batch_not_found`", body = ErrorBody)))]
pub async fn disable_batch(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<i64>,
    Json(body): Json<DisableIn>,
) -> ApiResult<Json<BatchOut>> {
    let before = state.db.batch(id).await?.ok_or_else(batch_not_found)?;
    let details = json!({
        "before": { "disabled": before.disabled },
        "after": { "disabled": body.disabled },
    });
    ctx.audited(
        &state,
        "card_batch.disable",
        "card_batch",
        id,
        details,
        async {
            if state.db.set_batch_disabled(id, body.disabled).await? {
                Ok(())
            } else {
                Err(batch_not_found())
            }
        },
    )
    .await?;
    let batch = state.db.batch(id).await?.ok_or_else(batch_not_found)?;
    Ok(Json(batch.into()))
}

/// A card as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardOut {
    pub id: i64,
    pub batch_id: i64,
    /// The code as printed: groups of four.
    #[schema(
        example = "ABCD-EFGH-JKMN-PQRX",
        pattern = "^[- ]*(?:[2-9A-HJKMNP-Za-hjkmnp-z][- ]*){16}$"
    )]
    pub code: String,
    pub disabled: bool,
}

impl From<Card> for CardOut {
    fn from(c: Card) -> Self {
        Self {
            id: c.id,
            batch_id: c.batch_id,
            code: display_code(&c.code),
            disabled: c.disabled,
        }
    }
}

use crate::app::card_export::display_code;

/// `?after=&limit=` (keyset pagination by card id).
#[derive(Debug, Deserialize, IntoParams)]
pub struct CardsQuery {
    /// Cards with ids above this (the last id of the previous page).
    pub after: Option<i64>,
    /// Cards per answer, 1 to 5000 (default 100).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<u64>,
}

/// A page of cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardListOut {
    pub cards: Vec<CardOut>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<i64>,
}

/// Lists the cards of a batch by id (operator).
#[utoipa::path(get, path = "/api/v1/admin/card-batches/{id}/cards/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "batch id"), CardsQuery),
    responses((status = 200, body = CardListOut), (status = 401, body = ErrorBody),
              (status = 404, description = "`batch_not_found`", body = ErrorBody)))]
pub async fn list_cards(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Path(id): Path<i64>,
    Query(q): Query<CardsQuery>,
) -> ApiResult<Json<CardListOut>> {
    let limit = limit_in(q.limit, 100, PAGE)?;
    state.db.batch(id).await?.ok_or_else(batch_not_found)?;
    let cards = state
        .db
        .cards_of_batch(id, q.after.unwrap_or(0), limit)
        .await?;
    let next_after = (cards.len() as u64 == limit)
        .then(|| cards.last().map(|c| c.id))
        .flatten();
    Ok(Json(CardListOut {
        cards: cards.into_iter().map(CardOut::from).collect(),
        next_after,
    }))
}

/// Exports a batch as CSV (`code,card_id,disabled`), streamed page by
/// page (operator).
#[utoipa::path(get, path = "/api/v1/admin/card-batches/{id}/export.csv", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "batch id")),
    responses((status = 200, content_type = "text/csv", body = String),
              (status = 401, body = ErrorBody),
              (status = 404, description = "`batch_not_found`", body = ErrorBody)))]
pub async fn export_csv(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    state.db.batch(id).await?.ok_or_else(batch_not_found)?;
    let pages = crate::app::card_export::csv_stream(state.db.clone(), id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"batch-{id}.csv\""),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}

/// Exports a batch as a ZIP archive (operator): `batch-{id}.csv`, then
/// `png/{CODE}.png` and `svg/{CODE}.svg` QR images for every card. Streamed
/// a page of cards at a time, never built in memory.
#[utoipa::path(get, path = "/api/v1/admin/card-batches/{id}/export.zip", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "batch id")),
    responses((status = 200, content_type = "application/zip", description = "ZIP archive"),
              (status = 401, body = ErrorBody),
              (status = 404, description = "`batch_not_found`", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(batch_id = id))]
pub async fn export_zip(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    state.db.batch(id).await?.ok_or_else(batch_not_found)?;
    let chunks =
        crate::app::card_export::zip_stream(state.db.clone(), id, std::sync::Arc::new(|_| {}));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"batch-{id}.zip\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// A card with its batch and usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardDetailOut {
    pub card: CardOut,
    pub batch: BatchOut,
    pub usage: CardUsageOut,
}

/// One card by code, with its batch and usage (operator).
#[utoipa::path(get, path = "/api/v1/admin/cards/{code}/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("code" = String, Path, description = "card code")),
    responses((status = 200, body = CardDetailOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 404, description = "`card_not_found`", body = ErrorBody)))]
pub async fn get_card(
    State(state): State<AppState>,
    _admin: AuthAdmin,
    Path(code): Path<String>,
) -> ApiResult<Json<CardDetailOut>> {
    let code = CardCode::parse(&code)?;
    let (card, batch) = state
        .db
        .card_by_code(&code)
        .await?
        .ok_or_else(card_not_found)?;
    let usage = state.db.card_usage(Some(card.id), None).await?;
    Ok(Json(CardDetailOut {
        card: card.into(),
        batch: batch.into(),
        usage: usage.into(),
    }))
}

/// Disables (or re-enables) one card (operator). Audited as
/// `card.disable` with the card's id (never its code) as the target and
/// the state before and after.
#[utoipa::path(post, path = "/api/v1/admin/cards/{code}/disable/", tags = ["admin", "card"],
    security(("admin_bearer" = [])),
    params(("code" = String, Path, description = "card code")),
    request_body = DisableIn,
    responses((status = 200, body = CardOut), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 404, description = "`card_not_found`", body = ErrorBody)))]
pub async fn disable_card(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(code): Path<String>,
    Json(body): Json<DisableIn>,
) -> ApiResult<Json<CardOut>> {
    let code = CardCode::parse(&code)?;
    let (card, _) = state
        .db
        .card_by_code(&code)
        .await?
        .ok_or_else(card_not_found)?;
    let details = json!({
        "batch_id": card.batch_id,
        "before": { "disabled": card.disabled },
        "after": { "disabled": body.disabled },
    });
    ctx.audited(&state, "card.disable", "card", card.id, details, async {
        if state.db.set_card_disabled(card.id, body.disabled).await? {
            Ok(())
        } else {
            Err(card_not_found())
        }
    })
    .await?;
    Ok(Json(CardOut {
        disabled: body.disabled,
        ..card.into()
    }))
}
