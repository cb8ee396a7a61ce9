//! AI chat against the fake OpenAI-compatible server: single and
//! multi-turn, streamed and not, persistence, history trimming, child
//! safety, quotas, ownership and every kind of upstream failure.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::openai::{FakeOpenAi, MODEL, Script, USAGE};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

async fn app_with_llm(
    tweak: impl FnOnce(&mut lty_server::config::Config),
) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        tweak(c);
    })
    .await;
    (app, fake)
}

/// A new user's token.
async fn user(app: &TestApp, name: &str) -> String {
    let mac = format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        rand::random::<u8>(),
        rand::random::<u8>(),
        rand::random::<u8>()
    );
    app.user_with_device(name, &mac).await;
    app.mac_login(&mac).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Reads server-sent events until the stream ends: `(event, data)`.
async fn read_events(mut res: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), res.chunk())
        .await
        .expect("stream stalled")
        .unwrap()
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    parse_events(&text)
}

fn parse_events(text: &str) -> Vec<(String, Value)> {
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

fn deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect()
}

async fn messages(app: &TestApp, token: &str, conversation_id: i64) -> Vec<Value> {
    let res = get(
        app,
        token,
        &format!("/api/ai/conversations/{conversation_id}/"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn chat_without_a_kimi_key_answers_503_provider_not_configured() {
    let app = spawn_app().await;
    let token = user(&app, "nokey").await;
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "你好" })).await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(body["details"]["missing"], "KIMI_API_KEY");
}

#[tokio::test]
async fn chat_needs_a_bearer_token_and_a_non_empty_message() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let res = app
        .post_json("/api/ai/chat/", &json!({ "message": "hi" }))
        .await;
    assert_error(res, 401, "unauthenticated").await;
    let token = user(&app, "empty").await;
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "  " })).await;
    assert_error(res, 400, "validation_error").await;
    let res = post(&app, &token, "/api/ai/chat/", json!({ "text": "hi" })).await;
    assert_error(res, 400, "invalid_body").await;
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn chat_answers_with_the_models_reply_and_usage() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "single").await;
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "你好" })).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["reply"], FakeOpenAi::reply());
    assert_eq!(body["usage"]["prompt_tokens"], USAGE.0);
    assert_eq!(body["usage"]["completion_tokens"], USAGE.1);
    assert_eq!(body["moderated"], false);
    assert_eq!(body["finish_reason"], "stop");

    let sent = &fake.requests()[0];
    assert_eq!(sent["model"], MODEL);
    assert!((sent["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert!(sent.get("stream").is_none());
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "system");
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(
        system.contains("小朋友"),
        "safety preamble missing: {system}"
    );
    assert!(system.contains("小贝"), "persona prompt missing: {system}");
    assert_eq!(msgs[1], json!({ "role": "user", "content": "你好" }));
}

#[tokio::test]
async fn personas_list_the_seeded_default_companion_and_an_unknown_one_is_404() {
    let (app, _fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "persona").await;
    let list: Value = get(&app, &token, "/api/ai/personas/")
        .await
        .json()
        .await
        .unwrap();
    let first = &list[0];
    assert_eq!(first["slug"], "xiaobei");
    assert_eq!(first["is_default"], true);
    assert!(first.get("system_prompt").is_none());
    let res = post(
        &app,
        &token,
        "/api/ai/chat/",
        json!({ "message": "hi", "persona_id": 999_999 }),
    )
    .await;
    assert_error(res, 404, "persona_not_found").await;
}

#[tokio::test]
async fn multi_chat_persists_the_conversation_and_sends_the_history_along() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "multi").await;
    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "讲个故事" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    let id = first["conversation_id"].as_i64().unwrap();
    assert_eq!(first["reply"], FakeOpenAi::reply());

    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "再讲一个", "conversation_id": id }),
    )
    .await;
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["conversation_id"], id);

    let sent = fake.requests()[1]["messages"].clone();
    let roles: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(sent[1]["content"], "讲个故事");
    assert_eq!(sent[3]["content"], "再讲一个");

    let stored = messages(&app, &token, id).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[1]["role"], "assistant");
    assert_eq!(stored[1]["content"], FakeOpenAi::reply());
    assert_eq!(stored[1]["prompt_tokens"], USAGE.0);
    assert_eq!(stored[1]["completion_tokens"], USAGE.1);
    assert_eq!(stored[1]["incomplete"], false);
    assert_eq!(stored[1]["id"], first["message_id"]);
    assert!(stored[0]["prompt_tokens"].is_null());
}

