//! [`PubSub`](lty_core::ports::PubSub) adapters. Both share [`Hub`], the
//! local map of group → member queues; they differ in how a publish reaches
//! the hubs: directly in-process, or through one Redis PUBLISH that every
//! instance's subscriber connection fans out locally. Each keeps a bounded
//! replay log per group ([`LogSettings`]): an in-process ring buffer, or a
//! Redis Stream.

mod hub;
mod log;
mod memory;
mod redis;

use std::time::Duration;

pub use self::hub::Hub;
pub use self::memory::MemoryPubSub;
pub use self::redis::RedisPubSub;

/// How much of each group's traffic the replay log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Messages kept per group (about that many with Redis, which trims
    /// whole stream nodes).
    pub max_len: usize,
    /// A group's log is dropped this long after its last message.
    pub window: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            max_len: 128,
            window: Duration::from_secs(900),
        }
    }
}
