//! Function calling. The OpenAI-compatible client against the fake in both
//! flavours (a call whole and streamed, parallel calls, the follow-up's
//! shape, follow-ups the vendor refuses), then the chat turn's tool loop,
//! driven through `turn::start` with a tool box of the test's own: the
//! call reaches the tool box with the model's arguments, the follow-up
//! carries the result, only the final words come out and are stored, the
//! rounds are bounded, and a departing client cancels the call in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lty_core::chat::{ChatError, ChatEvent, ChatMessage, ChatRequest, Role, ToolCall, ToolSpec};
use lty_server::app::chat::turn::{
    self, Delivery, Outcome, Style, Thread, ToolBox, TurnEnd, TurnEvent, TurnRequest,
};
use lty_vendors::openai::{ChatClient, ChatClientConfig};
use serde_json::{Value, json};

use crate::fakes::openai::{self, FakeOpenAi, Flavor, REPLY_PARTS, Script, USAGE};
use crate::helpers::{TestApp, spawn_app_with, wait_until};

/// The tool as the device names it (an MCP name, with dots).
const SET_VOLUME: &str = "self.audio_speaker.set_volume";
/// The same tool as the model sees it: providers refuse dots.
const SET_VOLUME_WIRE: &str = "self_audio_speaker_set_volume";

fn set_volume() -> ToolSpec {
    ToolSpec {
        name: SET_VOLUME.into(),
        description: "Set the speaker volume, 0 to 100.".into(),
        parameters: json!({
            "type": "object",
            "properties": { "volume": { "type": "integer", "minimum": 0, "maximum": 100 } },
            "required": ["volume"],
        }),
    }
}

fn get_battery() -> ToolSpec {
    ToolSpec {
        name: "self.battery.get_level".into(),
        description: "The battery level in percent.".into(),
        parameters: json!({ "type": "object", "properties": {} }),
    }
}

fn flavor_config(flavor: Flavor) -> lty_vendors::openai::Flavor {
    match flavor {
        Flavor::Moonshot => lty_vendors::openai::Flavor::Moonshot,
        Flavor::OpenAi => lty_vendors::openai::Flavor::OpenAi,
    }
}

fn client(fake: &FakeOpenAi, flavor: Flavor) -> ChatClient {
    ChatClient::new(ChatClientConfig {
        base_url: fake.base_url(),
        api_key: openai::API_KEY.into(),
        model: openai::MODEL.into(),
        flavor: flavor_config(flavor),
        temperature: None,
        max_tokens: None,
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_retry_wait: Duration::from_secs(1),
    })
    .unwrap()
}

fn question(tools: Vec<ToolSpec>) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, "你是一个儿童音箱。"),
            ChatMessage::new(Role::User, "声音小一点"),
        ],
        tools,
        ..ChatRequest::default()
    }
}

/// The calls and the end of a streamed answer; its text must be empty.
async fn streamed_calls(client: &ChatClient, request: &ChatRequest) -> (Vec<ToolCall>, ChatEvent) {
    let mut stream = client.stream(request).await.unwrap();
    let mut calls = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            ChatEvent::Delta(text) => panic!("a call came with text {text:?}"),
            ChatEvent::ToolCalls(c) => {
                assert!(calls.is_none(), "the calls came twice");
                calls = Some(c);
            }
            done @ ChatEvent::Done { .. } => {
                assert!(stream.next().await.is_none(), "events after Done");
                return (calls.expect("Done before the calls"), done);
            }
        }
    }
    panic!("the stream ended without Done")
}

