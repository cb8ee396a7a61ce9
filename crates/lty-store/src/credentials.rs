//! [`DeviceCredentialRepo`] on the database: one secret per MAC, replaced
//! by an upsert.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use lty_core::credential::{DeviceAuthFacts, DeviceCredential};
use lty_core::user::DeviceBinding;
use lty_core::{MacAddress, Result};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Statement,
};

use crate::Database;
use crate::db::db_err;
use crate::entity::device_credential;

/// One row of [`AUTH_FACTS_SQL`]: the secret, and the binding columns
/// (all NULL without a binding).
#[derive(Debug, FromQueryResult)]
struct AuthFactsRow {
    secret: Option<String>,
    id: Option<i64>,
    user_id: Option<i64>,
    name: Option<String>,
    bound_at: Option<DateTime<Utc>>,
    unbound_at: Option<DateTime<Utc>>,
    is_active: Option<bool>,
}

/// The device's secret and its latest binding with the owner's state, in
/// one row whatever exists: the one-row derived table keeps the row when
/// there is neither. `{mac1}`/`{mac2}` are the backend's placeholders.
const AUTH_FACTS_SQL: &str = "\
SELECT c.secret AS secret, b.id AS id, b.user_id AS user_id, b.name AS name, \
       b.bound_at AS bound_at, b.unbound_at AS unbound_at, b.is_active AS is_active \
FROM (SELECT 1 AS one) AS x \
LEFT JOIN (SELECT ud.id, ud.user_id, ud.name, ud.bound_at, ud.unbound_at, u.is_active \
           FROM user_devices AS ud LEFT JOIN users AS u ON u.id = ud.user_id \
           WHERE ud.mac_address = {mac1} \
           ORDER BY ud.bound_at DESC, ud.id DESC LIMIT 1) AS b ON 1 = 1 \
LEFT JOIN device_credentials AS c ON c.mac_address = {mac2}";

/// [`AUTH_FACTS_SQL`] with PostgreSQL's placeholders.
static AUTH_FACTS_PG: LazyLock<String> = LazyLock::new(|| {
    AUTH_FACTS_SQL
        .replace("{mac1}", "$1")
        .replace("{mac2}", "$2")
});

/// [`AUTH_FACTS_SQL`] with SQLite's placeholders.
static AUTH_FACTS_SQLITE: LazyLock<String> =
    LazyLock::new(|| AUTH_FACTS_SQL.replace("{mac1}", "?").replace("{mac2}", "?"));

impl Database {
    /// The secret of `mac`, its binding in force and whether the bound
    /// account is active, read together (one query on the database).
    pub async fn auth_facts(&self, mac: &MacAddress) -> Result<DeviceAuthFacts> {
        // Every device login and RTC token reads these: a hot path.
        let backend = self.conn().get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => AUTH_FACTS_PG.as_str(),
            _ => AUTH_FACTS_SQLITE.as_str(),
        };
        let text = mac.to_string();
        let stmt = Statement::from_sql_and_values(backend, sql, [text.clone().into(), text.into()]);
        let row = self.hot_one::<AuthFactsRow>(stmt).await?;
        let Some(row) = row else {
            return Ok(DeviceAuthFacts {
                secret: None,
                binding: None,
                owner_active: false,
            });
        };
        // The binding in force: the latest one, unless it was ended.
        let binding = match (row.id, row.user_id, row.bound_at) {
            (Some(id), Some(user_id), Some(bound_at)) if row.unbound_at.is_none() => {
                Some(DeviceBinding {
                    id,
                    user_id,
                    mac_address: *mac,
                    name: row.name,
                    bound_at,
                    unbound_at: None,
                })
            }
            _ => None,
        };
        Ok(DeviceAuthFacts {
            secret: row.secret,
            owner_active: binding.is_some() && row.is_active.unwrap_or(false),
            binding,
        })
    }

    /// The secret of `mac`, if it has one.
    pub async fn secret_for(&self, mac: &MacAddress) -> Result<Option<String>> {
        device_credential::Entity::find()
            .select_only()
            .column(device_credential::Column::Secret)
            .filter(device_credential::Column::MacAddress.eq(mac.to_string()))
            .into_tuple::<String>()
            .one(self.conn())
            .await
            .map_err(db_err)
    }

    /// Gives `mac` the secret `secret`, replacing any previous one.
    pub async fn set_secret(
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
