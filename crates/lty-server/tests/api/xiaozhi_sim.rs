//! A simulated xiaozhi-esp32 device, built from the protocol spec
//! (`shared/devices/xiaozhi-protocol.md`), quirks included: it fails the
//! test wherever the real firmware would abort, reboot-loop or give up
//! (a redirect, a non-numeric firmware version, an NVS key over 15 bytes, a
//! string of 4000 bytes or more, a framing version that is not a number).

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::TestApp;

/// What the firmware sends and keeps.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// `Device-Id`, lower case with colons.
    pub mac: String,
    /// `Client-Id`.
    pub client_id: String,
    pub board_type: String,
    pub board_name: String,
    /// `application.version`.
    pub version: String,
    /// `Accept-Language`.
    pub language: String,
    /// Activation version 2: the serial number and the eFuse key.
    pub serial: Option<(String, [u8; 32])>,
}

/// What an OTA answer told the device.
#[derive(Debug, Clone)]
pub struct OtaAnswer {
    pub body: Value,
    pub websocket_url: String,
    pub token: String,
    pub protocol_version: i64,
    pub activation: Option<Activation>,
    /// `(version, url)` when the section is there.
    pub firmware: Option<(String, String)>,
}

/// The activation block of an OTA answer.
#[derive(Debug, Clone)]
pub struct Activation {
    pub code: String,
    pub challenge: String,
    pub message: String,
}

