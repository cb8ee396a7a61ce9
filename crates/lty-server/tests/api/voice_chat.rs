//! Voice chat against the fake Volcengine: start → update → stop, vendor
//! errors, the sweeper, and the agent's callbacks reaching the family.

use std::time::Duration;

use lty_core::MacAddress;
use lty_server::config::{Config, Secret};
use lty_vendors::volcengine::callback::{Magic, encode_message};
use lty_vendors::volcengine::openapi::{
    ClientConfig, Credentials, OpenApiClient, RTC_REGION, RTC_SERVICE, Request, sign_request,
};
use lty_vendors::volcengine::rtc_token::{self, unix_now};
use serde_json::{Value, json};

use crate::fakes::volcengine::{AK, APP_ID, APP_KEY, FakeVolcengine, SK, Script};
use crate::helpers::{TestApp, assert_error, next_json, spawn_app_with};

const SECRET: &str = "cb-secret-example-0001";
const MAC: &str = "02:00:00:00:00:2a";

fn configure(c: &mut Config, fake: &FakeVolcengine) {
    let vc = &mut c.volcengine;
    vc.app_id = Some(APP_ID.into());
    vc.app_key = Some(Secret::new(APP_KEY));
    vc.access_key = Some(AK.into());
    vc.secret_key = Some(Secret::new(SK));
    vc.api_base_url = fake.base_url();
    vc.callback_secret = Some(Secret::new(SECRET));
    vc.custom_llm_api_key = Some(Secret::new("custom-llm-key"));
    vc.api_timeout_ms = 1500;
    // Tests sweep by hand unless they say otherwise.
    vc.voice_chat_sweep_secs = 3600;
    c.public_base_url = Some("https://lty.example".into());
    c.audio.huoshan.appid = Some("speech-app".into());
    c.audio.huoshan.access_token = Some(Secret::new("speech-token"));
    c.audio.huoshan.voice_type = Some("BV700_streaming".into());
}

/// An app wired to a fake, and a family (user + device) with its token.
struct Family {
    app: TestApp,
    fake: FakeVolcengine,
    user_id: i64,
    token: String,
}

async fn family_with(tweak: impl FnOnce(&mut Config)) -> Family {
    let fake = FakeVolcengine::start().await;
    let app = spawn_app_with(|c| {
        configure(c, &fake);
        tweak(c);
    })
    .await;
    let user_id = app.user_with_device("family", MAC).await;
    let token = app.mac_login(MAC).await;
    Family {
        app,
        fake,
        user_id,
        token,
    }
}

async fn family() -> Family {
    family_with(|_| {}).await
}

impl Family {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn start(&self, body: &Value) -> Value {
        let res = self.post("/api/device/voice-chat/start/", body).await;
        assert_eq!(res.status(), 200, "start failed");
        res.json().await.unwrap()
    }

    fn key(&self, task: &str) -> String {
        format!("rtc_room:{}:{task}", self.user_id)
    }

    async fn mark_device_online(&self, online: bool) {
        let key = format!("device:last_seen:{}", MacAddress::parse(MAC).unwrap());
        if online {
            let ttl = Some(Duration::from_secs(300));
            self.app.state.cache.set(&key, "1", ttl).await.unwrap();
        } else {
            self.app.state.cache.delete(&key).await.unwrap();
        }
    }
}

