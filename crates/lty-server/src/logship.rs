//! Shipping log lines to Aliyun SLS (Log Service), next to the JSON lines
//! on stdout.
//!
//! [`LogShipLayer`] is a `tracing` layer: for each event it builds a small
//! owned [`LogRecord`] (level, target, message, the event's fields and the
//! fields of every enclosing span, so a request's `request_id`, `route` and
//! `user_id` ride along) and pushes it into a bounded in-memory buffer. The
//! push takes a short mutex and never waits for the network: when the
//! buffer is full the **oldest** record is dropped and
//! `lty_log_ship_dropped_total` counts it.
//!
//! [`LogShipper`] is the background task that drains the buffer: a batch
//! goes out when `batch_size` records are waiting or every
//! `flush_interval_ms`, as one signed, deflate-compressed `PutLogs`
//! request. A failed batch is retried with exponential backoff (transient
//! failures only, at most `max_retries` times) while new records keep
//! filling the buffer, which keeps only the newest `buffer_size`. Shipped
//! records count in `lty_log_shipped_total`. On shutdown
//! [`flush_global`] sends what is left, within a deadline.
//!
//! Events of this module and of the HTTP client stack are not shipped, so
//! shipping cannot feed itself.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lty_vendors::aliyun::AccessKey;
use lty_vendors::aliyun::sls::{
    Log, LogGroup, MAX_LOGS_PER_REQUEST, PutLogsError, SlsClient, SlsClientConfig,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::AliyunLogConfig;

/// Longest kept field value, in bytes; longer values are cut (at a
/// character boundary) and end in `…`.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Targets whose events are never shipped: this module (its warnings about
/// SLS itself) and the HTTP client stack the shipper runs on.
const UNSHIPPED_TARGETS: &[&str] = &[module_path!(), "hyper", "h2", "reqwest", "rustls"];

/// Everything the shipper needs, validated.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Where `PutLogs` goes and as whom.
    pub client: SlsClientConfig,
    /// Records kept while SLS is slow or down (at least 1).
    pub buffer_size: usize,
    /// Records per `PutLogs` (1..=4096).
    pub batch_size: usize,
    /// Flush period of partial batches.
    pub flush_interval: Duration,
    /// Longest wait between two tries of one batch.
    pub max_backoff: Duration,
    /// Retries of one batch before it is dropped.
    pub max_retries: u32,
    /// `Topic` of every log group.
    pub topic: String,
    /// `Source` of every log group (the host name).
    pub source: String,
}

/// Whether the configuration asks for shipping.
#[derive(Debug, Clone)]
pub enum ShipSetting {
    /// No `ALIYUN_LOG_*` setting at all: stdout only.
    Off,
    /// Some but not all required settings: stdout only, with a warning
    /// naming what is missing.
    Incomplete(Vec<&'static str>),
    /// Ship.
    On(Box<ShipConfig>),
}

impl ShipSetting {
    /// Reads `aliyun.log.*`: shipping is on when project, store, endpoint,
    /// access key id and secret are all set.
    pub fn from_config(c: &AliyunLogConfig) -> Self {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let secret = c
            .access_key_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .filter(|s| !s.is_empty());
        let required = [
            ("ALIYUN_LOG_PROJECT", set(&c.project)),
            ("ALIYUN_LOG_STORE", set(&c.store)),
            ("ALIYUN_LOG_ENDPOINT", set(&c.endpoint)),
            ("ALIYUN_LOG_ACCESS_KEY_ID", set(&c.access_key_id)),
            ("ALIYUN_LOG_ACCESS_KEY_SECRET", secret.is_some()),
        ];
        let missing: Vec<&'static str> = required
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| *n)
            .collect();
        if missing.len() == required.len() {
            return Self::Off;
        }
        let (Some(project), Some(store), Some(endpoint), Some(id), Some(secret), true) = (
            c.project.clone(),
            c.store.clone(),
            c.endpoint.clone(),
            c.access_key_id.clone(),
            secret,
            missing.is_empty(),
        ) else {
            return Self::Incomplete(missing);
        };
        let timeout = Duration::from_millis(c.timeout_ms.max(100));
        Self::On(Box::new(ShipConfig {
            client: SlsClientConfig {
                endpoint: endpoint.trim().to_owned(),
                project: project.trim().to_owned(),
                logstore: store.trim().to_owned(),
                key: AccessKey::new(id.trim(), secret),
                compress: c.compress,
                connect_timeout: timeout.min(Duration::from_secs(3)),
                timeout,
            },
            buffer_size: c.buffer_size.max(1),
            batch_size: c.batch_size.clamp(1, MAX_LOGS_PER_REQUEST),
            flush_interval: Duration::from_millis(c.flush_interval_ms.max(10)),
            max_backoff: Duration::from_millis(c.max_backoff_ms.max(10)),
            max_retries: c.max_retries,
            topic: c.topic.clone(),
            source: host_name(),
        }))
    }
}

