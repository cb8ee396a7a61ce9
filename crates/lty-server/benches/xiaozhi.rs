//! xiaozhi voice channels under load: the release `lty` binary serves
//! simulated devices on 127.0.0.1, with fake providers of fixed latency
//! (an OpenAI-compatible model, Tencent-style TTS and ASR) in this process.
//! Not a pass/fail test: it prints numbers for docs/benchmarks.md.
//!
//! `cargo bench -p lty-server --bench xiaozhi`, with `XZ_MODE`:
//!
//! - `latency` (default): `XZ_DEVICES` (100) devices hold turns at once,
//!   `XZ_TURNS` (5) each, in manual mode: 1 s of speech streamed at real
//!   time, `listen stop`, then the time to the first downlink audio frame.
//!   The providers' fixed latencies (`XZ_ASR_MS` 50, `XZ_LLM_MS` 100,
//!   `XZ_TTS_MS` 80) are subtracted: what is left is lty's own share.
//! - `capacity`: `XZ_DEVICES` (200) devices talk continuously for `XZ_SECS`
//!   (30) in auto mode (speech at real time, server VAD, the spoken reply):
//!   every downlink packet is checked against the device's playback clock
//!   (a packet that arrives after it should have started playing is an
//!   underrun) and lty's CPU is read from /proc.
//! - `idle`: `XZ_DEVICES` (1000) devices open a channel, say hello and stay
//!   idle; lty's resident memory per channel.
//!
//! `XZ_WRAP` runs the server under a profiler: `XZ_WRAP="heaptrack -o
//! FILE"` records its heap (the RSS figures then include the profiler's).

#![allow(clippy::expect_used, clippy::unwrap_used)]
#![forbid(unsafe_code)]

mod support;

use support::{env_u64, free_port, proc_stats};

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use lty_server::app::audio::opus::OpusEncoder;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Fixed provider latencies.
#[derive(Debug, Clone, Copy)]
struct Latency {
    asr: Duration,
    llm: Duration,
    tts: Duration,
}

