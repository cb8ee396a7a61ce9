//! xiaozhi-esp32 devices, their activation keys and firmware releases on
//! the database.

use chrono::{DateTime, Utc};
use lty_core::chat::Page;
use lty_core::xiaozhi::{
    FirmwareRelease, FirmwareVersion, NewFirmwareRelease, XiaozhiDevice, XiaozhiSighting,
};
use lty_core::{MacAddress, Result};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait,
};

use crate::Database;
use crate::admin_queries::{DeviceSearch, contains};
use crate::db::{db_err, map_unique};
use crate::entity::{firmware_release, user_device, xiaozhi_device, xiaozhi_device_key};
use crate::sort::{DeviceSort, FirmwareSort, Sort, ordered};

fn device_from(m: xiaozhi_device::Model) -> Result<XiaozhiDevice> {
    Ok(XiaozhiDevice {
        mac_address: MacAddress::parse(&m.mac_address)?,
        client_id: m.client_id,
        board_type: m.board_type,
        board_name: m.board_name,
        firmware_version: m.firmware_version,
        serial_number: m.serial_number,
        protocol_version: m.protocol_version,
        token_hash: m.token_hash,
        prev_token_hash: m.prev_token_hash,
        conversation_id: m.conversation_id,
        conversation_at: m.conversation_at,
        first_seen_at: m.first_seen_at,
        last_seen_at: m.last_seen_at,
    })
}

fn release_from(m: firmware_release::Model) -> FirmwareRelease {
    FirmwareRelease {
        id: m.id,
        board: m.board,
        version: m.version,
        blob_key: m.blob_key,
        size: m.size,
        sha256: m.sha256,
        notes: m.notes,
        is_active: m.is_active,
        created_by: m.created_by,
        created_at: m.created_at,
    }
}

/// Keeps a reported value within its column, dropping what does not fit.
fn fitted(value: Option<String>, max: usize) -> Option<String> {
    value.filter(|v| !v.is_empty() && v.len() <= max)
}

