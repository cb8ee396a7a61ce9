//! Redis pub/sub across instances. Every instance keeps one subscriber
//! connection with a pattern subscription on its channel prefix, so a group
//! needs no SUBSCRIBE round trip when a socket joins (no window in which a
//! fresh socket misses a push). A publish is one script call: XADD to the
//! group's stream `{prefix}lty:log:{{group}}` (trimmed with `MAXLEN ~`,
//! expiring a window after its last message) and PUBLISH of the entry id
//! with the message, atomically, so ids reach subscribers in order. Each
//! instance's subscriber task hands the message to its local hub. Control
//! messages (and the re-publish of a message nobody received) are a
//! PUBLISH alone, in a script keyed by the group's stream only so that a
//! cluster runs it on the same node.
//!
//! On a Redis Cluster a PUBLISH reaches every node (the cluster bus
//! broadcasts it) but its reply counts only the subscribers of the node
//! that ran it, and that count is how a publish knows an instance received
//! it. So there every group's stream shares one hash tag,
//! `{{prefix}lty:log}:{group}`: the publish script runs on the node serving
//! that slot, and each instance's subscriber connects to that same node
//! (found with `CLUSTER SLOTS`, again after a failover or when a publish
//! reaches nobody). See docs/scaling.md for what this costs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use lty_core::Result;
use lty_core::ports::{Delivery, GroupMessage, LogId, PubSub, Replay, Subscription};
use redis::{Client, ConnectionAddr, Script, Value};
use tokio::sync::{Notify, watch};

use super::{Hub, LogSettings};

/// First byte of a published logged message: `\xFE{id} {message}`. 0xFE
/// never starts UTF-8 text (messages) nor the 0xFF of control messages.
const LOGGED: u8 = 0xFE;

// KEYS[1] stream; ARGV: max length, window (ms), message, channel.
const PUBLISH_SCRIPT: &str = r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {id, redis.call('PUBLISH', ARGV[4], '\254' .. id .. ' ' .. ARGV[3])}
";

// KEYS[1] stream; ARGV: max length, window (ms). The last entry's id, or a
// head marker's (field `h`, skipped on replay) when the stream is empty.
const HEAD_SCRIPT: &str = r"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then return last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'h', '')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return id
";
// KEYS[1] the group's stream, not touched: it routes the call, on a
// cluster, to the node that ran the group's publishes (see the module
// doc); ARGV: channel, message.
const REPUBLISH_SCRIPT: &str = r"
return redis.call('PUBLISH', ARGV[1], ARGV[2])
";

use crate::cache::{RedisCache, RedisConnection, RedisSettings, redis_client};

/// Production pub/sub over Redis.
#[derive(Clone)]
pub struct RedisPubSub {
    hub: Arc<Hub>,
    conn: RedisConnection,
    channel_prefix: String,
    stream_prefix: String,
    /// On a cluster: asks the subscriber to check that it still listens on
    /// the node serving the streams' slot.
    recheck: Option<Arc<Notify>>,
    log: LogSettings,
    publish_script: Script,
    head_script: Script,
    republish_script: Script,
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
    /// [`RedisPubSub::connect_with_log`] with the default replay log.
    pub async fn connect(settings: &RedisSettings, cache: &RedisCache) -> Result<Self> {
        Self::connect_with_log(settings, cache, LogSettings::default()).await
    }

    /// Starts the subscriber task and waits until its first subscription is
    /// active, so messages published after this returns are received.
    pub async fn connect_with_log(
        settings: &RedisSettings,
        cache: &RedisCache,
        log: LogSettings,
    ) -> Result<Self> {
        let channel_prefix = format!("{}lty:group:", settings.key_prefix);
        let conn = cache.connection();
        let (stream_prefix, node, recheck) = if conn.is_cluster() {
            let tag = format!("{{{}lty:log}}", settings.key_prefix);
            let recheck = Arc::new(Notify::new());
            let node = SubscriberNode::SlotOwner {
                conn: conn.clone(),
                settings: settings.clone(),
                key: tag.clone(),
                recheck: recheck.clone(),
            };
            (format!("{tag}:"), node, Some(recheck))
        } else {
            let node = SubscriberNode::Fixed(redis_client(settings)?);
            (format!("{}lty:log:", settings.key_prefix), node, None)
        };
        let hub = Hub::new();
        let (ready_tx, mut ready_rx) = watch::channel(false);
        tokio::spawn(subscriber_loop(
            node,
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
            conn,
            channel_prefix,
            stream_prefix,
            recheck,
            log,
            publish_script: Script::new(PUBLISH_SCRIPT),
            head_script: Script::new(HEAD_SCRIPT),
            republish_script: Script::new(REPUBLISH_SCRIPT),
            subscribed: ready_rx,
            resubscribe_wait: settings.timeout,
        })
    }

