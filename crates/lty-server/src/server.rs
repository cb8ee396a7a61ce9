//! Running the server: listening, and draining on SIGTERM or SIGINT: stop
//! accepting, let in-flight requests finish and close every WebSocket with
//! 1012 (service restart) so devices reconnect to another instance, all
//! within `http.shutdown_grace_secs`.

use std::time::Duration;

use std::sync::Arc;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use self::connections::{Connections, CountedIo, is_health_route};

pub mod connections;

use crate::config::DeviceAuthMode;
use crate::error::ApiError;
use crate::http;
use crate::state::AppState;

/// How long shutdown waits for the last log lines to reach SLS.
const LOG_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Serves `state` on `listener` until `state.shutdown` is cancelled, then
/// drains in-flight requests for at most the configured grace period.
pub async fn serve(state: AppState, listener: TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let grace = Duration::from_secs(state.config.http.shutdown_grace_secs);
    let shutdown = state.shutdown.clone();
    if state.config.device_auth == DeviceAuthMode::Legacy {
        tracing::warn!(
            "device_auth = legacy: devices without a secret may log in by MAC alone; \
             set LTY_DEVICE_AUTH=signed once the fleet signs its requests"
        );
    }
    let limits = &state.config.limits;
    tracing::info!(
        mode = limits.client_ip_mode(),
        trusted_proxies = %limits.trusted_proxies,
        exempt_loopback = limits.exempt_loopback,
        "client addresses for per-IP limits"
    );
    if limits.exempt_loopback {
        tracing::warn!(
            "LTY_LIMITS__EXEMPT_LOOPBACK=true: loopback clients skip per-IP limits; \
             meant for load tests from this machine, not behind a local proxy"
        );
    }
    tracing::info!(%addr, database = ?state.db.kind(), cache = ?state.cache_backend, "listening");
    // The disabled-account markers live in the cache: set them again in
    // case it lost its data, so token-only routes keep refusing those users.
    match crate::app::auth::restore_disabled_markers(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(users = n, "disabled-account markers restored"),
        Err(err) => tracing::warn!(?err, "cannot restore disabled-account markers"),
    }
    let app = http::router(state.clone());
    // Stops abandoned voice agents; ends with `state.shutdown`.
    crate::app::voice_chat::spawn_sweeper(state.clone());
    // Deletes expired temporary media on the `fs` storage backend.
    crate::app::media::spawn_sweeper(state.clone());
    crate::telemetry::spawn_metrics_upkeep(state.metrics.clone(), state.shutdown.clone());

    let http = &state.config.http;
    let open_files = connections::raise_open_file_limit();
    let ceiling = match http.max_connections {
        0 => connections::ceiling_for(open_files, http.reserved_connections),
        n => n,
    };
    let conns = Connections::new(ceiling, http.reserved_connections);
    tracing::info!(
        max_connections = ceiling,
        reserved_for_health = http.reserved_connections,
        header_read_timeout_secs = http.header_read_timeout_secs,
        "connection limits"
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(http.header_read_timeout_secs.max(1)));
    let builder = Arc::new(builder);
    let tasks = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = conns.admit() else {
            continue;
        };
        // Without TCP_NODELAY, a streamed event written after the response
        // head waits for the client's delayed ACK (about 40 ms): Nagle's
        // algorithm.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(CountedIo::new(tcp, admitted.guard));
        // The app with the peer address as `ConnectInfo`; on a connection
        // admitted into the reserve, only the health routes.
        let (app, reserve_only) = (app.clone(), admitted.reserve_only);
        let service = TowerToHyperService::new(tower::service_fn(
            move |req: axum::http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    if reserve_only && !is_health_route(req.uri().path()) {
                        return Ok(busy_response());
                    }
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.oneshot(req).await
                }
            },
        ));
        let builder = builder.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let conn = builder.serve_connection(io, service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(err) = res {
                        tracing::trace!(%err, "connection ended with an error");
                    }
                    return;
                }
                () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    // Draining: new connections are refused from here on, in-flight
    // requests finish, and every WebSocket session sends its 1012 close
    // (sessions outlive their HTTP connection, so they are tracked apart).
    drop(listener);
    tasks.close();
    let sockets = state.socket_tasks.clone();
    sockets.close();
    let drained = async {
        tasks.wait().await;
        tracing::info!(sockets = sockets.len(), "requests drained; closing sockets");
        sockets.wait().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests or sockets did not finish in time"
        );
    }
    state.db.clone().close().await;
    tracing::info!("shutdown complete");
    // Buffered log lines (this one included) go to SLS, if shipping is on.
    crate::logship::flush_global(LOG_FLUSH_DEADLINE).await;
    Ok(())
}

/// The answer on a connection admitted into the reserve for anything but
/// the health routes: 503, and the connection closes.
fn busy_response() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut res = ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        "too many open connections; retry later",
    )
    .into_response();
    res.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    res
}

/// Cancels `token` on the first SIGTERM or SIGINT.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining");
    token.cancel();
}
