//! `[xiaozhi]`: xiaozhi-esp32 devices — the channel URL handed out by the
//! OTA check, activation, the voice channel's timing and audio.

use serde::{Deserialize, Serialize};

/// xiaozhi-esp32 devices (`LTY_XIAOZHI__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct XiaozhiConfig {
    /// The `ws[s]://host[:port]/path` devices open their voice channel on
    /// (no other `:`, no user info). Default: `public_base_url` with
    /// `ws`/`wss` and `/xiaozhi/v1/`; without either, the OTA check answers
    /// `503 xiaozhi_not_configured`.
    pub websocket_url: Option<String>,
    /// Binary framing handed out (1, 2 or 3).
    pub protocol_version: u8,
    /// Minutes east of UTC the devices' clocks show (`server_time`).
    pub timezone_offset_minutes: i32,
    /// Seconds an activation code stays valid.
    pub activation_code_ttl_secs: u64,
    /// Seconds an activation challenge stays valid.
    pub challenge_ttl_secs: u64,
    /// Activation version 2 devices must prove their eFuse key (their
    /// serial's key recorded by an operator), and version 1 devices are
    /// refused.
    pub require_device_key: bool,
    /// Seconds without voice after which the channel is closed.
    pub idle_close_secs: u64,
    /// Seconds a device's conversation carries over to its next channel.
    pub context_window_secs: u64,
    /// Sample rate of downlink Opus (8000, 12000, 16000, 24000 or 48000).
    pub downlink_sample_rate: u32,
    /// Seconds a device has to answer an MCP request.
    pub mcp_timeout_secs: u64,
    /// Energy above which an uplink frame counts as voice, dBFS.
    pub vad_threshold_dbfs: f32,
    /// Milliseconds of silence that end an utterance (auto and realtime
    /// modes).
    pub vad_end_silence_ms: u32,
    /// Milliseconds after the last downlink packet's due time before
    /// `tts stop`.
    pub tts_stop_margin_ms: u64,
    /// Spoken when a device talks and no speech recognition is configured.
    pub no_asr_message: String,
    /// Spoken when a turn fails (the model or recognition is unavailable).
    pub error_message: String,
}

impl Default for XiaozhiConfig {
    fn default() -> Self {
        Self {
            websocket_url: None,
            protocol_version: 1,
            timezone_offset_minutes: 480,
            activation_code_ttl_secs: 24 * 3600,
            challenge_ttl_secs: 15 * 60,
            require_device_key: false,
            idle_close_secs: 120,
            context_window_secs: 30 * 60,
            downlink_sample_rate: 24_000,
            mcp_timeout_secs: 10,
            vad_threshold_dbfs: -40.0,
            vad_end_silence_ms: 600,
            tts_stop_margin_ms: 300,
            no_asr_message: "我现在还听不懂说话：请让爸爸妈妈给我配置语音识别。".into(),
            error_message: "我现在有点累了，等一下再和我聊吧。".into(),
        }
    }
}
