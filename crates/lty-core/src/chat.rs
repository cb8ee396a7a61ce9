//! AI chat: the [`ChatModel`] port (an OpenAI-compatible chat completions
//! API behind it), personas, conversations and their persistence port
//! [`ChatRepo`], and the pure helpers the chat routes share (token estimate,
//! history trimming, blocked-term moderation) and the [`Moderator`] port
//! for a provider's moderation API.

use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::Stream;

use crate::Result;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The wire and stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    /// Reads a stored name; anything unknown is `user` (never trusted as
    /// instructions).
    pub fn parse(s: &str) -> Self {
        match s {
            "system" => Self::System,
            "assistant" => Self::Assistant,
            _ => Self::User,
        }
    }
}

/// One message sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A chat completion request.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature; the client clamps it into its provider's range.
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// Tokens a completion used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatReply {
    pub content: String,
    /// `stop`, `length`, `content_filter`, ...
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of the answer text.
    Delta(String),
    /// The answer ended normally (`[DONE]`).
    Done {
        finish_reason: Option<String>,
        usage: Option<Usage>,
    },
}

/// Why a chat call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The provider is busy or rate-limits us; retrying later may work.
    #[error("rate limited ({vendor_type}), retry after {retry_after_secs} s")]
    RateLimited {
        retry_after_secs: u64,
        vendor_type: String,
    },
    /// The provider refuses us until an operator acts (bad key, no balance,
    /// no access to the model).
    #[error("provider unavailable: HTTP {status} {vendor_type}: {message}")]
    Unavailable {
        status: u16,
        vendor_type: String,
        message: String,
    },
    /// The provider's content filter rejected the input.
    #[error("rejected by the provider's content filter")]
    ContentFilter,
    /// No answer (or no next piece) in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// Anything else: transport failure, 5xx, malformed answer, a stream
    /// that ended without `[DONE]`, an error event mid-stream.
    #[error("{message}")]
    Failed {
        status: Option<u16>,
        vendor_type: Option<String>,
        message: String,
    },
}

/// A streamed answer; dropping it cancels the upstream request.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ChatError>> + Send>>;

/// A chat completions provider (Kimi or any OpenAI-compatible server).
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Short provider name for errors, logs and metrics (`kimi`, `openai`).
    fn provider(&self) -> &'static str;
    /// The whole answer at once.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatReply, ChatError>;
    /// The answer as a stream; resolves once the provider started answering
    /// (errors before the first byte come back here, not in the stream).
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError>;
}

/// Why a moderation provider gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModerationError(pub String);

/// A provider's content moderation (an OpenAI-compatible `/moderations`
/// API), asked in addition to the blocked-term lists.
#[async_trait]
pub trait Moderator: Send + Sync {
    /// Short provider name for logs and metrics.
    fn provider(&self) -> &'static str;
    /// Whether the provider flags `text` as unfit.
    async fn flagged(&self, text: &str) -> Result<bool, ModerationError>;
}

/// A companion character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persona {
    pub id: i64,
    /// Stable short name, e.g. `xiaobei`.
    pub slug: String,
    pub name: String,
    pub system_prompt: String,
    pub greeting: String,
    /// TTS voice for this character.
    pub voice_id: Option<String>,
    pub age_min: i32,
    pub age_max: i32,
    pub is_default: bool,
}

/// A persisted multi-turn conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: i64,
    pub user_id: i64,
    pub persona_id: Option<i64>,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A persisted message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub conversation_id: i64,
    pub role: Role,
    pub content: String,
    /// The reply was cut short (client gone, upstream failed mid-stream).
    pub incomplete: bool,
    /// The content was replaced by the refusal message (child safety).
    pub moderated: bool,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: i64,
    pub role: Role,
    pub content: String,
    pub incomplete: bool,
    pub moderated: bool,
    pub usage: Option<Usage>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items over all pages.
    pub total: u64,
}

/// Overhead, in tokens, that chat formats add per message (role markers).
const TOKENS_PER_MESSAGE: usize = 4;

/// An estimate of the tokens `text` costs, without the provider's
/// tokenizer: one per CJK (non-ASCII) character, one per four ASCII bytes.
/// Chinese-tuned tokenizers (Moonshot's included) spend about one token on
/// 1–1.5 Chinese characters and about four English characters per token,
/// so this errs on the high side, which is the safe side for a budget.
pub fn estimate_tokens(text: &str) -> usize {
    let (mut ascii, mut other) = (0usize, 0usize);
    for c in text.chars() {
        if c.is_ascii() {
            ascii += 1;
        } else {
            other += 1;
        }
    }
    other + ascii.div_ceil(4)
}

/// The estimated cost of one message, overhead included.
pub fn message_tokens(m: &ChatMessage) -> usize {
    estimate_tokens(&m.content) + TOKENS_PER_MESSAGE
}

/// The messages to send: `system`, then as many of the newest `history`
/// messages as fit in `budget` tokens together with `system` and `current`
/// (always kept), then `current`. Empty messages are dropped (Moonshot
/// rejects them); an older message is never kept when a newer one was cut,
/// so the history stays contiguous.
pub fn trim_history(
    system: ChatMessage,
    history: &[ChatMessage],
    current: ChatMessage,
    budget: usize,
) -> Vec<ChatMessage> {
    let mut used = message_tokens(&system) + message_tokens(&current);
    let mut kept: Vec<&ChatMessage> = Vec::new();
    for m in history.iter().rev() {
        if m.content.trim().is_empty() {
            continue;
        }
        let cost = message_tokens(m);
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.push(m);
    }
    let mut out = Vec::with_capacity(kept.len() + 2);
    out.push(system);
    out.extend(kept.into_iter().rev().cloned());
    out.push(current);
    out
}

/// The first blocked term found in `text` (case-insensitive), if any.
pub fn find_blocked_term<'a>(text: &str, terms: &'a [String]) -> Option<&'a str> {
    let lower = text.to_lowercase();
    terms
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .find(|t| lower.contains(&t.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_costs_a_token_per_character_and_english_one_per_four_bytes() {
        assert_eq!(estimate_tokens("你好"), 2);
        assert_eq!(estimate_tokens("hello"), 2);
        assert_eq!(estimate_tokens(""), 0);
    }

    #[test]
    fn trimming_keeps_system_and_current_and_the_newest_turns_that_fit() {
        let sys = ChatMessage::new(Role::System, "s");
        let cur = ChatMessage::new(Role::User, "now");
        let history: Vec<_> = (0..10)
            .map(|i| ChatMessage::new(Role::User, format!("{i}")))
            .collect();
        // Each message costs 5; system and current cost 10.
        let out = trim_history(sys.clone(), &history, cur.clone(), 10 + 3 * 5);
        let texts: Vec<_> = out.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["s", "7", "8", "9", "now"]);
        let out = trim_history(sys, &history, cur, 0);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn blocked_terms_match_without_regard_to_case() {
        let terms = vec!["Bad".to_owned(), " ".to_owned(), "坏话".to_owned()];
        assert_eq!(find_blocked_term("a BAD word", &terms), Some("Bad"));
        assert_eq!(find_blocked_term("说坏话了", &terms), Some("坏话"));
        assert_eq!(find_blocked_term("fine", &terms), None);
    }
}
