//! AI chat: the [`ChatModel`] port (an OpenAI-compatible chat completions
//! API behind it) with function calling ([`ToolSpec`] offered, [`ToolCall`]
//! answered), personas, conversations, and the pure helpers the chat routes
//! share (token estimate, history trimming, blocked-term moderation) and
//! the [`Moderator`] port for a provider's moderation API.

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
    /// The result of a tool the assistant called.
    Tool,
}

impl Role {
    /// The wire and stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }

    /// Reads a stored name; anything unknown is `user` (never trusted as
    /// instructions).
    pub fn parse(s: &str) -> Self {
        match s {
            "system" => Self::System,
            "assistant" => Self::Assistant,
            "tool" => Self::Tool,
            _ => Self::User,
        }
    }
}

/// A function the model may call: offered in [`ChatRequest::tools`].
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The name the model calls it by (`self.audio_speaker.set_volume`).
    pub name: String,
    /// What it does, for the model to decide when to call it.
    pub description: String,
    /// A JSON schema of its arguments (`{"type":"object","properties":…}`).
    pub parameters: serde_json::Value,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id of the call; its result must name it.
    pub id: String,
    /// The [`ToolSpec::name`] called.
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet parsed
    /// (`{}` when the model sent none).
    pub arguments: String,
}

/// Whether the model may call the offered tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (the provider's default).
    #[default]
    Auto,
    /// The model must answer in text (`"tool_choice": "none"`).
    None,
}

/// One message sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    /// The text; may be empty on an assistant message with `tool_calls`.
    pub content: String,
    /// The calls an assistant message asked for.
    pub tool_calls: Vec<ToolCall>,
    /// The call a [`Role::Tool`] message answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A plain message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The assistant's turn that asked for `calls` (set
    /// [`ChatMessage::content`] to what it said alongside, if anything).
    pub fn assistant_calls(calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, "")
        }
    }

    /// The result `text` of the call `id`.
    pub fn tool_result(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(id.into()),
            ..Self::new(Role::Tool, text)
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
    /// Functions the model may call; empty = none offered.
    pub tools: Vec<ToolSpec>,
    /// Whether it may call them (ignored without `tools`).
    pub tool_choice: ToolChoice,
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
    /// The calls the model asked for instead of (or after) its text.
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A piece of the answer text.
    Delta(String),
    /// The calls the model asked for, whole: sent once, after the last
    /// delta and before `Done` (whose finish reason is then `tool_calls`).
    ToolCalls(Vec<ToolCall>),
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

/// The estimated cost of one message, overhead included: its text, the
/// calls it asks for (name, arguments, id) and the id it answers.
pub fn message_tokens(m: &ChatMessage) -> usize {
    let calls: usize = m
        .tool_calls
        .iter()
        .map(|c| {
            estimate_tokens(&c.id)
                + estimate_tokens(&c.name)
                + estimate_tokens(&c.arguments)
                + TOKENS_PER_MESSAGE
        })
        .sum();
    let answers = m.tool_call_id.as_deref().map_or(0, estimate_tokens);
    estimate_tokens(&m.content) + calls + answers + TOKENS_PER_MESSAGE
}

/// The messages to send: `system`, then as many of the newest `history`
/// messages as fit in `budget` tokens together with `system` and `current`
/// (always kept), then `current`. Empty messages are dropped (Moonshot
/// rejects them); an older message is never kept when a newer one was cut,
/// so the history stays contiguous, and tool results are never kept
/// without the assistant message that asked for them.
pub fn trim_history(
    system: ChatMessage,
    history: &[ChatMessage],
    current: ChatMessage,
    budget: usize,
) -> Vec<ChatMessage> {
    let mut used = message_tokens(&system) + message_tokens(&current);
    let mut kept: Vec<&ChatMessage> = Vec::new();
    for m in history.iter().rev() {
        if m.content.trim().is_empty() && m.tool_calls.is_empty() {
            continue;
        }
        let cost = message_tokens(m);
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.push(m);
    }
    // The oldest kept messages answer calls that were cut: drop them too.
    while kept.last().is_some_and(|m| m.role == Role::Tool) {
        kept.pop();
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
    fn tool_calls_and_results_count_in_the_estimate_and_stay_with_their_call() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "set_volume".into(),
            arguments: r#"{"volume":30}"#.into(),
        };
        let asked = ChatMessage::assistant_calls(vec![call]);
        assert!(message_tokens(&asked) > message_tokens(&ChatMessage::new(Role::Assistant, "")));
        let result = ChatMessage::tool_result("call_1", "ok");
        assert!(message_tokens(&result) > message_tokens(&ChatMessage::new(Role::Tool, "ok")));

        let sys = ChatMessage::new(Role::System, "s");
        let cur = ChatMessage::new(Role::User, "now");
        let history = vec![
            ChatMessage::new(Role::User, "louder"),
            asked.clone(),
            result.clone(),
            ChatMessage::new(Role::Assistant, "done"),
        ];
        // Everything fits: the call message is kept although its text is empty.
        let out = trim_history(sys.clone(), &history, cur.clone(), 10_000);
        assert_eq!(out.len(), 6);
        assert_eq!(out[2], asked);
        // Room for the result but not for the call: the result goes too.
        let budget = message_tokens(&sys)
            + message_tokens(&cur)
            + message_tokens(&history[3])
            + message_tokens(&result);
        let out = trim_history(sys, &history, cur, budget);
        let roles: Vec<_> = out.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::Assistant, Role::User]);
    }

    #[test]
    fn roles_read_back_as_they_are_written_and_unknown_ones_as_user() {
        for role in [Role::System, Role::User, Role::Assistant, Role::Tool] {
            assert_eq!(Role::parse(role.as_str()), role);
        }
        assert_eq!(Role::parse("function"), Role::User);
    }

    #[test]
    fn blocked_terms_match_without_regard_to_case() {
        let terms = vec!["Bad".to_owned(), " ".to_owned(), "坏话".to_owned()];
        assert_eq!(find_blocked_term("a BAD word", &terms), Some("Bad"));
        assert_eq!(find_blocked_term("说坏话了", &terms), Some("坏话"));
        assert_eq!(find_blocked_term("fine", &terms), None);
    }
}
