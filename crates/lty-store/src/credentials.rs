//! [`DeviceCredentialRepo`] on the database: one secret per MAC, replaced
//! by an upsert.

use async_trait::async_trait;
use chrono::Utc;
use lty_core::credential::{DeviceCredential, DeviceCredentialRepo};
use lty_core::{BackendError, Error, MacAddress, Result};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::Database;
use crate::entity::device_credential;

fn db_err(err: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::new("database", err))
}

#[async_trait]
impl DeviceCredentialRepo for Database {
    async fn secret_for(&self, mac: &MacAddress) -> Result<Option<String>> {
        device_credential::Entity::find()
            .select_only()
            .column(device_credential::Column::Secret)
            .filter(device_credential::Column::MacAddress.eq(mac.to_string()))
            .into_tuple::<String>()
            .one(self.conn())
            .await
            .map_err(db_err)
    }

    async fn set_secret(
        &self,
        mac: &MacAddress,
        secret: &str,
        created_by: i64,
    ) -> Result<DeviceCredential> {
        let now = Utc::now();
        let row = device_credential::ActiveModel {
            mac_address: Set(mac.to_string()),
            secret: Set(secret.to_owned()),
            created_by: Set(created_by),
            created_at: Set(now),
            ..Default::default()
        };
        device_credential::Entity::insert(row)
            .on_conflict(
                OnConflict::column(device_credential::Column::MacAddress)
                    .update_columns([
                        device_credential::Column::Secret,
                        device_credential::Column::CreatedBy,
                        device_credential::Column::CreatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.conn())
            .await
            .map_err(db_err)?;
        Ok(DeviceCredential {
            mac_address: *mac,
            secret: secret.to_owned(),
            created_by,
            created_at: now,
        })
    }
}
