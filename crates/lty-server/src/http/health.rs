//! Liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::extract::Json;
use crate::state::{AppState, CacheBackend, StorageBackend, storage_backend};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Health, readiness and metrics routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `ok` when the process serves requests.
    pub status: &'static str,
    /// lty's version.
    pub version: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = HealthOut)))]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness answer: each backing service and whether it answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyOut {
    /// `ready`, or `degraded` when only the object store is down (the
    /// instance still serves everything but media, and every instance
    /// shares the store: taking them all out of rotation would turn a
    /// media outage into a full one).
    pub status: &'static str,
    /// Backend name → `ok`.
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
}

async fn check<F>(what: &'static str, fut: F) -> Result<(), String>
where
    F: std::future::Future<Output = lty_core::Result<()>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            tracing::warn!(backend = what, %err, "readiness check failed");
            Err("down".into())
        }
        Err(_) => {
            tracing::warn!(backend = what, "readiness check timed out");
            Err("timeout".into())
        }
    }
}

/// The database and (in production) Redis answer; 503 names the ones
/// that do not. A remote object store (OSS, S3) is checked and reported
/// too, but its failure only makes the answer `degraded`.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = ReadyOut),
              (status = 503, description = "a backing service is down", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = check("database", state.db.ping());
    let redis = async {
        match state.cache_backend {
            CacheBackend::Memory => Ok(()),
            CacheBackend::Redis => {
                check("redis", async {
                    state.cache.ping().await?;
                    state.pubsub.ping().await
                })
                .await
            }
        }
    };
    // A remote object store (OSS, S3) is checked too; the local media
    // directory is not a service that can be down on its own.
    let remote_storage = matches!(
        storage_backend(&state.config),
        Ok(StorageBackend::Oss | StorageBackend::S3)
    );
    let storage = async {
        if remote_storage {
            check("storage", state.blobs.ping()).await
        } else {
            Ok(())
        }
    };
    let (database, redis, storage) = tokio::join!(database, redis, storage);
    let mut checks = serde_json::Map::new();
    let mut down = Vec::new();
    let mut degraded = false;
    for (name, result) in [
        ("database", database),
        ("redis", redis),
        ("storage", storage),
    ] {
        if name == "redis" && state.cache_backend == CacheBackend::Memory {
            continue;
        }
        if name == "storage" && !remote_storage {
            continue;
        }
        match result {
            Ok(()) => {
                checks.insert(name.into(), json!("ok"));
            }
            Err(why) => {
                checks.insert(name.into(), json!(why));
                if name == "storage" {
                    degraded = true;
                } else {
                    down.push(name);
                }
            }
        }
    }
    if down.is_empty() {
        (
            StatusCode::OK,
            Json(ReadyOut {
                status: if degraded { "degraded" } else { "ready" },
                checks: checks.into(),
            }),
        )
            .into_response()
    } else {
        crate::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("unavailable: {}", down.join(", ")),
        )
        .with_details(json!({ "down": down, "checks": checks }))
        .into_response()
    }
}

/// Prometheus text exposition: request counts and latency by route and
/// status, open WebSockets, build info.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("lty_ws_queue_overflows_total").set(state.hub.overflow_count() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