#[tokio::test]
async fn history_is_trimmed_to_the_token_budget_keeping_the_newest_turns() {
    // Estimated costs (see lty_core::chat::estimate_tokens): the seeded
    // persona prompt with the preamble 210, each 80-character message 84,
    // each fake reply 21. 450 fits the system prompt, the new message and
    // the three newest earlier messages, not the fourth.
    let (app, fake) = app_with_llm(|c| c.ai.history_token_budget = 450).await;
    let token = user(&app, "trim").await;
    let text = |n: u32| format!("{n}{}", "讲".repeat(79));
    let first: Value = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": text(1) }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["conversation_id"].as_i64().unwrap();
    for n in 2..=4 {
        let res = post(
            &app,
            &token,
            "/api/ai/multi-chat/",
            json!({ "message": text(n), "conversation_id": id }),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    let sent = fake.requests().last().unwrap()["messages"].clone();
    let sent: Vec<(&str, &str)> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    let reply = FakeOpenAi::reply();
    let (t3, t4) = (text(3), text(4));
    let expected = [
        ("assistant", reply.as_str()),
        ("user", t3.as_str()),
        ("assistant", reply.as_str()),
        ("user", t4.as_str()),
    ];
    assert_eq!(sent[0].0, "system");
    assert_eq!(&sent[1..], &expected[..]);

    // With room for everything, nothing is dropped.
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "notrim").await;
    let first: Value = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "第一句" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["conversation_id"].as_i64().unwrap();
    post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "第二句", "conversation_id": id }),
    )
    .await;
    assert_eq!(fake.requests()[1]["messages"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn streaming_relays_deltas_and_stores_the_full_reply_with_usage() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "stream").await;
    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "你好", "stream": true }),
    )
    .await;
    let events = read_events(res).await;
    assert_eq!(deltas(&events), FakeOpenAi::reply());
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(
        done["usage"]["prompt_tokens"], USAGE.0,
        "usage inside choices[0] was lost"
    );
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(fake.requests()[0]["stream"], true);

    let id = done["conversation_id"].as_i64().unwrap();
    let stored = messages(&app, &token, id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["content"], FakeOpenAi::reply());
    assert_eq!(stored[1]["incomplete"], false);
    assert_eq!(stored[1]["completion_tokens"], USAGE.1);
    assert_eq!(stored[1]["id"], done["message_id"]);
}

#[tokio::test]
async fn an_accept_event_stream_header_streams_a_single_chat() {
    let (app, _fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "accept").await;
    let res = app
        .client
        .post(app.url("/api/ai/chat/"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({ "message": "你好" }))
        .send()
        .await
        .unwrap();
    let events = read_events(res).await;
    assert_eq!(deltas(&events), FakeOpenAi::reply());
    assert_eq!(events.last().unwrap().0, "done");
    assert!(events.last().unwrap().1["conversation_id"].is_null());
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_leaves_an_incomplete_reply_and_cancels_upstream() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "gone").await;
    // A conversation to continue, so its id is known before streaming.
    let first: Value = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "在吗" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["conversation_id"].as_i64().unwrap();
    fake.script(Script::HoldUntilDisconnect);
    let mut res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "讲故事", "conversation_id": id, "stream": true }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = res.chunk().await.unwrap().expect("stream ended early");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(res);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored = messages(&app, &token, id).await;
        if stored.len() == 4 {
            assert_eq!(stored[3]["role"], "assistant");
            assert_eq!(stored[3]["content"], crate::fakes::openai::REPLY_PARTS[0]);
            assert_eq!(stored[3]["incomplete"], true);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no partial reply stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !fake.saw_disconnect() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream request not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_error_mid_stream_ends_with_an_error_event_and_an_incomplete_reply() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "midfail").await;
    for script in [
        Script::ErrorMidStream,
        Script::CutMidStream,
        Script::StallMidStream,
    ] {
        fake.script(script.clone());
        let res = post(
            &app,
            &token,
            "/api/ai/multi-chat/",
            json!({ "message": "你好", "stream": true }),
        )
        .await;
        let events = read_events(res).await;
        assert_eq!(
            deltas(&events),
            crate::fakes::openai::REPLY_PARTS[0],
            "{script:?}"
        );
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "error", "{script:?}");
        assert_eq!(data["code"], "upstream_error");
        let id = fake_conversation_of_last(&app, &token).await;
        let stored = messages(&app, &token, id).await;
        assert_eq!(stored[1]["incomplete"], true, "{script:?}");
        assert_eq!(stored[1]["content"], crate::fakes::openai::REPLY_PARTS[0]);
    }
}

