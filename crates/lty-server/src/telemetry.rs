//! Logs (tracing, JSON in production, optionally shipped to Aliyun SLS by
//! [`crate::logship`]), request ids, and Prometheus metrics.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rand::RngCore;
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

/// Counts requests and records their latency by route and status. Routes
/// are the matched templates (`/api/device/{id}/`), never raw paths, so
/// the label set stays bounded.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // The request span was opened before routing; the route is known now.
    tracing::Span::current().record("route", route.as_str());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("lty_http_requests_total", &labels).increment(1);
    metrics::histogram!("lty_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    res
}

/// Request ids: 16 random bytes in hex, unless the client sent one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        HeaderValue::from_str(&hex_encode(&raw))
            .ok()
            .map(RequestId::new)
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
