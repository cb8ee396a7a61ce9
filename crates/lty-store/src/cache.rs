//! [`Cache`](lty_core::ports::Cache) adapters: in-process for embedded mode,
//! Redis for production.

mod memory;
mod redis;

pub use self::memory::MemoryCache;
pub(crate) use self::redis::redis_err;
pub use self::redis::{
    CLUSTER_SCHEME, RedisCache, RedisConnection, RedisSettings, is_cluster_url, redis_client,
};
