//! Achievements: definitions with progress, incremental totals, one-time
//! unlocks pushed to the family's sockets, and card scans as events.

use lty_core::achievement::{CARD_SCANNED, CHAT_MESSAGE};
use lty_core::admin::AdminRole;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_silent, next_json, spawn_app};
use crate::subscriptions::admin_token;

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn find<'a>(list: &'a Value, code: &str) -> &'a Value {
    list["achievements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {list}"))
}

#[tokio::test]
async fn achievements_list_the_starter_set_with_zero_progress() {
    let app = spawn_app().await;
    app.user_with_device("ach_new", "02:00:00:00:0c:01").await;
    let token = app.mac_login("02:00:00:00:0c:01").await;
    let all = get(&app, &token, "/api/achievement/").await;
    let collector = find(&all, "card_collector");
    assert_eq!(collector["event_kind"], "card_scanned");
    assert_eq!(collector["threshold"], 10);
    assert_eq!(collector["progress"], 0);
    assert_eq!(collector["unlocked"], false);
    let mine = get(&app, &token, "/api/achievement/mine/").await;
    assert_eq!(mine["achievements"], json!([]));
    assert_error(app.get("/api/achievement/").await, 401, "unauthenticated").await;
}

#[tokio::test]
async fn progress_accumulates_and_an_unlock_is_pushed_exactly_once() {
    let app = spawn_app().await;
    let user = app.user_with_device("ach_chat", "02:00:00:00:0c:02").await;
    let token = app.mac_login("02:00:00:00:0c:02").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;

    let unlocked = lty_server::app::achievements::record(&app.state, user, CHAT_MESSAGE, 1)
        .await
        .unwrap();
    assert_eq!(unlocked.len(), 1);
    let push = next_json(&mut socket).await;
    assert_eq!(push["type"], "achievement_unlocked");
    assert_eq!(push["achievement"]["code"], "first_chat");

    let unlocked = lty_server::app::achievements::record(&app.state, user, CHAT_MESSAGE, 98)
        .await
        .unwrap();
    assert!(unlocked.is_empty());
    assert_silent(&mut socket, 200).await;
    let all = get(&app, &token, "/api/achievement/").await;
    assert_eq!(find(&all, "chatterbox")["progress"], 99);
    assert_eq!(find(&all, "first_chat")["unlocked"], true);

    let unlocked = lty_server::app::achievements::record(&app.state, user, CHAT_MESSAGE, 5)
        .await
        .unwrap();
    assert_eq!(unlocked.len(), 1);
    assert_eq!(
        next_json(&mut socket).await["achievement"]["code"],
        "chatterbox"
    );
    let all = get(&app, &token, "/api/achievement/").await;
    assert_eq!(find(&all, "chatterbox")["progress"], 100);

    // Past the threshold nothing unlocks again.
    lty_server::app::achievements::record(&app.state, user, CHAT_MESSAGE, 1)
        .await
        .unwrap();
    assert_silent(&mut socket, 200).await;
    let mine = get(&app, &token, "/api/achievement/mine/").await;
    let codes: Vec<&str> = mine["achievements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["first_chat", "chatterbox"]);
}

#[tokio::test]
async fn concurrent_events_unlock_an_achievement_once() {
    let app = spawn_app().await;
    let user = app.user_with_device("ach_race", "02:00:00:00:0c:03").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let state = app.state.clone();
        tasks.push(tokio::spawn(async move {
            lty_server::app::achievements::record(&state, user, CARD_SCANNED, 1)
                .await
                .unwrap()
                .len()
        }));
    }
    let mut unlocks = 0;
    for t in tasks {
        unlocks += t.await.unwrap();
    }
    // first_card (1) and card_collector (10), once each.
    assert_eq!(unlocks, 2);
    let totals = app.state.db.progress_of_user(user).await.unwrap();
    assert_eq!(totals[CARD_SCANNED], 10);
}