/// The host name, for `Source` (`unknown` when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One log line as shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Unix seconds.
    pub time: u32,
    /// Sub-second nanoseconds.
    pub time_ns: u32,
    /// Key/value pairs: `level`, `target`, `message`, the event's fields,
    /// then the span fields not already present (innermost span first).
    pub contents: Vec<(String, String)>,
}

impl LogRecord {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.contents
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Counts since start, also exported as Prometheus counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShipStats {
    /// Records accepted into SLS.
    pub shipped: u64,
    /// Records dropped: pushed out of a full buffer, refused by SLS, or
    /// given up on after the retries.
    pub dropped: u64,
    /// Records waiting in the buffer now.
    pub queued: u64,
}

/// The buffer shared by the layer and the shipper task.
struct Shared {
    queue: Mutex<VecDeque<LogRecord>>,
    capacity: usize,
    batch_size: usize,
    wake: Notify,
    dropped: AtomicU64,
    shipped: AtomicU64,
    dropped_counter: metrics::Counter,
    shipped_counter: metrics::Counter,
}

impl Shared {
    fn new(capacity: usize, batch_size: usize) -> Self {
        let dropped_counter = metrics::counter!("lty_log_ship_dropped_total");
        let shipped_counter = metrics::counter!("lty_log_shipped_total");
        // Both series exist from the start, so a dashboard sees 0, not "no data".
        dropped_counter.increment(0);
        shipped_counter.increment(0);
        Self {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity,
            batch_size,
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
            shipped: AtomicU64::new(0),
            dropped_counter,
            shipped_counter,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<LogRecord>> {
        // A panic while holding this lock cannot leave the deque invalid.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `record`, dropping the oldest one when full. Never waits
    /// for anything but the (short) buffer lock.
    fn push(&self, record: LogRecord) {
        let (len, evicted) = {
            let mut q = self.lock();
            q.push_back(record);
            let evicted = q.len() > self.capacity;
            if evicted {
                q.pop_front();
            }
            (q.len(), evicted)
        };
        if evicted {
            self.count_dropped(1);
        }
        if len >= self.batch_size {
            self.wake.notify_one();
        }
    }

    fn take_batch(&self) -> Vec<LogRecord> {
        let mut q = self.lock();
        let n = q.len().min(self.batch_size);
        q.drain(..n).collect()
    }

    fn count_dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        self.dropped_counter.increment(n as u64);
    }

    fn count_shipped(&self, n: usize) {
        self.shipped.fetch_add(n as u64, Ordering::Relaxed);
        self.shipped_counter.increment(n as u64);
    }

    fn stats(&self) -> ShipStats {
        ShipStats {
            shipped: self.shipped.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.lock().len() as u64,
        }
    }
}

/// Builds the layer and the (not yet running) shipper for `config`.
///
/// The Prometheus recorder must be installed before this is called for the
/// counters to be exported.
pub fn build(config: ShipConfig) -> Result<(LogShipLayer, LogShipper), PutLogsError> {
    let client = SlsClient::new(config.client.clone())?;
    let shared = Arc::new(Shared::new(config.buffer_size, config.batch_size));
    Ok((
        LogShipLayer {
            shared: shared.clone(),
        },
        LogShipper {
            shared,
            client,
            config,
        },
    ))
}

// ---------------------------------------------------------------------------
// The layer.
// ---------------------------------------------------------------------------

/// The `tracing` layer that copies events into the shipping buffer.
#[derive(Clone)]
pub struct LogShipLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for LogShipLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogShipLayer")
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl LogShipLayer {
    /// Shipped/dropped/queued counts.
    pub fn stats(&self) -> ShipStats {
        self.shared.stats()
    }

    /// Removes and returns every buffered record (for inspection in tests
    /// and tools that read the buffer without a shipper).
    pub fn drain(&self) -> Vec<LogRecord> {
        self.shared.lock().drain(..).collect()
    }
}

/// Fields recorded on a span, kept in its extensions.
#[derive(Default)]
struct SpanFields(Vec<(&'static str, String)>);

/// Collects field values as owned strings.
struct Collect<'a>(&'a mut Vec<(&'static str, String)>);

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: String) {
        let value = truncate(value);
        match self.0.iter_mut().find(|(k, _)| *k == field.name()) {
            Some(slot) => slot.1 = value,
            None => self.0.push((field.name(), value)),
        }
    }
}

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.to_string());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_VALUE_BYTES {
        let mut cut = MAX_VALUE_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl<S> Layer<S> for LogShipLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Collect(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(fields) => values.record(&mut Collect(&mut fields.0)),
            None => {
                let mut fields = SpanFields::default();
                values.record(&mut Collect(&mut fields.0));
                ext.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let target = meta.target();
        if UNSHIPPED_TARGETS.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        }) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut fields: Vec<(&'static str, String)> = Vec::with_capacity(8);
        event.record(&mut Collect(&mut fields));
        let mut contents: Vec<(String, String)> = Vec::with_capacity(fields.len() + 8);
        contents.push(("level".into(), meta.level().as_str().to_owned()));
        contents.push(("target".into(), target.to_owned()));
        if let Some(i) = fields.iter().position(|(k, _)| *k == "message") {
            let (_, message) = fields.remove(i);
            contents.push(("message".into(), message));
        }
        contents.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let ext = span.extensions();
                let Some(span_fields) = ext.get::<SpanFields>() else {
                    continue;
                };
                for (k, v) in &span_fields.0 {
                    if !contents.iter().any(|(have, _)| have == k) {
                        contents.push(((*k).to_owned(), v.clone()));
                    }
                }
            }
        }
        self.shared.push(LogRecord {
            time: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
            time_ns: now.subsec_nanos(),
            contents,
        });
    }
}

// ---------------------------------------------------------------------------
// The shipper task.
// ---------------------------------------------------------------------------

/// The background sender; [`LogShipper::spawn`] starts it.
pub struct LogShipper {
    shared: Arc<Shared>,
    client: SlsClient,
    config: ShipConfig,
}

impl fmt::Debug for LogShipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogShipper")
            .field("url", &self.client.url())
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

/// A running shipper: stats and flushing.
#[derive(Clone)]
pub struct ShipHandle {
    shared: Arc<Shared>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl fmt::Debug for ShipHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShipHandle")
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

impl ShipHandle {
    /// Shipped/dropped/queued counts.
    pub fn stats(&self) -> ShipStats {
        self.shared.stats()
    }