/// The firmware's version parse (`Ota::ParseVersion`): `None` where
/// `std::stoi` would throw and abort the device.
fn firmware_parses(version: &str) -> bool {
    version
        .split('.')
        .all(|seg| !seg.is_empty() && seg.len() <= 9 && seg.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a `websocket`/`mqtt` section as `Ota::CheckVersion` stores it in
/// NVS: every key at most 15 bytes, every string under 4000 bytes.
fn check_nvs_section(section: &Value, name: &str) {
    let map = section
        .as_object()
        .unwrap_or_else(|| panic!("`{name}` is not an object: {section}"));
    for (key, value) in map {
        assert!(
            key.len() <= 15,
            "NVS key `{key}` in `{name}` is over 15 bytes: the device aborts"
        );
        if let Some(s) = value.as_str() {
            assert!(
                s.len() < 4000,
                "`{name}.{key}` is 4000 bytes or more: the device aborts"
            );
        }
    }
}

impl SimDevice {
    /// A device with a random MAC on a common board, firmware 2.4.2.
    pub fn new() -> Self {
        let b = rand::random::<[u8; 5]>();
        Self {
            mac: format!(
                "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                b[0], b[1], b[2], b[3], b[4]
            ),
            client_id: format!("{:032x}", rand::random::<u128>()),
            board_type: "bread-compact-wifi".into(),
            board_name: "bread-compact-wifi-128x64".into(),
            version: "2.4.2".into(),
            language: "zh-CN".into(),
            serial: None,
        }
    }

    /// The system information body (`Board::GetSystemInfoJson`).
    pub fn body(&self) -> Value {
        json!({
            "version": 2, "language": self.language, "flash_size": 16777216,
            "minimum_free_heap_size": "73420", "mac_address": self.mac, "uuid": self.client_id,
            "chip_model_name": "esp32s3",
            "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
            "application": {"name": "xiaozhi", "version": self.version,
                            "compile_time": "Aug  6 2026T08:49:23Z", "idf_version": "v6.0",
                            "elf_sha256": "00".repeat(32)},
            "partition_table": [{"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 16384}],
            "ota": {"label": "ota_0"},
            "display": {"monochrome": false, "width": 240, "height": 240},
            "board": {"type": self.board_type, "name": self.board_name, "manufacturer": "lty-test",
                      "ssid": "home", "rssi": -52, "channel": 6, "ip": "192.168.1.23", "mac": self.mac}
        })
    }

    fn request(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        let mut req = app
            .client
            .post(app.url(path))
            .header("Device-Id", &self.mac)
            .header("Client-Id", &self.client_id)
            .header(
                "User-Agent",
                format!("{}/{}", self.board_name, self.version),
            )
            .header("Accept-Language", &self.language);
        req = match &self.serial {
            Some((serial, _)) => req
                .header("Activation-Version", "2")
                .header("Serial-Number", serial),
            None => req.header("Activation-Version", "1"),
        };
        req
    }

    /// The raw OTA check at `path`.
    pub async fn ota_raw(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.request(app, path)
            .json(&self.body())
            .send()
            .await
            .expect("OTA check")
    }

    /// An OTA check as the firmware reads it; fails where the device would.
    pub async fn ota(&self, app: &TestApp, path: &str) -> OtaAnswer {
        let res = self.ota_raw(app, path).await;
        assert!(
            !res.status().is_redirection(),
            "the firmware follows no redirect"
        );
        assert_eq!(res.status(), 200, "a non-200 OTA answer is a failed check");
        assert!(
            res.headers().contains_key("content-length"),
            "the OTA answer needs Content-Length on every board"
        );
        let body: Value = res.json().await.expect("the OTA answer is JSON");
        assert!(body["server_time"]["timestamp"].is_number(), "{body}");
        assert!(body.get("mqtt").is_none(), "exactly one transport section");
        let ws = &body["websocket"];
        check_nvs_section(ws, "websocket");
        let url = ws["url"]
            .as_str()
            .expect("websocket.url is a string")
            .to_owned();
        let token = ws["token"]
            .as_str()
            .expect("websocket.token is a string")
            .to_owned();
        let version = ws["version"]
            .as_i64()
            .expect("websocket.version is a JSON number");
        assert!((1..=3).contains(&version), "framing {version}");
        let firmware = match (&body["firmware"]["version"], &body["firmware"]["url"]) {
            (Value::String(v), Value::String(u)) => {
                assert!(
                    firmware_parses(v),
                    "firmware.version {v:?} is not numeric: the device aborts at every boot"
                );
                Some((v.clone(), u.clone()))
            }
            _ => None,
        };
        let activation = body.get("activation").map(|a| Activation {
            code: a["code"].as_str().expect("activation.code").to_owned(),
            challenge: a["challenge"]
                .as_str()
                .expect("always send a challenge with the code")
                .to_owned(),
            message: a["message"].as_str().unwrap_or("").to_owned(),
        });
        OtaAnswer {
            body,
            websocket_url: url,
            token,
            protocol_version: version,
            activation,
            firmware,
        }
    }

    /// One activation poll with `challenge`; the status.
    pub async fn poll(&self, app: &TestApp, challenge: &str) -> u16 {
        let body = match &self.serial {
            Some((serial, key)) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
                mac.update(challenge.as_bytes());
                json!({
                    "algorithm": "hmac-sha256", "serial_number": serial,
                    "challenge": challenge,
                    "hmac": hex::encode(mac.finalize().into_bytes()),
                })
            }
            None => json!({}),
        };
        let res = self
            .request(app, "/xiaozhi/ota/activate")
            .json(&body)
            .send()
            .await
            .expect("activate");
        assert!(!res.status().is_redirection(), "no redirect on /activate");
        res.status().as_u16()
    }
}

// ---- The voice channel -------------------------------------------------

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Downlink rates and frame durations the firmware accepts (§3.3).
const RATES: [u64; 5] = [8000, 12000, 16000, 24000, 48000];
const FRAME_MS: [u64; 8] = [5, 10, 20, 40, 60, 80, 100, 120];

/// The tools of the simulated device's MCP server (§6.5): two for the
/// model, one user-only.
fn device_tools() -> Vec<Value> {
    vec![
        json!({"name": "self.get_device_status", "description": "Current status, e.g. volume",
               "inputSchema": {"type": "object", "properties": {}}}),
        json!({"name": "self.audio_speaker.set_volume",
               "description": "Set the speaker volume. Check self.get_device_status first.",
               "inputSchema": {"type": "object",
                               "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}},
                               "required": ["volume"]}}),
        json!({"name": "self.reboot", "description": "Reboot the system",
               "inputSchema": {"type": "object", "properties": {}},
               "annotations": {"audience": ["user"]}}),
    ]
}

/// An MCP request the device received.
#[derive(Debug, Clone)]
pub struct McpCall {
    pub id: i64,
    pub method: String,
    pub params: Value,
}

/// What the device got between `tts start` and `tts stop` (or an abort).
#[derive(Debug, Default, Clone)]
pub struct Heard {
    pub stt: Vec<String>,
    pub emotions: Vec<String>,
    pub sentences: Vec<String>,
    /// Decoded samples of each downlink packet.
    pub packets: Vec<usize>,
    pub stopped: bool,
    /// Every JSON message, in order.
    pub messages: Vec<Value>,
}

/// The device's side of a voice channel.
pub struct Channel {
    ws: Ws,
    version: u8,
    pub session_id: String,
    pub sample_rate: u32,
    speaking: bool,
    decoder: Option<lty_server::app::audio::opus::OpusDecoder>,
    /// MCP requests received, in order.
    pub mcp: Vec<McpCall>,
    /// The speaker volume the model can set through MCP.
    pub volume: i64,
    /// Tools per `tools/list` page (small, to exercise the cursor).
    pub page_size: usize,
    /// Set after a Close frame arrived: its code.
    pub closed: Option<u16>,
}

impl SimDevice {
    /// Opens the voice channel as esp-ml307 does (§3.1): `Authorization`
    /// (the Bearer prefix added to a token without a space), `Device-Id`,
    /// `Client-Id`, `Protocol-Version`, a `Host` without the port, no
    /// `Origin`. `Err(status)` when the upgrade is refused.
    pub async fn connect(&self, url: &str, token: &str, version: u8) -> Result<Channel, u16> {
        let mut req = url.into_client_request().unwrap();
        let host = req.uri().host().unwrap().to_owned();
        let h = req.headers_mut();
        h.insert("host", host.parse().unwrap());
        if !token.is_empty() {
            let value = if token.contains(' ') {
                token.to_owned()
            } else {
                format!("Bearer {token}")
            };
            h.insert("authorization", value.parse().unwrap());
        }
        h.insert("device-id", self.mac.parse().unwrap());
        h.insert("client-id", self.client_id.parse().unwrap());
        h.insert("protocol-version", version.to_string().parse().unwrap());
        let connected = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("connect + handshake within 10 s");
        match connected {
            Ok((ws, res)) => {
                assert_eq!(res.status(), 101);
                Ok(Channel {
                    ws,
                    version,
                    session_id: String::new(),
                    sample_rate: 24_000,
                    speaking: false,
                    decoder: None,
                    mcp: Vec::new(),
                    volume: 70,
                    page_size: 1,
                    closed: None,
                })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("connect: {e}"),
        }
    }
}

/// One frame of the downlink, after MCP requests were answered.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Audio(Vec<u8>),
    Closed(Option<u16>),
}

impl Channel {
    /// Sends the client hello and waits (≤ 10 s) for the server's, checking
    /// it as `ParseServerHello` does; keeps the session id and rates.
    pub async fn hello(&mut self, mcp: bool) -> Value {
        let hello = json!({
            "type": "hello", "version": self.version,
            "features": {"mcp": mcp, "glyph_push": false}, "transport": "websocket",
            "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}
        });
        self.send_json(hello).await;
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.next().await {
                    Event::Json(v) if v["type"] == "hello" => return v,
                    Event::Json(_) => {}
                    Event::Audio(_) => panic!("audio before the server hello"),
                    Event::Closed(code) => panic!("closed before hello: {code:?}"),
                }
            }
        })
        .await
        .expect("server hello within 10 s");
        assert!(
            answer["transport"].as_str() == Some("websocket"),
            "transport must be the string \"websocket\" (anything else crashes or stalls the device): {answer}"
        );
        let sid = answer["session_id"]
            .as_str()
            .expect("session_id must be a string");
        assert!(
            !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "session_id {sid:?}"
        );
        let rate = answer["audio_params"]["sample_rate"].as_u64().unwrap();
        let frame = answer["audio_params"]["frame_duration"].as_u64().unwrap();
        assert!(RATES.contains(&rate), "sample_rate {rate}");
        assert!(FRAME_MS.contains(&frame), "frame_duration {frame}");
        self.session_id = sid.to_owned();
        self.sample_rate = rate as u32;
        self.decoder =
            Some(lty_server::app::audio::opus::OpusDecoder::new(self.sample_rate).unwrap());
        answer
    }

    /// A JSON message with the session id, as the firmware adds it.
    pub async fn send_json(&mut self, mut value: Value) {
        if value["type"] != "hello" {
            value["session_id"] = json!(self.session_id);
        }
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// One uplink Opus packet, framed in the channel's version.
    pub async fn send_packet(&mut self, packet: &[u8]) {
        let frame = match self.version {
            2 => {
                let mut f = Vec::with_capacity(16 + packet.len());
                f.extend_from_slice(&2u16.to_be_bytes());
                f.extend_from_slice(&0u16.to_be_bytes());
                f.extend_from_slice(&0u32.to_be_bytes());
                f.extend_from_slice(&0u32.to_be_bytes());
                f.extend_from_slice(&(packet.len() as u32).to_be_bytes());
                f.extend_from_slice(packet);
                f
            }
            3 => {
                let mut f = vec![0u8, 0u8];
                f.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                f.extend_from_slice(packet);
                f
            }
            _ => packet.to_vec(),
        };
        self.ws.send(Message::Binary(frame.into())).await.unwrap();
    }

    /// Streams `pcm` (16 kHz) as 60 ms Opus packets.
    pub async fn send_speech(&mut self, pcm: &[i16]) {
        let mut encoder = lty_server::app::audio::opus::OpusEncoder::new(16_000, 60).unwrap();
        for chunk in pcm.chunks(960) {
            let mut frame = chunk.to_vec();
            frame.resize(960, 0);
            let packet = encoder.encode(&frame).unwrap();
            self.send_packet(&packet).await;
        }
    }

    /// Answers an MCP request as the firmware's `McpServer` does.
    async fn answer_mcp(&mut self, payload: &Value) {
        // String or missing ids, and `params: null`, get no reply at all.
        let Some(id) = payload["id"].as_i64() else {
            return;
        };
        assert!(
            payload["id"].is_i64() && (1..=i64::from(i32::MAX)).contains(&id),
            "MCP ids must be integers within int32: {payload}"
        );
        if payload.get("params").is_some_and(|p| !p.is_object()) {
            return;
        }
        let method = payload["method"].as_str().unwrap_or("").to_owned();
        self.mcp.push(McpCall {
            id,
            method: method.clone(),
            params: payload["params"].clone(),
        });
        let result = match method.as_str() {
            "initialize" => json!({"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                                   "serverInfo": {"name": "bread-compact-wifi", "version": "2.4.2"}}),
            "tools/list" => {
                let tools = device_tools();
                let cursor = payload["params"]["cursor"].as_str().unwrap_or("");
                let start = if cursor.is_empty() {
                    0
                } else {
                    match tools.iter().position(|t| t["name"] == cursor) {
                        Some(i) => i,
                        None => {
                            return self
                                .mcp_error(id, "Failed to add tool  because of payload size limit")
                                .await;
                        }
                    }
                };
                let end = (start + self.page_size).min(tools.len());
                let mut page = json!({"tools": tools[start..end]});
                if end < tools.len() {
                    page["nextCursor"] = tools[end]["name"].clone();
                }
                page
            }
            "tools/call" => {
                let name = payload["params"]["name"].as_str().unwrap_or("");
                match name {
                    "self.get_device_status" => json!({"content": [{"type": "text",
                        "text": json!({"audio_speaker": {"volume": self.volume}}).to_string()}], "isError": false}),
                    "self.audio_speaker.set_volume" => {
                        let Some(v) = payload["params"]["arguments"]["volume"].as_i64() else {
                            return self.mcp_error(id, "Missing valid argument: volume").await;
                        };
                        self.volume = v;
                        json!({"content": [{"type": "text", "text": "true"}], "isError": false})
                    }
                    other => return self.mcp_error(id, &format!("Unknown tool: {other}")).await,
                }
            }
            other => {
                return self
                    .mcp_error(id, &format!("Method not implemented: {other}"))
                    .await;
            }
        };
        self.send_json(
            json!({"type": "mcp", "payload": {"jsonrpc": "2.0", "id": id, "result": result}}),
        )
        .await;
    }

    /// An error as `McpServer::ReplyError` sends it: no `code`.
    async fn mcp_error(&mut self, id: i64, message: &str) {
        self.send_json(
            json!({"type": "mcp", "payload": {"jsonrpc": "2.0", "id": id,
                                                        "error": {"message": message}}}),
        )
        .await;
    }

    /// The next downlink message that is not an MCP request (those are
    /// answered here). Audio outside the speaking state is dropped, as the
    /// firmware drops it, and fails the test.
    pub async fn next(&mut self) -> Event {
        loop {
            let msg = match tokio::time::timeout(Duration::from_secs(20), self.ws.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(_))) | Ok(None) => return Event::Closed(self.closed),
                Err(_) => panic!("no downlink message in 20 s"),
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("downlink text is JSON");
                    if v["type"] == "mcp" {
                        assert!(v["payload"].is_object(), "MCP payload must be an object");
                        let payload = v["payload"].clone();
                        self.answer_mcp(&payload).await;
                        continue;
                    }
                    if v["type"] == "tts" {
                        match v["state"].as_str() {
                            Some("start") => self.speaking = true,
                            Some("stop") => self.speaking = false,
                            _ => {}
                        }
                    }
                    return Event::Json(v);
                }
                Message::Binary(b) => {
                    assert!(
                        self.speaking,
                        "audio outside the speaking state (before tts start or after tts stop)"
                    );
                    return Event::Audio(b.to_vec());
                }
                Message::Close(frame) => {
                    self.closed = frame.map(|f| u16::from(f.code));
                    return Event::Closed(self.closed);
                }
                _ => {}
            }
        }
    }

    /// Decodes a downlink frame: payload of the channel's framing, which
    /// must decode to exactly `frame_duration` of audio.
    fn decode(&mut self, frame: &[u8]) -> usize {
        let payload = match self.version {
            2 => {
                let size = u32::from_be_bytes(frame[12..16].try_into().unwrap()) as usize;
                assert_eq!(size, frame.len() - 16, "v2 payload_size");
                &frame[16..]
            }
            3 => {
                let size = u16::from_be_bytes(frame[2..4].try_into().unwrap()) as usize;
                assert_eq!(size, frame.len() - 4, "v3 payload_size");
                &frame[4..]
            }
            _ => frame,
        };
        let pcm = self
            .decoder
            .as_mut()
            .unwrap()
            .decode(payload)
            .expect("downlink Opus decodes");
        assert_eq!(
            pcm.len(),
            self.sample_rate as usize * 60 / 1000,
            "a downlink packet is exactly 60 ms"
        );
        pcm.len()
    }

    /// Everything until `tts stop` (the response's end).
    pub async fn response(&mut self) -> Heard {
        let mut heard = Heard::default();
        let mut started = false;
        loop {
            match self.next().await {
                Event::Json(v) => {
                    heard.messages.push(v.clone());
                    match (v["type"].as_str(), v["state"].as_str()) {
                        (Some("stt"), _) => heard.stt.push(v["text"].as_str().unwrap().to_owned()),
                        (Some("llm"), _) => heard
                            .emotions
                            .push(v["emotion"].as_str().unwrap().to_owned()),
                        (Some("tts"), Some("start")) => started = true,
                        (Some("tts"), Some("sentence_start")) => {
                            assert!(started, "sentence_start before tts start");
                            heard.sentences.push(v["text"].as_str().unwrap().to_owned());
                        }
                        (Some("tts"), Some("stop")) => {
                            heard.stopped = true;
                            return heard;
                        }
                        _ => {}
                    }
                }
                Event::Audio(frame) => {
                    assert!(started, "audio before tts start");
                    assert!(
                        !heard.sentences.is_empty(),
                        "audio before its sentence_start"
                    );
                    let n = self.decode(&frame);
                    heard.packets.push(n);
                }
                Event::Closed(code) => panic!("closed mid-response: {code:?}"),
            }
        }
    }

    /// Waits until the server sent `tools/list` pages to the end (answering
    /// them); the MCP calls seen so far.
    pub async fn wait_for_tools(&mut self) -> Vec<McpCall> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listed = self.mcp.iter().filter(|c| c.method == "tools/list").count();
            if listed >= device_tools().len().div_ceil(self.page_size) {
                return self.mcp.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tools/list never finished: {:?}",
                self.mcp
            );
            match tokio::time::timeout(Duration::from_millis(200), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "mcp" {
                        let payload = v["payload"].clone();
                        self.answer_mcp(&payload).await;
                    }
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(_) => panic!("closed while listing tools"),
            }
        }
    }

    /// Drops TCP without a Close frame, as the firmware ends a channel.
    pub fn drop_tcp(self) {
        drop(self.ws);
    }
}

/// 300 ms of silence, 1.5 s of a 440 Hz tone at about −20 dBFS, 900 ms of
/// silence: enough for an energy VAD to hear one utterance, start and end.
pub fn utterance() -> Vec<i16> {
    let mut pcm = vec![0i16; 4800];
    pcm.extend((0..24_000).map(|i| {
        let t = i as f32 / 16_000.0;
        ((t * 440.0 * std::f32::consts::TAU).sin() * 3300.0) as i16
    }));
    pcm.extend(vec![0i16; 14_400]);
    pcm
}
