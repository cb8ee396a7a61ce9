//! Card batches: the one way a batch is made, by an operator through the
//! API or by `lty cards generate`.

use chrono::Utc;
use lty_core::card::{CardBatch, CardKind, MAX_BATCH, NewBatch};
use lty_core::{Error, Result};
use lty_store::Database;

/// Checks `batch` and generates it (every code, in one transaction).
pub async fn create_batch(db: &Database, mut batch: NewBatch) -> Result<CardBatch> {
    let plan_exists = match batch.plan_id {
        Some(id) => db.plan(id).await?.is_some(),
        None => false,
    };
    validate(plan_exists, &batch)?;
    batch.content_ref = batch.content_ref.map(|c| c.trim().to_owned());
    let created = db.create_batch(batch).await?;
    tracing::info!(
        batch_id = created.id,
        count = created.count,
        "card batch generated"
    );
    Ok(created)
}

fn validate(plan_exists: bool, body: &NewBatch) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&body.count) {
        return Err(Error::validation("count", "must be 1 to 100000"));
    }
    match body.kind {
        CardKind::Content => {
            let ok = body
                .content_ref
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty() && c.len() <= 256);
            if !ok {
                return Err(Error::validation(
                    "content_ref",
                    "content cards need a content_ref of 1 to 256 characters",
                ));
            }
            if body.plan_id.is_some() || body.days.is_some() {
                return Err(Error::validation(
                    "plan_id",
                    "content cards take no plan_id or days",
                ));
            }
            if let Some(p) = &body.payload
                && (!p.is_object() || p.to_string().len() > 4096)
            {
                return Err(Error::validation(
                    "payload",
                    "must be a JSON object of at most 4 KiB",
                ));
            }
        }
        CardKind::Membership => {
            if !plan_exists {
                return Err(Error::validation(
                    "plan_id",
                    "membership cards need an existing plan_id",
                ));
            }
            if !body.days.is_some_and(|d| (1..=3660).contains(&d)) {
                return Err(Error::validation("days", "must be 1 to 3660"));
            }
        }
    }
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Error::validation("expires_at", "must be in the future"));
    }
    Ok(())
}
