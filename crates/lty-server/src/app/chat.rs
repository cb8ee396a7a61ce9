//! AI chat: the configured [`ChatModel`] and [`Moderator`], and the one
//! chat turn every protocol that holds a conversation goes through
//! ([`turn`]), with its daily quota ([`quota`]) and child-safety checks
//! ([`moderation`]).

pub mod moderation;
pub mod quota;
pub mod turn;

pub use moderation::{Side, blocked, blocked_since, flagged_by_provider, moderate, record_block};
pub use quota::{daily_message_limit, quota_key, quota_reset_at, take_message_quota};

use std::sync::Arc;
use std::time::Duration;

use lty_core::chat::{ChatModel, Moderator};
use lty_vendors::openai::{
    ChatClient, ChatClientConfig, Flavor, ModerationClient, ModerationConfig,
};

use crate::config::Config;

pub use crate::config::TermList;

/// The chat model for `config`, when `KIMI_API_KEY` is set.
pub fn chat_model(config: &Config) -> anyhow::Result<Option<Arc<dyn ChatModel>>> {
    let llm = &config.llm;
    let Some(key) = &llm.api_key else {
        return Ok(None);
    };
    let flavor = if llm.provider == "openai" {
        Flavor::OpenAi
    } else {
        Flavor::Moonshot
    };
    let client = ChatClient::new(ChatClientConfig {
        base_url: llm.base_url.clone(),
        api_key: key.expose().to_owned(),
        model: llm.model.clone(),
        flavor,
        temperature: llm.temperature,
        max_tokens: llm.max_tokens,
        connect_timeout: Duration::from_millis(llm.connect_timeout_ms),
        first_byte_timeout: Duration::from_millis(llm.first_byte_timeout_ms),
        idle_timeout: Duration::from_millis(llm.idle_timeout_ms),
        max_retry_wait: Duration::from_secs(2),
    })
    .map_err(|e| anyhow::anyhow!("KIMI_BASE_URL / LTY_LLM__*: {e}"))?;
    Ok(Some(Arc::new(client)))
}

/// The moderation provider for `config`, when `ai.moderation_url` is set.
pub fn moderator(config: &Config) -> anyhow::Result<Option<Arc<dyn Moderator>>> {
    let ai = &config.ai;
    let Some(url) = ai.moderation_url.as_ref().filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let client = ModerationClient::new(ModerationConfig {
        url: url.trim().to_owned(),
        api_key: ai
            .moderation_api_key
            .as_ref()
            .map(|k| k.expose().to_owned()),
        model: ai.moderation_model.clone(),
        timeout: Duration::from_millis(ai.moderation_timeout_ms),
    })
    .map_err(|e| anyhow::anyhow!("LTY_AI__MODERATION_URL: {e}"))?;
    Ok(Some(Arc::new(client)))
}
