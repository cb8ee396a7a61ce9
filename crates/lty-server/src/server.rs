//! Running the server: listening, and draining on SIGTERM or SIGINT: stop
//! accepting, let in-flight requests finish and close every WebSocket with
//! 1012 (service restart) so devices reconnect to another instance, all
//! within `http.shutdown_grace_secs`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::DeviceAuthMode;
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
    // Without TCP_NODELAY, a streamed event written after the response head
    // waits for the client's delayed ACK (about 40 ms): Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    });
    // Draining: the listener stops accepting, in-flight requests finish,
    // and every WebSocket session sends its 1012 close (they outlive their
    // HTTP connection, so the server future alone does not wait for them).
    let sockets = state.sockets.clone();
    let drained = async move {
        server.await?;
        tracing::info!(sockets = sockets.len(), "requests drained; closing sockets");
        sockets.close();
        sockets.wait().await;
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        res = drained => res?,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests or sockets did not finish in time");
        }
    }
    state.db.clone().close().await;
    tracing::info!("shutdown complete");
    // Buffered log lines (this one included) go to SLS, if shipping is on.
    crate::logship::flush_global(LOG_FLUSH_DEADLINE).await;
    Ok(())
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
