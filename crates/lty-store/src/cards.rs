//! Card batches, cards and scans on the database.
//!
//! A batch and all its cards are inserted in one transaction, in chunks of
//! multi-row `INSERT`s that stay under both engines' bind-parameter limits.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use lty_core::Result;
use lty_core::card::{Card, CardBatch, CardCode, CardUsage, NewBatch, ScanRecord};
use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::Database;
use crate::db::db_err;
use crate::entity::{card, card_batch as batch, card_scan as scan, user_subscription as sub};
use crate::sort::{BatchSort, Sort, ordered};

// Three parameters per row: 5 000 rows stay well under SQLite's 32 766.
const CHUNK: usize = 5_000;

fn batch_from(m: batch::Model) -> Result<CardBatch> {
    Ok(CardBatch {
        id: m.id,
        kind: m.kind.parse()?,
        count: u32::try_from(m.count).unwrap_or(0),
        content_ref: m.content_ref,
        payload: m.payload.and_then(|p| serde_json::from_str(&p).ok()),
        plan_id: m.plan_id,
        days: m.days.and_then(|d| u32::try_from(d).ok()),
        expires_at: m.expires_at,
        notes: m.notes,
        disabled: m.disabled,
        created_by: m.created_by,
        created_at: m.created_at,
    })
}

fn card_from(m: card::Model) -> Card {
    Card {
        id: m.id,
        batch_id: m.batch_id,
        code: m.code,
        disabled: m.disabled,
    }
}

