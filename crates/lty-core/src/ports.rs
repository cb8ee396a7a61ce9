//! Port traits: what the application needs from its backing services.
//!
//! Each port has an in-process adapter (embedded mode) and a networked one
//! (production: Redis, object storage) in `lty-store`; the server picks one
//! per port at start-up from configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::Result;

/// A key-value cache with per-key expiry: tokens, rate-limit counters,
/// short-lived state. Keys are the legacy Redis key formats
/// (`token:{token}`, `device:last_seen:{mac}`, ...).
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` to `value`, replacing any value, with an optional expiry.
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()>;
    /// Sets `key` only if it does not exist; `true` when it was set.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;
    /// Deletes `key`; `true` when it existed.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Increments the counter at `key`, starting a window of `window` when the
    /// counter is new. Returns the new count and the time left in the window.
    async fn incr(&self, key: &str, window: Duration) -> Result<(i64, Duration)>;
    /// Time left before `key` expires: `None` when the key does not exist,
    /// `Some(Duration::MAX)` when it has no expiry.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>>;
    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;
    /// The value of `key` and whether the key `{marker_prefix}{value}`
    /// exists, looked up together: one round trip on a networked backend.
    /// `None` when `key` does not exist.
    async fn get_marked(&self, key: &str, marker_prefix: &str) -> Result<Option<(String, bool)>> {
        let Some(value) = self.get(key).await? else {
            return Ok(None);
        };
        let marked = self
            .get(&format!("{marker_prefix}{value}"))
            .await?
            .is_some();
        Ok(Some((value, marked)))
    }
}

/// What a publish reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Sockets on this instance the message was queued for.
    pub local: usize,
    /// Instances (Redis subscribers) the message was handed to, when the
    /// backend reports it; `None` in-process.
    pub instances: Option<usize>,
}

/// Group messaging between device sockets, across instances.
///
/// A group is named like the legacy channel groups (`device_{user_id}`).
/// Messages are UTF-8 JSON text.
#[async_trait]
pub trait PubSub: Send + Sync {
    /// Hands `message` to every member of `group`, wherever it is connected.
    /// Returns once the message is published (queued locally, or accepted by
    /// Redis), so an acknowledged publish is never lost unseen.
    async fn publish(&self, group: &str, message: Bytes) -> Result<Delivery>;
    /// Joins a new local member to `group` with a queue of `capacity`
    /// messages. The member leaves when the subscription is dropped.
    fn subscribe(&self, group: &str, capacity: usize) -> Subscription;
    /// Number of local members of `group`.
    fn local_members(&self, group: &str) -> usize;
    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;
}

/// One member's view of a group: a bounded queue of messages.
///
/// When the member falls `capacity` messages behind, it is removed from the
/// group, its queue ends, and [`Subscription::overflowed`] turns true: the
/// socket must then be closed so the device reconnects, rather than silently
/// missing messages.
pub struct Subscription {
    rx: mpsc::Receiver<Bytes>,
    overflowed: Arc<AtomicBool>,
    // Leaves the group when the subscription is dropped.
    _membership: Box<dyn Send + Sync>,
}

impl Subscription {
    /// Builds a subscription from its queue, overflow flag and membership
    /// guard (the adapter's handle that leaves the group on drop).
    pub fn new(
        rx: mpsc::Receiver<Bytes>,
        overflowed: Arc<AtomicBool>,
        membership: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            rx,
            overflowed,
            _membership: membership,
        }
    }

    /// The next message; `None` when the member was removed.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// Whether the member was removed for falling behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("overflowed", &self.overflowed())
            .finish_non_exhaustive()
    }
}

/// Object storage for media (audio, images, QR codes).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `data` under `key` (a relative path such as
    /// `audio/permanent/20261125/a.mp3`), replacing any object there.
    async fn put(&self, key: &str, data: Bytes, content_type: &str) -> Result<()>;
    /// Reads the object at `key`; `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Deletes the object at `key`; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// The URL a client can fetch the object from: a public URL, or a
    /// presigned one (valid for the store's configured time) when the
    /// objects are private.
    fn url(&self, key: &str) -> String;
    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;
    /// The names of the folders directly under the folder `prefix` (e.g.
    /// `audio/temporary/` → `["20261101", …]`), for expiry sweeps; empty
    /// when there is no such folder. Stores that expire objects themselves
    /// (lifecycle rules) answer `Error::Backend`.
    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>>;
    /// Deletes the folder `prefix` (ending in `/`) and every object in it.
    async fn delete_folder(&self, prefix: &str) -> Result<()>;
}
