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
use futures_channel::mpsc;
use futures_util::StreamExt;

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
    /// Records `member` in the presence index `index` until `ttl` from
    /// now; a later mark replaces the earlier one. Networked backends keep
    /// the index in one sorted set scored by expiry (unix milliseconds).
    async fn mark_present(&self, index: &str, member: &str, ttl: Duration) -> Result<()>;
    /// The members of `index` whose mark has not expired, in no particular
    /// order; expired marks are dropped as a side effect.
    async fn present(&self, index: &str) -> Result<Vec<String>>;
    /// How many members of `index` have a mark that has not expired,
    /// without listing them.
    async fn count_present(&self, index: &str) -> Result<u64> {
        Ok(self.present(index).await?.len() as u64)
    }
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
    /// The message's position in its group's replay log; `None` for control
    /// messages, which are not logged.
    pub id: Option<LogId>,
}

/// The position of a message in its group's replay log, written
/// `{ms}-{seq}` (the Redis Streams entry id; the in-process log makes its
/// ids the same way). Ids of one group only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// Unix time in milliseconds when the message was logged (or the
    /// previous id's, if the clock went back).
    pub ms: u64,
    /// Sequence within that millisecond.
    pub seq: u64,
}

impl LogId {
    /// The id following `last` at unix time `now_ms` (Redis's rule: never
    /// smaller than the last id, even if the clock goes back).
    pub fn next(last: Option<LogId>, now_ms: u64) -> LogId {
        match last {
            Some(last) if last.ms >= now_ms => LogId {
                ms: last.ms,
                seq: last.seq + 1,
            },
            _ => LogId { ms: now_ms, seq: 0 },
        }
    }
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl std::str::FromStr for LogId {
    type Err = ();

    /// Parses `{ms}-{seq}`; a bare `{ms}` means `{ms}-0`.
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(());
        }
        Ok(LogId {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

/// A message as a group member receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// Its replay-log id; `None` for control messages.
    pub id: Option<LogId>,
    pub payload: Bytes,
}

/// What a group's replay log holds after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The messages logged after the cursor, oldest first (possibly none).
    After(Vec<(LogId, Bytes)>),
    /// The cursor is no longer in the log (trimmed, expired, or never
    /// there): messages may have been lost in between.
    Gap,
}

/// Group messaging between device sockets, across instances.
///
/// A group is named like the legacy channel groups (`device_{user_id}`).
/// Messages are UTF-8 JSON text. Each group has a bounded replay log: data
/// messages get an increasing [`LogId`] and stay in the log for a while, so
/// a member that reconnects can ask for what it missed ([`PubSub::replay`]).
#[async_trait]
pub trait PubSub: Send + Sync {
    /// Logs `message` in `group`'s replay log and hands it, with its id, to
    /// every member of `group`, wherever it is connected. Returns once the
    /// message is published (queued locally, or accepted by Redis), so an
    /// acknowledged publish is never lost unseen.
    async fn publish(&self, group: &str, message: Bytes) -> Result<Delivery>;
    /// Hands a control message (not logged, no id) to every member of
    /// `group`.
    async fn publish_control(&self, group: &str, message: Bytes) -> Result<Delivery>;
    /// The messages of `group` logged after `after`, or [`Replay::Gap`] when
    /// `after` is no longer in the log.
    async fn replay(&self, group: &str, after: LogId) -> Result<Replay>;
    /// The id of the last entry of `group`'s log, to resume from later.
    /// When the log is empty, a marker entry (delivered to nobody) is
    /// logged first, so the id returned is in the log.
    async fn head(&self, group: &str) -> Result<LogId>;
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
    rx: mpsc::Receiver<GroupMessage>,
    overflowed: Arc<AtomicBool>,
    // Leaves the group when the subscription is dropped.
    _membership: Box<dyn Send + Sync>,
}

impl Subscription {
    /// Builds a subscription from its queue, overflow flag and membership
    /// guard (the adapter's handle that leaves the group on drop).
    pub fn new(
        rx: mpsc::Receiver<GroupMessage>,
        overflowed: Arc<AtomicBool>,
        membership: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            rx,
            overflowed,
            _membership: membership,
        }
    }

    /// The next message's payload; `None` when the member was removed.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.next().await.map(|m| m.payload)
    }

    /// The next message with its replay-log id; `None` when the member was
    /// removed.
    pub async fn recv_message(&mut self) -> Option<GroupMessage> {
        self.rx.next().await
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

#[cfg(test)]
mod tests {
    use super::LogId;

    #[test]
    fn log_ids_print_and_parse_like_redis_stream_ids() {
        let id = LogId {
            ms: 1733541234567,
            seq: 3,
        };
        assert_eq!(id.to_string(), "1733541234567-3");
        assert_eq!("1733541234567-3".parse(), Ok(id));
        assert_eq!("17".parse(), Ok(LogId { ms: 17, seq: 0 }));
        for bad in ["", "-", "1-", "-1", "a-1", "1-2-3", "+1-0", " 1-0"] {
            assert_eq!(bad.parse::<LogId>(), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn the_next_log_id_never_goes_back_even_when_the_clock_does() {
        assert_eq!(LogId::next(None, 10), LogId { ms: 10, seq: 0 });
        let last = LogId { ms: 10, seq: 4 };
        assert_eq!(LogId::next(Some(last), 10), LogId { ms: 10, seq: 5 });
        assert_eq!(LogId::next(Some(last), 9), LogId { ms: 10, seq: 5 });
        assert_eq!(LogId::next(Some(last), 11), LogId { ms: 11, seq: 0 });
    }
}
