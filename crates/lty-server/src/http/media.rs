//! `/media/{key}`: stored objects (generated audio, uploads) read back
//! through the [`BlobStore`](lty_core::ports::BlobStore) port, for embedded
//! mode where the store is a local directory. Not part of the API document.
//! Temporary objects expire through [`crate::app::media`].

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

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

#[cfg(test)]
mod tests {
    use super::*;

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
