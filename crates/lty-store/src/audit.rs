//! The admin audit log on the database. Entries are inserted `pending`
//! before the action; when it ends, its outcome (with status and code),
//! a created target's id and the state after a change are added once.
//! Nothing else is updated, and nothing is ever deleted by lty.

use chrono::{DateTime, Utc};
use lty_core::Result;
use lty_core::chat::Page;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;

use crate::Database;
use crate::db::db_err;
use crate::entity::admin_audit_log as log;
use crate::sort::{AuditSort, Sort, ordered};

/// An audit entry to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub admin_id: i64,
    pub admin_username: String,
    /// Stable action code, e.g. `user.disable` or `conversation.view`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Parameters of the action (a JSON object).
    pub details: Value,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// A recorded audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub admin_id: i64,
    pub admin_username: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: Value,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `pending`, `ok`, `refused` or `failed`; `None` for old entries.
    pub outcome: Option<String>,
}

impl From<log::Model> for AuditEntry {
    fn from(m: log::Model) -> Self {
        Self {
            id: m.id,
            admin_id: m.admin_id,
            admin_username: m.admin_username,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            // Written by lty as JSON; anything else is kept as a string.
            details: serde_json::from_str(&m.details).unwrap_or(Value::String(m.details)),
            ip: m.ip,
            request_id: m.request_id,
            created_at: m.created_at,
            outcome: m.outcome,
        }
    }
}

/// Which audit entries to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub admin_id: Option<i64>,
    /// Exact action code, or a prefix ending in `.` (`user.` for every
    /// user action).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Database {
    /// Records an audit entry and returns its id.
    pub async fn insert_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        let m = log::ActiveModel {
            admin_id: Set(entry.admin_id),
            admin_username: Set(entry.admin_username),
            action: Set(entry.action),
            target_type: Set(entry.target_type),
            target_id: Set(entry.target_id),
            details: Set(entry.details.to_string()),
            ip: Set(entry.ip),
            request_id: Set(entry.request_id),
            created_at: Set(Utc::now()),
            outcome: Set(Some("pending".to_owned())),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(db_err)?;
        Ok(m.id)
    }

    /// Adds the keys of the JSON object `extra` to the details of entry
    /// `id` (what only the action's end knows: the state after a change).
    pub async fn annotate_audit(&self, id: i64, extra: Value) -> Result<()> {
        let Some(row) = log::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(());
        };
        let mut details: Value = serde_json::from_str(&row.details)
            .unwrap_or_else(|_| Value::Object(Default::default()));
        if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
            d.extend(e);
        }
        log::Entity::update_many()
            .col_expr(log::Column::Details, Expr::value(details.to_string()))
            .filter(log::Column::Id.eq(id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Sets the outcome of pending entry `id`, once: `ok`, `refused` or
    /// `failed`, with `result` (status, error code) added to its details and
    /// `target_id` filled in when the entry had none (what a create made).
    pub async fn finish_audit(
        &self,
        id: i64,
        outcome: &str,
        target_id: Option<String>,
        result: Value,
    ) -> Result<()> {
        self.annotate_audit(id, serde_json::json!({ "result": result }))
            .await?;
        log::Entity::update_many()
            .col_expr(log::Column::Outcome, Expr::value(outcome))
            .filter(log::Column::Id.eq(id))
            .filter(log::Column::Outcome.eq("pending"))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        if let Some(target) = target_id {
            log::Entity::update_many()
                .col_expr(log::Column::TargetId, Expr::value(target))
                .filter(log::Column::Id.eq(id))
                .filter(log::Column::TargetId.is_null())
                .exec(self.conn())
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// A page of audit entries matching `filter`, in `sort` order.
    pub async fn audit_entries(
        &self,
        filter: &AuditFilter,
        sort: Sort<AuditSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<AuditEntry>> {
        let mut q = log::Entity::find();
        if let Some(id) = filter.admin_id {
            q = q.filter(log::Column::AdminId.eq(id));
        }
        if let Some(action) = &filter.action {
            q = if action.ends_with('.') {
                q.filter(log::Column::Action.starts_with(action.as_str()))
            } else {
                q.filter(log::Column::Action.eq(action.as_str()))
            };
        }
        if let Some(t) = &filter.target_type {
            q = q.filter(log::Column::TargetType.eq(t.as_str()));
        }
        if let Some(t) = &filter.target_id {
            q = q.filter(log::Column::TargetId.eq(t.as_str()));
        }
        if let Some(since) = filter.since {
            q = q.filter(log::Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            q = q.filter(log::Column::CreatedAt.lt(until));
        }
        let (by, then) = match sort.key {
            AuditSort::Time => (log::Column::Id, None),
            AuditSort::Operator => (log::Column::AdminUsername, None),
            AuditSort::Action => (log::Column::Action, None),
            AuditSort::Target => (log::Column::TargetType, Some(log::Column::TargetId)),
        };
        self.fetch_page(
            q,
            |q| match then {
                // Target type, then target id, then the entry.
                Some(then) => {
                    let (order, nulls) = crate::sort::order_parts(sort.dir);
                    ordered(
                        q.order_by_with_nulls(by, order, nulls),
                        then,
                        log::Column::Id,
                        sort.dir,
                    )
                }
                None => ordered(q, by, log::Column::Id, sort.dir),
            },
            AuditEntry::from,
            offset,
            limit,
        )
        .await
    }
}
