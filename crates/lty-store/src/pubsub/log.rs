//! The in-process replay log: a ring buffer of the last messages of each
//! group, dropped a window after the group's last message (as the Redis
//! Stream of the production adapter expires).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use dashmap::DashMap;
use lty_core::ports::{LogId, Replay};

use super::LogSettings;

/// Sweep expired groups once per this many appends.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Default)]
struct Ring {
    /// `None` payloads are head markers: a position to resume from, with
    /// nothing to deliver.
    entries: VecDeque<(LogId, Option<Bytes>)>,
    touched: Option<Instant>,
}

/// Group → its last messages.
#[derive(Debug)]
pub(super) struct MemoryLog {
    settings: LogSettings,
    groups: DashMap<String, Ring>,
    appends: AtomicU64,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl Ring {
    fn expired(&self, settings: &LogSettings) -> bool {
        self.touched.is_none_or(|t| t.elapsed() >= settings.window)
    }

    fn push(&mut self, settings: &LogSettings, payload: Option<Bytes>) -> LogId {
        if self.expired(settings) {
            self.entries.clear();
        }
        let id = LogId::next(self.entries.back().map(|e| e.0), now_ms());
        self.entries.push_back((id, payload));
        while self.entries.len() > settings.max_len.max(1) {
            self.entries.pop_front();
        }
        self.touched = Some(Instant::now());
        id
    }
}

impl MemoryLog {
    pub(super) fn new(settings: LogSettings) -> Self {
        Self {
            settings,
            groups: DashMap::new(),
            appends: AtomicU64::new(0),
        }
    }

    /// Logs `message` in `group` and, while the group is still locked (so
    /// members see ids in order), calls `deliver` with its id.
    pub(super) fn append<T>(
        &self,
        group: &str,
        message: &Bytes,
        deliver: impl FnOnce(LogId) -> T,
    ) -> T {
        if self.appends.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let mut ring = match self.groups.get_mut(group) {
            Some(ring) => ring,
            None => self.groups.entry(group.to_owned()).or_default(),
        };
        let id = ring.push(&self.settings, Some(message.clone()));
        deliver(id)
    }

    /// The id of `group`'s last entry; logs a head marker first when the
    /// group's log is empty.
    pub(super) fn head(&self, group: &str) -> LogId {
        let mut ring = self.groups.entry(group.to_owned()).or_default();
        match ring.entries.back() {
            Some(&(id, _)) if !ring.expired(&self.settings) => id,
            _ => ring.push(&self.settings, None),
        }
    }

    /// The messages logged in `group` after `after`.
    pub(super) fn replay(&self, group: &str, after: LogId) -> Replay {
        let Some(ring) = self.groups.get(group) else {
            return Replay::Gap;
        };
        if ring.expired(&self.settings) {
            return Replay::Gap;
        }
        match ring.entries.binary_search_by_key(&after, |e| e.0) {
            Ok(at) => Replay::After(
                ring.entries
                    .iter()
                    .skip(at + 1)
                    .filter_map(|(id, payload)| Some((*id, payload.clone()?)))
                    .collect(),
            ),
            Err(_) => Replay::Gap,
        }
    }

    fn sweep(&self) {
        self.groups.retain(|_, ring| !ring.expired(&self.settings));
    }
}
