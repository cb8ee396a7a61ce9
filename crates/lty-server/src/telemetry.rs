//! Logs (tracing, JSON in production, optionally shipped to Aliyun SLS by
//! [`crate::logship`]), request ids, and Prometheus metrics.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rand::RngCore;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::logship;

/// Installs the global log subscriber: lines on stdout (JSON in
/// production, with the fields of the enclosing request span: `request_id`,
/// `method`, `path`, `route`, `user_id`), plus shipping to Aliyun SLS when
/// `aliyun.log.*` is complete (see [`crate::logship`]). Safe to call more
/// than once (later calls do nothing). Shipping starts only when called
/// inside a Tokio runtime.
pub fn init_logging(config: &Config) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let default = if config.debug {
        "debug".to_owned()
    } else {
        config.log.level.clone()
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let stdout = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .boxed()
    };
    let setting = logship::ShipSetting::from_config(&config.aliyun.log);
    let runtime = tokio::runtime::Handle::try_current().is_ok();
    let mut problem = None;
    let ship = match (&setting, runtime) {
        (logship::ShipSetting::On(ship), true) => {
            // The shipping counters bind to the recorder installed here.
            let _ = metrics_handle();
            match logship::build((**ship).clone()) {
                Ok(parts) => Some(parts),
                Err(err) => {
                    problem = Some(err.to_string());
                    None
                }
            }
        }
        (logship::ShipSetting::On(_), false) => {
            problem = Some("no Tokio runtime to run it on".to_owned());
            None
        }
        _ => None,
    };
    let (layer, shipper) = match ship {
        Some((layer, shipper)) => (Some(layer), Some(shipper)),
        None => (None, None),
    };
    // try_init fails only when a subscriber is already set (tests).
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(layer)
        .try_init()
        .is_ok();
    if !installed {
        return;
    }
    if let Some(shipper) = shipper {
        let handle = shipper.spawn();
        logship::install_global(handle);
        if let logship::ShipSetting::On(ship) = &setting {
            tracing::info!(
                project = %ship.client.project,
                logstore = %ship.client.logstore,
                endpoint = %ship.client.endpoint,
                buffer_size = ship.buffer_size,
                batch_size = ship.batch_size,
                "shipping logs to Aliyun SLS"
            );
        }
    }
    match (&setting, problem) {
        (logship::ShipSetting::Incomplete(missing), _) => tracing::warn!(
            missing = %missing.join(", "),
            "Aliyun SLS log shipping is partly configured and stays off"
        ),
        (logship::ShipSetting::On(_), Some(err)) => {
            tracing::warn!(%err, "Aliyun SLS log shipping cannot start")
        }
        _ => {}
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); then this
            // handle renders an empty registry rather than failing start-up.
            let _ = metrics::set_global_recorder(recorder);
            metrics::gauge!("lty_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            metrics::gauge!("lty_ws_open_connections").set(0.0);
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the histograms' recorded samples into their buckets every few
/// seconds until `shutdown`. The recorder keeps every sample until then or
/// until a scrape of `/metrics`: without this, memory grows with every
/// request while nothing scrapes.
pub fn spawn_metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    spawn_metrics_upkeep_every(handle, shutdown, METRICS_UPKEEP_EVERY);
}

fn spawn_metrics_upkeep_every(
    handle: PrometheusHandle,
    shutdown: CancellationToken,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => handle.run_upkeep(),
            }
        }
    });
}

/// Counts requests and records their latency by route and status. Routes
/// are the matched templates (`/api/device/{id}/`), never raw paths, so
/// the label set stays bounded.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    // The request span was opened before routing; the route is known now.
    tracing::Span::current().record("route", route);
    let method = req.method().clone();
    let res = next.run(req).await;
    let (count, duration) = HTTP_METRICS.of(route, &method, res.status().as_u16());
    count.increment(1);
    duration.record(start.elapsed().as_secs_f64());
    res
}

/// The request counter and latency histogram of every (route, method,
/// status) seen so far, registered once: a request looks its pair up
/// instead of building three label strings and finding both in the
/// recorder's registry again. The set is bounded like the labels are
/// (matched route templates, not raw paths).
static HTTP_METRICS: std::sync::LazyLock<HttpMetrics> =
    std::sync::LazyLock::new(HttpMetrics::default);

type RouteMetrics = Vec<(
    axum::http::Method,
    u16,
    metrics::Counter,
    metrics::Histogram,
)>;

#[derive(Default)]
struct HttpMetrics {
    by_route: std::sync::RwLock<std::collections::HashMap<String, RouteMetrics>>,
}

