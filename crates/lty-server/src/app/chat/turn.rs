//! The one chat turn. Every protocol that holds a conversation — the app's
//! `/api/ai/chat/`, `/multi-chat/` and `/voice-chat/`, a Volcengine voice
//! agent's CustomLLM call, and any device channel after them — is an
//! adapter over [`start`]: it parses its request into a [`TurnRequest`],
//! then maps the [`TurnEvent`]s to its own wire format (SSE, JSON, OpenAI
//! chunks, audio).
//!
//! The rules live here once, in this order:
//!
//! 1. the message is checked (non-empty, within `ai.max_message_chars`),
//!    the persona and conversation are found (`404` before anything counts);
//! 2. the daily quota is taken: every attempt counts, refused ones too, so
//!    a failing provider or a blocked child cannot be hammered for free;
//! 3. the `chat_message` achievement event is recorded on a task of its
//!    own, off the path to the first token, and settled before the turn
//!    ends;
//! 4. the child's message passes the input checks (blocked terms, the
//!    moderation provider); a blocked message is stored as moderated and
//!    answered with the refusal without asking the model;
//! 5. the model streams (or answers at once): every piece passes the
//!    output blocked-term check as it arrives, the finished reply the
//!    moderation provider; when the adapter gave a [`ToolBox`], its tools
//!    are offered, and each call the model makes is run through it and
//!    answered before the model is asked again, for at most
//!    `ai.max_tool_rounds` rounds (the last request lets it only talk);
//!    calls are never shown or stored, only what the model says;
//! 6. the reply is stored — complete, as the refusal when blocked, or
//!    marked incomplete when the client went away or the provider failed
//!    mid-answer — whatever the client does meanwhile;
//! 7. usage and the outcome are counted (`lty_ai_tokens_total`,
//!    `lty_chat_turns_total{outcome}`, `lty_chat_tool_calls_total{outcome}`).
//!
//! A client that goes away (the [`Turn`] dropped) stops a streamed turn at
//! once, and any turn with tools between or during its steps: the model's
//! request or the tool call in flight is dropped, which cancels it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::StreamExt;
use lty_core::chat::{
    ChatError, ChatEvent, ChatMessage, ChatModel, ChatRequest, ChatStream, NewMessage, Persona,
    Role, ToolCall, ToolChoice, ToolSpec, Usage, trim_history,
};
use lty_core::{Error, ErrorKind, Result};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::moderation::{Side, blocked_since, flagged_by_provider, moderate, record_block};
use super::quota::take_message_quota;
use crate::app::achievements;
use crate::state::AppState;

/// Most stored messages read back as history, before the token budget.
const HISTORY_MAX_MESSAGES: u64 = 50;
/// Characters of the first message used as a conversation's title.
const TITLE_CHARS: usize = 30;

/// Where a turn belongs: what it remembers, and where it is stored.
#[derive(Debug, Clone)]
pub enum Thread {
    /// One question, one answer: nothing stored but the quota count.
    Single { persona_id: Option<i64> },
    /// A stored conversation of the user: continued, with its persona and
    /// history, or started (with `persona_id`, else the default persona)
    /// when `id` is `None`.
    Conversation {
        id: Option<i64>,
        persona_id: Option<i64>,
    },
    /// A turn of a voice agent: the agent sends the turns before this one
    /// itself (`earlier`). The session named by `task_id` gives the
    /// persona's prompt when it has one, and its conversation (started on
    /// its first turn) stores the turn when lty recorded that session.
    Agent {
        task_id: Option<String>,
        earlier: Vec<ChatMessage>,
    },
}

/// How the reply will be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Shown as text.
    Written,
    /// Read aloud: the system prompt ends with `ai.spoken_style`, and
    /// Markdown markers, which TTS would read literally, are dropped.
    Spoken,
}

/// How the model is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Streamed: the reply arrives as [`TurnEvent::Delta`]s.
    Stream,
    /// At once: one delta with the whole checked reply, then the end.
    Whole,
}

/// A turn as an adapter asks for it.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub user_id: i64,
    /// What the child said, as received (trimmed and checked here).
    pub message: String,
    /// Language of the message (`zh`, `en`, ...): only that language's
    /// blocked-term list applies; every language's when `None`.
    pub language: Option<String>,
    pub thread: Thread,
    pub style: Style,
    pub delivery: Delivery,
    /// Sampling temperature asked by the caller (clamped by the client).
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Tools the model may call during the turn; `None` offers none.
    pub tools: Option<Arc<dyn ToolBox>>,
}

