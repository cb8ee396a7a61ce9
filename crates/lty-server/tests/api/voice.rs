//! Voice with AI chat: `/api/ai/voice-chat/` end to end (Tencent speech
//! fake for recognition and synthesis, OpenAI fake for the model), and
//! `"voice": true` on `/api/ai/chat/` and `/api/ai/multi-chat/`, streamed
//! and not, through the TTS cache.

use std::time::Duration;

use lty_server::config::Config;
use serde_json::{Value, json};

use crate::fakes::openai::FakeOpenAi;
use crate::fakes::tencent::FakeTencent;
use crate::helpers::{TestApp, assert_error, spawn_app_with};

/// The bytes the Tencent fake synthesizes as MP3.
const FAKE_MP3: &[u8] = b"\xff\xfb\x90\x00fake-mp3";

struct Voice {
    app: TestApp,
    token: String,
    speech: FakeTencent,
    llm: FakeOpenAi,
}

async fn voice_app(tweak: impl FnOnce(&mut Config)) -> Voice {
    let speech = FakeTencent::start().await;
    let llm = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        speech.configure(c);
        llm.configure(c);
        tweak(c);
    })
    .await;
    let mac = format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        rand::random::<u8>(),
        rand::random::<u8>(),
        rand::random::<u8>()
    );
    app.user_with_device("voice_user", &mac).await;
    let token = app.mac_login(&mac).await;
    Voice {
        app,
        token,
        speech,
        llm,
    }
}

/// One second of a 16 kHz tone as a WAV file.
fn wav_second() -> Vec<u8> {
    let pcm: Vec<u8> = (0..16_000)
        .flat_map(|i: i32| (((i % 40) - 20) as i16 * 500).to_le_bytes())
        .collect();
    lty_core::speech::wav_from_pcm16(&pcm, 16_000, 1).to_vec()
}

impl Voice {
    async fn voice_chat(&self, query: &str, body: Vec<u8>) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(&format!("/api/ai/voice-chat/{query}")))
            .bearer_auth(&self.token)
            .header("content-type", "audio/wav")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn messages(&self, conversation_id: i64) -> Vec<Value> {
        let res = self
            .app
            .client
            .get(
                self.app
                    .url(&format!("/api/ai/conversations/{conversation_id}/")),
            )
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["messages"].as_array().unwrap().clone()
    }

    /// Downloads an audio URL through `/media/`.
    async fn fetch_audio(&self, url: &str) -> Vec<u8> {
        let at = url.find("/media/").expect("a /media/ URL");
        let res = self.app.get(&url[at..]).await;
        assert_eq!(res.status(), 200, "{url}");
        res.bytes().await.unwrap().to_vec()
    }

    fn synthesized(&self) -> Vec<String> {
        self.speech
            .calls()
            .into_iter()
            .filter(|c| c.action == "TextToVoice")
            .map(|c| c.body["Text"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// Reads server-sent events until the stream ends: `(event, data)`.
async fn read_events(mut res: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(res.status(), 200);
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), res.chunk())
        .await
        .expect("stream stalled")
        .unwrap()
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            Some((event?, data?))
        })
        .collect()
}

#[tokio::test]
async fn voice_chat_recognizes_answers_speaks_and_stores_the_conversation() {
    let v = voice_app(|_| {}).await;
    let res = v.voice_chat("", wav_second()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["transcript"], "你好，小朋友");
    assert_eq!(body["reply"], FakeOpenAi::reply());
    assert_eq!(body["moderated"], false);
    assert_eq!(body["audio_format"], "mp3");
    assert!(body.get("audio_error").is_none(), "{body}");
    let audio = v.fetch_audio(body["audio_url"].as_str().unwrap()).await;
    assert_eq!(audio, FAKE_MP3);
    // The model got the transcript as the child's message.
    let sent = v.llm.requests();
    let last = sent.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"], "你好，小朋友");
    // The reply was spoken.
    assert_eq!(v.synthesized(), [FakeOpenAi::reply()]);

    let conversation_id = body["conversation_id"].as_i64().unwrap();
    let stored = v.messages(conversation_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["role"], "user");
    assert_eq!(stored[0]["content"], "你好，小朋友");
    assert_eq!(stored[1]["content"], FakeOpenAi::reply());
    assert_eq!(stored[1]["id"], body["message_id"]);

    // A second turn as a multipart form continues the conversation; the
    // same reply in the same voice comes from the TTS cache.
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", conversation_id.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav_second())
                .file_name("turn.wav")
                .mime_str("audio/wav")
                .unwrap(),
        );
    let res = v
        .app
        .client
        .post(v.app.url("/api/ai/voice-chat/"))
        .bearer_auth(&v.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["conversation_id"], conversation_id);
    assert_eq!(second["audio_url"], body["audio_url"]);
    assert_eq!(v.synthesized().len(), 1, "the repeat was synthesized again");
    assert_eq!(v.messages(conversation_id).await.len(), 4);
    // The history went along with the second turn.
    let second_request = v.llm.requests().last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(second_request, 4, "system, user, assistant, user");
}