impl HttpMetrics {
    fn of(
        &self,
        route: &str,
        method: &axum::http::Method,
        status: u16,
    ) -> (metrics::Counter, metrics::Histogram) {
        let find = |known: &RouteMetrics| {
            known
                .iter()
                .find(|(m, s, _, _)| m == method && *s == status)
                .map(|(_, _, c, h)| (c.clone(), h.clone()))
        };
        if let Some(found) = self
            .by_route
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
            .and_then(find)
        {
            return found;
        }
        let mut by_route = self
            .by_route
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = by_route.entry(route.to_owned()).or_default();
        if let Some(found) = find(known) {
            return found;
        }
        let labels = [
            ("method", method.as_str().to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let count = metrics::counter!("lty_http_requests_total", &labels);
        let duration = metrics::histogram!("lty_http_request_duration_seconds", &labels);
        known.push((method.clone(), status, count.clone(), duration.clone()));
        (count, duration)
    }
}

/// Path prefixes whose next segment is a credential: a login token, a card
/// code. Logs never carry credentials (docs/security.md), so request spans
/// record the path through [`redact_path`].
const SECRET_SEGMENT_AFTER: &[&str] = &["/ws/device/token/", "/api/card/", "/api/v1/admin/cards/"];

/// `path` with the credential segment after any [`SECRET_SEGMENT_AFTER`]
/// prefix replaced by `***`.
pub fn redact_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in SECRET_SEGMENT_AFTER {
        if let Some(rest) = path.strip_prefix(prefix) {
            let end = rest.find('/').unwrap_or(rest.len());
            if end == 0 {
                break;
            }
            return format!("{prefix}***{}", &rest[end..]).into();
        }
    }
    path.into()
}

/// Request ids: 16 random bytes in hex, unless the client sent one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        HeaderValue::from_str(&hex::encode(raw))
            .ok()
            .map(RequestId::new)
    }
}

/// Replaces the default panic report (message plus, with
/// `RUST_BACKTRACE`, a multi-kilobyte backtrace on stderr) by one ERROR
/// line through the log, at most one a second with the count of those
/// left out, and counts every panic in `lty_panics_total`. A panic in a
/// handler is still answered with an opaque 500 by the HTTP layer, so one
/// client repeating a panicking request cannot flood the log.
pub fn install_panic_hook() {
    static LIMITER: PanicLogLimiter = PanicLogLimiter::new();
    std::panic::set_hook(Box::new(|info| {
        metrics::counter!("lty_panics_total").increment(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Some(suppressed) = LIMITER.admit(now) else {
            return;
        };
        let message = info.payload_as_str().unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, %location, suppressed, "panic caught");
    }));
}

/// At most one admitted event per second; counts the others.
#[derive(Debug)]
pub struct PanicLogLimiter {
    last_second: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl PanicLogLimiter {
    /// A limiter that admits the first event.
    pub const fn new() -> Self {
        Self {
            last_second: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)` if an event at Unix second `now` may be logged, `n` being
    /// the events left out since the last one logged; `None` otherwise.
    pub fn admit(&self, now: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last_second.load(Relaxed);
        if now > last
            && self
                .last_second
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

impl Default for PanicLogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{PanicLogLimiter, redact_path};

    /// Resident memory of this process, from `/proc/self/statm`.
    #[cfg(target_os = "linux")]
    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    // One thread: the upkeep runs between the batches of samples, never
    // during one. The library's bucket can drop a sample written while
    // another thread drains it (a few in 100 000 when a drain runs every
    // 5 ms under a tight loop of writes), which would make the exact count
    // below fail now and then for a reason that is not this test's.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn histogram_samples_do_not_pile_up_while_nothing_scrapes() {
        use std::time::Duration;
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(super::LATENCY_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let histogram = metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("lty_test_duration_seconds")
        });
        let stop = tokio_util::sync::CancellationToken::new();
        super::spawn_metrics_upkeep_every(handle.clone(), stop.clone(), Duration::from_millis(5));
        // 16 million samples: about 130 MB if they were all kept.
        let before = rss_bytes();
        for _ in 0..400 {
            for _ in 0..40_000 {
                histogram.record(0.001);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let grown = rss_bytes().saturating_sub(before);
        stop.cancel();
        assert!(
            grown < 48 << 20,
            "resident memory grew by {} MB over 16 million samples",
            grown >> 20
        );
        // Nothing was lost: the buckets count every sample.
        assert!(
            handle
                .render()
                .contains("lty_test_duration_seconds_count 16000000"),
            "{}",
            handle.render()
        );
    }

    #[test]
    fn credentials_in_paths_are_redacted_and_other_paths_kept() {
        assert_eq!(
            redact_path("/ws/device/token/abc123/"),
            "/ws/device/token/***/"
        );
        assert_eq!(
            redact_path("/ws/device/token/abc123"),
            "/ws/device/token/***"
        );
        assert_eq!(
            redact_path("/api/card/LTY-7F3K/qr.png"),
            "/api/card/***/qr.png"
        );
        assert_eq!(
            redact_path("/api/v1/admin/cards/LTY-7F3K/disable/"),
            "/api/v1/admin/cards/***/disable/"
        );
        assert_eq!(redact_path("/api/user/profile/"), "/api/user/profile/");
        assert_eq!(redact_path("/ws/device/token/"), "/ws/device/token/");
    }

    #[test]
    fn panics_are_logged_at_most_once_a_second_with_a_count_of_the_rest() {
        let limiter = PanicLogLimiter::new();
        assert_eq!(limiter.admit(100), Some(0));
        for _ in 0..500 {
            assert_eq!(limiter.admit(100), None);
        }
        assert_eq!(limiter.admit(101), Some(500));
        assert_eq!(limiter.admit(101), None);
        assert_eq!(limiter.admit(105), Some(1));
    }
}
