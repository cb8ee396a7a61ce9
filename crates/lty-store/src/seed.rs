//! Benchmark seed data (`lty seed --users N`), exactly as the load harness's
//! contract fixes it: user `bench_{i}` bound to MAC `02:00:` + the four bytes
//! of `i` big-endian. Idempotent: a second run adds only what is missing.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use lty_core::{MacAddress, Result};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};

use crate::Database;
use crate::db::db_err;
use crate::entity::{user, user_device};

// Rows per INSERT: well under both engines' bind-parameter limits.
const CHUNK: u32 = 2000;

/// The MAC of bench user `i`.
pub fn bench_mac(i: u32) -> MacAddress {
    let b = i.to_be_bytes();
    MacAddress::from_octets([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

/// The username of bench user `i`.
pub fn bench_username(i: u32) -> String {
    format!("bench_{i}")
}

/// What a seed run changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    /// Users created by this run.
    pub users_created: u64,
    /// Bindings created by this run.
    pub bindings_created: u64,
}

/// Ensures bench users `0..n` exist, each with its device binding.
pub async fn seed_bench_users(db: &Database, n: u32) -> Result<SeedReport> {
    let mut report = SeedReport::default();
    let mut start = 0;
    while start < n {
        let end = start.saturating_add(CHUNK).min(n);
        let chunk = seed_chunk(db, start, end).await?;
        report.users_created += chunk.users_created;
        report.bindings_created += chunk.bindings_created;
        start = end;
    }
    Ok(report)
}

async fn seed_chunk(db: &Database, start: u32, end: u32) -> Result<SeedReport> {
    let txn = db.conn().begin().await.map_err(db_err)?;
    let now = Utc::now();
    let names: Vec<String> = (start..end).map(bench_username).collect();

    let users = names.iter().map(|name| user::ActiveModel {
        username: Set(name.clone()),
        nickname: Set(None),
        avatar_url: Set(None),
        phone: Set(None),
        is_active: Set(true),
        date_joined: Set(now),
        updated_at: Set(now),
        ..Default::default()
    });
    let users_created = user::Entity::insert_many(users)
        .on_conflict(
            OnConflict::column(user::Column::Username)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(db_err)?;

    let ids: HashMap<String, i64> = user::Entity::find()
        .select_only()
        .column(user::Column::Username)
        .column(user::Column::Id)
        .filter(user::Column::Username.is_in(names.iter().cloned()))
        .into_tuple::<(String, i64)>()
        .all(&txn)
        .await
        .map_err(db_err)?
        .into_iter()
        .collect();

    let macs: Vec<String> = (start..end).map(|i| bench_mac(i).to_string()).collect();
    let bound: HashSet<String> = user_device::Entity::find()
        .select_only()
        .column(user_device::Column::MacAddress)
        .filter(user_device::Column::MacAddress.is_in(macs.iter().cloned()))
        .into_tuple::<String>()
        .all(&txn)
        .await
        .map_err(db_err)?
        .into_iter()
        .collect();

    let bindings: Vec<user_device::ActiveModel> = names
        .iter()
        .zip(&macs)
        .filter(|(_, mac)| !bound.contains(*mac))
        .filter_map(|(name, mac)| {
            ids.get(name).map(|&uid| user_device::ActiveModel {
                user_id: Set(uid),
                mac_address: Set(mac.clone()),
                name: Set(None),
                bound_at: Set(now),
                unbound_at: Set(None),
                ..Default::default()
            })
        })
        .collect();
    let bindings_created = bindings.len() as u64;
    if !bindings.is_empty() {
        user_device::Entity::insert_many(bindings)
            .exec_without_returning(&txn)
            .await
            .map_err(db_err)?;
    }
    txn.commit().await.map_err(db_err)?;
    Ok(SeedReport {
        users_created,
        bindings_created,
    })
}

/// Whether `name` is a bench username: `bench_` and a decimal index.
fn is_bench_username(name: &str) -> bool {
    name.strip_prefix("bench_")
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// Number of bench users (`bench_{i}`) in the database.
pub async fn count_bench_users(db: &Database) -> Result<u64> {
    // LIKE is only a pre-filter: `_` is a wildcard, and SQLite's LIKE
    // ignores case; the exact rule is applied to the candidates.
    let names: Vec<String> = user::Entity::find()
        .select_only()
        .column(user::Column::Username)
        .filter(user::Column::Username.starts_with("bench_"))
        .into_tuple::<String>()
        .all(db.conn())
        .await
        .map_err(db_err)?;
    Ok(names.iter().filter(|n| is_bench_username(n)).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_macs_follow_the_contract_examples() {
        assert_eq!(bench_mac(0).to_string(), "02:00:00:00:00:00");
        assert_eq!(bench_mac(1).to_string(), "02:00:00:00:00:01");
        assert_eq!(bench_mac(258).to_string(), "02:00:00:00:01:02");
        assert_eq!(bench_mac(4999).to_string(), "02:00:00:00:13:87");
        assert_eq!(bench_mac(65536).to_string(), "02:00:00:01:00:00");
        assert_ne!(bench_mac(u32::MAX).to_string(), "02:ff:ff:ff:ff:ff");
    }
}