#[tokio::test]
async fn the_client_gets_a_tool_call_whole_and_streamed_from_either_flavour() {
    const ARGS: &str = r#"{"volume": 30, "reason": "小朋友说太吵"}"#;
    for flavor in [Flavor::Moonshot, Flavor::OpenAi] {
        let fake = FakeOpenAi::start_flavor(flavor).await;
        let client = client(&fake, flavor);
        let request = question(vec![set_volume(), get_battery()]);
        for stream in [false, true] {
            fake.script(Script::ToolCall {
                name: SET_VOLUME_WIRE,
                arguments: ARGS,
            });
            let (calls, finish_reason, usage) = if stream {
                let (calls, done) = streamed_calls(&client, &request).await;
                let ChatEvent::Done {
                    finish_reason,
                    usage,
                } = done
                else {
                    unreachable!()
                };
                (calls, finish_reason, usage)
            } else {
                let reply = client.complete(&request).await.unwrap();
                assert_eq!(reply.content, "", "{flavor:?}");
                (reply.tool_calls, reply.finish_reason, reply.usage)
            };
            let what = format!("{flavor:?}, stream {stream}");
            assert_eq!(calls.len(), 1, "{what}");
            assert_eq!(calls[0].name, SET_VOLUME, "{what}: the tool's own name");
            assert_eq!(calls[0].arguments, ARGS, "{what}");
            assert!(!calls[0].id.is_empty(), "{what}");
            assert_eq!(finish_reason.as_deref(), Some("tool_calls"), "{what}");
            assert_eq!(usage.unwrap().prompt_tokens, USAGE.0, "{what}");
        }
        let sent = fake.requests();
        assert_eq!(sent.len(), 2);
        let names: Vec<&str> = sent[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [SET_VOLUME_WIRE, "self_battery_get_level"]);
        assert_eq!(sent[0]["tools"][0]["type"], "function");
        assert_eq!(
            sent[0]["tools"][0]["function"]["parameters"],
            set_volume().parameters
        );
        assert!(sent[0].get("tool_choice").is_none());
    }
}

#[tokio::test]
async fn two_parallel_calls_arrive_in_order_whole_and_streamed_from_either_flavour() {
    for flavor in [Flavor::Moonshot, Flavor::OpenAi] {
        let fake = FakeOpenAi::start_flavor(flavor).await;
        let client = client(&fake, flavor);
        let request = question(vec![set_volume(), get_battery()]);
        for stream in [false, true] {
            fake.script(Script::ToolCalls(vec![
                (SET_VOLUME_WIRE, r#"{"volume":20}"#),
                ("self_battery_get_level", "{}"),
            ]));
            let calls = if stream {
                streamed_calls(&client, &request).await.0
            } else {
                client.complete(&request).await.unwrap().tool_calls
            };
            let got: Vec<(&str, &str)> = calls
                .iter()
                .map(|c| (c.name.as_str(), c.arguments.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    (SET_VOLUME, r#"{"volume":20}"#),
                    ("self.battery.get_level", "{}")
                ],
                "{flavor:?}, stream {stream}"
            );
            assert_ne!(calls[0].id, calls[1].id);
        }
    }
}

#[tokio::test]
async fn a_follow_up_carries_the_call_and_its_result_and_a_mismatched_one_is_refused() {
    for flavor in [Flavor::Moonshot, Flavor::OpenAi] {
        let fake = FakeOpenAi::start_flavor(flavor).await;
        let client = client(&fake, flavor);
        let mut request = question(vec![set_volume()]);
        fake.script(Script::ToolCall {
            name: SET_VOLUME_WIRE,
            arguments: r#"{"volume":30}"#,
        });
        let calls = client.complete(&request).await.unwrap().tool_calls;
        let id = calls[0].id.clone();
        let asked = ChatMessage::assistant_calls(calls);

        // A result for a call that was never made.
        let mut wrong = request.clone();
        wrong.messages.push(asked.clone());
        wrong
            .messages
            .push(ChatMessage::tool_result("call_nobody_made", "true"));
        // A call left without its result.
        let mut unanswered = request.clone();
        unanswered.messages.push(asked.clone());
        unanswered
            .messages
            .push(ChatMessage::new(Role::User, "好了吗"));
        for bad in [&wrong, &unanswered] {
            for stream in [false, true] {
                let err = if stream {
                    client.stream(bad).await.err().expect("a refusal")
                } else {
                    client.complete(bad).await.unwrap_err()
                };
                assert!(
                    matches!(
                        &err,
                        ChatError::Failed { status: Some(400), vendor_type: Some(t), .. }
                            if t == "invalid_request_error"
                    ),
                    "{flavor:?}: {err:?}"
                );
            }
        }

        request.messages.push(asked);
        request.messages.push(ChatMessage::tool_result(&id, "true"));
        let reply = client.complete(&request).await.unwrap();
        assert_eq!(reply.content, FakeOpenAi::reply(), "{flavor:?}");
        assert!(reply.tool_calls.is_empty());

        let sent = fake.requests().last().unwrap().clone();
        let messages = sent["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[2]["role"], "assistant");
        assert_eq!(messages[2]["tool_calls"][0]["id"], id.as_str());
        assert_eq!(
            messages[2]["tool_calls"][0]["function"]["name"],
            SET_VOLUME_WIRE
        );
        assert_eq!(messages[3]["role"], "tool");
        assert_eq!(messages[3]["tool_call_id"], id.as_str());
        assert_eq!(messages[3]["content"], "true");
        match flavor {
            Flavor::Moonshot => {
                assert_eq!(messages[2]["content"], "");
                assert_eq!(messages[3]["name"], SET_VOLUME_WIRE);
            }
            Flavor::OpenAi => {
                assert!(messages[2]["content"].is_null());
                assert!(messages[3].get("name").is_none());
            }
        }
    }
}

/// A tool box that records the calls it gets and answers each with
/// `result`, or never answers (`hang`) and notes when the wait is dropped.
struct TestToolBox {
    calls: Mutex<Vec<ToolCall>>,
    result: String,
    hang: bool,
    cancelled: Arc<AtomicBool>,
}

impl TestToolBox {
    fn new(result: &str, hang: bool) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::default(),
            result: result.into(),
            hang,
            cancelled: Arc::default(),
        })
    }

    fn answering(result: &str) -> Arc<Self> {
        Self::new(result, false)
    }

    fn hanging() -> Arc<Self> {
        Self::new("", true)
    }

    fn calls(&self) -> Vec<ToolCall> {
        self.calls.lock().unwrap().clone()
    }
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl ToolBox for TestToolBox {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![set_volume(), get_battery()]
    }

    async fn call(&self, call: &ToolCall) -> String {
        self.calls.lock().unwrap().push(call.clone());
        if self.hang {
            let _flag = DropFlag(self.cancelled.clone());
            std::future::pending::<()>().await;
        }
        self.result.clone()
    }
}