/// Tools a turn offers the model (a device's MCP tools, for instance).
///
/// The turn asks for [`ToolBox::specs`] once, offers them, and for each
/// call the model makes runs [`ToolBox::call`] — one at a time, in the
/// model's order — and gives the model the returned text as the call's
/// result. A call of a tool that was not offered is answered with an error
/// text without reaching the tool box. When the turn's client goes away
/// the call's future is dropped: that is its cancellation. Bounding a
/// call's time is the tool box's job (the turn waits as long as its client
/// does).
#[async_trait]
pub trait ToolBox: Send + Sync {
    /// The tools to offer, with JSON schemas of their arguments.
    fn specs(&self) -> Vec<ToolSpec>;
    /// Runs `call` (its arguments are the model's raw JSON text) and
    /// returns what the model sees as the result; a failure is text too,
    /// e.g. `{"error":"no such device"}`, so the model can say what
    /// happened.
    async fn call(&self, call: &ToolCall) -> String;
}

impl std::fmt::Debug for dyn ToolBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.specs().into_iter().map(|s| s.name).collect();
        f.debug_tuple("ToolBox").field(&names).finish()
    }
}

/// Something a running turn has to say.
#[derive(Debug)]
pub enum TurnEvent {
    /// A checked piece of the model's reply.
    Delta(String),
    /// The turn is over; nothing follows.
    End(TurnEnd),
}

/// How a turn ended.
#[derive(Debug)]
pub enum Outcome {
    /// The model answered in full and every check passed.
    Answered,
    /// Nothing of the model's was shown: the child's message was blocked,
    /// the provider's content filter refused it, or (answered at once) the
    /// reply failed the output checks. The reply is the refusal.
    Refused,
    /// A streamed reply hit a blocked term: the deltas stopped before it,
    /// and the refusal is stored.
    BlockedMidway,
    /// The moderation provider flagged the finished reply after its deltas
    /// went out: the refusal is stored and should be shown instead.
    Flagged,
    /// The provider failed; what came before is stored as incomplete.
    Failed(Error),
}

impl Outcome {
    /// The label of `lty_chat_turns_total`.
    fn label(&self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Refused => "refused",
            Self::BlockedMidway => "blocked",
            Self::Flagged => "flagged",
            Self::Failed(_) => "failed",
        }
    }

    /// Whether the turn's stored reply is the refusal.
    pub fn moderated(&self) -> bool {
        matches!(self, Self::Refused | Self::BlockedMidway | Self::Flagged)
    }
}

/// The end of a turn.
#[derive(Debug)]
pub struct TurnEnd {
    pub outcome: Outcome,
    /// The reply as stored: the model's words, or the refusal when the
    /// outcome is a moderation one, or what came before a failure.
    pub reply: String,
    /// The stored reply; `None` when nothing is stored.
    pub message_id: Option<i64>,
    pub usage: Option<Usage>,
    /// `stop`, `length`, ... as the model reported it.
    pub finish_reason: Option<String>,
}

/// A started turn: its conversation and persona, and its events.
#[derive(Debug)]
pub struct Turn {
    /// The conversation the turn is stored in, when it is stored.
    pub conversation_id: Option<i64>,
    /// The companion answering, when it is a stored persona.
    pub persona: Option<Persona>,
    /// The model's provider (`kimi`, `openai`), for messages and metrics.
    pub provider: &'static str,
    events: mpsc::Receiver<TurnEvent>,
}

impl Turn {
    /// The next event; `None` after [`TurnEvent::End`].
    pub async fn next(&mut self) -> Option<TurnEvent> {
        self.events.recv().await
    }

    /// Waits for the end of the turn, skipping the deltas (for adapters
    /// that answer at once).
    pub async fn finish(mut self) -> Result<TurnEnd> {
        while let Some(event) = self.events.recv().await {
            if let TurnEvent::End(end) = event {
                return Ok(end);
            }
        }
        Err(Error::Backend(lty_core::BackendError::new(
            "chat",
            "the turn stopped without an end",
        )))
    }
}

