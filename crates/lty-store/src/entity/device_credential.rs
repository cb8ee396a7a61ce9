//! `device_credentials`: the per-device secret of a MAC, at most one.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_credentials")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Normalised: lower case with colons.
    #[sea_orm(unique)]
    pub mac_address: String,
    /// HMAC key of the device's request signatures.
    pub secret: String,
    /// The user who provisioned it.
    pub created_by: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