async fn fake_conversation_of_last(app: &TestApp, token: &str) -> i64 {
    let list: Value = get(app, token, "/api/ai/conversations/")
        .await
        .json()
        .await
        .unwrap();
    list["results"][0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_stall_before_the_first_byte_is_retried_once_then_502() {
    let (app, fake) = app_with_llm(|c| c.llm.first_byte_timeout_ms = 300).await;
    let token = user(&app, "stall").await;
    fake.script(Script::StallBeforeHead(Duration::from_secs(2)));
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
    assert_eq!(res.status(), 200, "the retry should have succeeded");
    assert_eq!(fake.calls(), 2);

    fake.script(Script::StallBeforeHead(Duration::from_secs(2)));
    fake.script(Script::StallBeforeHead(Duration::from_secs(2)));
    let res = post(
        &app,
        &token,
        "/api/ai/chat/",
        json!({ "message": "hi", "stream": true }),
    )
    .await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["reason"], "timeout");
    assert_eq!(fake.calls(), 4);
}

#[tokio::test]
async fn upstream_failures_map_to_429_502_and_503() {
    let (app, fake) = app_with_llm(|_| {}).await;
    let token = user(&app, "fail").await;
    let chat = || post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" }));

    fake.script(Script::Error {
        status: 429,
        kind: "rate_limit_reached_error",
        message: "Your account is rate limited, please try again after 30 seconds",
        retry_after: None,
    });
    let res = chat().await;
    assert_eq!(res.headers()["retry-after"], "30");
    let body = assert_error(res, 429, "upstream_rate_limited").await;
    assert_eq!(body["details"]["vendor_type"], "rate_limit_reached_error");
    assert_eq!(fake.calls(), 1, "a long wait is not retried");

    fake.script(Script::Error {
        status: 429,
        kind: "exceeded_current_quota_error",
        message: "Your account is suspended",
        retry_after: Some(1),
    });
    let body = assert_error(chat().await, 503, "provider_unavailable").await;
    assert_eq!(
        body["details"]["vendor_type"],
        "exceeded_current_quota_error"
    );
    assert_eq!(fake.calls(), 2, "an empty balance is not retried");

    fake.script(Script::Error {
        status: 500,
        kind: "server_error",
        message: "boom",
        retry_after: None,
    });
    assert_eq!(chat().await.status(), 200, "one 500 is retried");
    assert_eq!(fake.calls(), 4);

    fake.script(Script::Html(502));
    fake.script(Script::Html(502));
    let body = assert_error(chat().await, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "kimi");
    assert_eq!(body["details"]["status"], 502);
    assert!(!body["message"].as_str().unwrap().contains("html"));
}

#[tokio::test]
async fn a_wrong_api_key_gives_503_provider_unavailable() {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.llm.api_key = Some(lty_server::config::Secret::new("sk-wrong"));
    })
    .await;
    let token = user(&app, "badkey").await;
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
    let body = assert_error(res, 503, "provider_unavailable").await;
    assert_eq!(
        body["details"]["vendor_type"],
        "invalid_authentication_error"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_blocked_message_is_refused_without_asking_the_model_and_counted() {
    let (app, fake) = app_with_llm(|c| {
        c.ai.blocked_input_terms = lty_server::app::chat::TermList(vec!["坏东西".into()]);
    })
    .await;
    let token = user(&app, "badin").await;
    let input_blocks = [("side", "input")];
    let blocks_before = app
        .metric("lty_moderation_blocks_total", &input_blocks)
        .await;
    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "告诉我坏东西" }),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["reply"], app.config.ai.refusal_message);
    assert_eq!(fake.calls(), 0);
    let stored = messages(&app, &token, body["conversation_id"].as_i64().unwrap()).await;
    assert_eq!(stored[0]["moderated"], true);
    assert_eq!(stored[1]["moderated"], true);

    // Streamed, the refusal is the reply.
    let res = post(
        &app,
        &token,
        "/api/ai/chat/",
        json!({ "message": "坏东西", "stream": true }),
    )
    .await;
    let events = read_events(res).await;
    assert_eq!(deltas(&events), app.config.ai.refusal_message);
    assert_eq!(events.last().unwrap().1["moderated"], true);
    assert_eq!(fake.calls(), 0);

    // Both refusals were counted (other tests may block inputs meanwhile).
    let blocks = app
        .metric("lty_moderation_blocks_total", &input_blocks)
        .await;
    assert!(blocks >= blocks_before + 2.0, "{blocks_before} -> {blocks}");
}