    /// The local hub, for metrics.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn channel(&self, group: &str) -> String {
        let mut channel = String::with_capacity(self.channel_prefix.len() + group.len());
        channel.push_str(&self.channel_prefix);
        channel.push_str(group);
        channel
    }

    /// The group's stream key: `{prefix}lty:log:{group}` on one server,
    /// `{{prefix}lty:log}:{group}` on a cluster (one slot for every group).
    fn stream(&self, group: &str) -> String {
        if self.recheck.is_some() {
            format!("{}{group}", self.stream_prefix)
        } else {
            format!("{}{{{group}}}", self.stream_prefix)
        }
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.log.window.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Splits a published payload into its log id and message.
fn parse_published(payload: &[u8]) -> GroupMessage {
    if let Some(rest) = payload.strip_prefix(&[LOGGED])
        && let Some(space) = rest.iter().position(|b| *b == b' ')
        && let Some(id) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<LogId>().ok())
    {
        return GroupMessage {
            id: Some(id),
            payload: Bytes::copy_from_slice(&rest[space + 1..]),
        };
    }
    GroupMessage {
        id: None,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn parse_id(id: &str) -> Result<LogId> {
    id.parse()
        .map_err(|()| crate::cache_redis_err(format!("bad stream id {id:?}")))
}

/// Counts a publish refused because no subscription could receive it, and
/// the error it answers (503).
fn unavailable(reason: &'static str) -> lty_core::Error {
    metrics::counter!("lty_pubsub_unavailable_total", "reason" => reason).increment(1);
    crate::cache_redis_err("the pub/sub subscription is down; the message was not delivered")
}

/// The Redis server a subscriber listens on.
enum SubscriberNode {
    /// The one server.
    Fixed(Client),
    /// The cluster node serving the slot of `key`, looked up on each
    /// (re)connect and when `recheck` is notified.
    SlotOwner {
        conn: RedisConnection,
        settings: RedisSettings,
        key: String,
        recheck: Arc<Notify>,
    },
}

impl SubscriberNode {
    /// A client for the node to listen on now, and its address.
    async fn resolve(&self) -> redis::RedisResult<(Client, Option<(String, u16)>)> {
        match self {
            Self::Fixed(client) => Ok((client.clone(), None)),
            Self::SlotOwner {
                conn,
                settings,
                key,
                ..
            } => {
                let addr = slot_owner(&mut conn.clone(), key).await?;
                let seed = settings
                    .nodes()
                    .ok()
                    .and_then(|nodes| nodes.into_iter().next())
                    .ok_or_else(|| {
                        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no node"))
                    })?;
                let info = seed.set_addr(ConnectionAddr::Tcp(addr.0.clone(), addr.1));
                Ok((Client::open(info)?, Some(addr)))
            }
        }
    }

    /// Waits until a publish asks for a check (never, on one server).
    async fn recheck_requested(&self) {
        match self {
            Self::Fixed(_) => std::future::pending().await,
            Self::SlotOwner { recheck, .. } => recheck.notified().await,
        }
    }
}

/// The address of the master serving `key`'s slot, from `CLUSTER SLOTS`.
async fn slot_owner(conn: &mut RedisConnection, key: &str) -> redis::RedisResult<(String, u16)> {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await?;
    let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    find_slot_owner(&ranges, slot).ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::ClusterConnectionNotFound,
            "no master serves the replay log's slot",
        ))
    })
}

/// In a `CLUSTER SLOTS` reply (`[start, end, [host, port, id, ...], ...]`
/// per range), the master serving `slot`.
fn find_slot_owner(ranges: &[Value], slot: i64) -> Option<(String, u16)> {
    ranges.iter().find_map(|range| {
        let Value::Array(items) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&slot) {
            return None;
        }
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return None;
        };
        Some((host, u16::try_from(*port).ok()?))
    })
}

