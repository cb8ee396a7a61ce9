//! The voice agent's OpenAPI actions, version `2024-12-01` (TaskId-based):
//! `StartVoiceChat`, `UpdateVoiceChat`, `StopVoiceChat`, as typed request
//! bodies and client methods with the retry policy each action allows.
//!
//! Field names are the vendor's (PascalCase, with its own capitalisation of
//! `ASRConfig`, `APIKey`, ...); optional fields are left out when unset.

use serde::{Deserialize, Serialize};

use super::openapi::{ApiResponse, OpenApiClient, OpenApiError};

/// API version of the three actions.
pub const VERSION: &str = "2024-12-01";
/// Action names.
pub const START: &str = "StartVoiceChat";
/// See [`START`].
pub const UPDATE: &str = "UpdateVoiceChat";
/// See [`START`].
pub const STOP: &str = "StopVoiceChat";

/// `StartVoiceChat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartVoiceChat {
    /// RTC AppId (`VOLCENGINE_APP_ID`).
    pub app_id: String,
    /// Room the agent joins.
    pub room_id: String,
    /// Session id, unique per start.
    pub task_id: String,
    /// ASR, LLM, TTS and subtitle settings.
    pub config: VoiceChatConfig,
    /// Who the agent is and whom it listens to.
    pub agent_config: AgentConfig,
}

/// `Config` of `StartVoiceChat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceChatConfig {
    /// Speech recognition.
    #[serde(rename = "ASRConfig")]
    pub asr_config: AsrConfig,
    /// Speech synthesis.
    #[serde(rename = "TTSConfig")]
    pub tts_config: TtsConfig,
    /// The agent's brain.
    #[serde(rename = "LLMConfig")]
    pub llm_config: LlmConfig,
    /// Subtitles and their delivery to lty.
    #[serde(
        rename = "SubtitleConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subtitle_config: Option<SubtitleConfig>,
    /// 0: the child's voice can interrupt the agent; 1: it cannot.
    #[serde(rename = "InterruptMode", default)]
    pub interrupt_mode: u8,
}

/// `ASRConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsrConfig {
    /// `volcano`.
    pub provider: String,
    /// The speech application.
    pub provider_params: AsrProviderParams,
    /// Voice activity detection.
    #[serde(rename = "VADConfig", default, skip_serializing_if = "Option::is_none")]
    pub vad_config: Option<VadConfig>,
    /// 0: the service ends the child's turn; 1: lty does (`FinishSpeechRecognition`).
    #[serde(default)]
    pub turn_detection_mode: u8,
}

/// `ASRConfig.ProviderParams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsrProviderParams {
    /// `bigmodel` (AppId + AccessToken) or `smallmodel` (AppId + Cluster).
    pub mode: String,
    /// Speech APP ID.
    pub app_id: String,
    /// Speech access token (`bigmodel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Cluster (`smallmodel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// `ASRConfig.VADConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VadConfig {
    /// Silence that ends an utterance, ms (500–3000).
    pub silence_time: u32,
}

/// `TTSConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtsConfig {
    /// `volcano` (`volcano_bidirection` for streaming big-model voices).
    pub provider: String,
    /// The speech application and voice.
    pub provider_params: TtsProviderParams,
    /// Bracket kinds whose content is not spoken: 1 `（）` 2 `()` 3 `【】` 4 `[]` 5 `{}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_bracket_text: Vec<u8>,
}

/// `TTSConfig.ProviderParams` (lower-case keys, as the speech API spells them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtsProviderParams {
    /// The speech application.
    pub app: TtsApp,
    /// The voice.
    pub audio: TtsAudio,
}

/// `TTSConfig.ProviderParams.app`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtsApp {
    /// Speech APP ID.
    pub appid: String,
    /// Speech access token.
    pub token: String,
    /// `volcano_tts` (`volcano_icl` for cloned voices).
    pub cluster: String,
}

/// `TTSConfig.ProviderParams.audio`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtsAudio {
    /// Voice, e.g. `BV700_streaming`.
    pub voice_type: String,
    /// Speaking rate, 1.0 = normal.
    pub speed_ratio: f32,
}

/// `LLMConfig`: `CustomLLM` (lty's own endpoint) or `ArkV3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LlmConfig {
    /// `CustomLLM` or `ArkV3`.
    pub mode: String,
    /// CustomLLM: the URL the agent POSTs chat completions to (query kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// CustomLLM: sent back as `Authorization: Bearer`.
    #[serde(rename = "APIKey", default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// CustomLLM: `model` of the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// ArkV3: inference endpoint id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_point_id: Option<String>,
    /// ArkV3: the persona (CustomLLM applies it on lty's side instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_messages: Vec<String>,
    /// Turns of history sent with each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_length: Option<u32>,
    /// Longest answer, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(rename = "TopP", default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
}

