//! [`PubSub`](lty_core::ports::PubSub) adapters. Both share [`Hub`], the
//! local map of group → member queues; they differ in how a publish reaches
//! the hubs: directly in-process, or through one Redis PUBLISH that every
//! instance's subscriber connection fans out locally.

mod hub;
mod memory;
mod redis;

pub use self::hub::Hub;
pub use self::memory::MemoryPubSub;
pub use self::redis::RedisPubSub;
