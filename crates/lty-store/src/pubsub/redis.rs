//! Redis pub/sub across instances. Every instance keeps one subscriber
//! connection with a pattern subscription on its channel prefix, so a group
//! needs no SUBSCRIBE round trip when a socket joins (no window in which a
//! fresh socket misses a push). A publish is one PUBLISH; each instance's
//! subscriber task hands the message to its local hub.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use lty_core::Result;
use lty_core::ports::{Delivery, PubSub, Subscription};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use super::Hub;
use crate::cache::RedisCache;
use crate::cache::{RedisSettings, redis_client};

/// Production pub/sub over Redis.
#[derive(Clone)]
pub struct RedisPubSub {
    hub: Arc<Hub>,
    conn: ConnectionManager,
    channel_prefix: String,
    subscribed: watch::Receiver<bool>,
    /// How long a publish waits for the subscriber to come back.
    resubscribe_wait: Duration,
}

impl std::fmt::Debug for RedisPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPubSub")
            .field("channel_prefix", &self.channel_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisPubSub {
    /// Starts the subscriber task and waits until its first subscription is
    /// active, so messages published after this returns are received.
    pub async fn connect(settings: &RedisSettings, cache: &RedisCache) -> Result<Self> {
        let channel_prefix = format!("{}lty:group:", settings.key_prefix);
        let hub = Hub::new();
        let (ready_tx, mut ready_rx) = watch::channel(false);
        let client = redis_client(settings)?;
        tokio::spawn(subscriber_loop(
            client,
            channel_prefix.clone(),
            Arc::downgrade(&hub),
            ready_tx,
            settings.timeout,
        ));
        let wait = ready_rx.wait_for(|ready| *ready);
        match tokio::time::timeout(settings.timeout * 3, wait).await {
            Ok(Ok(_)) => {}
            _ => return Err(crate::cache_redis_err("subscriber did not connect")),
        }
        Ok(Self {
            hub,
            conn: cache.connection(),
            channel_prefix,
            subscribed: ready_rx,
            resubscribe_wait: settings.timeout,
        })
    }

    /// The local hub, for metrics.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// Counts a publish refused because no subscription could receive it, and
/// the error it answers (503).
fn unavailable(reason: &'static str) -> lty_core::Error {
    metrics::counter!("lty_pubsub_unavailable_total", "reason" => reason).increment(1);
    crate::cache_redis_err("the pub/sub subscription is down; the message was not delivered")
}

async fn subscriber_loop(
    client: redis::Client,
    prefix: String,
    hub: std::sync::Weak<Hub>,
    ready: watch::Sender<bool>,
    timeout: Duration,
) {
    let pattern = format!("{prefix}*");
    let mut backoff = Duration::from_millis(100);
    loop {
        if hub.strong_count() == 0 {
            return;
        }
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(timeout, connected).await {
            Ok(Ok(p)) => p,
            Ok(Err(err)) => {
                tracing::warn!(%err, "redis subscriber failed to connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(_) => {
                tracing::warn!("redis subscriber timed out connecting; retrying");
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        ready.send_replace(true);
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let Some(hub) = hub.upgrade() else { return };
            let Some(group) = msg.get_channel_name().strip_prefix(prefix.as_str()) else {
                continue;
            };
            let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
            hub.deliver(group, &payload);
        }
        // The stream ended: the connection dropped. Pushes published while
        // reconnecting cannot reach this instance's sockets.
        ready.send_replace(false);
        tracing::error!("redis subscriber connection lost; reconnecting");
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    /// Never acknowledges a message no instance received: while this
    /// instance's subscriber is down, or when Redis reports no receiver at
    /// all (not even this instance, so its subscription has just dropped),
    /// it waits up to `redis.timeout` for the subscription to come back and
    /// publishes again, then fails (`lty_pubsub_unavailable_total`).
    async fn publish(&self, group: &str, message: Bytes) -> Result<Delivery> {
        let deadline = tokio::time::Instant::now() + self.resubscribe_wait;
        let mut subscribed = self.subscribed.clone();
        let mut channel = String::with_capacity(self.channel_prefix.len() + group.len());
        channel.push_str(&self.channel_prefix);
        channel.push_str(group);
        loop {
            let wait = subscribed.wait_for(|up| *up);
            if !matches!(tokio::time::timeout_at(deadline, wait).await, Ok(Ok(_))) {
                return Err(unavailable("subscriber_down"));
            }
            subscribed.mark_unchanged();
            let mut conn = self.conn.clone();
            let receivers: usize = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(message.as_ref())
                .query_async(&mut conn)
                .await
                .map_err(crate::cache_redis_err)?;
            if receivers > 0 {
                return Ok(Delivery {
                    local: self.hub.members(group),
                    instances: Some(receivers),
                });
            }
            // Nobody received it, so nothing is duplicated by publishing
            // again once the subscriber has noticed and reconnected.
            if tokio::time::timeout_at(deadline, subscribed.changed())
                .await
                .is_err()
            {
                return Err(unavailable("no_receiver"));
            }
        }
    }

    fn subscribe(&self, group: &str, capacity: usize) -> Subscription {
        self.hub.join(group, capacity)
    }

    fn local_members(&self, group: &str) -> usize {
        self.hub.members(group)
    }

    async fn ping(&self) -> Result<()> {
        if !*self.subscribed.borrow() {
            return Err(crate::cache_redis_err("subscriber connection is down"));
        }
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(crate::cache_redis_err)?;
        Ok(())
    }
}