async fn app_with(fake: &FakeOpenAi, rounds: u32) -> (TestApp, i64) {
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.ai.max_tool_rounds = rounds;
    })
    .await;
    let mac = format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        rand::random::<u8>(),
        rand::random::<u8>(),
        rand::random::<u8>()
    );
    let user_id = app.user_with_device("tool_user", &mac).await;
    (app, user_id)
}

fn turn_request(user_id: i64, delivery: Delivery, tools: Arc<dyn ToolBox>) -> TurnRequest {
    TurnRequest {
        user_id,
        message: "声音小一点".into(),
        language: None,
        thread: Thread::Conversation {
            id: None,
            persona_id: None,
        },
        style: Style::Written,
        delivery,
        temperature: None,
        max_tokens: None,
        tools: Some(tools),
    }
}

/// Runs a turn to its end: the deltas, and the end.
async fn run_turn(app: &TestApp, req: TurnRequest) -> (Option<i64>, Vec<String>, TurnEnd) {
    let mut turn = turn::start(&app.state, req).await.unwrap();
    let conversation_id = turn.conversation_id;
    let mut deltas = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), turn.next())
            .await
            .expect("the turn stalled")
            .expect("the turn stopped without an end");
        match event {
            TurnEvent::Delta(text) => deltas.push(text),
            TurnEvent::End(end) => return (conversation_id, deltas, end),
        }
    }
}