#[tokio::test]
async fn start_update_stop_drives_the_agent_and_leaves_nothing_running() {
    let f = family().await;
    let uid = f.user_id;
    let started = f
        .start(&json!({"persona": "You are Xiaobao.", "welcome_message": "你好呀！"}))
        .await;
    let task = started["task_id"].as_str().unwrap().to_owned();
    assert_eq!(task.len(), 32);
    assert_eq!(started["room_id"], format!("room_{uid}"));
    assert_eq!(started["user_id"], uid.to_string());
    assert_eq!(started["agent_user_id"], format!("bot_{uid}"));
    assert_eq!(started["app_id"], APP_ID);
    let parsed =
        rtc_token::verify(started["token"].as_str().unwrap(), APP_KEY, unix_now()).unwrap();
    assert_eq!(parsed.room_id(), format!("room_{uid}"));
    assert_eq!(parsed.user_id(), uid.to_string());

    // What Volcengine was asked to run.
    let starts = f.fake.calls_of("StartVoiceChat");
    assert_eq!(starts.len(), 1);
    let body = &starts[0].body;
    assert_eq!(body["RoomId"], format!("room_{uid}"));
    assert_eq!(body["TaskId"], task);
    assert_eq!(
        body["AgentConfig"]["TargetUserId"],
        json!([uid.to_string()])
    );
    assert_eq!(body["AgentConfig"]["UserId"], format!("bot_{uid}"));
    assert_eq!(body["AgentConfig"]["WelcomeMessage"], "你好呀！");
    let callback =
        format!("https://lty.example/api/device/volcengine/callback/?user_id={uid}&task_id={task}");
    assert_eq!(body["AgentConfig"]["ServerMessageURLForRTS"], callback);
    assert_eq!(body["AgentConfig"]["ServerMessageSignatureForRTS"], SECRET);
    assert_eq!(
        body["Config"]["SubtitleConfig"]["ServerMessageUrl"],
        callback
    );
    let llm = &body["Config"]["LLMConfig"];
    assert_eq!(llm["Mode"], "CustomLLM");
    assert_eq!(llm["APIKey"], "custom-llm-key");
    assert_eq!(
        llm["Url"],
        format!(
            "https://lty.example/api/ai/custom-llm/chat/completions?user_id={uid}&task_id={task}"
        )
    );
    assert_eq!(
        body["Config"]["TTSConfig"]["ProviderParams"]["audio"]["voice_type"],
        "BV700_streaming"
    );
    assert_eq!(f.fake.running(), [(format!("room_{uid}"), task.clone())]);

    // The session key (legacy format) with the session limit as TTL.
    let key = f.key(&task);
    let record: Value =
        serde_json::from_str(&f.app.state.cache.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(record["task_id"], task);
    assert_eq!(record["persona"], "You are Xiaobao.");
    let ttl = f.app.state.cache.ttl(&key).await.unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(1800) && ttl > Duration::from_secs(1700));

    // Steering.
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "interrupt"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "speak", "text": "该睡觉啦", "interrupt_mode": 1}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["command"], "ExternalTextToSpeech");
    let updates = f.fake.calls_of("UpdateVoiceChat");
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].body["Command"], "interrupt");
    assert!(updates[0].body.get("Message").is_none());
    assert_eq!(updates[1].body["Message"], "该睡觉啦");
    assert_eq!(updates[1].body["InterruptMode"], 1);
    assert!(updates.iter().all(|c| c.error.is_none()));

    // A new persona is stored, not sent.
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "persona", "text": "You are a dragon."}),
        )
        .await;
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["forwarded"], false);
    assert_eq!(f.fake.calls_of("UpdateVoiceChat").len(), 2);
    let record: Value =
        serde_json::from_str(&f.app.state.cache.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(record["persona"], "You are a dragon.");
    assert!(f.app.state.cache.ttl(&key).await.unwrap().unwrap() <= ttl);

    // Stop: nothing left running, nothing left recorded.
    let res = f
        .post("/api/device/voice-chat/stop/", &json!({"task_id": task}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(f.fake.running().is_empty());
    assert_eq!(f.app.state.cache.get(&key).await.unwrap(), None);
    assert!(f.app.state.db.all_sessions().await.unwrap().is_empty());
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "interrupt"}),
        )
        .await;
    assert_error(res, 404, "voice_chat_not_found").await;
    let res = f
        .post("/api/device/voice-chat/stop/", &json!({"task_id": task}))
        .await;
    assert_error(res, 404, "voice_chat_not_found").await;
    assert!(f.fake.rejected().is_empty(), "{:?}", f.fake.rejected());
}