    /// Sends everything buffered now (one try per batch, ignoring the
    /// retry backoff), waiting at most `deadline`. Returns whether the
    /// flush finished in time.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let done = async {
            self.flush.send(tx).await.ok()?;
            rx.await.ok()
        };
        matches!(tokio::time::timeout(deadline, done).await, Ok(Some(())))
    }
}

/// One batch being sent, possibly again.
struct Pending {
    records: Vec<LogRecord>,
    retries: u32,
}

impl LogShipper {
    /// Starts the task on the current Tokio runtime.
    pub fn spawn(self) -> ShipHandle {
        let (tx, rx) = mpsc::channel(4);
        let handle = ShipHandle {
            shared: self.shared.clone(),
            flush: tx,
        };
        tokio::spawn(self.run(rx));
        handle
    }

    async fn run(self, mut flushes: mpsc::Receiver<oneshot::Sender<()>>) {
        let mut pending: Option<Pending> = None;
        let mut retry_at: Option<Instant> = None;
        let mut failing = false;
        loop {
            let wait_until =
                retry_at.unwrap_or_else(|| Instant::now() + self.config.flush_interval);
            tokio::select! {
                () = self.shared.wake.notified(), if retry_at.is_none() => {}
                () = tokio::time::sleep_until(wait_until) => {}
                req = flushes.recv() => {
                    let Some(reply) = req else { return };
                    self.flush_all(&mut pending).await;
                    retry_at = None;
                    let _ = reply.send(());
                    continue;
                }
            }
            retry_at = None;
            // Send full batches and, on the timer, the partial one; stop at
            // the first failure and come back after the backoff.
            loop {
                let batch = match pending.take() {
                    Some(p) => p,
                    None => {
                        let records = self.shared.take_batch();
                        if records.is_empty() {
                            break;
                        }
                        Pending {
                            records,
                            retries: 0,
                        }
                    }
                };
                match self.send(&batch.records).await {
                    Ok(()) => {
                        self.shared.count_shipped(batch.records.len());
                        if failing {
                            failing = false;
                            tracing::info!("log shipping to SLS recovered");
                        }
                    }
                    Err(err) if err.is_retryable() && batch.retries < self.config.max_retries => {
                        if !failing {
                            failing = true;
                            tracing::warn!(%err, "log shipping to SLS failing; buffering and retrying");
                        }
                        let retries = batch.retries + 1;
                        retry_at = Some(Instant::now() + self.backoff(retries));
                        pending = Some(Pending {
                            records: batch.records,
                            retries,
                        });
                        break;
                    }
                    Err(err) => {
                        self.shared.count_dropped(batch.records.len());
                        // Once per failure streak, not once per batch.
                        if !failing {
                            failing = true;
                            tracing::warn!(%err, dropped = batch.records.len(), "SLS refused a log batch; dropped");
                        }
                    }
                }
            }
        }
    }