fn roles(request: &Value) -> Vec<&str> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_turn_runs_the_models_tool_call_and_only_the_final_words_come_out_and_are_stored() {
    for flavor in [Flavor::Moonshot, Flavor::OpenAi] {
        for delivery in [Delivery::Stream, Delivery::Whole] {
            let what = format!("{flavor:?} {delivery:?}");
            let fake = FakeOpenAi::start_flavor(flavor).await;
            let (app, user_id) = app_with(&fake, 3).await;
            let called_before = app
                .metric("lty_chat_tool_calls_total", &[("outcome", "called")])
                .await;
            let tools = TestToolBox::answering(r#"{"ok":true,"volume":30}"#);
            fake.script(Script::ToolCall {
                name: SET_VOLUME_WIRE,
                arguments: r#"{"volume":30}"#,
            });
            let (conversation_id, deltas, end) =
                run_turn(&app, turn_request(user_id, delivery, tools.clone())).await;

            let calls = tools.calls();
            assert_eq!(calls.len(), 1, "{what}");
            assert_eq!(calls[0].name, SET_VOLUME, "{what}");
            assert_eq!(calls[0].arguments, r#"{"volume":30}"#, "{what}");

            let sent = fake.requests();
            assert_eq!(sent.len(), 2, "{what}");
            assert_eq!(
                sent[0]["tools"][0]["function"]["name"], SET_VOLUME_WIRE,
                "{what}"
            );
            assert_eq!(
                roles(&sent[1]),
                ["system", "user", "assistant", "tool"],
                "{what}"
            );
            let follow_up = &sent[1]["messages"];
            assert_eq!(follow_up[2]["tool_calls"][0]["id"], calls[0].id.as_str());
            assert_eq!(follow_up[3]["tool_call_id"], calls[0].id.as_str());
            assert_eq!(follow_up[3]["content"], r#"{"ok":true,"volume":30}"#);
            // Calls may still be made after one round.
            assert!(sent[1]["tools"].is_array(), "{what}");
            assert!(sent[1].get("tool_choice").is_none(), "{what}");

            let reply = FakeOpenAi::reply();
            assert_eq!(deltas.concat(), reply, "{what}: only the final words");
            if delivery == Delivery::Stream {
                assert_eq!(deltas, REPLY_PARTS, "{what}");
            }
            assert!(matches!(end.outcome, Outcome::Answered), "{what}");
            assert_eq!(end.reply, reply, "{what}");
            assert_eq!(end.finish_reason.as_deref(), Some("stop"), "{what}");
            let usage = end.usage.unwrap();
            assert_eq!(
                (usage.prompt_tokens, usage.completion_tokens),
                (2 * USAGE.0, 2 * USAGE.1),
                "{what}: both requests count"
            );

            let stored = app
                .state
                .db
                .recent_messages(conversation_id.unwrap(), 10)
                .await
                .unwrap();
            let stored: Vec<(Role, &str)> = stored
                .iter()
                .map(|m| (m.role, m.content.as_str()))
                .collect();
            assert_eq!(
                stored,
                [
                    (Role::User, "声音小一点"),
                    (Role::Assistant, reply.as_str())
                ],
                "{what}"
            );
            assert!(end.message_id.is_some(), "{what}");
            let called_after = app
                .metric("lty_chat_tool_calls_total", &[("outcome", "called")])
                .await;
            assert!(called_after >= called_before + 1.0, "{what}");
        }
    }
}

#[tokio::test]
async fn parallel_calls_are_run_in_order_and_each_result_answers_its_call() {
    let fake = FakeOpenAi::start_openai().await;
    let (app, user_id) = app_with(&fake, 3).await;
    let tools = TestToolBox::answering("done");
    fake.script(Script::ToolCalls(vec![
        (SET_VOLUME_WIRE, r#"{"volume":10}"#),
        ("self_battery_get_level", "{}"),
    ]));
    let (_, _, end) = run_turn(&app, turn_request(user_id, Delivery::Stream, tools.clone())).await;
    assert!(matches!(end.outcome, Outcome::Answered));
    let calls = tools.calls();
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [SET_VOLUME, "self.battery.get_level"]);
    let sent = fake.requests();
    assert_eq!(
        roles(&sent[1]),
        ["system", "user", "assistant", "tool", "tool"]
    );
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(sent[1]["messages"][3 + i]["tool_call_id"], call.id.as_str());
    }
}

#[tokio::test]
async fn max_tool_rounds_bounds_a_model_that_keeps_calling_tools() {
    for ignores_tool_choice in [false, true] {
        let fake = FakeOpenAi::start().await;
        if ignores_tool_choice {
            fake.ignore_tool_choice();
        }
        let (app, user_id) = app_with(&fake, 2).await;
        let over_before = app
            .metric("lty_chat_tool_calls_total", &[("outcome", "over_limit")])
            .await;
        for _ in 0..5 {
            fake.script(Script::ToolCall {
                name: SET_VOLUME_WIRE,
                arguments: r#"{"volume":50}"#,
            });
        }
        let tools = TestToolBox::answering("true");
        let (_, deltas, end) =
            run_turn(&app, turn_request(user_id, Delivery::Stream, tools.clone())).await;
        assert_eq!(tools.calls().len(), 2, "ignores {ignores_tool_choice}");
        let sent = fake.requests();
        assert_eq!(sent.len(), 3, "two rounds, then one last request");
        assert!(sent[1].get("tool_choice").is_none());
        assert_eq!(
            sent[2]["tool_choice"], "none",
            "the last answer must be words"
        );
        assert_eq!(
            roles(&sent[2]),
            ["system", "user", "assistant", "tool", "assistant", "tool"]
        );
        assert!(matches!(end.outcome, Outcome::Answered));
        if ignores_tool_choice {
            // The third round of calls is not run; the turn still ends.
            assert!(deltas.is_empty());
            assert_eq!(end.finish_reason.as_deref(), Some("tool_calls"));
            let over_after = app
                .metric("lty_chat_tool_calls_total", &[("outcome", "over_limit")])
                .await;
            assert!(over_after >= over_before + 1.0);
        } else {
            assert_eq!(deltas.concat(), FakeOpenAi::reply());
        }
    }
}

#[tokio::test]
async fn no_tools_are_offered_when_no_rounds_are_allowed() {
    let fake = FakeOpenAi::start().await;
    let (app, user_id) = app_with(&fake, 0).await;
    // The model would call if it could.
    fake.script(Script::ToolCall {
        name: SET_VOLUME_WIRE,
        arguments: "{}",
    });
    let tools = TestToolBox::answering("true");
    let (_, deltas, _) =
        run_turn(&app, turn_request(user_id, Delivery::Stream, tools.clone())).await;
    assert!(fake.requests()[0].get("tools").is_none());
    assert!(tools.calls().is_empty());
    assert_eq!(deltas.concat(), FakeOpenAi::reply());
}

#[tokio::test]
async fn a_call_of_a_tool_that_was_not_offered_is_answered_without_the_tool_box() {
    let fake = FakeOpenAi::start().await;
    let (app, user_id) = app_with(&fake, 3).await;
    let unknown_before = app
        .metric("lty_chat_tool_calls_total", &[("outcome", "unknown")])
        .await;
    fake.script(Script::ToolCall {
        name: "self_camera_take_photo",
        arguments: "{}",
    });
    let tools = TestToolBox::answering("true");
    let (_, deltas, end) =
        run_turn(&app, turn_request(user_id, Delivery::Whole, tools.clone())).await;
    assert!(tools.calls().is_empty());
    let result = fake.requests()[1]["messages"][3]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(result.contains("self_camera_take_photo"), "{result}");
    assert_eq!(deltas.concat(), FakeOpenAi::reply());
    assert!(matches!(end.outcome, Outcome::Answered));
    let unknown_after = app
        .metric("lty_chat_tool_calls_total", &[("outcome", "unknown")])
        .await;
    assert!(unknown_after >= unknown_before + 1.0);
}

#[tokio::test]
async fn a_client_that_leaves_during_a_tool_call_cancels_it_and_the_model_is_not_asked_again() {
    for delivery in [Delivery::Stream, Delivery::Whole] {
        let fake = FakeOpenAi::start().await;
        let (app, user_id) = app_with(&fake, 3).await;
        let cancelled_before = app
            .metric("lty_chat_tool_calls_total", &[("outcome", "cancelled")])
            .await;
        fake.script(Script::ToolCall {
            name: SET_VOLUME_WIRE,
            arguments: r#"{"volume":0}"#,
        });
        let tools = TestToolBox::hanging();
        let turn = turn::start(&app.state, turn_request(user_id, delivery, tools.clone()))
            .await
            .unwrap();
        wait_until("the tool box is called", async || !tools.calls().is_empty()).await;
        assert!(!tools.cancelled.load(Ordering::SeqCst));
        drop(turn);
        wait_until("the call in flight is dropped", async || {
            tools.cancelled.load(Ordering::SeqCst)
        })
        .await;
        assert_eq!(fake.calls(), 1, "{delivery:?}: the model was asked again");
        let cancelled_after = app
            .metric("lty_chat_tool_calls_total", &[("outcome", "cancelled")])
            .await;
        assert!(cancelled_after >= cancelled_before + 1.0, "{delivery:?}");
    }
}

#[tokio::test]
async fn a_client_that_leaves_during_the_follow_up_cancels_the_model_request() {
    let fake = FakeOpenAi::start().await;
    let (app, user_id) = app_with(&fake, 3).await;
    fake.script(Script::ToolCall {
        name: SET_VOLUME_WIRE,
        arguments: r#"{"volume":80}"#,
    });
    fake.script(Script::HoldUntilDisconnect);
    let tools = TestToolBox::answering("true");
    let mut turn = turn::start(&app.state, turn_request(user_id, Delivery::Stream, tools))
        .await
        .unwrap();
    let conversation_id = turn.conversation_id.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), turn.next()).await {
        Ok(Some(TurnEvent::Delta(text))) => assert_eq!(text, REPLY_PARTS[0]),
        other => panic!("expected the follow-up's first words, got {other:?}"),
    }
    drop(turn);
    wait_until("the follow-up request is cancelled", async || {
        fake.saw_disconnect()
    })
    .await;
    wait_until("the cut reply is stored", async || {
        let stored = app
            .state
            .db
            .recent_messages(conversation_id, 10)
            .await
            .unwrap();
        stored.len() == 2 && stored[1].incomplete && stored[1].content == REPLY_PARTS[0]
    })
    .await;
}
