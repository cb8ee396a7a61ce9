//! `xiaozhi_devices`: what lty knows of each xiaozhi-esp32 device.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "xiaozhi_devices")]
pub struct Model {
    /// Normalised MAC (`Device-Id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub mac_address: String,
    pub client_id: Option<String>,
    pub board_type: Option<String>,
    pub board_name: Option<String>,
    pub firmware_version: Option<String>,
    pub serial_number: Option<String>,
    pub protocol_version: Option<i16>,
    pub token_hash: Option<String>,
    pub prev_token_hash: Option<String>,
    pub conversation_id: Option<i64>,
    pub conversation_at: Option<DateTimeUtc>,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
