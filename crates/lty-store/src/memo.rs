//! Short-lived in-process copies of rows that every chat turn reads and
//! that rarely change: the default persona, plans, and a user's
//! subscription periods. Each entry lives [`MEMO_TTL`]; the store's own
//! writes to those tables clear the copies at once, and other instances see
//! a change within the TTL.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lty_core::chat::Persona;
use lty_core::subscription::{Plan, Subscription};

/// How long a copy is used before the database is asked again.
pub const MEMO_TTL: Duration = Duration::from_secs(5);

/// Most entries of one memo; past it, expired entries are dropped, and if
/// that is not enough, all of them.
const MAX_ENTRIES: usize = 50_000;

/// A small map of values, each valid for a fixed time after it was read.
#[derive(Debug)]
pub(crate) struct Memo<K, V> {
    ttl: Duration,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    /// Bumped by every [`Memo::clear`], so that a read that raced a write
    /// is not remembered.
    generation: u64,
    entries: HashMap<K, (Instant, V)>,
}

/// Where a read started: its time and the memo's generation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStart {
    at: Instant,
    generation: u64,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Inner {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value read for `key` less than the TTL ago, or where a new read
    /// starts.
    pub(crate) fn get(&self, key: &K) -> Result<V, ReadStart> {
        let inner = self.lock();
        match inner.entries.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Ok(v.clone()),
            _ => Err(ReadStart {
                at: Instant::now(),
                generation: inner.generation,
            }),
        }
    }

    /// Remembers `value` for `key`, unless the memo was cleared since
    /// `start` (a write may have raced the read).
    pub(crate) fn put(&self, key: K, value: V, start: ReadStart) {
        let mut inner = self.lock();
        if inner.generation != start.generation || self.ttl.is_zero() {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            inner.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, (start.at, value));
    }

    /// Forgets every value.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

/// The memoized catalog reads of one [`Database`](crate::Database).
#[derive(Debug)]
pub(crate) struct Memos {
    pub(crate) default_persona: Memo<(), Option<Persona>>,
    pub(crate) plan_by_code: Memo<String, Option<Plan>>,
    pub(crate) plan_by_id: Memo<i64, Option<Plan>>,
    pub(crate) subscriptions: Memo<i64, Vec<Subscription>>,
}

impl Memos {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            default_persona: Memo::new(ttl),
            plan_by_code: Memo::new(ttl),
            plan_by_id: Memo::new(ttl),
            subscriptions: Memo::new(ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_served_until_its_ttl_then_read_again() {
        let memo: Memo<&str, u32> = Memo::new(Duration::from_millis(50));
        let start = memo.get(&"free").expect_err("empty");
        memo.put("free", 20, start);
        assert_eq!(memo.get(&"free").ok(), Some(20));
        std::thread::sleep(Duration::from_millis(60));
        assert!(memo.get(&"free").is_err());
    }

    #[test]
    fn a_read_that_raced_a_clear_is_not_remembered() {
        let memo: Memo<&str, u32> = Memo::new(Duration::from_secs(60));
        let start = memo.get(&"free").expect_err("empty");
        // A writer changes the plan while the read is in flight.
        memo.clear();
        memo.put("free", 20, start);
        assert!(memo.get(&"free").is_err());
    }

    #[test]
    fn a_zero_ttl_remembers_nothing() {
        let memo: Memo<(), u32> = Memo::new(Duration::ZERO);
        let start = memo.get(&()).expect_err("empty");
        memo.put((), 1, start);
        assert!(memo.get(&()).is_err());
    }
}
