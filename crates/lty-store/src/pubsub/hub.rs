//! Local fan-out: each member has a bounded queue; a member that falls
//! behind is removed and flagged instead of silently missing messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use futures_channel::mpsc;
use lty_core::ports::{GroupMessage, Subscription};

#[derive(Debug)]
struct Member {
    id: u64,
    tx: mpsc::Sender<GroupMessage>,
    overflowed: Arc<AtomicBool>,
}

/// Group → members of this instance.
#[derive(Debug, Default)]
pub struct Hub {
    groups: DashMap<String, Vec<Member>>,
    next_id: AtomicU64,
    overflows: AtomicU64,
}

/// Removes a member from its group when its subscription is dropped.
struct Membership {
    hub: Weak<Hub>,
    group: String,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(&self.group, self.id);
        }
    }
}

impl Hub {
    /// A new hub with no groups.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a member with a queue of `capacity` messages to `group`.
    pub fn join(self: &Arc<Self>, group: &str, capacity: usize) -> Subscription {
        // A bounded queue of futures-channel takes one message more than its
        // buffer for each sender, and a member has one sender: a buffer of
        // `capacity - 1` holds `capacity` messages.
        let (tx, rx) = mpsc::channel(capacity.max(1) - 1);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let overflowed = Arc::new(AtomicBool::new(false));
        self.groups
            .entry(group.to_owned())
            .or_default()
            .push(Member {
                id,
                tx,
                overflowed: overflowed.clone(),
            });
        let membership = Membership {
            hub: Arc::downgrade(self),
            group: group.to_owned(),
            id,
        };
        Subscription::new(rx, overflowed, Box::new(membership))
    }

    /// Queues `message` for every member of `group`; returns how many
    /// members it was queued for. Members whose queue is full are removed
    /// (their subscription ends with `overflowed() == true`).
    pub fn deliver(&self, group: &str, message: &GroupMessage) -> usize {
        let Some(mut members) = self.groups.get_mut(group) else {
            return 0;
        };
        let mut delivered = 0;
        members.retain_mut(|m| match m.tx.try_send(message.clone()) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(err) if err.is_full() => {
                m.overflowed.store(true, Ordering::Release);
                self.overflows.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group, member = m.id, "member queue full; removing it");
                false
            }
            // The subscription was dropped.
            Err(_) => false,
        });
        let empty = members.is_empty();
        drop(members);
        if empty {
            self.groups.remove_if(group, |_, v| v.is_empty());
        }
        delivered
    }

    /// Number of members of `group`.
    pub fn members(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |m| m.len())
    }

    /// How many members were removed for falling behind, ever.
    pub fn overflow_count(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    fn remove(&self, group: &str, id: u64) {
        if let Some(mut members) = self.groups.get_mut(group) {
            members.retain(|m| m.id != id);
            let empty = members.is_empty();
            drop(members);
            if empty {
                self.groups.remove_if(group, |_, v| v.is_empty());
            }
        }
    }
}
