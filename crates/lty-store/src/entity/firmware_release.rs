//! `firmware_releases`: firmware images offered to xiaozhi boards.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "firmware_releases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub board: String,
    pub version: String,
    pub blob_key: String,
    pub size: i64,
    pub sha256: String,
    pub notes: Option<String>,
    pub is_active: bool,
    pub created_by: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