#[tokio::test]
async fn voice_chat_takes_the_conversation_from_the_query_and_checks_ownership() {
    let v = voice_app(|_| {}).await;
    let first: Value = v.voice_chat("", wav_second()).await.json().await.unwrap();
    let id = first["conversation_id"].as_i64().unwrap();
    let res = v
        .voice_chat(&format!("?conversation_id={id}"), wav_second())
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["conversation_id"], id);

    let res = v
        .voice_chat(&format!("?conversation_id={}", id + 1000), wav_second())
        .await;
    assert_error(res, 404, "conversation_not_found").await;
    let res = v.voice_chat("?persona_id=999999", wav_second()).await;
    assert_error(res, 404, "persona_not_found").await;
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", "abc")
        .part("file", reqwest::multipart::Part::bytes(wav_second()));
    let res = v
        .app
        .client
        .post(v.app.url("/api/ai/voice-chat/"))
        .bearer_auth(&v.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
}

#[tokio::test]
async fn a_blocked_spoken_message_is_refused_spoken_and_the_model_not_asked() {
    let v = voice_app(|c| {
        c.ai.blocked_input_terms = lty_server::app::chat::TermList(vec!["小朋友".into()]);
    })
    .await;
    let input_blocks = [("side", "input")];
    let blocks_before = v
        .app
        .metric("lty_moderation_blocks_total", &input_blocks)
        .await;
    let res = v.voice_chat("", wav_second()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["reply"], v.app.config.ai.refusal_message);
    assert_eq!(v.llm.calls(), 0);
    // The refusal is what gets spoken.
    assert_eq!(v.synthesized(), [v.app.config.ai.refusal_message.as_str()]);
    assert!(body["audio_url"].is_string());
    let stored = v.messages(body["conversation_id"].as_i64().unwrap()).await;
    assert_eq!(stored[0]["moderated"], true);
    assert_eq!(stored[1]["moderated"], true);
    let blocks = v
        .app
        .metric("lty_moderation_blocks_total", &input_blocks)
        .await;
    assert!(blocks >= blocks_before + 1.0, "{blocks_before} -> {blocks}");
}

