//! The in-process cache: a sharded map with lazy expiry and a periodic sweep,
//! so expired keys neither answer nor pile up.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use lty_core::Result;
use lty_core::ports::Cache;

const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// Presence indexes: member → expiry, per index.
type Indexes = DashMap<String, HashMap<String, Instant>>;

/// The embedded-mode cache. Cloning shares the same maps.
#[derive(Debug, Clone, Default)]
pub struct MemoryCache {
    map: Arc<DashMap<String, Entry>>,
    indexes: Arc<Indexes>,
}

impl MemoryCache {
    /// A new empty cache. When called inside a Tokio runtime, a background
    /// task sweeps expired keys until the cache is dropped.
    pub fn new() -> Self {
        let cache = Self::default();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<DashMap<String, Entry>> = Arc::downgrade(&cache.map);
            let weak_indexes: Weak<Indexes> = Arc::downgrade(&cache.indexes);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let (Some(map), Some(indexes)) = (weak.upgrade(), weak_indexes.upgrade())
                    else {
                        break;
                    };
                    let now = Instant::now();
                    map.retain(|_, e| e.live(now));
                    indexes.retain(|_, members| {
                        members.retain(|_, at| *at > now);
                        !members.is_empty()
                    });
                }
            });
        }
        cache
    }

    /// Number of keys held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache holds no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let now = Instant::now();
        Ok(self
            .map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let expires = ttl.map(|t| Instant::now() + t);
        self.map.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires,
            },
        );
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let fresh = Entry {
            value: value.to_owned(),
            expires: Some(now + ttl),
        };
        match self.map.entry(key.to_owned()) {
            MapEntry::Occupied(mut o) if !o.get().live(now) => {
                o.insert(fresh);
                Ok(true)
            }
            MapEntry::Occupied(_) => Ok(false),
            MapEntry::Vacant(v) => {
                v.insert(fresh);
                Ok(true)
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        Ok(self.map.remove(key).is_some_and(|(_, e)| e.live(now)))
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<(i64, Duration)> {
        let now = Instant::now();
        let mut entry = self.map.entry(key.to_owned()).or_insert_with(|| Entry {
            value: "0".to_owned(),
            expires: Some(now + window),
        });
        if !entry.live(now) {
            *entry = Entry {
                value: "0".to_owned(),
                expires: Some(now + window),
            };
        }
        // A counter written without expiry gets a window, as the Redis
        // adapter's script does, so it cannot count forever.
        let expires = *entry.expires.get_or_insert(now + window);
        // A non-numeric value restarts the count, as Redis would refuse it.
        let n = entry.value.parse::<i64>().unwrap_or(0).saturating_add(1);
        entry.value = n.to_string();
        Ok((n, expires.saturating_duration_since(now)))
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        let now = Instant::now();
        Ok(self.map.get(key).filter(|e| e.live(now)).map(|e| {
            e.expires
                .map_or(Duration::MAX, |at| at.saturating_duration_since(now))
        }))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn mark_present(&self, index: &str, member: &str, ttl: Duration) -> Result<()> {
        let until = Instant::now() + ttl;
        // A mark that moves allocates nothing.
        if let Some(mut members) = self.indexes.get_mut(index) {
            match members.get_mut(member) {
                Some(at) => *at = until,
                None => {
                    members.insert(member.to_owned(), until);
                }
            }
            return Ok(());
        }
        self.indexes
            .entry(index.to_owned())
            .or_default()
            .insert(member.to_owned(), until);
        Ok(())
    }

    async fn present(&self, index: &str) -> Result<Vec<String>> {
        let now = Instant::now();
        let Some(mut members) = self.indexes.get_mut(index) else {
            return Ok(Vec::new());
        };
        members.retain(|_, at| *at > now);
        Ok(members.keys().cloned().collect())
    }

    async fn count_present(&self, index: &str) -> Result<u64> {
        let now = Instant::now();
        Ok(self.indexes.get(index).map_or(0, |members| {
            members.values().filter(|at| **at > now).count() as u64
        }))
    }
}