impl Database {
    /// Records an OTA check of a device: creates it or refreshes what it
    /// reported (a value it did not send is kept), and rotates its channel
    /// token to `token_hash` (the previous one stays valid until the next
    /// rotation). Returns the device as stored.
    pub async fn record_xiaozhi_check(
        &self,
        seen: XiaozhiSighting,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<XiaozhiDevice> {
        let mac = seen.mac_address.to_string();
        let existing = xiaozhi_device::Entity::find_by_id(mac.clone())
            .one(self.conn())
            .await
            .map_err(db_err)?;
        let pick = |new: Option<String>, old: Option<String>, max| fitted(new, max).or(old);
        let model = match existing {
            Some(old) => xiaozhi_device::ActiveModel {
                mac_address: Set(mac.clone()),
                client_id: Set(pick(seen.client_id, old.client_id, 64)),
                board_type: Set(pick(seen.board_type, old.board_type, 64)),
                board_name: Set(pick(seen.board_name, old.board_name, 64)),
                firmware_version: Set(pick(seen.firmware_version, old.firmware_version, 64)),
                serial_number: Set(pick(seen.serial_number, old.serial_number, 64)),
                protocol_version: Set(old.protocol_version),
                token_hash: Set(Some(token_hash.to_owned())),
                prev_token_hash: Set(old.token_hash),
                conversation_id: Set(old.conversation_id),
                conversation_at: Set(old.conversation_at),
                first_seen_at: Set(old.first_seen_at),
                last_seen_at: Set(now),
            },
            None => xiaozhi_device::ActiveModel {
                mac_address: Set(mac.clone()),
                client_id: Set(fitted(seen.client_id, 64)),
                board_type: Set(fitted(seen.board_type, 64)),
                board_name: Set(fitted(seen.board_name, 64)),
                firmware_version: Set(fitted(seen.firmware_version, 64)),
                serial_number: Set(fitted(seen.serial_number, 64)),
                protocol_version: Set(None),
                token_hash: Set(Some(token_hash.to_owned())),
                prev_token_hash: Set(None),
                conversation_id: Set(None),
                conversation_at: Set(None),
                first_seen_at: Set(now),
                last_seen_at: Set(now),
            },
        };
        // An upsert: two instances answering the same device's first checks
        // at once must not fail on the primary key.
        xiaozhi_device::Entity::insert(model)
            .on_conflict(
                OnConflict::column(xiaozhi_device::Column::MacAddress)
                    .update_columns([
                        xiaozhi_device::Column::ClientId,
                        xiaozhi_device::Column::BoardType,
                        xiaozhi_device::Column::BoardName,
                        xiaozhi_device::Column::FirmwareVersion,
                        xiaozhi_device::Column::SerialNumber,
                        xiaozhi_device::Column::TokenHash,
                        xiaozhi_device::Column::PrevTokenHash,
                        xiaozhi_device::Column::LastSeenAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.conn())
            .await
            .map_err(db_err)?;
        self.xiaozhi_device(&seen.mac_address)
            .await?
            .ok_or_else(|| db_err("the device row vanished"))
    }

    /// The device `mac`, if it ever made an OTA check.
    pub async fn xiaozhi_device(&self, mac: &MacAddress) -> Result<Option<XiaozhiDevice>> {
        xiaozhi_device::Entity::find_by_id(mac.to_string())
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(device_from)
            .transpose()
    }

    /// Notes a channel opened by `mac` with binary framing `version`.
    pub async fn note_xiaozhi_channel(
        &self,
        mac: &MacAddress,
        version: i16,
        now: DateTime<Utc>,
    ) -> Result<()> {
        xiaozhi_device::Entity::update_many()
            .col_expr(
                xiaozhi_device::Column::ProtocolVersion,
                Expr::value(version),
            )
            .col_expr(xiaozhi_device::Column::LastSeenAt, Expr::value(now))
            .filter(xiaozhi_device::Column::MacAddress.eq(mac.to_string()))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Forgets every channel token of `mac` (its family unbound it): its
    /// next channel is refused until an OTA check hands out a new one.
    pub async fn revoke_xiaozhi_tokens(&self, mac: &MacAddress) -> Result<()> {
        xiaozhi_device::Entity::update_many()
            .col_expr(
                xiaozhi_device::Column::TokenHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                xiaozhi_device::Column::PrevTokenHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                xiaozhi_device::Column::ConversationId,
                Expr::value(Option::<i64>::None),
            )
            .filter(xiaozhi_device::Column::MacAddress.eq(mac.to_string()))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Makes `conversation_id` the one the device's next turns continue.
    pub async fn set_xiaozhi_conversation(
        &self,
        mac: &MacAddress,
        conversation_id: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        xiaozhi_device::Entity::update_many()
            .col_expr(
                xiaozhi_device::Column::ConversationId,
                Expr::value(conversation_id),
            )
            .col_expr(xiaozhi_device::Column::ConversationAt, Expr::value(at))
            .filter(xiaozhi_device::Column::MacAddress.eq(mac.to_string()))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// xiaozhi devices matching `search` (with `user_id`, those ever
    /// bound to that user), in `sort` order.
    pub async fn search_xiaozhi_devices(
        &self,
        search: &DeviceSearch,
        sort: Sort<DeviceSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<XiaozhiDevice>> {
        let mut query = xiaozhi_device::Entity::find();
        if let Some(f) = search.fragment.as_deref().filter(|f| !f.is_empty()) {
            query = query.filter(contains(xiaozhi_device::Column::MacAddress, f));
        }
        if let Some(id) = search.user_id {
            let bound = user_device::Entity::find()
                .select_only()
                .column(user_device::Column::MacAddress)
                .filter(user_device::Column::UserId.eq(id))
                .into_query();
            query = query.filter(xiaozhi_device::Column::MacAddress.in_subquery(bound));
        }
        if let Some(v) = &search.firmware {
            query = query.filter(xiaozhi_device::Column::FirmwareVersion.eq(v.as_str()));
        }
        if let Some(set) = &search.macs {
            let mac = Expr::col((xiaozhi_device::Entity, xiaozhi_device::Column::MacAddress));
            query = query.filter(set.condition(self.kind(), mac));
        }
        let total = query.clone().count(self.conn()).await.map_err(db_err)?;
        let by: Expr = match sort.key {
            DeviceSort::Mac => xiaozhi_device::Column::MacAddress.into_expr(),
            DeviceSort::Board => sea_orm::sea_query::Func::coalesce([
                xiaozhi_device::Column::BoardName.into_expr(),
                xiaozhi_device::Column::BoardType.into_expr(),
            ])
            .into(),
            DeviceSort::Firmware => xiaozhi_device::Column::FirmwareVersion.into_expr(),
            DeviceSort::LastCheck => xiaozhi_device::Column::LastSeenAt.into_expr(),
        };
        let items = ordered(query, by, xiaozhi_device::Column::MacAddress, sort.dir)
            .offset(offset)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(device_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total })
    }

    /// The xiaozhi devices among `macs`.
    pub async fn xiaozhi_devices_of(&self, macs: &[MacAddress]) -> Result<Vec<XiaozhiDevice>> {
        if macs.is_empty() {
            return Ok(Vec::new());
        }
        xiaozhi_device::Entity::find()
            .filter(xiaozhi_device::Column::MacAddress.is_in(macs.iter().map(ToString::to_string)))
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(device_from)
            .collect()
    }

    /// Records (or replaces) the activation key of serial number `serial`.
    pub async fn put_xiaozhi_key(
        &self,
        serial: &str,
        key_hex: &str,
        created_by: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        xiaozhi_device_key::Entity::insert(xiaozhi_device_key::ActiveModel {
            serial_number: Set(serial.to_owned()),
            key_hex: Set(key_hex.to_owned()),
            created_by: Set(created_by),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(xiaozhi_device_key::Column::SerialNumber)
                .update_columns([
                    xiaozhi_device_key::Column::KeyHex,
                    xiaozhi_device_key::Column::CreatedBy,
                    xiaozhi_device_key::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The activation key (hex) of serial number `serial`.
    pub async fn xiaozhi_key(&self, serial: &str) -> Result<Option<String>> {
        Ok(xiaozhi_device_key::Entity::find_by_id(serial.to_owned())
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(|m| m.key_hex))
    }

    /// Records a firmware release; the same board and version twice is a
    /// `firmware_exists` conflict.
    pub async fn create_firmware_release(
        &self,
        new: NewFirmwareRelease,
        now: DateTime<Utc>,
    ) -> Result<FirmwareRelease> {
        let model = firmware_release::ActiveModel {
            board: Set(new.board),
            version: Set(new.version),
            blob_key: Set(new.blob_key),
            size: Set(new.size),
            sha256: Set(new.sha256),
            notes: Set(new.notes),
            is_active: Set(true),
            created_by: Set(new.created_by),
            created_at: Set(now),
            ..Default::default()
        };
        let row = firmware_release::Entity::insert(model)
            .exec_with_returning(self.conn())
            .await
            .map_err(|e| {
                map_unique(
                    e,
                    "firmware_exists",
                    "a release of this version already exists for this board",
                )
            })?;
        Ok(release_from(row))
    }

    /// The release `id`.
    pub async fn firmware_release(&self, id: i64) -> Result<Option<FirmwareRelease>> {
        Ok(firmware_release::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(release_from))
    }

    /// Releases of `board` or of every board, in `sort` order.
    pub async fn firmware_releases(
        &self,
        board: Option<&str>,
        sort: Sort<FirmwareSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<FirmwareRelease>> {
        let mut query = firmware_release::Entity::find();
        if let Some(board) = board {
            query = query.filter(firmware_release::Column::Board.eq(board));
        }
        let total = query.clone().count(self.conn()).await.map_err(db_err)?;
        let by = match sort.key {
            FirmwareSort::Created => firmware_release::Column::CreatedAt,
            FirmwareSort::Board => firmware_release::Column::Board,
            FirmwareSort::Version => firmware_release::Column::Version,
            FirmwareSort::Size => firmware_release::Column::Size,
            FirmwareSort::Active => firmware_release::Column::IsActive,
        };
        let items = ordered(query, by, firmware_release::Column::Id, sort.dir)
            .offset(offset)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(release_from)
            .collect();
        Ok(Page { items, total })
    }

    /// The newest active release for `board`, by version order.
    pub async fn newest_firmware(&self, board: &str) -> Result<Option<FirmwareRelease>> {
        let rows = firmware_release::Entity::find()
            .filter(firmware_release::Column::Board.eq(board))
            .filter(firmware_release::Column::IsActive.eq(true))
            .all(self.conn())
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|m| FirmwareVersion::parse(&m.version).map(|v| (v, m)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, m)| release_from(m)))
    }

    /// Offers or retires release `id`; `None` when there is no such
    /// release.
    pub async fn set_firmware_active(
        &self,
        id: i64,
        active: bool,
    ) -> Result<Option<FirmwareRelease>> {
        let res = firmware_release::Entity::update_many()
            .col_expr(firmware_release::Column::IsActive, Expr::value(active))
            .filter(firmware_release::Column::Id.eq(id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        self.firmware_release(id).await
    }
}
