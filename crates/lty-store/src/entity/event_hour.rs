//! `event_hours`: totals of each event kind per UTC hour (`YYYY-MM-DD HH`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_hours")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_kind: String,
    pub total: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