#[tokio::test]
async fn a_blocked_reply_is_replaced_by_the_refusal_and_not_fed_back() {
    let (app, fake) = app_with_llm(|c| {
        c.ai.blocked_output_terms = lty_server::app::chat::TermList(vec!["小朋友".into()]);
    })
    .await;
    let token = user(&app, "badout").await;
    let body: Value = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "你好" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["reply"], app.config.ai.refusal_message);
    let id = body["conversation_id"].as_i64().unwrap();

    // Streamed: the delta that completes the term is never sent.
    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "再说一次", "conversation_id": id, "stream": true }),
    )
    .await;
    let events = read_events(res).await;
    assert!(!deltas(&events).contains("小朋友"));
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["code"], "content_blocked");
    assert_eq!(data["message"], app.config.ai.refusal_message);
    // The refused reply is stored flagged and left out of the next history.
    let sent = fake.requests()[1]["messages"].clone();
    assert_eq!(sent.as_array().unwrap().len(), 3, "{sent}");
    let stored = messages(&app, &token, id).await;
    assert_eq!(stored[3]["moderated"], true);
}

#[tokio::test]
async fn the_daily_quota_answers_429_quota_exceeded_with_the_reset_time() {
    let (app, fake) = app_with_llm(|c| c.ai.daily_messages = 2).await;
    let token = user(&app, "quota").await;
    for _ in 0..2 {
        let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
        assert_eq!(res.status(), 200);
    }
    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "hi" }),
    )
    .await;
    assert!(res.headers().contains_key("retry-after"));
    let body = assert_error(res, 429, "quota_exceeded").await;
    assert_eq!(body["details"]["limit"], 2);
    let reset: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["details"]["reset_at"].clone()).unwrap();
    assert!(reset > chrono::Utc::now());
    assert_eq!(reset.format("%H:%M:%S").to_string(), "00:00:00");
    assert_eq!(fake.calls(), 2);
    // Another user has a quota of their own.
    let other = user(&app, "quota2").await;
    let res = post(&app, &other, "/api/ai/chat/", json!({ "message": "hi" })).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn conversations_are_listed_paged_and_visible_only_to_their_owner() {
    let (app, _fake) = app_with_llm(|_| {}).await;
    let alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let mut ids = Vec::new();
    for text in ["一", "二", "三"] {
        let body: Value = post(
            &app,
            &alice,
            "/api/ai/multi-chat/",
            json!({ "message": text }),
        )
        .await
        .json()
        .await
        .unwrap();
        ids.push(body["conversation_id"].as_i64().unwrap());
    }
    let page: Value = get(&app, &alice, "/api/ai/conversations/?page=1&page_size=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["results"][0]["id"], ids[2], "newest first");
    assert_eq!(page["results"][0]["title"], "三");
    let page: Value = get(&app, &bob, "/api/ai/conversations/")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["count"], 0);

    let path = format!("/api/ai/conversations/{}/", ids[0]);
    assert_error(get(&app, &bob, &path).await, 404, "conversation_not_found").await;
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "conversation_not_found").await;
    let res = post(
        &app,
        &bob,
        "/api/ai/multi-chat/",
        json!({ "message": "hi", "conversation_id": ids[0] }),
    )
    .await;
    assert_error(res, 404, "conversation_not_found").await;

    let detail: Value = get(&app, &alice, &format!("{path}?page=2&page_size=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["count"], 2);
    assert_eq!(detail["messages"][0]["role"], "assistant");
    assert_error(
        get(&app, &alice, "/api/ai/conversations/?page_size=0").await,
        400,
        "validation_error",
    )
    .await;

    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_error(
        get(&app, &alice, &path).await,
        404,
        "conversation_not_found",
    )
    .await;
}

#[tokio::test]
async fn the_daily_quota_follows_the_users_plan_under_the_server_ceiling() {
    // The free plan allows 20 messages a day; a ceiling of 3 caps it.
    let (app, _fake) = app_with_llm(|c| c.ai.daily_messages = 3).await;
    let token = user(&app, "plan_ceiling").await;
    for _ in 0..3 {
        let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
        assert_eq!(res.status(), 200);
    }
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
    let err = assert_error(res, 429, "quota_exceeded").await;
    assert_eq!(err["details"]["limit"], 3);

    // Without a ceiling, the free plan's own limit applies.
    let (app, _fake) = app_with_llm(|c| c.ai.daily_messages = 0).await;
    let token = user(&app, "plan_free").await;
    for _ in 0..20 {
        let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
        assert_eq!(res.status(), 200);
    }
    let res = post(&app, &token, "/api/ai/chat/", json!({ "message": "hi" })).await;
    let err = assert_error(res, 429, "quota_exceeded").await;
    assert_eq!(err["details"]["limit"], 20);
}

#[tokio::test]
async fn per_language_term_lists_apply_to_every_language_unless_one_is_named() {
    let (app, fake) = app_with_llm(|c| {
        c.ai.blocked_terms.insert(
            "en".into(),
            lty_server::app::chat::TermList(vec!["dragonfire".into()]),
        );
        c.ai.blocked_terms.insert(
            "zh".into(),
            lty_server::app::chat::TermList(vec!["怪兽".into()]),
        );
    })
    .await;
    let token = user(&app, "langs").await;
    let ask = |body: Value| post(&app, &token, "/api/ai/chat/", body);
    let body: Value = ask(json!({ "message": "tell me about dragonfire" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(fake.calls(), 0);
    // Named as Chinese, only the Chinese list applies.
    let body: Value = ask(json!({ "message": "tell me about dragonfire", "language": "zh" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["moderated"], false);
    assert_eq!(fake.calls(), 1);
    let body: Value = ask(json!({ "message": "大怪兽来了", "language": "zh" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn a_message_the_moderation_api_flags_is_refused_without_asking_the_model() {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        fake.configure_moderation(c);
    })
    .await;
    let token = user(&app, "modin").await;
    let provider_blocks = [("side", "provider")];
    let blocks_before = app
        .metric("lty_moderation_blocks_total", &provider_blocks)
        .await;
    let body: Value = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "please flagme now" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["reply"], app.config.ai.refusal_message);
    assert_eq!(fake.calls(), 0);
    assert_eq!(fake.moderated(), ["please flagme now"]);
    let stored = messages(&app, &token, body["conversation_id"].as_i64().unwrap()).await;
    assert_eq!(stored[0]["moderated"], true);
    let blocks = app
        .metric("lty_moderation_blocks_total", &provider_blocks)
        .await;
    assert!(blocks >= blocks_before + 1.0, "{blocks_before} -> {blocks}");
}

#[tokio::test]
async fn a_reply_the_moderation_api_flags_is_stored_as_the_refusal_streamed_or_not() {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        fake.configure_moderation(c);
    })
    .await;
    fake.flag_word("小朋友");
    let token = user(&app, "modout").await;
    let body: Value = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "你好" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["reply"], app.config.ai.refusal_message);
    let id = body["conversation_id"].as_i64().unwrap();
    // Both sides were asked about.
    assert_eq!(fake.moderated(), ["你好".to_owned(), FakeOpenAi::reply()]);

    // Streamed: the deltas are out, `done` says to show the refusal, and
    // the refusal is what is stored.
    let res = post(
        &app,
        &token,
        "/api/ai/multi-chat/",
        json!({ "message": "再说一次", "conversation_id": id, "stream": true }),
    )
    .await;
    let events = read_events(res).await;
    assert_eq!(deltas(&events), FakeOpenAi::reply());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "done");
    assert_eq!(data["moderated"], true);
    assert_eq!(data["refusal"], app.config.ai.refusal_message);
    let stored = messages(&app, &token, id).await;
    assert_eq!(stored[3]["content"], app.config.ai.refusal_message);
    assert_eq!(stored[3]["moderated"], true);
    assert_eq!(stored[3]["incomplete"], false);
}

#[tokio::test]
async fn a_failing_moderation_api_lets_text_pass_by_default_and_blocks_when_fail_closed() {
    let fake = FakeOpenAi::start().await;
    fake.fail_moderation();
    let open = spawn_app_with(|c| {
        fake.configure(c);
        fake.configure_moderation(c);
    })
    .await;
    let token = user(&open, "failopen").await;
    let moderation_errors = [("provider", "openai_moderation")];
    let errors_before = open
        .metric("lty_moderation_errors_total", &moderation_errors)
        .await;
    let body: Value = post(
        &open,
        &token,
        "/api/ai/chat/",
        json!({ "message": "flagme" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["moderated"], false);
    assert_eq!(body["reply"], FakeOpenAi::reply());
    let errors = open
        .metric("lty_moderation_errors_total", &moderation_errors)
        .await;
    assert!(errors >= errors_before + 1.0, "{errors_before} -> {errors}");
    drop(open);

    let closed = spawn_app_with(|c| {
        fake.configure(c);
        fake.configure_moderation(c);
        c.ai.moderation_fail_closed = true;
    })
    .await;
    let token = user(&closed, "failclosed").await;
    let calls = fake.calls();
    let body: Value = post(
        &closed,
        &token,
        "/api/ai/chat/",
        json!({ "message": "hello" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["reply"], closed.config.ai.refusal_message);
    assert_eq!(fake.calls(), calls);
}
