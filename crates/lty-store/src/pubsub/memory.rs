//! In-process pub/sub: a publish is logged in the group's ring buffer and
//! goes straight to the local hub.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use lty_core::Result;
use lty_core::ports::{Delivery, GroupMessage, LogId, PubSub, Replay, Subscription};

use super::log::MemoryLog;
use super::{Hub, LogSettings};

/// Embedded-mode pub/sub for a single instance.
#[derive(Debug, Clone)]
pub struct MemoryPubSub {
    hub: Arc<Hub>,
    log: Arc<MemoryLog>,
}

impl MemoryPubSub {
    /// A pub/sub with its own empty hub and the default replay log.
    pub fn new() -> Self {
        Self::with_log(LogSettings::default())
    }

    /// A pub/sub with its own empty hub and a replay log of `log`.
    pub fn with_log(log: LogSettings) -> Self {
        Self {
            hub: Hub::new(),
            log: Arc::new(MemoryLog::new(log)),
        }
    }

    /// The local hub, for metrics.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Default for MemoryPubSub {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    async fn publish(&self, group: &str, message: Bytes) -> Result<Delivery> {
        let (id, local) = self.log.append(group, &message, |id| {
            let message = GroupMessage {
                id: Some(id),
                payload: message.clone(),
            };
            (id, self.hub.deliver(group, &message))
        });
        Ok(Delivery {
            local,
            instances: None,
            id: Some(id),
        })
    }

    async fn publish_control(&self, group: &str, message: Bytes) -> Result<Delivery> {
        let message = GroupMessage {
            id: None,
            payload: message,
        };
        Ok(Delivery {
            local: self.hub.deliver(group, &message),
            instances: None,
            id: None,
        })
    }

    async fn replay(&self, group: &str, after: LogId) -> Result<Replay> {
        Ok(self.log.replay(group, after))
    }

    async fn head(&self, group: &str) -> Result<LogId> {
        Ok(self.log.head(group))
    }

    fn subscribe(&self, group: &str, capacity: usize) -> Subscription {
        self.hub.join(group, capacity)
    }

    fn local_members(&self, group: &str) -> usize {
        self.hub.members(group)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
