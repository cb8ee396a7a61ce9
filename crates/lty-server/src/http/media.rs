//! `/media/{key}`: stored objects (generated audio, uploads) read back
//! through the [`BlobStore`](lty_core::ports::BlobStore) port, for embedded
//! mode where the store is a local directory. Not part of the API document.
//!
//! Also the expiry sweeper of the `fs` and `s3` backends: folders
//! `{base_dir}/temporary/{YYYYMMDD}/` older than `audio.temporary_days` are
//! deleted, `permanent/` is never touched. On OSS a bucket lifecycle rule on
//! the prefix `{base_dir}/temporary/` does the same (docs/speech.md).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, StorageBackend, storage_backend};

/// Cache key that elects one instance per sweep round (instances may share
/// the media volume).
const SWEEP_LOCK_KEY: &str = "media:sweep_lock";

/// The media route.
pub fn router() -> Router<AppState> {
    Router::new().route("/media/{*key}", get(serve))
}

/// Content type by file extension; anything unknown is served as bytes.
fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "opus") => "audio/ogg",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

/// A plain relative key: no empty, `.` or `..` segment, no backslash or
/// other character outside the store's alphabet.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

async fn serve(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult<Response> {
    let missing = || ApiError::from(lty_core::Error::not_found("media"));
    // A traversal attempt gets the same answer as a missing object.
    if !plain_key(&key) {
        return Err(missing());
    }
    let data = state.blobs.get(&key).await?.ok_or_else(missing)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&key)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        data,
    )
        .into_response())
}

/// Starts the sweeper of expired temporary media when the storage is the
/// local directory or an S3 bucket (which can list its folders); it ends
/// when `state.shutdown` is cancelled.
pub fn spawn_sweeper(state: AppState) -> Option<JoinHandle<()>> {
    if !matches!(
        storage_backend(&state.config),
        Ok(StorageBackend::Fs | StorageBackend::S3)
    ) {
        return None;
    }
    let every = Duration::from_secs(state.config.storage.sweep_interval_secs.max(1));
    // The first round one interval after start: a restart loop must not
    // turn into a sweep loop.
    let first = tokio::time::Instant::now() + every;
    Some(crate::app::rounds::spawn_exclusive(
        state,
        "media sweeper",
        SWEEP_LOCK_KEY,
        first,
        every,
        |state| async move {
            match sweep_temporary(&state, Utc::now()).await {
                Ok(deleted) if !deleted.is_empty() => {
                    tracing::info!(?deleted, "expired temporary media deleted");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "media sweep failed"),
            }
        },
    ))
}

/// The last Asia/Shanghai day whose temporary folder is expired at `now`
/// when objects are kept at least `days` days (at least one): a folder is
/// deleted once its whole day is more than `days` days past.
pub fn last_expired_day(now: DateTime<Utc>, days: u32) -> NaiveDate {
    // Folders are dated in Asia/Shanghai (UTC+8, no daylight saving time).
    let today = (now + chrono::Duration::hours(8)).date_naive();
    today - chrono::Days::new(u64::from(days.max(1)) + 1)
}

/// One sweep: deletes every `{base_dir}/temporary/{YYYYMMDD}/` folder dated
/// on or before [`last_expired_day`], and returns the folders deleted.
/// Folders whose name is not a date are left alone.
pub async fn sweep_temporary(
    state: &AppState,
    now: DateTime<Utc>,
) -> lty_core::Result<Vec<String>> {
    let root = format!("{}/temporary/", state.speech.base_dir);
    let last = last_expired_day(now, state.config.audio.temporary_days);
    let mut deleted = Vec::new();
    let mut folders = state.blobs.list_folders(&root).await?;
    folders.sort();
    for name in folders {
        let expired = name.len() == 8
            && NaiveDate::parse_from_str(&name, "%Y%m%d").is_ok_and(|day| day <= last);
        if expired {
            let folder = format!("{root}{name}/");
            state.blobs.delete_folder(&folder).await?;
            deleted.push(folder);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn folders_expire_after_the_configured_days_in_shanghai_time() {
        // 2026-11-24 16:30 UTC is already the 25th in Shanghai.
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 16, 30, 0).unwrap();
        assert_eq!(
            last_expired_day(now, 7),
            NaiveDate::from_ymd_opt(2026, 11, 17).unwrap()
        );
        // Zero days would delete what was written yesterday evening.
        assert_eq!(last_expired_day(now, 0), last_expired_day(now, 1));
    }

    #[test]
    fn only_plain_relative_keys_are_served() {
        assert!(plain_key("audio/temporary/20261129/a.wav"));
        for bad in [
            "",
            "../x",
            "a/../b",
            "a//b",
            "/etc/passwd",
            "a\\b",
            "a/./b",
            "%2e%2e/x",
        ] {
            assert!(!plain_key(bad), "{bad}");
        }
    }
}
