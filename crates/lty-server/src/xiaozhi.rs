//! The xiaozhi-esp32 device channel: devices running the open-source
//! xiaozhi firmware (OTA check, activation, and the WebSocket voice channel
//! of JSON messages and Opus audio), adapted to lty's services. The wire
//! protocol is described in the team's xiaozhi protocol reference
//! (`devices/xiaozhi-protocol.md` in the shared notes).

pub mod framing;
