//! The xiaozhi voice channel end to end with the simulated device, the
//! huoshan speech fake (streaming ASR, TTS) and the OpenAI-compatible fake:
//! the hello, voice turns in every listening mode and framing version,
//! abort, MCP, pushes, liveness, reconnects and bad input.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::huoshan::FakeHuoshan;
use crate::fakes::openai::{FakeOpenAi, REPLY_PARTS, Script};
use crate::helpers::TestApp;
use crate::xiaozhi::xiaozhi_app;
use crate::xiaozhi_sim::{Channel, Event, OtaAnswer, SimDevice, utterance};

struct Rig {
    app: TestApp,
    speech: FakeHuoshan,
    llm: FakeOpenAi,
    device: SimDevice,
    ota: OtaAnswer,
    user_id: i64,
    /// The family's app token.
    token: String,
}

/// A device bound to a family that made its OTA check.
async fn rig(tweak: impl FnOnce(&mut lty_server::config::Config)) -> Rig {
    let speech = FakeHuoshan::start().await;
    let llm = FakeOpenAi::start().await;
    let app = xiaozhi_app(|c| {
        speech.configure(c);
        llm.configure(c);
        tweak(c);
    })
    .await;
    let device = SimDevice::new();
    let user_id = app.user_with_device("xiaozhi_family", &device.mac).await;
    let token = app
        .state
        .tokens
        .issue(lty_core::token::TokenKind::User, user_id)
        .await
        .unwrap();
    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    assert!(ota.activation.is_none());
    Rig {
        app,
        speech,
        llm,
        device,
        ota,
        user_id,
        token,
    }
}

impl Rig {
    async fn open(&self, version: u8) -> Channel {
        let mut ch = self
            .device
            .connect(&self.ota.websocket_url, &self.ota.token, version)
            .await
            .expect("the channel opens");
        ch.hello(false).await;
        ch
    }
}

/// One spoken turn in auto mode: listen start, the utterance, the reply.
async fn auto_turn(ch: &mut Channel) -> crate::xiaozhi_sim::Heard {
    ch.send_json(json!({"type": "listen", "state": "start", "mode": "auto"}))
        .await;
    ch.send_speech(&utterance()).await;
    ch.response().await
}

#[tokio::test]
async fn the_hello_is_answered_complete_and_the_device_tools_are_listed_page_by_page() {
    let r = rig(|_| {}).await;
    let mut ch = r
        .device
        .connect(&r.ota.websocket_url, &r.ota.token, 1)
        .await
        .unwrap();
    let hello = ch.hello(true).await;
    assert_eq!(hello["audio_params"]["sample_rate"], 24000);
    assert_eq!(hello["audio_params"]["frame_duration"], 60);
    assert_eq!(hello["audio_params"]["format"], "opus");
    let calls = ch.wait_for_tools().await;
    assert_eq!(calls[0].method, "initialize");
    let ids: Vec<i64> = calls.iter().map(|c| c.id).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "ids are unique per connection");
    // One tool per page: the cursor is the previous page's nextCursor.
    let cursors: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == "tools/list")
        .map(|c| c.params["cursor"].as_str().unwrap())
        .collect();
    assert_eq!(
        cursors,
        ["", "self.audio_speaker.set_volume", "self.reboot"]
    );
    // A second hello on the same channel gets the same complete answer.
    let again = ch.hello(false).await;
    assert_eq!(again["session_id"], hello["session_id"]);
}

#[tokio::test]
async fn bad_credentials_are_refused_before_the_upgrade() {
    let r = rig(|_| {}).await;
    let url = &r.ota.websocket_url;
    assert_eq!(r.device.connect(url, "wrong", 1).await.err(), Some(401));
    assert_eq!(r.device.connect(url, "", 1).await.err(), Some(401));
    let stranger = SimDevice::new();
    assert_eq!(
        stranger.connect(url, &r.ota.token, 1).await.err(),
        Some(401)
    );
    assert_eq!(
        r.device.connect(url, &r.ota.token, 7).await.err(),
        Some(400)
    );
    // A token with a space is sent as is: "Bearer <token>" works too.
    let bearer = format!("Bearer {}", r.ota.token);
    assert!(r.device.connect(url, &bearer, 1).await.is_ok());
    // The previous token stays valid until the next rotation.
    let newer = r.device.ota(&r.app, "/xiaozhi/ota/").await;
    assert!(r.device.connect(url, &r.ota.token, 1).await.is_ok());
    assert!(r.device.connect(url, &newer.token, 1).await.is_ok());
}