/// Starts a turn: everything up to the model's first byte happens here, so
/// a refusal before it (bad input, unknown persona or conversation, quota,
/// a provider failing at once) is an ordinary error; what follows comes as
/// events, from a task that finishes and stores the turn whether or not
/// anyone still listens. Dropping the [`Turn`] is how a client's departure
/// is told: a streamed reply is then cut, cancelling the provider's
/// request, and stored as incomplete.
#[tracing::instrument(skip_all, fields(user_id = req.user_id))]
pub async fn start(state: &AppState, req: TurnRequest) -> Result<Turn> {
    let message = validate_message(state, &req.message)?;
    let model = model(state)?;
    let user_id = req.user_id;
    let (persona, prompt, conversation) = resolve_thread(state, user_id, &req.thread).await?;

    take_message_quota(state, user_id).await?;
    let recording =
        achievements::spawn_record(state, user_id, lty_core::achievement::CHAT_MESSAGE, 1);
    let language = req.language;
    let input_blocked = moderate(state, Side::Input, user_id, language.as_deref(), &message).await;

    let (conversation_id, history) = match (conversation, req.thread) {
        (Some(Conversation::Existing(id)), _) => (Some(id), stored_history(state, id).await?),
        (Some(Conversation::New(persona_id)), _) => (
            Some(new_conversation(state, user_id, persona_id, &message).await?),
            Vec::new(),
        ),
        (Some(Conversation::OfSession(task_id)), Thread::Agent { earlier, .. }) => {
            let id = session_conversation(state, user_id, &task_id, &message).await?;
            (Some(id), earlier)
        }
        (_, Thread::Agent { earlier, .. }) => (None, earlier),
        (_, _) => (None, Vec::new()),
    };
    if let Some(conversation_id) = conversation_id {
        state
            .db
            .add_message(NewMessage {
                conversation_id,
                role: Role::User,
                content: message.clone(),
                incomplete: false,
                moderated: input_blocked,
                usage: None,
            })
            .await?;
    }

    // No rounds allowed, or nothing to offer: no tools at all.
    let rounds = state.config.ai.max_tool_rounds;
    let tools = req.tools.filter(|_| rounds > 0);
    let specs = tools.as_ref().map(|t| t.specs()).unwrap_or_default();
    let tools = tools.filter(|_| !specs.is_empty());
    let request = ChatRequest {
        messages: trim_history(
            system_message(state, prompt.as_deref(), req.style),
            &history,
            ChatMessage::new(Role::User, message),
            state.config.ai.history_token_budget,
        ),
        temperature: req.temperature,
        max_tokens: req.max_tokens,
        tools: specs,
        tool_choice: ToolChoice::Auto,
    };
    let asked_at = Instant::now();
    let call = if input_blocked {
        Call::Refused
    } else {
        match req.delivery {
            Delivery::Whole => Call::Whole,
            Delivery::Stream => match model.stream(&request).await {
                Ok(stream) => Call::Stream(stream),
                Err(ChatError::ContentFilter) => {
                    record_block("provider", user_id);
                    Call::Refused
                }
                Err(err) => return Err(upstream(model.provider(), &err)),
            },
        }
    };

    let (tx, rx) = mpsc::channel(64);
    let provider = model.provider();
    let run = Running {
        state: state.clone(),
        user_id,
        model,
        language,
        style: req.style,
        conversation_id,
        recording: Some(recording),
        tx,
        request,
        tools,
        rounds_left: rounds,
        asked_at,
        first_token: false,
    };
    tokio::spawn(run.run(call));
    Ok(Turn {
        conversation_id,
        persona,
        provider,
        events: rx,
    })
}

/// Where a turn is stored, before the user's message is.
enum Conversation {
    Existing(i64),
    /// Started by this turn, with this persona.
    New(Option<i64>),
    /// The voice-chat session's (attached on its first turn).
    OfSession(String),
}

