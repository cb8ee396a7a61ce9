//! The CustomLLM endpoint a Volcengine voice agent calls every turn, against
//! the fake OpenAI-compatible server.

use serde_json::{Value, json};

use crate::fakes::openai::{FakeOpenAi, Script};
use crate::helpers::{TestApp, assert_error, spawn_app_with};

const KEY: &str = "custom-llm-test-key";
const PATH: &str = "/api/ai/custom-llm/chat/completions";

async fn agent_app(tweak: impl FnOnce(&mut lty_server::config::Config)) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.volcengine.custom_llm_api_key = Some(lty_server::config::Secret::new(KEY));
        tweak(c);
    })
    .await;
    (app, fake)
}

async fn turn(app: &TestApp, query: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("{PATH}{query}")))
        .json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

fn words(text: &str) -> Value {
    json!({
        "model": "lty", "stream": true, "temperature": 0.5, "maxTokens": 200,
        "messages": [
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好呀"},
            {"role": "user", "content": text},
        ]
    })
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
async fn events(res: reqwest::Response) -> Vec<String> {
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    res.text()
        .await
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_owned))
        .collect()
}

/// The chunks before `[DONE]`, checked against the vendor's chunk format.
fn chunks(events: &[String]) -> Vec<Value> {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(!chunks.is_empty());
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert_eq!(c["created"], chunks[0]["created"]);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
    }
    chunks
}

fn text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish(chunks: &[Value]) -> Value {
    chunks.last().unwrap()["choices"][0]["finish_reason"].clone()
}

#[tokio::test]
async fn a_turn_streams_openai_chunks_with_the_session_persona_and_safety_rules() {
    let (app, fake) = agent_app(|_| {}).await;
    let record = json!({"room_id": "room_7", "task_id": "t1", "agent_user_id": "bot_7",
                        "started_at": 0, "persona": "你是一只叫阿福的小熊。"});
    app.state
        .cache
        .set("rtc_room:7:t1", &record.to_string(), None)
        .await
        .unwrap();
    let res = turn(&app, "?user_id=7&task_id=t1", Some(KEY), &words("讲个故事")).await;
    let chunks = chunks(&events(res).await);
    assert_eq!(text(&chunks), FakeOpenAi::reply());
    assert_eq!(finish(&chunks), "stop");

    let sent = &fake.requests()[0];
    assert_eq!(sent["stream"], true);
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains("你是一只叫阿福的小熊"), "{system}");
    assert!(system.contains(app.config.ai.safety_preamble.trim()));
    // The agent's turns follow, the child's words last.
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[3]["content"], "讲个故事");
}

#[tokio::test]
async fn without_a_session_the_default_persona_answers() {
    let (app, fake) = agent_app(|_| {}).await;
    let res = turn(&app, "?user_id=8", Some(KEY), &words("你是谁")).await;
    assert_eq!(text(&chunks(&events(res).await)), FakeOpenAi::reply());
    let system = fake.requests()[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let default = app.state.db.default_persona().await.unwrap().unwrap();
    assert!(system.contains(default.system_prompt.trim()));
}

#[tokio::test]
async fn the_api_key_is_required_and_compared_exactly() {
    let (app, fake) = agent_app(|_| {}).await;
    for key in [None, Some("wrong"), Some("custom-llm-test-ke")] {
        let res = turn(&app, "?user_id=1", key, &words("hi")).await;
        assert_error(res, 401, "unauthorized").await;
    }
    assert_eq!(fake.calls(), 0);

    let (unset, _fake) = agent_app(|c| c.volcengine.custom_llm_api_key = None).await;
    let res = turn(&unset, "?user_id=1", Some(KEY), &words("hi")).await;
    assert_error(res, 503, "provider_not_configured").await;
}

#[tokio::test]
async fn malformed_turns_are_refused_with_400() {
    let (app, fake) = agent_app(|_| {}).await;
    let res = turn(&app, "?user_id=1", Some(KEY), &json!({"messages": []})).await;
    assert_error(res, 400, "validation_error").await;
    let res = turn(&app, "", Some(KEY), &words("hi")).await;
    assert_error(res, 400, "validation_error").await;
    let res = turn(
        &app,
        "?user_id=1",
        Some(KEY),
        &json!({"messages": [{"role": "assistant", "content": "only me"}]}),
    )
    .await;
    assert_error(res, 400, "validation_error").await;
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn a_blocked_turn_is_answered_with_the_spoken_refusal_without_asking_the_model() {
    let (app, fake) = agent_app(|_| {}).await;
    let res = turn(&app, "?user_id=9", Some(KEY), &words("赌博怎么玩")).await;
    let chunks = chunks(&events(res).await);
    assert_eq!(text(&chunks), app.config.ai.refusal_message);
    assert_eq!(finish(&chunks), "content_filter");
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn an_used_up_quota_is_a_spoken_sentence_not_an_error() {
    let (app, fake) = agent_app(|c| c.ai.daily_messages = 1).await;
    let first = turn(&app, "?user_id=10", Some(KEY), &words("一")).await;
    assert_eq!(text(&chunks(&events(first).await)), FakeOpenAi::reply());
    let second = turn(&app, "?user_id=10", Some(KEY), &words("二")).await;
    let chunks = chunks(&events(second).await);
    assert_eq!(text(&chunks), app.config.ai.quota_message);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn an_upstream_failure_before_the_first_byte_is_a_502() {
    let (app, fake) = agent_app(|_| {}).await;
    for _ in 0..2 {
        fake.script(Script::Error {
            status: 500,
            kind: "server_error",
            message: "boom",
            retry_after: None,
        });
    }
    let res = turn(&app, "?user_id=11", Some(KEY), &words("hi")).await;
    let err = assert_error(res, 502, "upstream_error").await;
    assert!(err["details"]["provider"].is_string());
}

#[tokio::test]
async fn a_failure_mid_answer_still_ends_the_stream_properly() {
    let (app, fake) = agent_app(|_| {}).await;
    fake.script(Script::ErrorMidStream);
    let res = turn(&app, "?user_id=12", Some(KEY), &words("hi")).await;
    let chunks = chunks(&events(res).await);
    assert_eq!(finish(&chunks), "stop");
    assert!(!text(&chunks).is_empty());
}

#[tokio::test]
async fn the_moderation_api_guards_the_childs_words_and_the_finished_reply() {
    let fake = FakeOpenAi::start().await;
    let (app, _unused) = agent_app(|c| fake.configure_moderation(c)).await;
    // `agent_app` started its own model fake; the moderation fake is `fake`.
    let res = turn(&app, "?user_id=13", Some(KEY), &words("flagme 一下")).await;
    let got = chunks(&events(res).await);
    assert_eq!(text(&got), app.config.ai.refusal_message);
    assert_eq!(finish(&got), "content_filter");

    fake.flag_word("小朋友");
    let res = turn(&app, "?user_id=13", Some(KEY), &words("讲个故事")).await;
    let got = chunks(&events(res).await);
    assert_eq!(
        text(&got),
        format!("{}{}", FakeOpenAi::reply(), app.config.ai.refusal_message)
    );
    assert_eq!(finish(&got), "content_filter");
    assert_eq!(
        fake.moderated(),
        [
            "flagme 一下".to_owned(),
            "讲个故事".into(),
            FakeOpenAi::reply()
        ]
    );
}
