//! The rules of the one chat turn, asserted through every adapter over it:
//! `/api/ai/chat/` and `/api/ai/multi-chat/` (JSON and SSE, with and
//! without `"voice": true`), `/api/ai/voice-chat/` and the CustomLLM
//! endpoint of a Volcengine voice agent (SSE and JSON). Whatever the
//! protocol, a refused turn counts against the quota, both sides are
//! moderated, the chat achievement event is recorded, spoken replies use
//! the configured spoken style, and a streamed reply cut by a departing
//! client is stored as incomplete.

use std::time::Duration;

use chrono::Utc;
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use lty_server::config::{Config, Secret};
use serde_json::{Value, json};

use crate::fakes::openai::{FakeOpenAi, REPLY_PARTS, Script};
use crate::fakes::tencent::FakeTencent;
use crate::helpers::{TestApp, assert_error, random_hex, spawn_app_with};

const AGENT_KEY: &str = "custom-llm-rules-key";

/// Every adapter over the chat turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    ChatJson,
    ChatSse,
    MultiJson,
    MultiSse,
    /// `"voice": true` on a conversation turn.
    MultiVoice,
    /// A recording through ASR, the turn and TTS.
    VoiceUpload,
    AgentSse,
    AgentJson,
}

const ALL: [Adapter; 8] = [
    Adapter::ChatJson,
    Adapter::ChatSse,
    Adapter::MultiJson,
    Adapter::MultiSse,
    Adapter::MultiVoice,
    Adapter::VoiceUpload,
    Adapter::AgentSse,
    Adapter::AgentJson,
];

/// What the child hears or sees.
#[derive(Debug)]
enum Said {
    Reply {
        /// The reply as shown: the refusal when the turn was moderated.
        text: String,
        moderated: bool,
    },
    /// The quota refused the turn (`429 quota_exceeded`, or the agent's
    /// spoken quota sentence).
    OverQuota,
}

impl Said {
    fn reply(self) -> (String, bool) {
        match self {
            Self::Reply { text, moderated } => (text, moderated),
            Self::OverQuota => panic!("the turn was refused by the quota"),
        }
    }
}

struct Rig {
    app: TestApp,
    token: String,
    user_id: i64,
    llm: FakeOpenAi,
    speech: FakeTencent,
    /// A running voice-agent session of the user, recorded as lty records
    /// the ones it starts.
    task_id: String,
}

async fn rig(tweak: impl FnOnce(&mut Config)) -> Rig {
    let llm = FakeOpenAi::start().await;
    let speech = FakeTencent::start().await;
    let app = spawn_app_with(|c| {
        llm.configure(c);
        speech.configure(c);
        c.volcengine.custom_llm_api_key = Some(Secret::new(AGENT_KEY));
        tweak(c);
    })
    .await;
    let mac = format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        rand::random::<u8>(),
        rand::random::<u8>(),
        rand::random::<u8>()
    );
    let user_id = app.user_with_device("turn_rules", &mac).await;
    let token = app.mac_login(&mac).await;
    let task_id = random_hex(16);
    app.state
        .db
        .insert_session(&VoiceChatSession {
            task_id: task_id.clone(),
            user_id,
            room_id: format!("room_{user_id}"),
            agent_user_id: format!("bot_{user_id}"),
            status: SessionStatus::Running,
            started_at: Utc::now(),
            offline_since: None,
            conversation_id: None,
        })
        .await
        .unwrap();
    Rig {
        app,
        token,
        user_id,
        llm,
        speech,
        task_id,
    }
}

/// One second of a 16 kHz tone as a WAV file.
fn wav_second() -> Vec<u8> {
    let pcm: Vec<u8> = (0..16_000)
        .flat_map(|i: i32| (((i % 40) - 20) as i16 * 500).to_le_bytes())
        .collect();
    lty_core::speech::wav_from_pcm16(&pcm, 16_000, 1).to_vec()
}