    /// One try for the pending batch and everything buffered.
    async fn flush_all(&self, pending: &mut Option<Pending>) {
        let mut batch = pending.take().map(|p| p.records);
        loop {
            let records = match batch.take() {
                Some(r) => r,
                None => self.shared.take_batch(),
            };
            if records.is_empty() {
                return;
            }
            match self.send(&records).await {
                Ok(()) => self.shared.count_shipped(records.len()),
                Err(err) => {
                    let left = records.len() + self.shared.lock().drain(..).count();
                    self.shared.count_dropped(left);
                    tracing::warn!(%err, dropped = left, "final log flush to SLS failed");
                    return;
                }
            }
        }
    }

    fn backoff(&self, retries: u32) -> Duration {
        // 200 ms, 400 ms, 800 ms, ... capped.
        let ms = 200u64.saturating_mul(1u64 << retries.saturating_sub(1).min(20));
        Duration::from_millis(ms).min(self.config.max_backoff)
    }

    async fn send(&self, records: &[LogRecord]) -> Result<(), PutLogsError> {
        let group = LogGroup {
            logs: records
                .iter()
                .map(|r| Log {
                    time: r.time,
                    contents: r.contents.clone(),
                    time_ns: Some(r.time_ns),
                })
                .collect(),
            topic: Some(self.config.topic.clone()),
            source: Some(self.config.source.clone()),
            tags: vec![("lty_version".into(), env!("CARGO_PKG_VERSION").into())],
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.client.put_logs(&group, now).await
    }
}

// ---------------------------------------------------------------------------
// The process-wide shipper.
// ---------------------------------------------------------------------------

static GLOBAL: OnceLock<ShipHandle> = OnceLock::new();

/// Registers the shipper of the global subscriber (first call wins).
pub fn install_global(handle: ShipHandle) {
    let _ = GLOBAL.set(handle);
}

/// The shipper of the global subscriber, if shipping is on.
pub fn global() -> Option<&'static ShipHandle> {
    GLOBAL.get()
}