#[tokio::test]
async fn starting_again_stops_the_running_agent_first() {
    let f = family().await;
    let first = f.start(&json!({})).await;
    let second = f.start(&json!({"voice": "BV001_streaming"})).await;
    assert_ne!(first["task_id"], second["task_id"]);
    let calls: Vec<String> = f.fake.calls().into_iter().map(|c| c.action).collect();
    assert_eq!(calls, ["StartVoiceChat", "StopVoiceChat", "StartVoiceChat"]);
    let running = f.fake.running();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].1, second["task_id"].as_str().unwrap());
    assert_eq!(f.app.state.db.all_sessions().await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_familys_session_cannot_be_steered_or_stopped() {
    let f = family().await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.app.user_with_device("other", "02:00:00:00:00:99").await;
    let other = f.app.mac_login("02:00:00:00:00:99").await;
    for path in [
        "/api/device/voice-chat/update/",
        "/api/device/voice-chat/stop/",
    ] {
        let res = f
            .app
            .client
            .post(f.app.url(path))
            .bearer_auth(&other)
            .json(&json!({"task_id": task, "command": "interrupt"}))
            .send()
            .await
            .unwrap();
        assert_error(res, 404, "voice_chat_not_found").await;
    }
    assert_eq!(f.fake.running().len(), 1);
}

#[tokio::test]
async fn bad_voice_chat_requests_are_400_and_never_reach_volcengine() {
    let f = family().await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, body, field) in [
        (
            "/api/device/voice-chat/update/",
            json!({"task_id": task, "command": "speak"}),
            "text",
        ),
        (
            "/api/device/voice-chat/update/",
            json!({"task_id": task, "command": "shout", "text": "x"}),
            "command",
        ),
        (
            "/api/device/voice-chat/update/",
            json!({"task_id": "../x", "command": "interrupt"}),
            "task_id",
        ),
        (
            "/api/device/voice-chat/update/",
            json!({"task_id": task, "command": "ask", "text": "x", "interrupt_mode": 9}),
            "interrupt_mode",
        ),
        (
            "/api/device/voice-chat/stop/",
            json!({"task_id": "nope"}),
            "task_id",
        ),
        (
            "/api/device/voice-chat/start/",
            json!({"voice": "BV700 streaming"}),
            "voice",
        ),
        (
            "/api/device/voice-chat/start/",
            json!({"welcome_message": "x".repeat(201)}),
            "welcome_message",
        ),
    ] {
        let res = f.post(path, &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
    assert_eq!(f.fake.calls().len(), 1, "only the first start");
    let res = f
        .app
        .client
        .post(f.app.url("/api/device/voice-chat/start/"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn voice_chat_answers_503_without_openapi_credentials_or_an_llm() {
    let f = family_with(|c| {
        c.volcengine.secret_key = None;
    })
    .await;
    let res = f.post("/api/device/voice-chat/start/", &json!({})).await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(body["details"]["provider"], "volcengine");
    let task = "0d8f5b7e9c2a4e61b3f4a5c6d7e8f901";
    let res = f
        .post("/api/device/voice-chat/stop/", &json!({"task_id": task}))
        .await;
    assert_error(res, 503, "provider_not_configured").await;

    let f = family_with(|c| {
        c.volcengine.custom_llm_api_key = None;
    })
    .await;
    let res = f.post("/api/device/voice-chat/start/", &json!({})).await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert!(
        body["details"]["missing"]
            .as_str()
            .unwrap()
            .contains("LTY_CUSTOM_LLM_API_KEY")
    );
    assert!(f.fake.calls().is_empty());
}

#[tokio::test]
async fn without_custom_llm_the_agent_uses_ark_with_the_persona() {
    let f = family_with(|c| {
        c.volcengine.custom_llm_api_key = None;
        c.volcengine.ark_endpoint_id = Some("ep-2025-lty".into());
        c.volcengine.callback_secret = None;
    })
    .await;
    f.start(&json!({"system_prompt": "Be kind."})).await;
    let body = &f.fake.calls_of("StartVoiceChat")[0].body;
    let llm = &body["Config"]["LLMConfig"];
    assert_eq!(llm["Mode"], "ArkV3");
    assert_eq!(llm["EndPointId"], "ep-2025-lty");
    assert_eq!(llm["SystemMessages"], json!(["Be kind."]));
    // No secret, no callbacks registered.
    assert!(body["AgentConfig"].get("ServerMessageURLForRTS").is_none());
    assert!(
        body["Config"]["SubtitleConfig"]
            .get("ServerMessageUrl")
            .is_none()
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_by_volcengine_and_answers_502() {
    let f = family_with(|c| {
        c.volcengine.secret_key = Some(Secret::new("not-the-secret-key"));
    })
    .await;
    let res = f.post("/api/device/voice-chat/start/", &json!({})).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "volcengine");
    assert_eq!(body["details"]["vendor_code"], "SignatureDoesNotMatch");
    assert!(body["details"]["request_id"].is_string());
    assert_eq!(
        f.fake.rejected(),
        ["SignatureDoesNotMatch"],
        "no retry of a signing error"
    );
    // A definite refusal leaves nothing recorded.
    assert!(f.app.state.db.all_sessions().await.unwrap().is_empty());
}

#[tokio::test]
async fn vendor_errors_inside_http_200_are_still_errors() {
    let f = family().await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.fake.errors_in_200(true);
    f.fake.then(Script::Fail(400, "InvalidParameter"));
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "ask", "text": "hi"}),
        )
        .await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["vendor_code"], "InvalidParameter");
}

#[tokio::test]
async fn transient_failures_are_retried_only_where_a_repeat_is_harmless() {
    let f = family().await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Speaking is never repeated: one call, one 502.
    f.fake.then(Script::Fail(500, "InternalError"));
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "speak", "text": "hi"}),
        )
        .await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(f.fake.calls_of("UpdateVoiceChat").len(), 1);

    // Interrupting is: a 429 then success.
    f.fake.then(Script::Fail(429, "FlowLimitExceeded"));
    let res = f
        .post(
            "/api/device/voice-chat/update/",
            &json!({"task_id": task, "command": "interrupt"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(f.fake.calls_of("UpdateVoiceChat").len(), 3);

    // Stopping is, through a non-JSON gateway answer too.
    f.fake.then(Script::Garbage(502));
    f.fake.then(Script::Fail(503, "ServiceUnavailableTemp"));
    let res = f
        .post("/api/device/voice-chat/stop/", &json!({"task_id": task}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        f.fake.calls_of("StopVoiceChat").len(),
        2,
        "garbage is not recorded as a call"
    );
    assert!(f.fake.running().is_empty());
}

#[tokio::test]
async fn a_start_that_times_out_is_left_for_the_sweeper_to_stop() {
    let f = family().await;
    // Both attempts (one retry) outlast the 1.5 s timeout.
    f.fake.then(Script::Delay(Duration::from_secs(3)));
    f.fake.then(Script::Delay(Duration::from_secs(3)));
    let res = f.post("/api/device/voice-chat/start/", &json!({})).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "volcengine");
    // The agent may be running: it stays recorded, as starting.
    let sessions = f.app.state.db.all_sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    // Too young to be stopped while a start could still be in flight...
    let report = lty_server::app::voice_chat::sweep_once(&f.app.state).await;
    assert!(report.stopped.is_empty());
    // ...but once it has aged, it is.
    let task = &sessions[0].task_id;
    let mut aged = sessions[0].clone();
    aged.started_at -= chrono::Duration::minutes(5);
    f.app.state.db.delete_session(task).await.unwrap();
    f.app.state.db.insert_session(&aged).await.unwrap();
    let report = lty_server::app::voice_chat::sweep_once(&f.app.state).await;
    assert_eq!(report.stopped.len(), 1);
    assert!(f.fake.running().is_empty());
    assert!(f.app.state.db.all_sessions().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sweeper_stops_an_agent_whose_family_went_offline() {
    let f = family_with(|c| c.volcengine.voice_chat_offline_grace_secs = 0).await;
    f.mark_device_online(true).await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let report = lty_server::app::voice_chat::sweep_once(&f.app.state).await;
    assert!(report.stopped.is_empty(), "a device is online");
    assert_eq!(f.fake.running().len(), 1);

    f.mark_device_online(false).await;
    let report = lty_server::app::voice_chat::sweep_once(&f.app.state).await;
    assert_eq!(report.stopped.len(), 1);
    assert_eq!(report.stopped[0].0, task);
    assert!(f.fake.running().is_empty());
    assert_eq!(f.app.state.cache.get(&f.key(&task)).await.unwrap(), None);
}

#[tokio::test]
async fn the_sweeper_waits_out_the_offline_grace_period() {
    let f = family_with(|c| c.volcengine.voice_chat_offline_grace_secs = 600).await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // First sight of an offline family only starts the clock.
    assert!(
        lty_server::app::voice_chat::sweep_once(&f.app.state)
            .await
            .stopped
            .is_empty()
    );
    let session = f.app.state.db.session(&task).await.unwrap().unwrap();
    let since = session.offline_since.expect("offline since the sweep");
    // Back online clears it; offline for longer than the grace stops it.
    f.mark_device_online(true).await;
    lty_server::app::voice_chat::sweep_once(&f.app.state).await;
    let session = f.app.state.db.session(&task).await.unwrap().unwrap();
    assert_eq!(session.offline_since, None);
    f.mark_device_online(false).await;
    f.app
        .state
        .db
        .set_session_offline_since(&task, Some(since - chrono::Duration::minutes(11)))
        .await
        .unwrap();
    let report = lty_server::app::voice_chat::sweep_once(&f.app.state).await;
    assert_eq!(report.stopped.len(), 1);
    assert!(f.fake.running().is_empty());
}

#[tokio::test]
async fn the_background_sweeper_stops_an_abandoned_session_when_its_key_expires() {
    let f = family_with(|c| {
        c.volcengine.voice_chat_max_seconds = 1;
        c.volcengine.voice_chat_sweep_secs = 1;
    })
    .await;
    f.mark_device_online(true).await;
    let task = f.start(&json!({})).await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f.fake.running().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stops = f.fake.calls_of("StopVoiceChat");
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].body["TaskId"], task);
    // The row goes once the vendor has answered: wait for the sweep to end.
    while !f.app.state.db.all_sessions().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stopped session is still recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- the fake itself -------------------------------------------------------

/// Signs and sends a request by hand, so the fake's checks can be probed.
async fn send_signed(
    fake: &FakeVolcengine,
    sign_host: &str,
    sk: &str,
    region: &str,
    at: u64,
    body: &[u8],
    sent_body: &[u8],
) -> Value {
    let headers = [("Host", sign_host), ("Content-Type", "application/json")];
    let query = [("Action", "StopVoiceChat"), ("Version", "2024-12-01")];
    let request = Request {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body,
    };
    let credentials = Credentials {
        access_key_id: AK,
        secret_access_key: sk,
        session_token: None,
    };
    let signed = sign_request(&request, &credentials, region, RTC_SERVICE, at);
    let mut req = reqwest::Client::new()
        .post(format!(
            "{}/?{}",
            fake.base_url(),
            signed.canonical_query_string
        ))
        .header("content-type", "application/json")
        .body(sent_body.to_vec());
    for (name, value) in signed.headers() {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    let json: Value = res.json().await.unwrap();
    json["ResponseMetadata"]["Error"]["Code"].clone()
}

#[tokio::test]
async fn the_fake_refuses_what_volcengine_refuses() {
    let fake = FakeVolcengine::start().await;
    let host = fake.addr().to_string();
    let body = format!(r#"{{"AppId":"{APP_ID}","RoomId":"room_42","TaskId":"t"}}"#);
    let body = body.as_bytes();
    let now = unix_now();
    let send = |h: &str, sk: &str, region: &str, at: u64, sent: &[u8]| {
        let (h, sk, region, sent) = (
            h.to_owned(),
            sk.to_owned(),
            region.to_owned(),
            sent.to_vec(),
        );
        let fake = &fake;
        async move { send_signed(fake, &h, &sk, &region, at, body, &sent).await }
    };
    assert_eq!(send(&host, SK, RTC_REGION, now, body).await, Value::Null);
    assert_eq!(
        send(&host, "wrong", RTC_REGION, now, body).await,
        "SignatureDoesNotMatch"
    );
    let tampered = [body, b" "].concat();
    assert_eq!(
        send(&host, SK, RTC_REGION, now, &tampered).await,
        "SignatureDoesNotMatch"
    );
    assert_eq!(
        send("127.0.0.1:1", SK, RTC_REGION, now, body).await,
        "SignatureDoesNotMatch"
    );
    assert_eq!(
        send(&host, SK, RTC_REGION, now - 1000, body).await,
        "InvalidTimestamp"
    );
    assert_eq!(
        send(&host, SK, "cn-beijing", now, body).await,
        "InvalidCredential"
    );
    let res = reqwest::Client::new()
        .post(format!(
            "{}/?Action=StopVoiceChat&Version=2024-12-01",
            fake.base_url()
        ))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        fake.rejected(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "InvalidTimestamp",
            "InvalidCredential",
            "MissingAuthenticationToken"
        ]
    );
}

#[tokio::test]
async fn the_client_reads_unknown_actions_and_status_200_errors_as_errors() {
    let fake = FakeVolcengine::start().await;
    let client = OpenApiClient::new(ClientConfig::new(fake.base_url(), AK, SK)).unwrap();
    let err = client
        .call("ListRooms", "2024-12-01", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.vendor_code(), Some("InvalidActionOrVersion"));
    fake.errors_in_200(true);
    let err = client
        .call("StopVoiceChat", "2020-01-01", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.vendor_code(), Some("InvalidActionOrVersion"));
    assert!(matches!(
        err,
        lty_vendors::volcengine::openapi::OpenApiError::Vendor { status: 200, .. }
    ));
    let ok = client
        .call(
            "StopVoiceChat",
            "2024-12-01",
            &json!({"AppId": APP_ID, "RoomId": "r", "TaskId": "t"}),
        )
        .await
        .unwrap();
    assert_eq!(ok.result, "ok");
}

// ---- callbacks -------------------------------------------------------------

const CONV: &str = r#"{"TaskId":"0d8f5b7e9c2a4e61b3f4a5c6d7e8f901","UserID":"bot_42","RoundID":3,"EventTime":1741064767123,"Stage":{"Code":2,"Description":"thinking"}}"#;
const SUBV: &str = r#"{"type":"subtitle","data":[{"text":"你好","language":"zh","userId":"42","sequence":7,"definite":true,"paragraph":true},{"text":"你好呀","userId":"bot_42","sequence":8,"definite":false,"paragraph":false}]}"#;

async fn callback_app() -> TestApp {
    spawn_app_with(|c| {
        c.volcengine.callback_secret = Some(Secret::new(SECRET));
    })
    .await
}

async fn post_callback(app: &TestApp, query: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/device/volcengine/callback/{query}")))
        .header("content-type", "text/plain")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn envelope(magic: Magic, payload: &str, signature: &str) -> String {
    json!({"message": encode_message(magic, payload.as_bytes()), "signature": signature})
        .to_string()
}

async fn next(sub: &mut lty_core::ports::Subscription) -> Value {
    let raw = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("no message within 5 s")
        .expect("subscription ended");
    serde_json::from_slice(&raw).unwrap()
}

#[tokio::test]
async fn the_worked_callback_example_reaches_the_family_as_conversation_status() {
    let app = callback_app().await;
    let mut sub = app.state.pubsub.subscribe("device_42", 16);
    // Spec §4.6, byte for byte.
    let body = r#"{"message":"Y29udgAAAJF7IlRhc2tJZCI6IjBkOGY1YjdlOWMyYTRlNjFiM2Y0YTVjNmQ3ZThmOTAxIiwiVXNlcklEIjoiYm90XzQyIiwiUm91bmRJRCI6MywiRXZlbnRUaW1lIjoxNzQxMDY0NzY3MTIzLCJTdGFnZSI6eyJDb2RlIjoyLCJEZXNjcmlwdGlvbiI6InRoaW5raW5nIn19","signature":"cb-secret-example-0001"}"#;
    let res = post_callback(
        &app,
        "?user_id=42&task_id=0d8f5b7e9c2a4e61b3f4a5c6d7e8f901",
        body,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"forwarded": 1}));
    let msg = next(&mut sub).await;
    assert_eq!(
        msg,
        json!({
            "type": "conversation_status", "room_id": "room_42",
            "task_id": "0d8f5b7e9c2a4e61b3f4a5c6d7e8f901", "user_id": "bot_42",
            "round_id": 3, "stage": "thinking", "stage_code": 2, "description": "thinking",
            "event_time": 1741064767123_i64,
            "data": serde_json::from_str::<Value>(CONV).unwrap(),
        })
    );
}

#[tokio::test]
async fn subtitles_reach_a_connected_device_socket_one_message_per_piece() {
    let app = callback_app().await;
    let uid = app.user_with_device("family", MAC).await;
    let token = app.mac_login(MAC).await;
    let mut socket = app.ws_connect(&token, Some(MAC)).await;
    app.wait_for_sockets(uid, 1).await;
    let payload = SUBV
        .replace("bot_42", &format!("bot_{uid}"))
        .replace("\"42\"", &format!("\"{uid}\""));
    let res = post_callback(
        &app,
        &format!("?user_id={uid}"),
        &envelope(Magic::Subv, &payload, SECRET),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"forwarded": 2}));
    let child = next_json(&mut socket).await;
    assert_eq!(child["type"], "conversation_subtitle");
    assert_eq!(child["room_id"], format!("room_{uid}"));
    assert_eq!(child["role"], "user");
    assert_eq!(child["text"], "你好");
    assert_eq!(child["sequence"], 7);
    assert_eq!(child["definite"], true);
    assert_eq!(child["language"], "zh");
    assert_eq!(child["data"]["userId"], uid.to_string());
    let agent = next_json(&mut socket).await;
    assert_eq!(agent["role"], "assistant");
    assert_eq!(agent["text"], "你好呀");
    assert_eq!(agent["paragraph"], false);
}

#[tokio::test]
async fn a_callback_without_user_id_is_routed_by_its_task() {
    let app = callback_app().await;
    let task = "0d8f5b7e9c2a4e61b3f4a5c6d7e8f901";
    app.state
        .cache
        .set(
            &format!("rtc_task:{task}"),
            "77",
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let mut sub = app.state.pubsub.subscribe("device_77", 16);
    let res = post_callback(&app, "", &envelope(Magic::Conv, CONV, SECRET)).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"forwarded": 1}));
    assert_eq!(next(&mut sub).await["room_id"], "room_77");

    // Subtitles name the agent `bot_{n}`.
    let mut sub42 = app.state.pubsub.subscribe("device_42", 16);
    let res = post_callback(&app, "", &envelope(Magic::Subv, SUBV, SECRET)).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"forwarded": 2}));
    assert_eq!(next(&mut sub42).await["role"], "user");

    // Nothing to route by: accepted, dropped.
    let unknown = CONV.replace(
        "0d8f5b7e9c2a4e61b3f4a5c6d7e8f901",
        "ffffffffffffffffffffffffffffffff",
    );
    let res = post_callback(&app, "", &envelope(Magic::Conv, &unknown, SECRET)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"forwarded": 0}));
}