/// `SubtitleConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubtitleConfig {
    /// `false`: in-room `subv` subtitles on.
    #[serde(rename = "DisableRTSSubtitle")]
    pub disable_rts_subtitle: bool,
    /// 0: aligned to the audio; 1: raw LLM text (faster).
    pub subtitle_mode: u8,
    /// Where subtitles are POSTed (lty's callback route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_message_url: Option<String>,
    /// Echoed back in each callback's `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_message_signature: Option<String>,
}

/// `AgentConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentConfig {
    /// Exactly one id: the RTC user the agent talks to.
    pub target_user_id: Vec<String>,
    /// The agent's own RTC user id; never a target.
    pub user_id: String,
    /// Spoken when the agent joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_message: Option<String>,
    /// Deliver `conv` state changes.
    #[serde(default)]
    pub enable_conversation_state_callback: bool,
    /// Where `conv` states are POSTed.
    #[serde(
        rename = "ServerMessageURLForRTS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_message_url_for_rts: Option<String>,
    /// Echoed back in each `conv` callback's `signature`.
    #[serde(
        rename = "ServerMessageSignatureForRTS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_message_signature_for_rts: Option<String>,
}

/// `UpdateVoiceChat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateVoiceChat {
    /// RTC AppId.
    pub app_id: String,
    /// The agent's room.
    pub room_id: String,
    /// The running task.
    pub task_id: String,
    /// [`Command::vendor_name`].
    pub command: String,
    /// Text for the commands that take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For the `External…` commands: 1 now, 2 after the turn, 3 only if idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_mode: Option<u8>,
}

/// `StopVoiceChat` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StopVoiceChat {
    /// RTC AppId.
    pub app_id: String,
    /// The agent's room.
    pub room_id: String,
    /// The task to stop.
    pub task_id: String,
}

/// `UpdateVoiceChat` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop the agent's current speech or thinking.
    Interrupt,
    /// Speak `Message` verbatim.
    ExternalTextToSpeech,
    /// Add `Message` to the child's next question.
    ExternalPromptsForLlm,
    /// Use `Message` as the child's question.
    ExternalTextToLlm,
    /// End the child's turn (turn detection by lty).
    FinishSpeechRecognition,
    /// A tool result (`Message` = JSON string).
    Function,
}

impl Command {
    /// Every command.
    pub const ALL: [Self; 6] = [
        Self::Interrupt,
        Self::ExternalTextToSpeech,
        Self::ExternalPromptsForLlm,
        Self::ExternalTextToLlm,
        Self::FinishSpeechRecognition,
        Self::Function,
    ];

    /// The command as the vendor's documentation spells it.
    pub const fn vendor_name(self) -> &'static str {
        match self {
            Self::Interrupt => "interrupt",
            Self::ExternalTextToSpeech => "ExternalTextToSpeech",
            Self::ExternalPromptsForLlm => "ExternalPromptsForLLM",
            Self::ExternalTextToLlm => "ExternalTextToLLM",
            Self::FinishSpeechRecognition => "FinishSpeechRecognition",
            Self::Function => "function",
        }
    }

    /// lty's short name: `interrupt`, `speak`, `prompt`, `ask`,
    /// `finish_speech`, `function`.
    pub const fn lty_name(self) -> &'static str {
        match self {
            Self::Interrupt => "interrupt",
            Self::ExternalTextToSpeech => "speak",
            Self::ExternalPromptsForLlm => "prompt",
            Self::ExternalTextToLlm => "ask",
            Self::FinishSpeechRecognition => "finish_speech",
            Self::Function => "function",
        }
    }

    /// A command from lty's short name or the vendor name (any case).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.lty_name() == name || c.vendor_name().eq_ignore_ascii_case(name))
    }

    /// Whether the command needs a `Message`.
    pub const fn needs_message(self) -> bool {
        !matches!(self, Self::Interrupt | Self::FinishSpeechRecognition)
    }

    /// How often a failed call may be repeated: a repeat of a command that
    /// speaks or asks could act twice, so only the idempotent ones retry.
    pub const fn retries(self) -> u32 {
        match self {
            Self::Interrupt | Self::FinishSpeechRecognition => 2,
            _ => 0,
        }
    }
}

impl OpenApiClient {
    /// `StartVoiceChat`, retried at most once (same TaskId, so a repeat
    /// cannot start a second agent).
    pub async fn start_voice_chat(
        &self,
        request: &StartVoiceChat,
    ) -> Result<ApiResponse, OpenApiError> {
        self.call_with_retries(START, VERSION, request, 1).await
    }

    /// `UpdateVoiceChat`, retried only for idempotent commands.
    pub async fn update_voice_chat(
        &self,
        request: &UpdateVoiceChat,
    ) -> Result<ApiResponse, OpenApiError> {
        let retries = Command::parse(&request.command).map_or(0, Command::retries);
        self.call_with_retries(UPDATE, VERSION, request, retries)
            .await
    }

