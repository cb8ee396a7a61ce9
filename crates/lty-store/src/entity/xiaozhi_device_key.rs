//! `xiaozhi_device_keys`: the eFuse HMAC key of a device serial number
//! (activation version 2), recorded when the key is burned.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "xiaozhi_device_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub serial_number: String,
    /// The 32-byte key, hex.
    pub key_hex: String,
    pub created_by: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
