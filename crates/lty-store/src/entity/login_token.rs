//! `login_tokens`: the embedded mode's persisted login tokens, by hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_tokens")]
pub struct Model {
    /// SHA-256 of the token, lowercase hex.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    /// `user` or `admin`.
    pub kind: String,
    /// The user or admin id.
    pub subject: i64,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