#[tokio::test]
async fn an_auto_turn_is_heard_in_every_framing_version() {
    for version in [1u8, 2, 3] {
        let r = rig(|_| {}).await;
        r.speech.set_transcript("讲个故事");
        let mut ch = r.open(version).await;
        let heard = auto_turn(&mut ch).await;
        assert_eq!(heard.stt, ["讲个故事"], "v{version}");
        assert!(!heard.emotions.is_empty(), "v{version}: an llm emotion");
        assert!(!heard.sentences.is_empty(), "v{version}");
        assert_eq!(
            heard.sentences.concat(),
            FakeOpenAi::reply().replace(' ', ""),
            "v{version}"
        );
        assert!(
            heard.packets.len() > 3,
            "v{version}: {} packets",
            heard.packets.len()
        );
        assert!(heard.stopped);
        // The first message of the response is stt, then tts start.
        assert_eq!(heard.messages[0]["type"], "stt");
        assert_eq!(heard.messages[1]["state"], "start");
        // The model saw what the child said, the turn was stored.
        let sent = r.llm.requests().last().unwrap()["messages"].clone();
        assert_eq!(
            sent.as_array().unwrap().last().unwrap()["content"],
            "讲个故事"
        );
        let list: Value = r
            .app
            .client
            .get(r.app.url("/api/ai/conversations/"))
            .bearer_auth(&r.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["count"], 1, "v{version}");
    }
}

#[tokio::test]
async fn manual_mode_ends_the_utterance_on_listen_stop() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("你好");
    let mut ch = r.open(1).await;
    ch.send_json(json!({"type": "listen", "state": "start", "mode": "manual"}))
        .await;
    // Speech with no trailing silence: only the button ends it.
    let pcm: Vec<i16> = utterance()[..28_800].to_vec();
    ch.send_speech(&pcm).await;
    ch.send_json(json!({"type": "listen", "state": "stop"}))
        .await;
    let heard = ch.response().await;
    assert_eq!(heard.stt, ["你好"]);
    assert!(!heard.packets.is_empty());
}

/// The series a voice turn moves, read from `/metrics`.
async fn voice_series(app: &TestApp) -> [f64; 6] {
    [
        app.metric("lty_xiaozhi_turns_total", &[("outcome", "answered")])
            .await,
        app.metric("lty_xiaozhi_first_audio_seconds_count", &[])
            .await,
        app.metric("lty_xiaozhi_asr_seconds_count", &[("provider", "huoshan")])
            .await,
        app.metric(
            "lty_chat_model_first_token_seconds_count",
            &[("provider", "kimi")],
        )
        .await,
        app.metric("lty_chat_model_seconds_count", &[("provider", "kimi")])
            .await,
        app.metric("lty_xiaozhi_tts_seconds_count", &[("provider", "huoshan")])
            .await,
    ]
}

