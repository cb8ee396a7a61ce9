//! Creating and dropping PostgreSQL databases, for `lty migrate` on a fresh
//! server and for test runs that each get a database of their own.

use lty_core::{Error, Result};
use sea_orm::ConnectionTrait;

use crate::db::db_err;
use crate::{Database, PoolOptions};

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::validation("database", "names are [a-z0-9_]{1,63}"))
    }
}

/// `admin_url` with its database replaced by `name`.
pub fn with_database(admin_url: &str, name: &str) -> Result<String> {
    let mut url = url_parse(admin_url)?;
    url.set_path(name);
    Ok(url.into())
}

fn url_parse(s: &str) -> Result<url::Url> {
    url::Url::parse(s).map_err(|e| Error::validation("database_url", e.to_string()))
}

/// Creates database `name` on the server of `admin_url`.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    check_name(name)?;
    let admin = Database::connect(admin_url, &PoolOptions::default()).await?;
    let res = admin
        .conn()
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map(|_| ())
        .map_err(db_err);
    admin.close().await;
    res
}

/// Drops database `name`, disconnecting its sessions first.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    check_name(name)?;
    let admin = Database::connect(admin_url, &PoolOptions::default()).await?;
    let res = admin
        .conn()
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map(|_| ())
        .map_err(db_err);
    admin.close().await;
    res
}
