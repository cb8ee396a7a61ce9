//! The chat model (`[llm]`), AI chat quotas and child safety (`[ai]`) and
//! image understanding (`[image]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Secret, TermList};

/// Kimi or any OpenAI-compatible chat API (`KIMI_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    pub api_key: Option<Secret>,
    /// Base URL including `/v1` (`KIMI_BASE_URL`).
    pub base_url: String,
    pub model: String,
    /// `kimi` (temperature in [0, 1]) or `openai` (any other
    /// OpenAI-compatible server, temperature in [0, 2]).
    pub provider: String,
    /// Sampling temperature; unset sends none (the provider's default).
    pub temperature: Option<f32>,
    /// Most tokens of one reply.
    pub max_tokens: Option<u32>,
    /// Milliseconds allowed to connect.
    pub connect_timeout_ms: u64,
    /// Milliseconds allowed until the provider starts answering.
    pub first_byte_timeout_ms: u64,
    /// Milliseconds allowed between two pieces of a streamed answer.
    pub idle_timeout_ms: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: "https://api.moonshot.cn/v1".into(),
            model: "moonshot-v1-8k".into(),
            provider: "kimi".into(),
            temperature: Some(0.3),
            max_tokens: Some(512),
            connect_timeout_ms: 3_000,
            first_byte_timeout_ms: 30_000,
            idle_timeout_ms: 30_000,
        }
    }
}

/// AI chat: quotas, history budget and child safety (`LTY_AI__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AiConfig {
    /// Server-wide ceiling on chat messages per user and UTC day (`0` = none);
    /// each user's plan sets the limit below it.
    pub daily_messages: u64,
    /// Estimated tokens of persona prompt + history + new message sent to
    /// the model; older turns are dropped to fit.
    pub history_token_budget: usize,
    /// Longest accepted message, in characters.
    pub max_message_chars: usize,
    /// Rounds of tool calls one turn may make when its adapter offers tools
    /// (a device's MCP tools); the model's last answer after them must be
    /// words. `0` offers no tools.
    pub max_tool_rounds: u32,
    /// Terms that block a child's message (any language, case-insensitive;
    /// comma-separated in the environment).
    pub blocked_input_terms: TermList,
    /// Terms that block a model's reply.
    pub blocked_output_terms: TermList,
    /// Terms per language (`zh`, `en`, ...) that block either side; a text
    /// is checked against every language's list unless the request names
    /// its language (`LTY_AI__BLOCKED_TERMS__ZH="a,b"`).
    pub blocked_terms: BTreeMap<String, TermList>,
    /// An OpenAI-compatible moderation API asked about both sides: base URL
    /// including `/v1` (`/moderations` is appended) or the full endpoint;
    /// unset = blocked-term lists only.
    pub moderation_url: Option<String>,
    /// Bearer key of the moderation API.
    pub moderation_api_key: Option<Secret>,
    /// Moderation model to name in requests (omitted when unset).
    pub moderation_model: Option<String>,
    /// Block when the moderation API fails (fail closed); by default the
    /// text passes (fail open), logged and counted in
    /// `lty_moderation_errors_total`.
    pub moderation_fail_closed: bool,
    /// Milliseconds allowed for one moderation call.
    pub moderation_timeout_ms: u64,
    /// Said instead of blocked content.
    pub refusal_message: String,
    /// Spoken by the voice agent when the daily quota is used up.
    pub quota_message: String,
    /// Put before every persona's prompt to keep answers age-appropriate.
    pub safety_preamble: String,
    /// Appended to the system prompt of a turn whose reply is spoken aloud,
    /// so the model answers in short speech-friendly sentences.
    pub spoken_style: String,
    /// Seconds between SSE keep-alive comments on a streamed reply.
    pub sse_keep_alive_secs: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            daily_messages: 200,
            history_token_budget: 3_000,
            max_message_chars: 2_000,
            max_tool_rounds: 3,
            blocked_input_terms: TermList::from_str_list(&["色情", "porn", "赌博", "毒品"]),
            blocked_output_terms: TermList::from_str_list(&[
                "色情", "porn", "赌博", "毒品", "自杀", "suicide",
            ]),
            blocked_terms: BTreeMap::new(),
            moderation_url: None,
            moderation_api_key: None,
            moderation_model: None,
            moderation_fail_closed: false,
            moderation_timeout_ms: 2_000,
            refusal_message: "这个问题我们换一个话题聊吧，有不明白的可以去问问爸爸妈妈哦。".into(),
            quota_message: "今天我们已经聊了很多啦，明天再来找我玩吧！".into(),
            safety_preamble:
                "你在和一个小朋友说话。只说适合儿童的内容：不谈暴力、色情、赌博、毒品、\
自我伤害和其他危险行为，不索要住址、学校、电话等个人信息，不假装是真人。\
遇到这类话题，温和地换个话题，并建议小朋友去问爸爸妈妈或老师。"
                    .into(),
            spoken_style: "你的回答会被朗读出来：用简短口语，不要用列表、表情或 Markdown。".into(),
            sse_keep_alive_secs: 15,
        }
    }
}

/// Image understanding behind `/api/ai/image/` (`LTY_IMAGE__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `aliyun` (Visual Intelligence tagging), `openai` (the chat
    /// provider's vision model) or `none`. Unset: `aliyun` when the
    /// `ALIYUN_VI_*` key pair is set, else `openai` when the chat model is
    /// configured and `model` is set, else none (`503`).
    pub provider: Option<String>,
    /// Vision model asked through the OpenAI-compatible chat API (e.g.
    /// `moonshot-v1-8k-vision-preview`).
    pub model: Option<String>,
    /// Largest upload accepted, in bytes.
    pub max_bytes: usize,
    /// What the vision model is asked about the image.
    pub prompt: String,
    /// Most labels returned.
    pub max_labels: usize,
    /// Labels below this confidence (percent) are left out.
    pub min_confidence: f64,
    /// Seconds allowed for one provider call.
    pub timeout_secs: u64,
    /// When Aliyun VI gets the image through its temporary upload: `auto`
    /// (unless the image is stored on OSS in the VI region), `always` or
    /// `never` (VI is given the stored object's URL).
    pub vi_upload: String,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            provider: None,
            model: None,
            max_bytes: 5 * 1024 * 1024,
            prompt: "用一两句简单的话，向小朋友描述这张图片里有什么。".into(),
            max_labels: 10,
            min_confidence: 10.0,
            timeout_secs: 20,
            vi_upload: "auto".into(),
        }
    }
}