    /// `StopVoiceChat`, retried up to twice (stopping is idempotent).
    pub async fn stop_voice_chat(
        &self,
        request: &StopVoiceChat,
    ) -> Result<ApiResponse, OpenApiError> {
        self.call_with_retries(STOP, VERSION, request, 2).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_serializes_to_the_signing_example_body() {
        // Spec §2.5: the body whose hash the worked signature covers.
        let body = StopVoiceChat {
            app_id: "5f3c0e1d2b4a69788796a5b4".into(),
            room_id: "room_42".into(),
            task_id: "0d8f5b7e9c2a4e61b3f4a5c6d7e8f901".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"AppId":"5f3c0e1d2b4a69788796a5b4","RoomId":"room_42","TaskId":"0d8f5b7e9c2a4e61b3f4a5c6d7e8f901"}"#
        );
    }

    #[test]
    fn start_uses_the_vendor_field_names() {
        let body = StartVoiceChat {
            app_id: "a".into(),
            room_id: "room_42".into(),
            task_id: "t".into(),
            config: VoiceChatConfig {
                asr_config: AsrConfig {
                    provider: "volcano".into(),
                    provider_params: AsrProviderParams {
                        mode: "bigmodel".into(),
                        app_id: "sp".into(),
                        access_token: Some("tok".into()),
                        cluster: None,
                    },
                    vad_config: Some(VadConfig { silence_time: 600 }),
                    turn_detection_mode: 0,
                },
                tts_config: TtsConfig {
                    provider: "volcano".into(),
                    provider_params: TtsProviderParams {
                        app: TtsApp {
                            appid: "sp".into(),
                            token: "tok".into(),
                            cluster: "volcano_tts".into(),
                        },
                        audio: TtsAudio {
                            voice_type: "BV700_streaming".into(),
                            speed_ratio: 1.0,
                        },
                    },
                    ignore_bracket_text: vec![1, 2, 3, 4, 5],
                },
                llm_config: LlmConfig {
                    mode: "CustomLLM".into(),
                    url: Some("https://lty/x".into()),
                    api_key: Some("k".into()),
                    model_name: Some("lty".into()),
                    end_point_id: None,
                    system_messages: vec![],
                    history_length: Some(10),
                    max_tokens: Some(512),
                    temperature: Some(0.7),
                    top_p: Some(0.9),
                },
                subtitle_config: Some(SubtitleConfig {
                    disable_rts_subtitle: false,
                    subtitle_mode: 1,
                    server_message_url: None,
                    server_message_signature: None,
                }),
                interrupt_mode: 0,
            },
            agent_config: AgentConfig {
                target_user_id: vec!["42".into()],
                user_id: "bot_42".into(),
                welcome_message: Some("你好呀！".into()),
                enable_conversation_state_callback: true,
                server_message_url_for_rts: None,
                server_message_signature_for_rts: None,
            },
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v["Config"]["ASRConfig"]["ProviderParams"]["AccessToken"],
            "tok"
        );
        assert_eq!(v["Config"]["ASRConfig"]["VADConfig"]["SilenceTime"], 600);
        assert_eq!(
            v["Config"]["TTSConfig"]["ProviderParams"]["audio"]["voice_type"],
            "BV700_streaming"
        );
        assert_eq!(v["Config"]["TTSConfig"]["IgnoreBracketText"][4], 5);
        assert_eq!(v["Config"]["LLMConfig"]["APIKey"], "k");
        assert_eq!(
            v["Config"]["LLMConfig"]["TopP"].as_f64().map(|f| f > 0.89),
            Some(true)
        );
        assert!(v["Config"]["LLMConfig"].get("SystemMessages").is_none());
        assert!(v["Config"]["LLMConfig"].get("EndPointId").is_none());
        assert_eq!(v["Config"]["SubtitleConfig"]["DisableRTSSubtitle"], false);
        assert!(
            v["Config"]["SubtitleConfig"]
                .get("ServerMessageUrl")
                .is_none()
        );
        assert_eq!(v["AgentConfig"]["TargetUserId"][0], "42");
        assert_eq!(v["AgentConfig"]["EnableConversationStateCallback"], true);
        // Round trip (the fake reads what lty writes).
        let back: StartVoiceChat = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn commands_parse_from_lty_and_vendor_names() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.lty_name()), Some(c));
            assert_eq!(Command::parse(c.vendor_name()), Some(c));
        }
        assert_eq!(
            Command::parse("externaltexttospeech"),
            Some(Command::ExternalTextToSpeech)
        );
        assert_eq!(Command::parse("shout"), None);
        assert!(Command::ExternalTextToSpeech.needs_message());
        assert!(!Command::Interrupt.needs_message());
        assert_eq!(Command::ExternalTextToSpeech.retries(), 0);
        assert_eq!(Command::Interrupt.retries(), 2);
    }
}