#[tokio::test]
async fn silence_is_422_no_speech_and_nothing_is_stored_or_asked() {
    let v = voice_app(|_| {}).await;
    v.speech.set_transcript("  ");
    let res = v.voice_chat("", wav_second()).await;
    assert_error(res, 422, "no_speech").await;
    assert_eq!(v.llm.calls(), 0);
    let res = v
        .app
        .client
        .get(v.app.url("/api/ai/conversations/"))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn voice_chat_refuses_bad_audio_and_needs_every_provider() {
    let v = voice_app(|c| c.audio.asr_max_bytes = 64 * 1024).await;
    let res = v.voice_chat("", b"not audio at all".to_vec()).await;
    assert_error(res, 415, "unsupported_audio_format").await;
    let res = v.voice_chat("", vec![0; 65 * 1024]).await;
    assert_error(res, 413, "payload_too_large").await;
    let res = v.voice_chat("", Vec::new()).await;
    assert_error(res, 400, "validation_error").await;
    let res = v
        .app
        .client
        .post(v.app.url("/api/ai/voice-chat/"))
        .body(wav_second())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;

    // No speech recognizer (local speaks but cannot listen).
    let v = voice_app(|c| c.audio.provider = "local".into()).await;
    let res = v.voice_chat("", wav_second()).await;
    assert_error(res, 503, "provider_not_configured").await;
    // No model.
    let v = voice_app(|c| c.llm.api_key = None).await;
    let res = v.voice_chat("", wav_second()).await;
    assert_error(res, 503, "provider_not_configured").await;
    assert!(v.speech.calls().is_empty(), "ASR ran without a model");
}

#[tokio::test]
async fn voice_on_chat_returns_audio_and_repeats_come_from_the_tts_cache() {
    let v = voice_app(|_| {}).await;
    let plain: Value = v
        .post("/api/ai/chat/", json!({ "message": "讲个故事" }))
        .await
        .json()
        .await
        .unwrap();
    assert!(plain.get("audio_url").is_none(), "{plain}");
    assert!(plain.get("audio_format").is_none(), "{plain}");
    assert!(v.synthesized().is_empty());
    let cache_hits = [("result", "hit")];
    let hits_before = v.app.metric("lty_tts_cache_total", &cache_hits).await;

    let res = v
        .post(
            "/api/ai/chat/",
            json!({ "message": "讲个故事", "voice": true }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let spoken: Value = res.json().await.unwrap();
    assert_eq!(spoken["reply"], FakeOpenAi::reply());
    assert_eq!(spoken["audio_format"], "mp3");
    assert!(spoken["duration_ms"].is_u64());
    let url = spoken["audio_url"].as_str().unwrap().to_owned();
    assert_eq!(v.fetch_audio(&url).await, FAKE_MP3);

    let again: Value = v
        .post(
            "/api/ai/multi-chat/",
            json!({ "message": "再讲一个", "voice": true }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["audio_url"], url.as_str());
    assert_eq!(v.synthesized(), [FakeOpenAi::reply()]);
    let hits = v.app.metric("lty_tts_cache_total", &cache_hits).await;
    assert!(hits >= hits_before + 1.0, "{hits_before} -> {hits}");
}

#[tokio::test]
async fn voice_on_streamed_chats_puts_the_audio_in_the_done_event() {
    let v = voice_app(|_| {}).await;
    for path in ["/api/ai/chat/", "/api/ai/multi-chat/"] {
        let res = v
            .post(
                path,
                json!({ "message": "你好", "stream": true, "voice": true }),
            )
            .await;
        let events = read_events(res).await;
        let (name, done) = events.last().unwrap();
        assert_eq!(name, "done", "{events:?}");
        assert_eq!(done["audio_format"], "mp3", "{done}");
        assert!(done["duration_ms"].is_u64());
        let audio = v.fetch_audio(done["audio_url"].as_str().unwrap()).await;
        assert_eq!(audio, FAKE_MP3);
    }
    // Without voice the done event has no audio.
    let res = v
        .post(
            "/api/ai/chat/",
            json!({ "message": "你好", "stream": true }),
        )
        .await;
    let events = read_events(res).await;
    assert!(events.last().unwrap().1.get("audio_url").is_none());
}

#[tokio::test]
async fn a_failed_synthesis_keeps_the_reply_and_says_why() {
    let v = voice_app(|_| {}).await;
    v.speech.script_error("FailedOperation.ServiceIsolate");
    let res = v
        .post(
            "/api/ai/multi-chat/",
            json!({ "message": "你好", "voice": true }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["reply"], FakeOpenAi::reply());
    assert!(body.get("audio_url").is_none(), "{body}");
    assert_eq!(body["audio_error"], "upstream_error");
    let stored = v.messages(body["conversation_id"].as_i64().unwrap()).await;
    assert_eq!(stored[1]["content"], FakeOpenAi::reply());
}

#[tokio::test]
async fn voice_without_any_tts_is_503_before_the_model_is_asked() {
    let v = voice_app(|c| {
        c.audio.provider = "tencent".into();
        c.audio.tencent.api_key = None;
        c.audio.local_fallback = false;
    })
    .await;
    let res = v
        .post("/api/ai/chat/", json!({ "message": "你好", "voice": true }))
        .await;
    assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(v.llm.calls(), 0);
    let res = v.post("/api/ai/chat/", json!({ "message": "你好" })).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn replies_are_spoken_in_the_personas_voice() {
    use sea_orm::ConnectionTrait;
    let v = voice_app(|_| {}).await;
    v.app
        .state
        .db
        .conn()
        .execute_unprepared("UPDATE ai_personas SET voice_id = '101002' WHERE is_default = TRUE")
        .await
        .unwrap();
    // Written behind the store's back: drop its short-lived copies.
    v.app.state.db.forget_catalog();
    let body: Value = v.voice_chat("", wav_second()).await.json().await.unwrap();
    assert!(body["audio_url"].is_string(), "{body}");
    let res = v
        .post("/api/ai/chat/", json!({ "message": "你好", "voice": true }))
        .await;
    assert_eq!(res.status(), 200);
    let voices: Vec<Value> = v
        .speech
        .calls()
        .into_iter()
        .filter(|c| c.action == "TextToVoice")
        .map(|c| c.body["VoiceType"].clone())
        .collect();
    // The same reply in the same voice was synthesized once.
    assert_eq!(voices, [json!(101002)]);
}