/// Flushes the global shipper (if any) within `deadline`; for shutdown.
pub async fn flush_global(deadline: Duration) {
    if let Some(handle) = GLOBAL.get() {
        let stats = handle.stats();
        if !handle.flush(deadline).await {
            tracing::warn!(
                queued = stats.queued,
                "log flush to SLS did not finish in time"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn ship_config(buffer_size: usize, batch_size: usize) -> ShipConfig {
        ShipConfig {
            client: SlsClientConfig {
                // Never contacted: these tests run no shipper.
                endpoint: "http://127.0.0.1:9".into(),
                project: "p".into(),
                logstore: "s".into(),
                key: AccessKey::new("id", "secret"),
                compress: true,
                connect_timeout: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            },
            buffer_size,
            batch_size,
            flush_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            max_retries: 1,
            topic: "t".into(),
            source: "host".into(),
        }
    }

    #[test]
    fn records_carry_event_and_span_fields_including_ones_recorded_later() {
        let (layer, _shipper) = build(ship_config(100, 10)).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "abc123",
                route = tracing::field::Empty,
                user_id = tracing::field::Empty,
            );
            let _g = span.enter();
            tracing::Span::current().record("route", "/api/user/{id}/");
            tracing::Span::current().record("user_id", 42_i64);
            // Events of this module (tests included) are not shipped: name a target.
            tracing::warn!(target: "lty_server::http", status = 404_u64, "finished {}", "request");
            tracing::info!(target: "lty_server::logship", "not shipped");
            tracing::info!(target: "hyper_util::client", "shipped: not the hyper crate");
            tracing::debug!(target: "hyper::proto", "not shipped");
        });
        let records = layer.drain();
        assert_eq!(records.len(), 2, "{records:?}");
        let r = &records[0];
        assert_eq!(r.get("level"), Some("WARN"));
        assert_eq!(r.get("message"), Some("finished request"));
        assert_eq!(r.get("status"), Some("404"));
        assert_eq!(r.get("request_id"), Some("abc123"));
        assert_eq!(r.get("route"), Some("/api/user/{id}/"));
        assert_eq!(r.get("user_id"), Some("42"));
        assert!(r.time > 1_700_000_000);
        assert_eq!(records[1].get("target"), Some("hyper_util::client"));
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let (layer, _shipper) = build(ship_config(3, 10)).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.clone());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::info!(target: "lty_server::http", i, "line");
            }
        });
        assert_eq!(
            layer.stats(),
            ShipStats {
                shipped: 0,
                dropped: 2,
                queued: 3
            }
        );
        let kept: Vec<_> = layer
            .drain()
            .iter()
            .map(|r| r.get("i").unwrap_or("").to_owned())
            .collect();
        assert_eq!(kept, ["2", "3", "4"]);
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let long = "界".repeat(MAX_VALUE_BYTES);
        let cut = truncate(long);
        assert!(cut.len() <= MAX_VALUE_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn shipping_needs_every_setting() {
        let mut c = AliyunLogConfig::default();
        assert!(matches!(ShipSetting::from_config(&c), ShipSetting::Off));
        c.project = Some("p".into());
        c.endpoint = Some("cn-hangzhou.log.aliyuncs.com".into());
        match ShipSetting::from_config(&c) {
            ShipSetting::Incomplete(missing) => assert_eq!(
                missing,
                [
                    "ALIYUN_LOG_STORE",
                    "ALIYUN_LOG_ACCESS_KEY_ID",
                    "ALIYUN_LOG_ACCESS_KEY_SECRET"
                ]
            ),
            other => panic!("{other:?}"),
        }
        c.store = Some("s".into());
        c.access_key_id = Some("id".into());
        c.access_key_secret = Some(crate::config::Secret::new("secret"));
        c.batch_size = 100_000;
        match ShipSetting::from_config(&c) {
            ShipSetting::On(s) => {
                assert_eq!(s.batch_size, MAX_LOGS_PER_REQUEST);
                assert_eq!(s.client.logstore, "s");
            }
            other => panic!("{other:?}"),
        }
    }
}
