//! Persistence for lty: SeaORM entities and migrations (one set for SQLite
//! and PostgreSQL), repositories, and the cache, pub/sub and blob adapters
//! behind the ports of `lty-core`.
#![forbid(unsafe_code)]

mod accounts;
pub mod achievements;
pub mod admin_queries;
mod admins;
pub mod audit;
pub mod blob;
pub mod cache;
pub mod cards;
mod chat;
mod credentials;
pub mod db;
pub mod entity;
mod hot;
mod memo;
pub mod migration;
pub mod provision;
pub mod pubsub;
pub mod seed;
pub mod sort;
pub mod subscriptions;
pub mod tokens;
mod voice_chat;
mod xiaozhi;

pub use blob::{OpendalBlobStore, OssBlobStore, OssOptions, OssUrls};
pub use db::{Database, DatabaseKind, PoolOptions};

pub(crate) use cache::redis_err as cache_redis_err;
