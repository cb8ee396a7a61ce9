//! What the catalog resources of the admin API ([`personas`](super::personas),
//! [`plans`](super::plans), [`achievements`](super::achievements)) share:
//! listings (by id unless another order is asked) with inactive rows included, changes audited as
//! `{kind}.update`, and deletion as deactivation (`{kind}.deactivate`), so
//! conversations, subscriptions and unlocks keep pointing at the row. Each
//! resource's module keeps its own fields and rules.

use lty_core::chat::Page;
use lty_store::Database;
use lty_store::sort::{Sort, SortKey};
use serde_json::{Value, json};

use super::{AdminCtx, PageInfo, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One catalog table as the admin routes see it.
pub(super) trait Catalog {
    /// The audit target type and action prefix (`persona`), also the `what`
    /// of a `404`.
    const KIND: &'static str;
    /// The `404` code of an unknown id.
    const NOT_FOUND: &'static str;
    /// A row, active or not; serialized into audit entries (no secrets).
    type Row: serde::Serialize;
    /// The keys the listing sorts by.
    type Sort: SortKey;
    /// Field changes; `None` leaves a field as it is.
    type Patch;

    /// A page of rows in `sort` order, and the total.
    async fn page(
        db: &Database,
        sort: Sort<Self::Sort>,
        offset: u64,
        limit: u64,
    ) -> lty_core::Result<Page<Self::Row>>;
    /// Row `id`, active or not.
    async fn get(db: &Database, id: i64) -> lty_core::Result<Option<Self::Row>>;
    /// Applies `patch` to row `id`; `None` when there is no such row.
    async fn update(
        db: &Database,
        id: i64,
        patch: Self::Patch,
    ) -> lty_core::Result<Option<Self::Row>>;
    /// The patch that deactivates a row.
    fn deactivate() -> Self::Patch;
    /// Refuses to deactivate `row` when a rule of the resource says so.
    fn check_deactivate(_row: &Self::Row) -> ApiResult<()> {
        Ok(())
    }
}

fn not_found<C: Catalog>() -> ApiError {
    super::not_found(C::KIND, C::NOT_FOUND)
}

/// A page of `C`'s rows as `Out`s in the order of `sort` and `order`
/// ([`super::sorting`]), and its paging.
pub(super) async fn list<C: Catalog, Out: From<C::Row>>(
    state: &AppState,
    q: PageQuery,
    sort: Option<&str>,
    order: Option<&str>,
) -> ApiResult<(Vec<Out>, PageInfo)> {
    let (offset, limit, page, size) = q.window()?;
    let sort = super::sorting::resolve(sort, order, C::Sort::DEFAULT)?;
    let found = C::page(&state.db, sort, offset, limit).await?;
    let items = found.items.into_iter().map(Into::into).collect();
    Ok((items, PageInfo::new(found.total, page, size)))
}

/// Row `id`, or `404`.
pub(super) async fn get<C: Catalog>(state: &AppState, id: i64) -> ApiResult<C::Row> {
    C::get(&state.db, id).await?.ok_or_else(not_found::<C>)
}

/// Applies `patch` to row `id`, audited as `{kind}.update` with `details`.
pub(super) async fn update<C: Catalog>(
    state: &AppState,
    ctx: &AdminCtx,
    id: i64,
    details: Value,
    patch: C::Patch,
) -> ApiResult<C::Row> {
    write::<C>(state, ctx, "update", id, details, patch).await
}

/// Deactivates row `id` (`404` when there is none, the resource's own
/// refusal when it forbids it), audited as `{kind}.deactivate`.
pub(super) async fn deactivate<C: Catalog>(
    state: &AppState,
    ctx: &AdminCtx,
    id: i64,
) -> ApiResult<C::Row> {
    C::check_deactivate(&get::<C>(state, id).await?)?;
    write::<C>(state, ctx, "deactivate", id, json!({}), C::deactivate()).await
}

async fn write<C: Catalog>(
    state: &AppState,
    ctx: &AdminCtx,
    verb: &str,
    id: i64,
    details: Value,
    patch: C::Patch,
) -> ApiResult<C::Row> {
    let action = format!("{}.{verb}", C::KIND);
    // The row before and after, beside the change asked for.
    let before = get::<C>(state, id).await?;
    let details = json!({ "changes": details, "before": before });
    let after = ctx
        .audited(state, &action, C::KIND, id, details, async {
            C::update(&state.db, id, patch)
                .await?
                .ok_or_else(not_found::<C>)
        })
        .await?;
    ctx.actor
        .annotate_last(state, json!({ "after": &after }))
        .await;
    Ok(after)
}

/// Trims `v` and checks it is `min..=max` characters, printable unless
/// `multiline` (which allows newlines and tabs).
pub(crate) fn text(
    field: &'static str,
    v: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> ApiResult<String> {
    let v = v.trim();
    let n = v.chars().count();
    let bad_char = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
    if n < min || n > max || v.chars().any(bad_char) {
        return Err(lty_core::Error::validation(
            field,
            format!("must be {min} to {max} printable characters"),
        )
        .into());
    }
    Ok(v.to_owned())
}
