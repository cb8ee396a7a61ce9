//! The expiry sweeper of temporary media on the `fs` and `s3` backends:
//! folders `{base_dir}/temporary/{YYYYMMDD}/` older than
//! `audio.temporary_days` are deleted, `permanent/` is never touched. On OSS
//! a bucket lifecycle rule on the prefix `{base_dir}/temporary/` does the
//! same (docs/speech.md).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio::task::JoinHandle;

use crate::state::{AppState, StorageBackend, storage_backend};

/// Cache key that elects one instance per sweep round (instances may share
/// the media volume).
const SWEEP_LOCK_KEY: &str = "media:sweep_lock";

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
}