#[tokio::test]
async fn callbacks_with_a_wrong_or_missing_signature_are_401_and_deliver_nothing() {
    let app = callback_app().await;
    let mut sub = app.state.pubsub.subscribe("device_42", 16);
    let message = encode_message(Magic::Conv, CONV.as_bytes());
    for body in [
        envelope(Magic::Conv, CONV, "cb-secret-example-0002"),
        envelope(Magic::Conv, CONV, ""),
        envelope(Magic::Conv, CONV, &format!("{SECRET} ")),
        json!({"message": message}).to_string(),
        json!({"message": message, "signature": 1}).to_string(),
        "not json".to_owned(),
        "[]".to_owned(),
    ] {
        let res = post_callback(&app, "?user_id=42", &body).await;
        assert_error(res, 401, "invalid_signature").await;
    }
    // The first message the family gets is the next good one.
    let res = post_callback(&app, "?user_id=42", &envelope(Magic::Conv, CONV, SECRET)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(next(&mut sub).await["round_id"], 3);
}

#[tokio::test]
async fn malformed_callback_frames_are_400_and_deliver_nothing() {
    let app = callback_app().await;
    let mut sub = app.state.pubsub.subscribe("device_42", 16);
    use base64::Engine as _;
    let b64 = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
    let good = lty_vendors::volcengine::callback::encode_frame(Magic::Conv, CONV.as_bytes());
    let mut wrong_length = good.clone();
    wrong_length.pop();
    let tool = [b"tool".as_slice(), &good[4..]].concat();
    let not_json = lty_vendors::volcengine::callback::encode_frame(Magic::Subv, b"hello");
    let no_stage =
        lty_vendors::volcengine::callback::encode_frame(Magic::Conv, b"{\"TaskId\":\"t\"}");
    for message in [
        json!("not base64!"),
        json!(b64(&good[..6])),
        json!(b64(&wrong_length)),
        json!(b64(&tool)),
        json!(b64(&not_json)),
        json!(b64(&no_stage)),
        json!(42),
    ] {
        let body = json!({"message": message, "signature": SECRET}).to_string();
        let res = post_callback(&app, "?user_id=42", &body).await;
        assert_error(res, 400, "invalid_frame").await;
    }
    let res = post_callback(&app, "?user_id=42", &envelope(Magic::Conv, CONV, SECRET)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(next(&mut sub).await["type"], "conversation_status");
}

#[tokio::test]
async fn callbacks_answer_503_without_a_secret_and_413_when_too_large() {
    let app = spawn_app_with(|_| {}).await;
    let res = post_callback(&app, "?user_id=42", &envelope(Magic::Conv, CONV, SECRET)).await;
    assert_error(res, 503, "provider_not_configured").await;

    let app = callback_app().await;
    let huge = json!({"message": "A".repeat(300 * 1024), "signature": SECRET}).to_string();
    let res = post_callback(&app, "?user_id=42", &huge).await;
    assert_error(res, 413, "payload_too_large").await;
}