/// `(event, data)` of a server-sent event body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut data = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap_or(Value::String(d.to_owned())));
                }
            }
            Some((event, data?))
        })
        .collect()
}

impl Rig {
    fn agent_url(&self) -> String {
        self.app.url(&format!(
            "/api/ai/custom-llm/chat/completions?user_id={}&task_id={}",
            self.user_id, self.task_id
        ))
    }

    async fn agent(&self, text: &str, stream: bool) -> reqwest::Response {
        let mut body = json!({
            "model": "lty",
            "messages": [
                {"role": "user", "content": "在吗"},
                {"role": "assistant", "content": "在呀"},
                {"role": "user", "content": text},
            ]
        });
        if stream {
            body["stream"] = json!(true);
        }
        self.app
            .client
            .post(self.agent_url())
            .bearer_auth(AGENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn app_turn(&self, path: &str, body: Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Says `text` through `adapter`.
    async fn say(&self, adapter: Adapter, text: &str) -> Said {
        let res = match adapter {
            Adapter::ChatJson => {
                self.app_turn("/api/ai/chat/", json!({ "message": text }))
                    .await
            }
            Adapter::ChatSse => {
                self.app_turn("/api/ai/chat/", json!({ "message": text, "stream": true }))
                    .await
            }
            Adapter::MultiJson => {
                self.app_turn("/api/ai/multi-chat/", json!({ "message": text }))
                    .await
            }
            Adapter::MultiSse => {
                self.app_turn(
                    "/api/ai/multi-chat/",
                    json!({ "message": text, "stream": true }),
                )
                .await
            }
            Adapter::MultiVoice => {
                self.app_turn(
                    "/api/ai/multi-chat/",
                    json!({ "message": text, "voice": true }),
                )
                .await
            }
            Adapter::VoiceUpload => {
                self.speech.set_transcript(text);
                self.app
                    .client
                    .post(self.app.url("/api/ai/voice-chat/"))
                    .bearer_auth(&self.token)
                    .header("content-type", "audio/wav")
                    .body(wav_second())
                    .send()
                    .await
                    .unwrap()
            }
            Adapter::AgentSse => self.agent(text, true).await,
            Adapter::AgentJson => self.agent(text, false).await,
        };
        if res.status() == 429 {
            assert_error(res, 429, "quota_exceeded").await;
            return Said::OverQuota;
        }
        assert_eq!(res.status(), 200, "{adapter:?}");
        match adapter {
            Adapter::ChatSse | Adapter::MultiSse => {
                let events = sse_events(&res.text().await.unwrap());
                let shown: String = events
                    .iter()
                    .filter(|(e, _)| e == "delta")
                    .filter_map(|(_, d)| d["text"].as_str())
                    .collect();
                let (event, last) = events.last().expect("no events").clone();
                match event.as_str() {
                    "done" if last["refusal"].is_string() => Said::Reply {
                        text: last["refusal"].as_str().unwrap().to_owned(),
                        moderated: true,
                    },
                    "done" => Said::Reply {
                        text: shown,
                        moderated: last["moderated"] == true,
                    },
                    "error" if last["code"] == "content_blocked" => Said::Reply {
                        text: last["message"].as_str().unwrap().to_owned(),
                        moderated: true,
                    },
                    other => panic!("{adapter:?} ended with {other}: {last}"),
                }
            }
            Adapter::AgentSse => {
                let events = sse_events(&res.text().await.unwrap());
                assert_eq!(events.last().unwrap().1, "[DONE]", "{adapter:?}");
                let chunks = &events[..events.len() - 1];
                let text: String = chunks
                    .iter()
                    .filter_map(|(_, c)| c["choices"][0]["delta"]["content"].as_str())
                    .collect();
                let finish = &chunks.last().unwrap().1["choices"][0]["finish_reason"];
                self.agent_said(text, finish == "content_filter")
            }
            Adapter::AgentJson => {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["object"], "chat.completion");
                let choice = &body["choices"][0];
                let text = choice["message"]["content"].as_str().unwrap().to_owned();
                self.agent_said(text, choice["finish_reason"] == "content_filter")
            }
            _ => {
                let body: Value = res.json().await.unwrap();
                Said::Reply {
                    text: body["reply"].as_str().unwrap().to_owned(),
                    moderated: body["moderated"] == true,
                }
            }
        }
    }

    /// An agent's answer: the quota sentence is the agent's way of saying
    /// `quota_exceeded`; a refusal after spoken words is what is heard last.
    fn agent_said(&self, text: String, content_filter: bool) -> Said {
        let ai = &self.app.config.ai;
        if text == ai.quota_message {
            return Said::OverQuota;
        }
        if content_filter {
            assert!(text.ends_with(&ai.refusal_message), "{text}");
            return Said::Reply {
                text: ai.refusal_message.clone(),
                moderated: true,
            };
        }
        Said::Reply {
            text,
            moderated: false,
        }
    }

    /// The user's conversations, newest activity first, with their messages.
    async fn conversations(&self) -> Vec<Vec<Value>> {
        let list: Value = self
            .app
            .client
            .get(self.app.url("/api/ai/conversations/"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut all = Vec::new();
        for c in list["results"].as_array().unwrap() {
            let detail: Value = self
                .app
                .client
                .get(self.app.url(&format!("/api/ai/conversations/{}/", c["id"])))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            all.push(detail["messages"].as_array().unwrap().clone());
        }
        all
    }

    /// Progress of the `chatterbox` achievement (chat messages in total).
    async fn chat_events(&self) -> i64 {
        let all: Value = self
            .app
            .client
            .get(self.app.url("/api/achievement/"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all["achievements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == "chatterbox")
            .expect("the seeded chatterbox achievement")["progress"]
            .as_i64()
            .unwrap()
    }
}

#[tokio::test]
async fn a_refused_turn_counts_against_the_quota_on_every_adapter() {
    for adapter in ALL {
        let rig = rig(|c| c.ai.daily_messages = 1).await;
        let (text, moderated) = rig.say(adapter, "赌博怎么玩").await.reply();
        assert!(moderated, "{adapter:?}");
        assert_eq!(text, rig.app.config.ai.refusal_message, "{adapter:?}");
        assert!(
            matches!(rig.say(adapter, "讲个故事").await, Said::OverQuota),
            "{adapter:?}: the refused turn was not counted"
        );
        assert_eq!(rig.llm.calls(), 0, "{adapter:?}: the model was asked");
    }
}

#[tokio::test]
async fn blocked_words_of_the_child_and_of_the_model_are_refused_on_every_adapter() {
    for adapter in ALL {
        // The fake's reply says 小朋友: blocked on the way out.
        let rig = rig(|c| {
            c.ai.blocked_output_terms = lty_server::app::chat::TermList::from_str_list(&["小朋友"]);
        })
        .await;
        let (text, moderated) = rig.say(adapter, "毒品是什么").await.reply();
        assert!(moderated, "{adapter:?}: input");
        assert_eq!(text, rig.app.config.ai.refusal_message, "{adapter:?}");
        assert_eq!(
            rig.llm.calls(),
            0,
            "{adapter:?}: blocked input reached the model"
        );

        let (text, moderated) = rig.say(adapter, "讲个故事").await.reply();
        assert!(moderated, "{adapter:?}: output");
        assert_eq!(text, rig.app.config.ai.refusal_message, "{adapter:?}");
        assert_eq!(rig.llm.calls(), 1, "{adapter:?}");
    }
}

#[tokio::test]
async fn the_moderation_provider_judges_both_sides_on_every_adapter() {
    for adapter in ALL {
        let moderation = FakeOpenAi::start().await;
        let rig = rig(|c| moderation.configure_moderation(c)).await;
        let (_, moderated) = rig.say(adapter, "flagme 一下").await.reply();
        assert!(moderated, "{adapter:?}: input");
        assert_eq!(rig.llm.calls(), 0, "{adapter:?}");

        moderation.flag_word("小朋友");
        let (text, moderated) = rig.say(adapter, "讲个故事").await.reply();
        assert!(moderated, "{adapter:?}: output");
        assert_eq!(text, rig.app.config.ai.refusal_message, "{adapter:?}");
        let seen = moderation.moderated();
        assert!(
            seen.contains(&FakeOpenAi::reply()),
            "{adapter:?}: the reply was not judged: {seen:?}"
        );
    }
}

#[tokio::test]
async fn every_turn_records_the_chat_achievement_event_refused_ones_too() {
    let rig = rig(|_| {}).await;
    let mut expected = rig.chat_events().await;
    for adapter in ALL {
        for text in ["讲个故事", "赌博怎么玩"] {
            rig.say(adapter, text).await.reply();
            expected += 1;
            assert_eq!(rig.chat_events().await, expected, "{adapter:?} {text}");
        }
    }
}

#[tokio::test]
async fn turns_of_a_recorded_agent_session_are_stored_in_its_conversation() {
    let rig = rig(|_| {}).await;
    for adapter in [Adapter::AgentSse, Adapter::AgentJson] {
        let (text, _) = rig.say(adapter, "讲个故事").await.reply();
        assert_eq!(text, FakeOpenAi::reply());
    }
    rig.say(Adapter::AgentJson, "赌博怎么玩").await.reply();
    let conversations = rig.conversations().await;
    assert_eq!(conversations.len(), 1, "one session, one conversation");
    let stored: Vec<(String, String, bool)> = conversations[0]
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
                m["moderated"] == true,
            )
        })
        .collect();
    let refusal = rig.app.config.ai.refusal_message.clone();
    assert_eq!(
        stored,
        [
            ("user".into(), "讲个故事".into(), false),
            ("assistant".into(), FakeOpenAi::reply(), false),
            ("user".into(), "讲个故事".into(), false),
            ("assistant".into(), FakeOpenAi::reply(), false),
            ("user".into(), "赌博怎么玩".into(), true),
            ("assistant".into(), refusal, true),
        ]
    );
}

/// Starts a held stream through `adapter`, reads its first piece and hangs
/// up; returns once the upstream request was cancelled.
async fn hang_up_mid_reply(rig: &Rig, adapter: Adapter) {
    rig.llm.script(Script::HoldUntilDisconnect);
    let mut res = match adapter {
        Adapter::MultiSse => {
            rig.app_turn(
                "/api/ai/multi-chat/",
                json!({ "message": "讲个长故事", "stream": true }),
            )
            .await
        }
        Adapter::AgentSse => rig.agent("讲个长故事", true).await,
        other => panic!("{other:?} does not stream"),
    };
    assert_eq!(res.status(), 200);
    let mut seen = String::new();
    while !seen.contains(REPLY_PARTS[0]) {
        let chunk = res.chunk().await.unwrap().expect("stream ended early");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(res);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !rig.llm.saw_disconnect() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{adapter:?}: upstream request not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_reply_cut_by_a_departing_client_is_stored_incomplete_on_every_streaming_adapter() {
    for adapter in [Adapter::MultiSse, Adapter::AgentSse] {
        let rig = rig(|_| {}).await;
        hang_up_mid_reply(&rig, adapter).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let conversations = rig.conversations().await;
            if let Some(last) = conversations.first().and_then(|c| c.get(1)) {
                assert_eq!(last["role"], "assistant", "{adapter:?}");
                assert_eq!(last["content"], REPLY_PARTS[0], "{adapter:?}");
                assert_eq!(last["incomplete"], true, "{adapter:?}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{adapter:?}: no partial reply stored"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn spoken_turns_end_their_system_prompt_with_the_configured_spoken_style() {
    const STYLE: &str = "Speak in short sentences for a five-year-old.";
    let rig = rig(|c| c.ai.spoken_style = STYLE.into()).await;
    for adapter in [Adapter::AgentSse, Adapter::AgentJson, Adapter::VoiceUpload] {
        rig.say(adapter, "讲个故事").await.reply();
        let sent = rig.llm.requests().last().unwrap().clone();
        let system = sent["messages"][0]["content"].as_str().unwrap().to_owned();
        assert!(system.ends_with(STYLE), "{adapter:?}: {system}");
    }
    for adapter in [Adapter::ChatJson, Adapter::MultiSse, Adapter::MultiVoice] {
        rig.say(adapter, "讲个故事").await.reply();
        let sent = rig.llm.requests().last().unwrap().clone();
        let system = sent["messages"][0]["content"].as_str().unwrap().to_owned();
        assert!(
            !system.contains(STYLE),
            "{adapter:?}: written replies: {system}"
        );
    }
}

#[tokio::test]
async fn an_agent_turn_without_stream_answers_one_openai_chat_completion() {
    let rig = rig(|_| {}).await;
    let res = rig.agent("讲个故事", false).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "lty");
    assert_eq!(body["choices"].as_array().unwrap().len(), 1);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], FakeOpenAi::reply());
    assert_eq!(choice["finish_reason"], "stop");
    let (prompt, completion) = crate::fakes::openai::USAGE;
    assert_eq!(body["usage"]["prompt_tokens"], prompt);
    assert_eq!(body["usage"]["completion_tokens"], completion);
    assert_eq!(body["usage"]["total_tokens"], prompt + completion);
    // The model itself was asked without streaming.
    assert!(rig.llm.requests()[0].get("stream").is_none());

    // `"stream": false` is the same answer.
    let res = rig
        .app
        .client
        .post(rig.agent_url())
        .bearer_auth(AGENT_KEY)
        .json(&json!({ "stream": false, "messages": [{"role": "user", "content": "你好"}] }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        FakeOpenAi::reply()
    );
}

/// The interpreter of the virtualenv `scripts/ci-deps.sh` makes with the
/// official OpenAI SDK (`LTY_TEST_VENV` to use another).
fn sdk_python() -> std::path::PathBuf {
    let venv = std::env::var_os("LTY_TEST_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME");
            std::path::Path::new(&home).join(".cache/lty-venv")
        },
        std::path::PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ci-deps.sh (it installs the OpenAI SDK)",
        python.display()
    );
    python
}

/// Reads an agent turn with the SDK, once whole and once streamed, and
/// prints what the SDK parsed.
const SDK_CLIENT: &str = r#"
import json, sys
from openai import OpenAI
base, key, user_id, task_id = sys.argv[1:5]
client = OpenAI(base_url=base, api_key=key, max_retries=0,
                default_query={"user_id": user_id, "task_id": task_id})
messages = [{"role": "user", "content": "讲个故事"}]
whole = client.chat.completions.create(model="lty", messages=messages)
pieces = []
for chunk in client.chat.completions.create(model="lty", messages=messages, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
print(json.dumps({
    "object": whole.object,
    "content": whole.choices[0].message.content,
    "finish_reason": whole.choices[0].finish_reason,
    "total_tokens": whole.usage.total_tokens,
    "streamed": "".join(pieces),
}, ensure_ascii=False))
"#;

#[tokio::test]
async fn the_official_openai_python_sdk_reads_agent_turns_whole_and_streamed() {
    let rig = rig(|_| {}).await;
    let python = sdk_python();
    let base = rig.app.url("/api/ai/custom-llm");
    let user_id = rig.user_id.to_string();
    let task_id = rig.task_id.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", SDK_CLIENT, &base, AGENT_KEY, &user_id, &task_id])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (prompt, completion) = crate::fakes::openai::USAGE;
    assert_eq!(
        parsed,
        json!({
            "object": "chat.completion",
            "content": FakeOpenAi::reply(),
            "finish_reason": "stop",
            "total_tokens": prompt + completion,
            "streamed": FakeOpenAi::reply(),
        })
    );
}
