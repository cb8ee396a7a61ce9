//! OpenAI-compatible content moderation (`POST {base}/moderations`):
//! `{"input"[, "model"]}` in, `{"results":[{"flagged", ...}]}` out. Any
//! flagged result flags the text; a non-2xx answer, a transport failure, a
//! timeout or an unreadable body is an error (the caller decides whether
//! that blocks).

use std::time::Duration;

use async_trait::async_trait;
use lty_core::chat::{ModerationError, Moderator};
use serde::Deserialize;
use serde_json::json;

use crate::http::ClientOptions;

/// Settings of a [`ModerationClient`].
#[derive(Clone)]
pub struct ModerationConfig {
    /// Base URL including `/v1` (`/moderations` is appended), or the full
    /// `.../moderations` URL.
    pub url: String,
    pub api_key: Option<String>,
    /// Sent when set (`omni-moderation-latest`, ...).
    pub model: Option<String>,
    /// For the whole call.
    pub timeout: Duration,
}

impl std::fmt::Debug for ModerationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModerationConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A moderation API client.
#[derive(Debug, Clone)]
pub struct ModerationClient {
    config: ModerationConfig,
    url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ModerationResponse {
    #[serde(default)]
    results: Vec<ModerationResult>,
}

#[derive(Deserialize)]
struct ModerationResult {
    #[serde(default)]
    flagged: bool,
}

impl ModerationClient {
    /// A client for `config`; fails when the URL is not http(s).
    pub fn new(config: ModerationConfig) -> Result<Self, String> {
        let parsed = url::Url::parse(&config.url).map_err(|e| e.to_string())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("the moderation URL must be http(s)".into());
        }
        let base = config.url.trim_end_matches('/');
        let url = if base.ends_with("/moderations") {
            base.to_owned()
        } else {
            format!("{base}/moderations")
        };
        let http = crate::http::client(ClientOptions {
            timeout: Some(config.timeout),
            ..ClientOptions::default()
        })
        .map_err(|e| e.to_string())?;
        Ok(Self { config, url, http })
    }

    /// Whether the provider flags `text`.
    #[tracing::instrument(skip_all, err)]
    pub async fn moderations(&self, text: &str) -> Result<bool, ModerationError> {
        let mut body = json!({ "input": text });
        if let Some(m) = &self.config.model {
            body["model"] = json!(m);
        }
        let mut req = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let res = req
            .send()
            .await
            .map_err(|e| ModerationError(format!("moderation request failed: {e}")))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| ModerationError(format!("moderation body unreadable: {e}")))?;
        if !status.is_success() {
            return Err(ModerationError(format!(
                "moderation answered HTTP {}",
                status.as_u16()
            )));
        }
        let parsed: ModerationResponse = serde_json::from_slice(&bytes)
            .map_err(|e| ModerationError(format!("moderation answer malformed: {e}")))?;
        if parsed.results.is_empty() {
            return Err(ModerationError("moderation answer has no results".into()));
        }
        Ok(parsed.results.iter().any(|r| r.flagged))
    }
}

#[async_trait]
impl Moderator for ModerationClient {
    fn provider(&self) -> &'static str {
        "openai_moderation"
    }

    async fn flagged(&self, text: &str) -> Result<bool, ModerationError> {
        self.moderations(text).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<ModerationClient, String> {
        ModerationClient::new(ModerationConfig {
            url: url.into(),
            api_key: None,
            model: None,
            timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn the_endpoint_is_appended_to_a_base_url_once() {
        assert_eq!(
            client("http://h/v1/").unwrap().url,
            "http://h/v1/moderations"
        );
        assert_eq!(
            client("http://h/v1/moderations").unwrap().url,
            "http://h/v1/moderations"
        );
        assert!(client("ftp://h").is_err());
    }
}
