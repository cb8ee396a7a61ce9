//! `admin_audit_log`: who did what through the admin API, when, from where
//! and with what outcome. Insert-only, but for the outcome: written ahead
//! as `pending`, then set once when the request ends.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "admin_audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub admin_id: i64,
    /// The admin's username at the time of the action.
    pub admin_username: String,
    /// Stable action code (`user.disable`, `conversation.view`, ...).
    pub action: String,
    /// `user`, `device`, `conversation`, ...
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// A JSON object with the action's parameters.
    pub details: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// `pending`, then `ok`, `refused` (4xx) or `failed` (5xx); `NULL` for
    /// entries older than the column.
    pub outcome: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