#[tokio::test]
async fn scanning_a_card_counts_towards_card_achievements() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/card-batches/"))
        .bearer_auth(&admin)
        .json(&json!({ "kind": "content", "count": 1, "content_ref": "song:7" }))
        .send()
        .await
        .unwrap();
    let batch = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let csv = app
        .client
        .get(app.url(&format!("/api/v1/admin/card-batches/{batch}/export.csv")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let code = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let user = app.user_with_device("ach_scan", "02:00:00:00:0c:04").await;
    let token = app.mac_login("02:00:00:00:0c:04").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    let res = app
        .client
        .post(app.url("/api/card/scan/"))
        .bearer_auth(&token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(next_json(&mut socket).await["type"], "card_content");
    let push = next_json(&mut socket).await;
    assert_eq!(push["type"], "achievement_unlocked");
    assert_eq!(push["achievement"]["code"], "first_card");
    let all = get(&app, &token, "/api/achievement/").await;
    assert_eq!(find(&all, "card_collector")["progress"], 1);
}

#[tokio::test]
async fn an_operator_defines_an_achievement_that_then_unlocks() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let body = json!({ "code": "night_owl", "name": "Night owl", "description": "3 bedtime stories",
        "icon": "owl.png", "event_kind": "bedtime_story", "threshold": 3 });
    let res = app
        .client
        .post(app.url("/api/v1/admin/achievements/"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .post(app.url("/api/v1/admin/achievements/"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(res, 409, "achievement_exists").await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/achievements/"))
        .bearer_auth(&admin)
        .json(&json!({ "code": "x", "name": "X", "event_kind": "Bad Kind", "threshold": 1 }))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;

    let user = app
        .user_with_device("ach_custom", "02:00:00:00:0c:05")
        .await;
    let unlocked = lty_server::app::achievements::record(&app.state, user, "bedtime_story", 3)
        .await
        .unwrap();
    assert_eq!(unlocked[0].code, "night_owl");
}

#[tokio::test]
async fn an_ai_chat_message_counts_toward_the_chat_achievements() {
    let fake = crate::fakes::openai::FakeOpenAi::start().await;
    let app = crate::helpers::spawn_app_with(|c| fake.configure(c)).await;
    let user = app.user_with_device("ach_ai", "02:00:00:00:0c:09").await;
    let token = app.mac_login("02:00:00:00:0c:09").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    let res = app
        .client
        .post(app.url("/api/ai/chat/"))
        .bearer_auth(&token)
        .json(&json!({ "message": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let push = next_json(&mut socket).await;
    assert_eq!(push["type"], "achievement_unlocked");
    assert_eq!(push["achievement"]["code"], "first_chat");
    let all = get(&app, &token, "/api/achievement/").await;
    assert_eq!(find(&all, "chatterbox")["progress"], 1);
    // The message also made today an active day: a one-day streak.
    assert_eq!(find(&all, "three_days")["rule"], "streak");
    assert_eq!(find(&all, "three_days")["progress"], 1);
}

#[tokio::test]
async fn days_active_in_a_row_count_once_a_day_and_a_gap_resets_the_streak() {
    use chrono::{Duration, Utc};
    use lty_server::app::achievements::record_at;

    let app = spawn_app().await;
    let user = app.user_with_device("ach_days", "02:00:00:00:0c:0a").await;
    let token = app.mac_login("02:00:00:00:0c:0a").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    let now = Utc::now();
    let codes = |list: Vec<lty_core::achievement::Achievement>| -> Vec<String> {
        list.into_iter().map(|a| a.code).collect()
    };

    let day1 = now - Duration::days(2);
    let first = record_at(&app.state, user, CHAT_MESSAGE, 1, day1)
        .await
        .unwrap();
    assert_eq!(codes(first), ["first_chat"]);
    next_json(&mut socket).await;
    // More events on the same day count nothing more.
    record_at(&app.state, user, CARD_SCANNED, 1, day1)
        .await
        .unwrap();
    record_at(&app.state, user, CHAT_MESSAGE, 1, day1)
        .await
        .unwrap();
    next_json(&mut socket).await; // first_card
    let second = record_at(&app.state, user, CARD_SCANNED, 1, now - Duration::days(1))
        .await
        .unwrap();
    assert!(second.is_empty());
    let third = record_at(&app.state, user, CHAT_MESSAGE, 1, now)
        .await
        .unwrap();
    assert_eq!(codes(third), ["three_days"]);
    let push = next_json(&mut socket).await;
    assert_eq!(push["achievement"]["code"], "three_days");
    let all = get(&app, &token, "/api/achievement/").await;
    assert_eq!(find(&all, "three_days")["progress"], 3);
    assert_eq!(find(&all, "three_days")["unlocked"], true);
    assert_eq!(find(&all, "week_streak")["progress"], 3);

    // A day without play resets the run.
    record_at(&app.state, user, CHAT_MESSAGE, 1, now + Duration::days(2))
        .await
        .unwrap();
    let all = get(&app, &token, "/api/achievement/").await;
    assert_eq!(find(&all, "week_streak")["progress"], 1);
    assert_silent(&mut socket, 200).await;
}

#[tokio::test]
async fn a_streak_rule_must_count_active_days() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let post = |body: Value| {
        app.client
            .post(app.url("/api/v1/admin/achievements/"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let res = post(json!({ "code": "chat_streak", "name": "Chatty week",
        "event_kind": "chat_message", "threshold": 7, "rule": "streak" }))
    .await
    .unwrap();
    assert_error(res, 400, "validation_error").await;
    let res = post(json!({ "code": "fortnight", "name": "Two weeks",
        "event_kind": "active_day", "threshold": 14, "rule": "streak" }))
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rule"], "streak");
}