/// The persona, the prompt it gives, and where the turn is stored.
async fn resolve_thread(
    state: &AppState,
    user_id: i64,
    thread: &Thread,
) -> Result<(Option<Persona>, Option<String>, Option<Conversation>)> {
    let with_prompt = |p: Option<Persona>| {
        let prompt = p.as_ref().map(|p| p.system_prompt.clone());
        (p, prompt)
    };
    Ok(match thread {
        Thread::Single { persona_id } => {
            let (p, prompt) = with_prompt(persona(state, *persona_id).await?);
            (p, prompt, None)
        }
        Thread::Conversation {
            id: Some(id),
            persona_id: _,
        } => {
            let c = owned_conversation(state, user_id, *id).await?;
            let p = match c.persona_id {
                Some(pid) => state.db.persona(pid).await?,
                None => None,
            };
            let p = match p {
                Some(p) => Some(p),
                None => state.db.default_persona().await?,
            };
            let (p, prompt) = with_prompt(p);
            (p, prompt, Some(Conversation::Existing(c.id)))
        }
        Thread::Conversation {
            id: None,
            persona_id,
        } => {
            let (p, prompt) = with_prompt(persona(state, *persona_id).await?);
            let pid = p.as_ref().map(|p| p.id);
            (p, prompt, Some(Conversation::New(pid)))
        }
        Thread::Agent { task_id, .. } => {
            // The session's prompt (changeable mid-session), else the
            // default persona's.
            let session_prompt = match task_id.as_deref() {
                Some(task) => crate::app::voice_chat::live_session(state, user_id, task)
                    .await?
                    .and_then(|r| r.persona),
                None => None,
            };
            let (p, prompt) = match session_prompt {
                Some(prompt) => (None, Some(prompt)),
                None => with_prompt(state.db.default_persona().await?),
            };
            let recorded = match task_id.as_deref() {
                Some(task) => state
                    .db
                    .session(task)
                    .await?
                    .filter(|s| s.user_id == user_id)
                    .map(|s| Conversation::OfSession(s.task_id)),
                None => None,
            };
            (p, prompt, recorded)
        }
    })
}