#[tokio::test]
async fn a_voice_turn_is_counted_and_timed_in_metrics() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("你好");
    let mut ch = r.open(1).await;
    let before = voice_series(&r.app).await;
    let heard = auto_turn(&mut ch).await;
    assert!(!heard.packets.is_empty());
    // The turn's counter moves after `tts stop` is sent: poll for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let after = loop {
        let after = voice_series(&r.app).await;
        if after[0] > before[0] || tokio::time::Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names = [
        "turns answered",
        "first audio",
        "ASR time",
        "model first token",
        "model time",
        "TTS time",
    ];
    for (i, name) in names.iter().enumerate() {
        assert!(
            after[i] > before[i],
            "{name}: {} -> {}",
            before[i],
            after[i]
        );
    }

    // An abort is counted too.
    let aborts = r
        .app
        .metric("lty_xiaozhi_aborts_total", &[("reason", "button")])
        .await;
    r.llm.script(Script::HoldUntilDisconnect);
    ch.send_json(json!({"type": "listen", "state": "start", "mode": "auto"}))
        .await;
    ch.send_speech(&utterance()).await;
    loop {
        match ch.next().await {
            Event::Json(v) if v["type"] == "tts" && v["state"] == "start" => break,
            Event::Closed(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    ch.send_json(json!({"type": "abort"})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while r
        .app
        .metric("lty_xiaozhi_aborts_total", &[("reason", "button")])
        .await
        <= aborts
    {
        assert!(tokio::time::Instant::now() < deadline, "abort not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_conversation_continues_on_the_next_channel() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("我叫小明");
    let mut ch = r.open(1).await;
    auto_turn(&mut ch).await;
    ch.drop_tcp();
    r.speech.set_transcript("我叫什么");
    let mut ch = r.open(1).await;
    auto_turn(&mut ch).await;
    let sent = r.llm.requests().last().unwrap()["messages"].clone();
    let contents: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(contents.contains(&"我叫小明"), "{contents:?}");
    assert_eq!(*contents.last().unwrap(), "我叫什么");
}

#[tokio::test]
async fn an_abort_stops_the_reply_and_no_stale_audio_follows() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("讲个很长的故事");
    r.llm.script(Script::HoldUntilDisconnect);
    let mut ch = r.open(1).await;
    ch.send_json(json!({"type": "listen", "state": "start", "mode": "auto"}))
        .await;
    ch.send_speech(&utterance()).await;
    // Wait for the reply to start playing, then press the button.
    loop {
        match ch.next().await {
            Event::Audio(_) => break,
            Event::Json(_) => {}
            Event::Closed(c) => panic!("closed: {c:?}"),
        }
    }
    ch.send_json(json!({"type": "abort"})).await;
    // `tts stop` arrives; the simulator fails the test on any audio after it.
    loop {
        match ch.next().await {
            Event::Json(v) if v["type"] == "tts" && v["state"] == "stop" => break,
            Event::Json(v) => assert_ne!(v["state"], "sentence_start", "{v}"),
            Event::Audio(_) => {}
            Event::Closed(c) => panic!("closed: {c:?}"),
        }
    }
    // The model's request was cancelled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !r.llm.saw_disconnect() {
        assert!(tokio::time::Instant::now() < deadline, "LLM not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next turn is whole.
    r.speech.set_transcript("你好");
    let heard = auto_turn(&mut ch).await;
    assert_eq!(heard.stt, ["你好"]);
    assert_eq!(
        heard.sentences.concat(),
        FakeOpenAi::reply().replace(' ', "")
    );
}

#[tokio::test]
async fn a_push_to_the_family_is_spoken_by_the_device() {
    let r = rig(|_| {}).await;
    let mut ch = r.open(1).await;
    let res = r
        .app
        .client
        .post(r.app.url("/api/device/send/"))
        .bearer_auth(&r.token)
        .json(&json!({"type": "reminder", "text": "该睡觉啦"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let heard = ch.response().await;
    assert_eq!(heard.sentences, ["该睡觉啦"]);
    assert!(!heard.packets.is_empty());
    // Anything without words reaches it as a custom message.
    r.app
        .client
        .post(r.app.url("/api/device/send/"))
        .bearer_auth(&r.token)
        .json(&json!({"type": "light", "color": "blue"}))
        .send()
        .await
        .unwrap();
    match ch.next().await {
        Event::Json(v) => {
            assert_eq!(v["type"], "custom");
            assert_eq!(v["payload"]["color"], "blue");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_channel_without_voice_is_closed_by_the_server() {
    let r = rig(|c| c.xiaozhi.idle_close_secs = 1).await;
    let mut ch = r.open(1).await;
    match tokio::time::timeout(Duration::from_secs(10), ch.next()).await {
        Ok(Event::Closed(code)) => assert_eq!(code, Some(4000)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_input_never_closes_the_channel() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("你好");
    let mut ch = r.open(2).await;
    // Audio before listening, garbage audio, a wrong v2 size, non-JSON
    // text (a malformed MCP error), an unknown type.
    ch.send_packet(&[1, 2, 3]).await;
    ch.send_json(json!({"type": "listen", "state": "start", "mode": "auto"}))
        .await;
    ch.send_packet(&[0xff; 40]).await;
    ch.send_packet(&[]).await;
    ch.send_json(json!({"type": "no-such-type"})).await;
    ch.send_json(json!({"type": "mcp", "payload": "{\"id\":1}"}))
        .await;
    // The channel still works.
    ch.send_speech(&utterance()).await;
    let heard = ch.response().await;
    assert_eq!(heard.stt, ["你好"]);
}

#[tokio::test]
async fn an_unbound_device_gets_a_proper_hello_and_is_asked_to_activate() {
    let speech = FakeHuoshan::start().await;
    let llm = FakeOpenAi::start().await;
    let app = xiaozhi_app(|c| {
        speech.configure(c);
        llm.configure(c);
    })
    .await;
    speech.set_transcript("你好");
    let device = SimDevice::new();
    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    let code = ota.activation.clone().unwrap().code;
    let mut ch = device
        .connect(&ota.websocket_url, &ota.token, 1)
        .await
        .unwrap();
    ch.hello(false).await;
    let heard = auto_turn(&mut ch).await;
    let spoken = heard.sentences.concat().replace(' ', "");
    assert!(spoken.contains(&code), "{spoken}");
    assert!(!heard.packets.is_empty());
    assert_eq!(llm.calls(), 0, "an unbound device does not reach the model");
}

#[tokio::test]
async fn unbinding_closes_the_channel_reboots_the_device_and_revokes_its_token() {
    let r = rig(|_| {}).await;
    let mut ch = r.open(1).await;
    let res = r
        .app
        .client
        .post(r.app.url("/api/device/unbind/"))
        .bearer_auth(&r.token)
        .json(&json!({"mac_address": r.device.mac}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    match ch.next().await {
        Event::Json(v) => assert_eq!(v, json!({"type": "system", "command": "reboot"})),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.device
            .connect(&r.ota.websocket_url, &r.ota.token, 1)
            .await
            .err(),
        Some(401)
    );
    // Its next boot starts activation again.
    let ota = r.device.ota(&r.app, "/xiaozhi/ota/").await;
    assert!(ota.activation.is_some());
    let _ = r.user_id;
    let _ = REPLY_PARTS;
}

#[tokio::test]
async fn the_model_sets_the_volume_through_the_devices_mcp_tool() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("声音大一点");
    let mut ch = r
        .device
        .connect(&r.ota.websocket_url, &r.ota.token, 1)
        .await
        .unwrap();
    ch.hello(true).await;
    ch.wait_for_tools().await;
    // The model answers with a tool call (the volume as a string, as models
    // write it), then with words once it has the result.
    r.llm.script(Script::ToolCall {
        name: "self_audio_speaker_set_volume",
        arguments: r#"{"volume":"40"}"#,
    });
    let heard = auto_turn(&mut ch).await;
    assert_eq!(heard.stt, ["声音大一点"]);
    let call = ch
        .mcp
        .iter()
        .find(|c| c.method == "tools/call")
        .expect("a tools/call reached the device");
    assert_eq!(call.params["name"], "self.audio_speaker.set_volume");
    assert_eq!(call.params["arguments"], json!({"volume": 40}));
    assert_eq!(ch.volume, 40);
    // The offered tools: never the user-only one; the result went back.
    let requests = r.llm.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .expect("tools were offered")
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"self_audio_speaker_set_volume"),
        "{offered:?}"
    );
    assert!(!offered.iter().any(|n| n.contains("reboot")), "{offered:?}");
    let follow_up = requests.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone();
    let result = follow_up
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("a tool result");
    assert_eq!(result["content"], "true");
    // Only words were spoken, never the call.
    assert_eq!(
        heard.sentences.concat(),
        FakeOpenAi::reply().replace(' ', "")
    );
    assert!(!heard.sentences.concat().contains("volume"));
}

/// Seconds of PCM the ASR fake received over every session.
fn recognized_seconds(speech: &FakeHuoshan) -> f64 {
    let bytes: usize = speech.sessions().iter().map(|s| s.audio.len()).sum();
    bytes as f64 / 2.0 / 16_000.0
}

#[tokio::test]
async fn the_wake_word_audio_before_detect_never_reaches_recognition() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("你好");
    let mut ch = r.open(1).await;
    // About 2 s of wake-word audio, then detect, then the utterance.
    let wake: Vec<i16> = (0..32_000)
        .map(|i| ((i as f32 / 16_000.0 * 300.0 * std::f32::consts::TAU).sin() * 3000.0) as i16)
        .collect();
    ch.send_speech(&wake).await;
    ch.send_json(json!({"type": "listen", "state": "detect", "text": "你好小智"}))
        .await;
    let heard = auto_turn(&mut ch).await;
    assert_eq!(heard.stt, ["你好"]);
    // The utterance is 2.7 s of which 1.5 s voiced: recognition got the
    // voice (with a little pre-roll and the trailing silence up to the
    // VAD's end), never the 2 s of wake word.
    let got = recognized_seconds(&r.speech);
    assert!(got > 1.4 && got < 2.7, "{got} s reached ASR");
}

#[tokio::test]
async fn voice_while_lty_speaks_in_realtime_mode_interrupts_it() {
    let r = rig(|_| {}).await;
    r.speech.set_transcript("讲个很长的故事");
    r.llm.script(Script::HoldUntilDisconnect);
    let mut ch = r.open(1).await;
    ch.send_json(json!({"type": "listen", "state": "start", "mode": "realtime"}))
        .await;
    ch.send_speech(&utterance()).await;
    loop {
        match ch.next().await {
            Event::Audio(_) => break,
            Event::Json(_) => {}
            Event::Closed(c) => panic!("closed: {c:?}"),
        }
    }
    // The child speaks again, with no new `listen start` (realtime mode):
    // the reply stops and the new speech is the next turn.
    r.speech.set_transcript("停一下");
    ch.send_speech(&utterance()).await;
    let mut stopped = false;
    loop {
        match ch.next().await {
            Event::Json(v) if v["type"] == "tts" && v["state"] == "stop" && !stopped => {
                stopped = true;
            }
            Event::Json(v) if v["type"] == "stt" => {
                assert!(stopped, "the old reply was not stopped first");
                assert_eq!(v["text"], "停一下");
                break;
            }
            Event::Json(_) | Event::Audio(_) => {}
            Event::Closed(c) => panic!("closed: {c:?}"),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !r.llm.saw_disconnect() {
        assert!(tokio::time::Instant::now() < deadline, "LLM not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_speech_recognition_the_device_says_it_cannot_listen_yet() {
    // Embedded mode's defaults: no speech provider credentials, so no ASR;
    // TTS falls back to espeak-ng.
    let llm = FakeOpenAi::start().await;
    let app = xiaozhi_app(|c| llm.configure(c)).await;
    let device = SimDevice::new();
    app.user_with_device("no_asr_family", &device.mac).await;
    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    let mut ch = device
        .connect(&ota.websocket_url, &ota.token, 1)
        .await
        .unwrap();
    ch.hello(false).await;
    let heard = auto_turn(&mut ch).await;
    assert_eq!(heard.sentences.concat(), app.config.xiaozhi.no_asr_message);
    assert!(!heard.packets.is_empty(), "the message is spoken");
    assert_eq!(llm.calls(), 0);
}