impl Database {
    /// Generates a batch of `new.count` cards with fresh codes, all or
    /// nothing.
    pub async fn create_batch(&self, new: NewBatch) -> Result<CardBatch> {
        let now = Utc::now();
        let txn = self.conn().begin().await.map_err(db_err)?;
        let model = batch::ActiveModel {
            kind: Set(new.kind.as_str().to_owned()),
            count: Set(i32::try_from(new.count).map_err(db_err)?),
            content_ref: Set(new.content_ref),
            payload: Set(new.payload.map(|p| p.to_string())),
            plan_id: Set(new.plan_id),
            days: Set(new.days.and_then(|d| i32::try_from(d).ok())),
            expires_at: Set(new.expires_at),
            notes: Set(new.notes),
            disabled: Set(false),
            created_by: Set(new.created_by),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        // 74 random bits per code: a clash inside a batch or with an older
        // card is astronomically unlikely; the set and the unique index make
        // it impossible rather than unlikely.
        let mut codes = HashSet::with_capacity(new.count as usize);
        while codes.len() < new.count as usize {
            codes.insert(CardCode::generate().as_str().to_owned());
        }
        let codes: Vec<String> = codes.into_iter().collect();
        for chunk in codes.chunks(CHUNK) {
            let rows = chunk.iter().map(|code| card::ActiveModel {
                batch_id: Set(model.id),
                code: Set(code.clone()),
                disabled: Set(false),
                ..Default::default()
            });
            card::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await
                .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)?;
        batch_from(model)
    }

    /// Batches in `sort` order.
    pub async fn batches(
        &self,
        sort: Sort<BatchSort>,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<CardBatch>> {
        let by = match sort.key {
            BatchSort::Id => batch::Column::Id,
            BatchSort::Kind => batch::Column::Kind,
            BatchSort::Count => batch::Column::Count,
            BatchSort::Notes => batch::Column::Notes,
            BatchSort::Disabled => batch::Column::Disabled,
            BatchSort::Created => batch::Column::CreatedAt,
        };
        ordered(batch::Entity::find(), by, batch::Column::Id, sort.dir)
            .limit(limit)
            .offset(offset)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(batch_from)
            .collect()
    }

    /// The batch with `id`.
    pub async fn batch(&self, id: i64) -> Result<Option<CardBatch>> {
        batch::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(batch_from)
            .transpose()
    }

    /// Disables or re-enables every card of a batch; `false` when there is
    /// no such batch.
    pub async fn set_batch_disabled(&self, id: i64, disabled: bool) -> Result<bool> {
        let res = batch::Entity::update_many()
            .col_expr(batch::Column::Disabled, Expr::value(disabled))
            .filter(batch::Column::Id.eq(id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected > 0)
    }

    /// Up to `limit` cards of a batch with ids above `after`, by id.
    pub async fn cards_of_batch(&self, batch_id: i64, after: i64, limit: u64) -> Result<Vec<Card>> {
        Ok(card::Entity::find()
            .filter(card::Column::BatchId.eq(batch_id))
            .filter(card::Column::Id.gt(after))
            .order_by_asc(card::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(card_from)
            .collect())
    }

    /// Number of cards in a batch.
    pub async fn count_cards(&self, batch_id: i64) -> Result<u64> {
        card::Entity::find()
            .filter(card::Column::BatchId.eq(batch_id))
            .count(self.conn())
            .await
            .map_err(db_err)
    }

    /// The card with `code` and its batch.
    pub async fn card_by_code(&self, code: &CardCode) -> Result<Option<(Card, CardBatch)>> {
        let Some(c) = card::Entity::find()
            .filter(card::Column::Code.eq(code.as_str()))
            .one(self.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let b = self
            .batch(c.batch_id)
            .await?
            .ok_or_else(|| db_err("card without batch"))?;
        Ok(Some((card_from(c), b)))
    }

    /// Disables or re-enables one card; `false` when there is no such card.
    pub async fn set_card_disabled(&self, id: i64, disabled: bool) -> Result<bool> {
        let res = card::Entity::update_many()
            .col_expr(card::Column::Disabled, Expr::value(disabled))
            .filter(card::Column::Id.eq(id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected > 0)
    }

    /// Records a scan.
    pub async fn record_scan(
        &self,
        card_id: i64,
        user_id: i64,
        mac: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<i64> {
        let m = scan::ActiveModel {
            card_id: Set(card_id),
            user_id: Set(user_id),
            mac_address: Set(mac),
            scanned_at: Set(at),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(db_err)?;
        Ok(m.id)
    }

    /// Usage of one card (`card_id`) or of a whole batch (`batch_id`).
    pub async fn card_usage(
        &self,
        card_id: Option<i64>,
        batch_id: Option<i64>,
    ) -> Result<CardUsage> {
        let cards_of_batch = |b: i64| {
            Query::select()
                .column(card::Column::Id)
                .from(card::Entity)
                .and_where(card::Column::BatchId.eq(b))
                .to_owned()
        };
        let mut q = scan::Entity::find()
            .select_only()
            .column_as(scan::Column::Id.count(), "scans")
            .column_as(
                Expr::expr(Func::count_distinct(Expr::col(scan::Column::UserId))),
                "users",
            )
            .column_as(scan::Column::ScannedAt.min(), "first")
            .column_as(scan::Column::ScannedAt.max(), "last");
        let mut r = sub::Entity::find();
        if let Some(c) = card_id {
            q = q.filter(scan::Column::CardId.eq(c));
            r = r.filter(sub::Column::CardId.eq(c));
        }
        if let Some(b) = batch_id {
            q = q.filter(scan::Column::CardId.in_subquery(cards_of_batch(b)));
            r = r.filter(sub::Column::CardId.in_subquery(cards_of_batch(b)));
        }
        let (scans, users, first, last) = q
            .into_tuple::<(i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>)>()
            .one(self.conn())
            .await
            .map_err(db_err)?
            .unwrap_or_default();
        let redeemed = r.count(self.conn()).await.map_err(db_err)?;
        Ok(CardUsage {
            scans: u64::try_from(scans).unwrap_or(0),
            unique_users: u64::try_from(users).unwrap_or(0),
            first_scan_at: first,
            last_scan_at: last,
            redeemed,
        })
    }

    /// Whether `user_id` scanned or redeemed card `card_id` (its owner, for
    /// re-printing its QR code).
    pub async fn card_used_by(&self, card_id: i64, user_id: i64) -> Result<bool> {
        let scanned = scan::Entity::find()
            .filter(scan::Column::CardId.eq(card_id))
            .filter(scan::Column::UserId.eq(user_id))
            .count(self.conn())
            .await
            .map_err(db_err)?;
        if scanned > 0 {
            return Ok(true);
        }
        let redeemed = sub::Entity::find()
            .filter(sub::Column::CardId.eq(card_id))
            .filter(sub::Column::UserId.eq(user_id))
            .count(self.conn())
            .await
            .map_err(db_err)?;
        Ok(redeemed > 0)
    }

    /// The latest `limit` scans by `user_id`, newest first.
    pub async fn scans_of_user(&self, user_id: i64, limit: u64) -> Result<Vec<ScanRecord>> {
        let rows = scan::Entity::find()
            .filter(scan::Column::UserId.eq(user_id))
            .order_by_desc(scan::Column::ScannedAt)
            .order_by_desc(scan::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for s in rows {
            let Some(c) = card::Entity::find_by_id(s.card_id)
                .one(self.conn())
                .await
                .map_err(db_err)?
            else {
                continue;
            };
            let Some(b) = self.batch(c.batch_id).await? else {
                continue;
            };
            out.push(ScanRecord {
                id: s.id,
                card: card_from(c),
                batch: b,
                user_id: s.user_id,
                mac_address: s.mac_address,
                scanned_at: s.scanned_at,
            });
        }
        Ok(out)
    }
}