fn sse(delta: &Value, finish: &Value) -> String {
    let c = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

/// The model: its first piece completes the first sentence and starts the
/// next (as a token stream does), so lty can speak the first sentence at
/// once; the rest comes 30 ms later.
async fn chat(latency: Latency) -> impl IntoResponse {
    let body = futures_util::stream::unfold(0u8, move |step| async move {
        let piece = match step {
            0 => {
                tokio::time::sleep(latency.llm).await;
                sse(
                    &json!({"role": "assistant", "content": "你好呀小朋友。我"}),
                    &Value::Null,
                )
            }
            1 => {
                tokio::time::sleep(Duration::from_millis(30)).await;
                sse(&json!({"content": "们来讲故事吧。"}), &Value::Null)
            }
            2 => format!("{}data: [DONE]\n\n", sse(&json!({}), &json!("stop"))),
            _ => return None,
        };
        Some((Ok::<_, Infallible>(Bytes::from(piece)), step + 1))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
}

/// Tencent's API 3.0 actions as lty calls them: `TextToVoice` answers
/// 16 kHz PCM, 150 ms per character; `SentenceRecognition` a fixed text.
async fn tencent(latency: Latency, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let action = headers
        .get("x-tc-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let response = if action == "TextToVoice" {
        tokio::time::sleep(latency.tts).await;
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let chars = request["Text"]
            .as_str()
            .unwrap_or("")
            .chars()
            .count()
            .max(1);
        let samples = chars * 2400;
        let pcm: Vec<u8> = (0..samples)
            .flat_map(|i| {
                let t = i as f32 / 16_000.0;
                (((t * 330.0 * std::f32::consts::TAU).sin() * 6000.0) as i16).to_le_bytes()
            })
            .collect();
        json!({"Response": {"Audio": base64::engine::general_purpose::STANDARD.encode(pcm),
                            "SessionId": "s", "RequestId": "r"}})
    } else {
        tokio::time::sleep(latency.asr).await;
        json!({"Response": {"Result": "讲个故事", "AudioDuration": 1000, "RequestId": "r"}})
    };
    axum::Json(response)
}

async fn start_fakes(latency: Latency) -> String {
    let app = Router::new()
        .route("/v1/chat/completions", post(move || chat(latency)))
        .route(
            "/",
            post(move |headers: HeaderMap, body: Bytes| tencent(latency, headers, body)),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The lty process under test.
struct Server {
    child: Child,
    port: u16,
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &std::path::Path, fakes: &str, devices: u32) -> Server {
    let bin = env!("CARGO_BIN_EXE_lty");
    let port = free_port();
    let envs = [
        ("LTY_DATA_DIR", data.display().to_string()),
        ("LTY_LOG__LEVEL", "warn".into()),
        ("KIMI_API_KEY", "sk-bench".into()),
        ("KIMI_BASE_URL", format!("{fakes}/v1")),
        ("LTY_LLM__PROVIDER", "openai".into()),
        ("AUDIO_SERVICE_PROVIDER", "tencent".into()),
        ("AUDIO_SERVICE_TENCENT_API_KEY", "AKIDbench".into()),
        ("AUDIO_SERVICE_TENCENT_API_SECRET", "bench-secret".into()),
        ("AUDIO_SERVICE_TENCENT_TTS_ENDPOINT", fakes.to_owned()),
        ("AUDIO_SERVICE_TENCENT_ASR_ENDPOINT", fakes.to_owned()),
        (
            "LTY_XIAOZHI__WEBSOCKET_URL",
            format!("ws://127.0.0.1:{port}/xiaozhi/v1/"),
        ),
        ("LTY_XIAOZHI__IDLE_CLOSE_SECS", "600".into()),
        ("LTY_AI__DAILY_MESSAGES", "0".into()),
        ("LTY_LIMITS__EXEMPT_LOOPBACK", "true".into()),
    ];
    let status = Command::new(bin)
        .args(["seed", "--users", &devices.to_string()])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .status()
        .expect("lty seed");
    assert!(status.success(), "lty seed failed");
    // `XZ_WRAP` runs the server under a profiler, e.g. `heaptrack -o FILE`.
    let wrap = std::env::var("XZ_WRAP").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut command = match wrap.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(wrap).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let child = command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()
        .expect("lty serve");
    let pid = child.id();
    Server { child, port, pid }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Boots device `i` (OTA check) and opens its channel with a hello.
async fn open_device(http: &reqwest::Client, port: u16, i: u32) -> Ws {
    let mac = lty_store::seed::bench_mac(i).to_string();
    let ota: Value = http
        .post(format!("http://127.0.0.1:{port}/xiaozhi/ota/"))
        .header("Device-Id", &mac)
        .header("Client-Id", format!("{i:032x}"))
        .json(&json!({"application": {"version": "2.4.2"},
                      "board": {"type": "bread-compact-wifi", "name": "bread-compact-wifi"}}))
        .send()
        .await
        .expect("OTA")
        .json()
        .await
        .expect("OTA JSON");
    assert!(ota.get("activation").is_none(), "bench devices are bound");
    let mut req = ota["websocket"]["url"]
        .as_str()
        .unwrap()
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        format!("Bearer {}", ota["websocket"]["token"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    h.insert("device-id", mac.parse().unwrap());
    h.insert("protocol-version", "1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    let hello = json!({"type": "hello", "version": 1, "features": {"mcp": false},
                       "transport": "websocket",
                       "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await
            && t.contains("\"hello\"")
        {
            return ws;
        }
    }
}

/// Opus packets of `pcm` (16 kHz), 60 ms each.
fn packets(pcm: &[i16]) -> Arc<Vec<Bytes>> {
    let mut enc = OpusEncoder::new(16_000, 60).unwrap();
    Arc::new(
        pcm.chunks(960)
            .map(|c| {
                let mut f = c.to_vec();
                f.resize(960, 0);
                enc.encode(&f).unwrap()
            })
            .collect(),
    )
}

fn tone(ms: usize) -> Vec<i16> {
    (0..ms * 16)
        .map(|i| ((i as f32 / 16_000.0 * 440.0 * std::f32::consts::TAU).sin() * 3300.0) as i16)
        .collect()
}

/// Streams `packets` at real time.
async fn speak(ws: &mut Ws, packets: &[Bytes]) {
    let mut next = tokio::time::Instant::now();
    for p in packets {
        tokio::time::sleep_until(next).await;
        ws.send(Message::Binary(p.clone())).await.unwrap();
        next += Duration::from_millis(60);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What the device heard of one response.
struct Reply {
    /// When the first audio frame arrived.
    first: Option<Instant>,
    /// Frames that arrived after their playback time.
    underruns: u64,
    frames: u64,
}

/// Reads a response to its `tts stop`.
async fn hear(ws: &mut Ws) -> Reply {
    let mut reply = Reply {
        first: None,
        underruns: 0,
        frames: 0,
    };
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(_) => {
                let now = Instant::now();
                let first = *reply.first.get_or_insert(now);
                let due = first + Duration::from_millis(60) * reply.frames as u32;
                if now > due + Duration::from_millis(5) {
                    reply.underruns += 1;
                }
                reply.frames += 1;
            }
            Message::Text(t) if t.contains("\"stop\"") && t.contains("\"tts\"") => break,
            _ => {}
        }
    }
    reply
}

async fn latency_mode(port: u16, devices: u32, latency: Latency) {
    let turns = env_u64("XZ_TURNS", 5);
    let fixed = latency.asr + latency.llm + latency.tts;
    let speech = packets(&tone(1000));
    let http = reqwest::Client::new();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..devices {
        let (http, speech, samples) = (http.clone(), speech.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let mut ws = open_device(&http, port, i).await;
            // Spread the devices over one turn's length.
            tokio::time::sleep(Duration::from_millis(
                u64::from(i) * 2500 / u64::from(devices.max(1)),
            ))
            .await;
            for _ in 0..turns {
                let start = json!({"type": "listen", "state": "start", "mode": "manual"});
                ws.send(Message::Text(start.to_string().into()))
                    .await
                    .unwrap();
                speak(&mut ws, &speech).await;
                let stop = Instant::now();
                let msg = json!({"type": "listen", "state": "stop"});
                ws.send(Message::Text(msg.to_string().into()))
                    .await
                    .unwrap();
                let reply = hear(&mut ws).await;
                if let Some(first) = reply.first {
                    let overhead = (first - stop).as_secs_f64() - fixed.as_secs_f64();
                    samples.lock().await.push(overhead * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut s = samples.lock().await.clone();
    s.sort_by(f64::total_cmp);
    println!(
        "latency: {devices} devices x {turns} turns, {} samples; end of speech -> first audio frame minus providers ({} ms): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        s.len(),
        fixed.as_millis(),
        percentile(&s, 0.5),
        percentile(&s, 0.9),
        percentile(&s, 0.99),
        s.last().copied().unwrap_or(f64::NAN)
    );
}

async fn capacity_mode(server: &Server, devices: u32) {
    let secs = env_u64("XZ_SECS", 30);
    let mut pcm = vec![0i16; 4800];
    pcm.extend(tone(1500));
    pcm.extend(vec![0i16; 14_400]);
    let speech = packets(&pcm);
    let http = reqwest::Client::new();
    let (turns, frames, underruns, late_replies) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut chans = Vec::new();
    for i in 0..devices {
        chans.push(open_device(&http, server.port, i).await);
    }
    let (cpu0, _) = proc_stats(server.pid);
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, mut ws) in chans.into_iter().enumerate() {
        let speech = speech.clone();
        let (turns, frames, underruns, late) = (
            turns.clone(),
            frames.clone(),
            underruns.clone(),
            late_replies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(
                i as u64 * 3000 / u64::from(devices.max(1)),
            ))
            .await;
            while Instant::now() < end {
                let start = json!({"type": "listen", "state": "start", "mode": "auto"});
                ws.send(Message::Text(start.to_string().into()))
                    .await
                    .unwrap();
                speak(&mut ws, &speech).await;
                let reply = hear(&mut ws).await;
                turns.fetch_add(1, Ordering::Relaxed);
                frames.fetch_add(reply.frames, Ordering::Relaxed);
                underruns.fetch_add(reply.underruns, Ordering::Relaxed);
                if reply.underruns > 0 {
                    late.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_stats(server.pid);
    let cpu_secs = (cpu1 - cpu0) as f64 / 100.0;
    let turns = turns.load(Ordering::Relaxed);
    println!(
        "capacity: {devices} devices talking for {elapsed:.0} s: {turns} turns, {} downlink frames, {} frames late for playback in {} replies; lty CPU {:.2} cores ({:.1} ms per turn), RSS {} MiB",
        frames.load(Ordering::Relaxed),
        underruns.load(Ordering::Relaxed),
        late_replies.load(Ordering::Relaxed),
        cpu_secs / elapsed,
        cpu_secs * 1000.0 / turns.max(1) as f64,
        rss / 1024
    );
}

async fn idle_mode(server: &Server, devices: u32) {
    let http = reqwest::Client::new();
    let mut chans = vec![open_device(&http, server.port, 0).await];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, before) = proc_stats(server.pid);
    for i in 1..devices {
        chans.push(open_device(&http, server.port, i).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = proc_stats(server.pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / f64::from(devices - 1);
    println!(
        "idle: {devices} channels open; lty RSS {before} KiB -> {after} KiB: {:.1} KB per idle channel",
        per / 1000.0
    );
    drop(chans);
}

fn main() {
    let mode = std::env::var("XZ_MODE").unwrap_or_else(|_| "latency".into());
    let default_devices = match mode.as_str() {
        "capacity" => 200,
        "idle" => 1000,
        _ => 100,
    };
    let devices = env_u64("XZ_DEVICES", default_devices) as u32;
    let latency = Latency {
        asr: Duration::from_millis(env_u64("XZ_ASR_MS", 50)),
        llm: Duration::from_millis(env_u64("XZ_LLM_MS", 100)),
        tts: Duration::from_millis(env_u64("XZ_TTS_MS", 80)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let fakes = start_fakes(latency).await;
        let data = tempfile::tempdir().unwrap();
        let server = start_server(data.path(), &fakes, devices);
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("http://127.0.0.1:{}/healthz", server.port))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match mode.as_str() {
            "capacity" => capacity_mode(&server, devices).await,
            "idle" => idle_mode(&server, devices).await,
            _ => latency_mode(server.port, devices, latency).await,
        }
    });
}
