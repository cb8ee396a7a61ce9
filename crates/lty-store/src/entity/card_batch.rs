//! `card_batches`: cards generated together, with what they do.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "card_batches")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `content` or `membership`.
    pub kind: String,
    pub count: i32,
    pub content_ref: Option<String>,
    /// JSON object sent to the device with the content.
    pub payload: Option<String>,
    pub plan_id: Option<i64>,
    pub days: Option<i32>,
    pub expires_at: Option<DateTimeUtc>,
    pub notes: Option<String>,
    pub disabled: bool,
    pub created_by: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