/// The checked message: trimmed, not empty, within `ai.max_message_chars`.
pub fn validate_message(state: &AppState, message: &str) -> Result<String> {
    let message = message.trim();
    if message.is_empty() {
        return Err(Error::validation("message", "must not be empty"));
    }
    let max = state.config.ai.max_message_chars;
    if message.chars().count() > max {
        return Err(Error::validation(
            "message",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(message.to_owned())
}

/// The chat model, or `503 provider_not_configured` naming what is missing.
pub fn model(state: &AppState) -> Result<Arc<dyn ChatModel>> {
    state.chat.clone().ok_or_else(|| {
        Error::coded(
            ErrorKind::Unavailable,
            "provider_not_configured",
            "llm is not configured on this server",
        )
        .with_details(json!({ "provider": "llm", "missing": "KIMI_API_KEY" }))
    })
}

fn conversation_not_found() -> Error {
    Error::NotFound {
        what: "conversation",
        code: "conversation_not_found",
    }
}

/// The user's conversation `id`; `404` for anyone else's.
pub async fn owned_conversation(
    state: &AppState,
    user_id: i64,
    id: i64,
) -> Result<lty_core::chat::Conversation> {
    state
        .db
        .conversation(id)
        .await?
        .filter(|c| c.user_id == user_id)
        .ok_or_else(conversation_not_found)
}

/// The persona `id`, or the default one when `None`.
async fn persona(state: &AppState, id: Option<i64>) -> Result<Option<Persona>> {
    match id {
        Some(id) => Ok(Some(state.db.persona(id).await?.ok_or(
            Error::NotFound {
                what: "persona",
                code: "persona_not_found",
            },
        )?)),
        None => state.db.default_persona().await,
    }
}

async fn new_conversation(
    state: &AppState,
    user_id: i64,
    persona_id: Option<i64>,
    message: &str,
) -> Result<i64> {
    let title: String = message.chars().take(TITLE_CHARS).collect();
    Ok(state
        .db
        .create_conversation(user_id, persona_id, &title)
        .await?
        .id)
}

/// The conversation of a voice-chat session, started by its first turn.
async fn session_conversation(
    state: &AppState,
    user_id: i64,
    task_id: &str,
    message: &str,
) -> Result<i64> {
    if let Some(id) = state
        .db
        .session(task_id)
        .await?
        .and_then(|s| s.conversation_id)
    {
        return Ok(id);
    }
    let id = new_conversation(state, user_id, None, message).await?;
    let attached = state.db.attach_conversation(task_id, id).await?;
    if attached != id {
        // Another instance's turn attached its conversation first.
        state.db.delete_conversation(id).await?;
    }
    Ok(attached)
}

/// The newest stored messages of a conversation that the model may see
/// again: refused ones are left out.
async fn stored_history(state: &AppState, conversation_id: i64) -> Result<Vec<ChatMessage>> {
    Ok(state
        .db
        .recent_messages(conversation_id, HISTORY_MAX_MESSAGES)
        .await?
        .into_iter()
        .filter(|m| !m.moderated && matches!(m.role, Role::User | Role::Assistant))
        .map(|m| ChatMessage::new(m.role, m.content))
        .collect())
}

/// The system message: the safety preamble, the persona's prompt and, for
/// a spoken reply, the spoken-style instruction.
fn system_message(state: &AppState, prompt: Option<&str>, style: Style) -> ChatMessage {
    let ai = &state.config.ai;
    let spoken = match style {
        Style::Spoken => ai.spoken_style.as_str(),
        Style::Written => "",
    };
    let content = [ai.safety_preamble.as_str(), prompt.unwrap_or(""), spoken]
        .into_iter()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    ChatMessage::new(Role::System, content)
}

/// Markdown is read aloud literally by TTS: its markers are dropped.
fn speakable(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '*' | '#' | '`'))
        .collect()
}

/// A failed model call as an error: `upstream_rate_limited` (429) when the
/// provider asks us to wait, `provider_unavailable` (503) when it refuses
/// us until an operator acts, else `upstream_error` (502); the vendor's
/// error type in the details.
pub fn upstream(provider: &'static str, err: &ChatError) -> Error {
    let failed = |details: serde_json::Value| {
        tracing::warn!(provider, %err, "chat provider failed");
        Error::coded(
            ErrorKind::Upstream,
            "upstream_error",
            format!("{provider} did not answer correctly"),
        )
        .with_details(details)
    };
    match err {
        ChatError::RateLimited {
            retry_after_secs,
            vendor_type,
        } => Error::coded(
            ErrorKind::Limited,
            "upstream_rate_limited",
            format!("{provider} is busy; retry in {retry_after_secs} s"),
        )
        .with_retry_after(*retry_after_secs)
        .with_details(json!({
            "provider": provider,
            "vendor_type": vendor_type,
            "retry_after": retry_after_secs,
        })),
        ChatError::Unavailable {
            status,
            vendor_type,
            message,
        } => {
            tracing::error!(provider, status, vendor_type, %message, "chat provider refuses this server");
            Error::coded(
                ErrorKind::Unavailable,
                "provider_unavailable",
                format!("{provider} cannot be used right now"),
            )
            .with_details(
                json!({ "provider": provider, "status": status, "vendor_type": vendor_type }),
            )
        }
        ChatError::Timeout(_) => failed(json!({ "provider": provider, "reason": "timeout" })),
        ChatError::Failed {
            status,
            vendor_type,
            ..
        } => failed(json!({ "provider": provider, "status": status, "vendor_type": vendor_type })),
        ChatError::ContentFilter => {
            failed(json!({ "provider": provider, "vendor_type": "content_filter" }))
        }
    }
}

/// How the model is asked, decided before the task starts.
enum Call {
    /// Nothing is asked: the refusal is the reply.
    Refused,
    /// Already answering, streamed.
    Stream(ChatStream),
    /// To be asked for the whole answer.
    Whole,
}

/// The second half of a turn, on its own task.
struct Running {
    state: AppState,
    user_id: i64,
    model: Arc<dyn ChatModel>,
    language: Option<String>,
    style: Style,
    conversation_id: Option<i64>,
    recording: Option<JoinHandle<()>>,
    tx: mpsc::Sender<TurnEvent>,
    /// What the model is asked, grown by each round of tool calls.
    request: ChatRequest,
    tools: Option<Arc<dyn ToolBox>>,
    /// Rounds of tool calls still allowed.
    rounds_left: u32,
    /// When the model was first asked, for its timings.
    asked_at: Instant,
    /// Whether the first piece of the reply came.
    first_token: bool,
}

/// How a streamed reply stopped.
enum Stopped {
    /// The model finished, possibly asking for `calls`.
    Done {
        finish_reason: Option<String>,
        usage: Option<Usage>,
        calls: Vec<ToolCall>,
    },
    Blocked,
    Failed(ChatError),
    Gone,
}

/// The text a tool call's result is given as when the tool box returned
/// nothing: Moonshot refuses empty message contents.
const EMPTY_RESULT: &str = "(no output)";

impl Running {
    async fn run(mut self, call: Call) {
        let end = match call {
            Call::Refused => self.refused(None).await,
            Call::Whole => self.whole().await,
            Call::Stream(stream) => self.stream(stream).await,
        };
        let Some(end) = end else {
            metrics::counter!("lty_chat_turns_total", "outcome" => "disconnected").increment(1);
            return;
        };
        metrics::counter!("lty_chat_turns_total", "outcome" => end.outcome.label()).increment(1);
        let _ = self.tx.send(TurnEvent::End(end)).await;
    }

    /// Records the model's time, from the first question to its last
    /// answer (tool rounds included).
    fn model_done(&self) {
        metrics::histogram!("lty_chat_model_seconds", "provider" => self.model.provider())
            .record(self.asked_at.elapsed().as_secs_f64());
    }

    fn refusal(&self) -> String {
        self.state.config.ai.refusal_message.clone()
    }

    /// Waits for the turn's achievement events, so they are recorded by
    /// the time the turn ends.
    async fn settle(&mut self) {
        if let Some(handle) = self.recording.take() {
            let _ = handle.await;
        }
    }

    async fn refused(&mut self, usage: Option<Usage>) -> Option<TurnEnd> {
        self.settle().await;
        let reply = self.refusal();
        let message_id = self.store(&reply, usage, false, true).await;
        Some(TurnEnd {
            outcome: Outcome::Refused,
            reply,
            message_id,
            usage,
            finish_reason: None,
        })
    }

    /// Whether calls the model asks for now are run: a tool box is there
    /// and rounds are left.
    fn may_call(&self) -> bool {
        self.tools.is_some() && self.rounds_left > 0
    }

    /// One round of tool calls: runs `calls` and adds them, with what the
    /// model `said` alongside and their results, to the request. `None`
    /// when the client went away meanwhile (the call in flight dropped).
    async fn use_tools(&mut self, said: String, calls: Vec<ToolCall>) -> Option<()> {
        let tools = self.tools.clone()?;
        let mut results = Vec::with_capacity(calls.len());
        for call in &calls {
            let offered = self.request.tools.iter().any(|t| t.name == call.name);
            let result = if offered {
                tokio::select! {
                    _ = self.tx.closed() => {
                        count_tool_calls("cancelled", 1);
                        return None;
                    }
                    result = tools.call(call) => {
                        count_tool_calls("called", 1);
                        result
                    }
                }
            } else {
                tracing::warn!(tool = %call.name, "the model called a tool that was not offered");
                count_tool_calls("unknown", 1);
                json!({ "error": format!("there is no tool named {}", call.name) }).to_string()
            };
            let result = if result.trim().is_empty() {
                EMPTY_RESULT.to_owned()
            } else {
                result
            };
            results.push(ChatMessage::tool_result(call.id.clone(), result));
        }
        let mut asked = ChatMessage::assistant_calls(calls);
        asked.content = said;
        self.request.messages.push(asked);
        self.request.messages.extend(results);
        self.rounds_left -= 1;
        if self.rounds_left == 0 {
            // The last answer must be words.
            self.request.tool_choice = ToolChoice::None;
        }
        Some(())
    }

    /// Asks for the whole answer; with tools, only while the client is
    /// there (`None` once it left).
    async fn complete(&self) -> Option<Result<lty_core::chat::ChatReply, ChatError>> {
        if self.tools.is_none() {
            // As before tools: the answer is stored even if nobody waits.
            return Some(self.model.complete(&self.request).await);
        }
        tokio::select! {
            _ = self.tx.closed() => None,
            reply = self.model.complete(&self.request) => Some(reply),
        }
    }

    async fn whole(&mut self) -> Option<TurnEnd> {
        let provider = self.model.provider();
        let mut said = String::new();
        let mut usage = None;
        let finish_reason = loop {
            let reply = match self.complete().await {
                None => {
                    self.settle().await;
                    return None;
                }
                Some(Ok(reply)) => reply,
                Some(Err(ChatError::ContentFilter)) => {
                    record_block("provider", self.user_id);
                    return self.refused(usage).await;
                }
                Some(Err(err)) => {
                    self.settle().await;
                    return Some(TurnEnd {
                        outcome: Outcome::Failed(upstream(provider, &err)),
                        reply: String::new(),
                        message_id: None,
                        usage: None,
                        finish_reason: None,
                    });
                }
            };
            count_tokens(provider, reply.usage);
            usage = add_usage(usage, reply.usage);
            said.push_str(&reply.content);
            if reply.tool_calls.is_empty() || !self.may_call() {
                not_run(&reply.tool_calls);
                self.model_done();
                break reply.finish_reason;
            }
            if self
                .use_tools(reply.content, reply.tool_calls)
                .await
                .is_none()
            {
                self.settle().await;
                return None;
            }
        };
        let text = match self.style {
            Style::Spoken => speakable(&said),
            Style::Written => said,
        };
        let language = self.language.as_deref();
        if moderate(&self.state, Side::Output, self.user_id, language, &text).await {
            return self.refused(usage).await;
        }
        self.settle().await;
        let message_id = self.store(&text, usage, false, false).await;
        let _ = self.tx.send(TurnEvent::Delta(text.clone())).await;
        Some(TurnEnd {
            outcome: Outcome::Answered,
            reply: text,
            message_id,
            usage,
            finish_reason,
        })
    }

    /// Reads one streamed answer to its end, sending its checked pieces as
    /// deltas and adding them to `text`.
    async fn read_stream(
        &mut self,
        upstream_stream: &mut ChatStream,
        text: &mut String,
    ) -> Stopped {
        let mut calls = Vec::new();
        loop {
            let item = tokio::select! {
                _ = self.tx.closed() => return Stopped::Gone,
                item = upstream_stream.next() => item,
            };
            match item {
                Some(Ok(ChatEvent::Delta(piece))) => {
                    let piece = match self.style {
                        Style::Spoken => speakable(&piece),
                        Style::Written => piece,
                    };
                    if piece.is_empty() {
                        continue;
                    }
                    if !self.first_token {
                        self.first_token = true;
                        metrics::histogram!(
                            "lty_chat_model_first_token_seconds",
                            "provider" => self.model.provider()
                        )
                        .record(self.asked_at.elapsed().as_secs_f64());
                    }
                    let from = text.len();
                    text.push_str(&piece);
                    if blocked_since(
                        &self.state.config,
                        Side::Output,
                        self.user_id,
                        self.language.as_deref(),
                        text,
                        from,
                    ) {
                        text.truncate(from);
                        return Stopped::Blocked;
                    }
                    if self.tx.send(TurnEvent::Delta(piece)).await.is_err() {
                        return Stopped::Gone;
                    }
                }
                Some(Ok(ChatEvent::ToolCalls(asked))) => calls = asked,
                Some(Ok(ChatEvent::Done {
                    finish_reason,
                    usage,
                })) => {
                    return Stopped::Done {
                        finish_reason,
                        usage,
                        calls,
                    };
                }
                Some(Err(err)) => return Stopped::Failed(err),
                None => {
                    return Stopped::Failed(ChatError::Failed {
                        status: None,
                        vendor_type: None,
                        message: "the stream ended early".into(),
                    });
                }
            }
        }
    }

    /// The model's stream after a round of tool calls; `Err` is how the
    /// turn stops instead.
    async fn ask_again(&mut self) -> Result<ChatStream, Stopped> {
        let asked = tokio::select! {
            _ = self.tx.closed() => return Err(Stopped::Gone),
            asked = self.model.stream(&self.request) => asked,
        };
        asked.map_err(|err| match err {
            ChatError::ContentFilter => {
                record_block("provider", self.user_id);
                Stopped::Blocked
            }
            err => Stopped::Failed(err),
        })
    }

    async fn stream(&mut self, first: ChatStream) -> Option<TurnEnd> {
        let provider = self.model.provider();
        let mut text = String::new();
        let mut usage = None;
        let mut upstream_stream = first;
        let stopped = loop {
            let round_from = text.len();
            let stopped = self.read_stream(&mut upstream_stream, &mut text).await;
            // Cancels the provider's request when it is still running.
            drop(upstream_stream);
            let (round_usage, calls) = match stopped {
                Stopped::Done { usage, calls, .. } if !calls.is_empty() && self.may_call() => {
                    (usage, calls)
                }
                stopped => break stopped,
            };
            count_tokens(provider, round_usage);
            usage = add_usage(usage, round_usage);
            let said = text[round_from..].to_owned();
            if self.use_tools(said, calls).await.is_none() {
                break Stopped::Gone;
            }
            match self.ask_again().await {
                Ok(next) => upstream_stream = next,
                Err(stopped) => break stopped,
            }
        };
        if matches!(stopped, Stopped::Done { .. }) {
            self.model_done();
        }
        self.settle().await;
        match stopped {
            Stopped::Done {
                finish_reason,
                usage: last_usage,
                calls,
            } => {
                not_run(&calls);
                count_tokens(provider, last_usage);
                let usage = add_usage(usage, last_usage);
                // The moderation provider sees the whole reply once: the
                // deltas are out, so a flagged reply is stored as the
                // refusal and the adapter shows that instead.
                let flagged =
                    flagged_by_provider(&self.state, Side::Output, self.user_id, &text).await;
                let (outcome, reply) = if flagged {
                    (Outcome::Flagged, self.refusal())
                } else {
                    (Outcome::Answered, text)
                };
                let message_id = self.store(&reply, usage, false, flagged).await;
                Some(TurnEnd {
                    outcome,
                    reply,
                    message_id,
                    usage,
                    finish_reason,
                })
            }
            Stopped::Blocked => {
                let reply = self.refusal();
                let message_id = self.store(&reply, None, false, true).await;
                Some(TurnEnd {
                    outcome: Outcome::BlockedMidway,
                    reply,
                    message_id,
                    usage: None,
                    finish_reason: None,
                })
            }
            Stopped::Failed(err) => {
                tracing::warn!(provider, %err, "chat stream failed");
                let message_id = self.store(&text, None, true, false).await;
                Some(TurnEnd {
                    outcome: Outcome::Failed(upstream(provider, &err)),
                    reply: text,
                    message_id,
                    usage: None,
                    finish_reason: None,
                })
            }
            Stopped::Gone => {
                tracing::info!(
                    provider,
                    chars = text.chars().count(),
                    "chat client went away mid-stream"
                );
                self.store(&text, None, true, false).await;
                None
            }
        }
    }

    /// Stores the reply in the turn's conversation, when it has one; an
    /// empty incomplete reply is not worth a row. Returns the message id.
    async fn store(
        &self,
        text: &str,
        usage: Option<Usage>,
        incomplete: bool,
        moderated: bool,
    ) -> Option<i64> {
        let conversation_id = self.conversation_id?;
        if incomplete && text.is_empty() {
            return None;
        }
        let stored = self
            .state
            .db
            .add_message(NewMessage {
                conversation_id,
                role: Role::Assistant,
                content: text.to_owned(),
                incomplete,
                moderated,
                usage,
            })
            .await;
        match stored {
            Ok(m) => Some(m.id),
            Err(err) => {
                tracing::error!(%err, conversation_id, "cannot store a chat reply");
                None
            }
        }
    }
}

/// Usage over several requests of a turn.
fn add_usage(total: Option<Usage>, more: Option<Usage>) -> Option<Usage> {
    match (total, more) {
        (Some(a), Some(b)) => Some(Usage {
            prompt_tokens: a.prompt_tokens + b.prompt_tokens,
            completion_tokens: a.completion_tokens + b.completion_tokens,
            total_tokens: a.total_tokens + b.total_tokens,
        }),
        (a, b) => a.or(b),
    }
}

/// Counts the calls of a last answer, which are not run: asked past the
/// allowed rounds (by a provider that ignores `tool_choice: none`).
fn not_run(calls: &[ToolCall]) {
    if !calls.is_empty() {
        tracing::warn!(
            calls = calls.len(),
            "the model asked for tool calls past the allowed rounds"
        );
        count_tool_calls("over_limit", calls.len());
    }
}

/// `lty_chat_tool_calls_total{outcome}`: `called`, `unknown` (not offered),
/// `cancelled` (the client left during the call), `over_limit` (asked past
/// `ai.max_tool_rounds`, not run).
fn count_tool_calls(outcome: &'static str, n: usize) {
    metrics::counter!("lty_chat_tool_calls_total", "outcome" => outcome).increment(n as u64);
}

fn count_tokens(provider: &'static str, usage: Option<Usage>) {
    if let Some(u) = usage {
        metrics::counter!("lty_ai_tokens_total", "provider" => provider, "kind" => "prompt")
            .increment(u64::from(u.prompt_tokens));
        metrics::counter!("lty_ai_tokens_total", "provider" => provider, "kind" => "completion")
            .increment(u64::from(u.completion_tokens));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_replies_lose_their_markdown_markers() {
        assert_eq!(speakable("**大熊** 说 `你好` #1"), "大熊 说 你好 1");
    }
}