async fn subscriber_loop(
    node: SubscriberNode,
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
            let (client, addr) = node.resolve().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>((pubsub, addr))
        };
        let (pubsub, addr) = match tokio::time::timeout(timeout, connected).await {
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
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(hub) = hub.upgrade() else { return };
                    let Some(group) = msg.get_channel_name().strip_prefix(prefix.as_str()) else {
                        continue;
                    };
                    hub.deliver(group, &parse_published(msg.get_payload_bytes()));
                }
                () = node.recheck_requested() => {
                    // A publish reached no subscriber on the streams' node:
                    // the slot may have moved (a failover, a resharding).
                    match node.resolve().await {
                        Ok((_, now)) if now != addr => {
                            tracing::warn!(?now, "the replay log's slot moved; resubscribing");
                            break;
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(%err, "cannot look up the replay log's node"),
                    }
                }
            }
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
        let up = subscribed.wait_for(|up| *up);
        if !matches!(tokio::time::timeout_at(deadline, up).await, Ok(Ok(_))) {
            return Err(unavailable("subscriber_down"));
        }
        subscribed.mark_unchanged();
        let mut conn = self.conn.clone();
        let (id, mut receivers): (String, usize) = self
            .publish_script
            .key(self.stream(group))
            .arg(self.log.max_len.max(1))
            .arg(self.window_ms())
            .arg(message.as_ref())
            .arg(self.channel(group))
            .invoke_async(&mut conn)
            .await
            .map_err(crate::cache_redis_err)?;
        // Nobody received it (not even this instance, so its subscription
        // has just dropped): it is in the replay log already; publish the
        // same framed message again once the subscriber is back, so no
        // copy is duplicated and none is acknowledged unreceived.
        if receivers == 0 {
            if let Some(recheck) = &self.recheck {
                recheck.notify_one();
            }
            let mut framed = Vec::with_capacity(id.len() + message.len() + 2);
            framed.push(LOGGED);
            framed.extend_from_slice(id.as_bytes());
            framed.push(b' ');
            framed.extend_from_slice(&message);
            let channel = self.channel(group);
            while receivers == 0 {
                if tokio::time::timeout_at(deadline, subscribed.changed())
                    .await
                    .is_err()
                {
                    return Err(unavailable("no_receiver"));
                }
                if !*subscribed.borrow_and_update() {
                    continue;
                }
                receivers = self
                    .republish_script
                    .key(self.stream(group))
                    .arg(&channel)
                    .arg(framed.as_slice())
                    .invoke_async(&mut conn)
                    .await
                    .map_err(crate::cache_redis_err)?;
            }
        }
        Ok(Delivery {
            local: self.hub.members(group),
            instances: Some(receivers),
            id: Some(parse_id(&id)?),
        })
    }

    async fn publish_control(&self, group: &str, message: Bytes) -> Result<Delivery> {
        let mut conn = self.conn.clone();
        let receivers: usize = self
            .republish_script
            .key(self.stream(group))
            .arg(self.channel(group))
            .arg(message.as_ref())
            .invoke_async(&mut conn)
            .await
            .map_err(crate::cache_redis_err)?;
        Ok(Delivery {
            local: self.hub.members(group),
            instances: Some(receivers),
            id: None,
        })
    }

    async fn replay(&self, group: &str, after: LogId) -> Result<Replay> {
        let mut conn = self.conn.clone();
        // From the cursor itself: it must still be there, or entries after
        // it may have been trimmed or expired.
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(self.stream(group))
            .arg(after.to_string())
            .arg("+")
            .query_async(&mut conn)
            .await
            .map_err(crate::cache_redis_err)?;
        let mut entries = entries.into_iter();
        match entries.next() {
            Some((id, _)) if parse_id(&id)? == after => {}
            _ => return Ok(Replay::Gap),
        }
        let mut after = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            let [field, value] = <[Vec<u8>; 2]>::try_from(fields)
                .map_err(|_| crate::cache_redis_err("bad stream entry"))?;
            // Head markers (`h`) hold no message.
            if field == b"m" {
                after.push((parse_id(&id)?, Bytes::from(value)));
            }
        }
        Ok(Replay::After(after))
    }

    async fn head(&self, group: &str) -> Result<LogId> {
        let mut conn = self.conn.clone();
        let id: String = self
            .head_script
            .key(self.stream(group))
            .arg(self.log.max_len.max(1))
            .arg(self.window_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(crate::cache_redis_err)?;
        parse_id(&id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn the_slot_owner_is_the_master_of_the_range_holding_the_slot() {
        // As `CLUSTER SLOTS` answers on Redis 7: a metadata map after the
        // node id, replicas after the master.
        let ranges = vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![bulk("10.0.0.1"), Value::Int(7001), bulk("id1")]),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                Value::Array(vec![
                    bulk("10.0.0.2"),
                    Value::Int(7002),
                    bulk("id2"),
                    Value::Map(vec![]),
                ]),
                Value::Array(vec![bulk("10.0.0.9"), Value::Int(7009), bulk("id9")]),
            ]),
        ];
        assert_eq!(
            find_slot_owner(&ranges, 0),
            Some(("10.0.0.1".to_owned(), 7001))
        );
        assert_eq!(
            find_slot_owner(&ranges, 10922),
            Some(("10.0.0.2".to_owned(), 7002))
        );
        assert_eq!(find_slot_owner(&ranges, 10923), None);
    }
}
