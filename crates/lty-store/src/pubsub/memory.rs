//! In-process pub/sub: a publish goes straight to the local hub.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use lty_core::Result;
use lty_core::ports::{Delivery, PubSub, Subscription};

use super::Hub;

/// Embedded-mode pub/sub for a single instance.
#[derive(Debug, Clone)]
pub struct MemoryPubSub {
    hub: Arc<Hub>,
}

impl MemoryPubSub {
    /// A pub/sub with its own empty hub.
    pub fn new() -> Self {
        Self { hub: Hub::new() }
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
        Ok(Delivery {
            local: self.hub.deliver(group, &message),
            instances: None,
        })
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
