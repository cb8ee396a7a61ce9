//! `sort` and `order` of the admin listings (whitelisted keys, ties by id,
//! kept across pages, unknown keys refused), the devices' firmware filter,
//! and the stats' rolling last 24 hours in hourly buckets.

use chrono::{DateTime, Duration, DurationRound, Utc};
use lty_core::MacAddress;
use lty_core::admin::AdminRole;
use lty_core::card::{CardKind, NewBatch};
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use lty_core::xiaozhi::XiaozhiSighting;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, spawn_app};
use crate::subscriptions::admin_token;

async fn get(app: &TestApp, admin: &str, path: &str) -> Value {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

fn column(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| match &v[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

async fn user(app: &TestApp, username: &str, nickname: Option<&str>) -> i64 {
    app.state
        .db
        .create_user(lty_core::user::NewUser {
            username: username.into(),
            nickname: nickname.map(Into::into),
            phone: None,
        })
        .await
        .unwrap()
        .id
}

/// A xiaozhi device as its OTA check records it.
pub async fn xiaozhi_device(app: &TestApp, mac: &str, board: &str, firmware: &str) {
    app.state
        .db
        .record_xiaozhi_check(
            XiaozhiSighting {
                mac_address: MacAddress::parse(mac).unwrap(),
                client_id: None,
                board_type: Some("esp32s3".into()),
                board_name: Some(board.into()),
                firmware_version: Some(firmware.into()),
                serial_number: None,
            },
            "0000",
            Utc::now(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn users_sort_by_a_whitelisted_column_with_ties_by_id_across_pages() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    // Two nicknames tie: the ids decide, in the same direction.
    let a = user(&app, "kid_a", Some("same")).await;
    let b = user(&app, "kid_b", Some("same")).await;
    let c = user(&app, "kid_c", Some("zebra")).await;
    let d = user(&app, "kid_d", None).await;

    let list = get(&app, &admin, "/api/v1/admin/users/?q=kid_").await;
    assert_eq!(
        column(&list["users"], "id"),
        [a, b, c, d].map(|i| i.to_string())
    );
    let list = get(
        &app,
        &admin,
        "/api/v1/admin/users/?q=kid_&sort=username&order=desc",
    )
    .await;
    assert_eq!(
        column(&list["users"], "username"),
        ["kid_d", "kid_c", "kid_b", "kid_a"]
    );
    // Empty values first ascending, last descending; ties by id.
    let asc = get(
        &app,
        &admin,
        "/api/v1/admin/users/?q=kid_&sort=nickname&order=asc",
    )
    .await;
    assert_eq!(
        column(&asc["users"], "id"),
        [d, a, b, c].map(|i| i.to_string())
    );
    let desc = get(
        &app,
        &admin,
        "/api/v1/admin/users/?q=kid_&sort=nickname&order=desc",
    )
    .await;
    assert_eq!(
        column(&desc["users"], "id"),
        [c, b, a, d].map(|i| i.to_string())
    );
    // Pages continue the order.
    let mut seen = Vec::new();
    for page in 1..=2 {
        let list = get(
            &app,
            &admin,
            &format!(
                "/api/v1/admin/users/?q=kid_&sort=nickname&order=desc&page_size=2&page={page}"
            ),
        )
        .await;
        assert_eq!(list["total"], 4);
        seen.extend(column(&list["users"], "id"));
    }
    assert_eq!(seen, [c, b, a, d].map(|i| i.to_string()));
}

#[tokio::test]
async fn unknown_sort_keys_and_orders_are_400_with_the_allowed_keys() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    for path in [
        "/api/v1/admin/users/?sort=password",
        "/api/v1/admin/users/?sort=id%3B%20drop%20table%20users",
        "/api/v1/admin/devices/?sort=secret",
        "/api/v1/admin/audit/?sort=details",
        "/api/v1/admin/plans/?sort=personas",
        "/api/v1/admin/personas/?sort=system_prompt",
        "/api/v1/admin/achievements/?sort=rule",
        "/api/v1/admin/voice-sessions/?sort=room",
        "/api/v1/admin/firmware/?sort=sha256",
        "/api/v1/admin/card-batches/?sort=payload",
        // Neither an empty key nor a padded one is a key (Schemathesis
        // found `?sort=` answered as if absent).
        "/api/v1/admin/plans/?order=asc&sort=",
        "/api/v1/admin/users/?sort=%20id",
    ] {
        let body = refused_field(&app, &admin, path, "sort").await;
        assert!(
            body["message"].as_str().unwrap().contains("must be one of"),
            "{path}: {body}"
        );
    }
    for path in [
        "/api/v1/admin/users/?sort=id&order=sideways",
        "/api/v1/admin/users/?sort=id&order=",
        "/api/v1/admin/devices/?order=DESC",
    ] {
        refused_field(&app, &admin, path, "order").await;
    }
}

/// `GET path` as `admin`: a `400 validation_error` naming `field`; its body.
async fn refused_field(app: &TestApp, admin: &str, path: &str, field: &str) -> Value {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 400, "validation_error").await;
    assert_eq!(body["details"]["field"], field, "{path}: {body}");
    body
}

#[tokio::test]
async fn every_admin_listing_sorts_by_its_columns() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    // Card batches: by count.
    for count in [3, 1, 2] {
        app.state
            .db
            .create_batch(NewBatch {
                kind: CardKind::Content,
                count,
                content_ref: Some("story:1".into()),
                payload: None,
                plan_id: None,
                days: None,
                expires_at: None,
                notes: None,
                created_by: None,
            })
            .await
            .unwrap();
    }
    let list = get(&app, &admin, "/api/v1/admin/card-batches/?sort=count").await;
    assert_eq!(column(&list["batches"], "count"), ["1", "2", "3"]);
    let list = get(&app, &admin, "/api/v1/admin/card-batches/").await;
    let ids = column(&list["batches"], "id");
    let mut newest_first = ids.clone();
    newest_first.sort_by_key(|i| std::cmp::Reverse(i.parse::<i64>().unwrap()));
    assert_eq!(ids, newest_first, "newest first without a sort");

    // Plans: by price, descending.
    for (code, price) in [("basic", 990), ("gold", 4990), ("silver", 1990)] {
        let res = app
            .client
            .post(app.url("/api/v1/admin/plans/"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "code": code, "name": code, "daily_ai_messages": 10,
                "daily_voice_minutes": 10, "personas": [], "price_cents": price,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let list = get(&app, &admin, "/api/v1/admin/plans/?sort=price&order=desc").await;
    let codes: Vec<String> = list["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .filter(|c| ["basic", "gold", "silver"].contains(&c.as_str()))
        .collect();
    assert_eq!(codes, ["gold", "silver", "basic"]);

    // Achievements: by threshold.
    for (code, threshold) in [("ten", 10), ("one", 1), ("five", 5)] {
        app.state
            .db
            .create_achievement(lty_store::achievements::NewAchievement {
                code: code.into(),
                name: code.into(),
                description: String::new(),
                icon: None,
                event_kind: "card_scanned".into(),
                threshold,
                rule: lty_core::achievement::AchievementRule::Total,
            })
            .await
            .unwrap();
    }
    let list = get(&app, &admin, "/api/v1/admin/achievements/?sort=threshold").await;
    let codes: Vec<String> = column(&list["achievements"], "code")
        .into_iter()
        .filter(|c| ["ten", "one", "five"].contains(&c.as_str()))
        .collect();
    assert_eq!(codes, ["one", "five", "ten"]);
    let thresholds: Vec<i64> = list["achievements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["threshold"].as_i64().unwrap())
        .collect();
    assert!(
        thresholds.windows(2).all(|w| w[0] <= w[1]),
        "{thresholds:?}"
    );

    // Personas: by slug, descending.
    for slug in ["owl", "bear"] {
        app.state
            .db
            .create_persona(lty_store::admin_queries::NewPersona {
                slug: slug.into(),
                name: slug.into(),
                system_prompt: "You are kind.".into(),
                greeting: String::new(),
                voice_id: None,
                age_min: 3,
                age_max: 12,
            })
            .await
            .unwrap();
    }
    let list = get(&app, &admin, "/api/v1/admin/personas/?sort=slug&order=desc").await;
    let slugs = column(&list["personas"], "slug");
    let mut sorted = slugs.clone();
    sorted.sort();
    sorted.reverse();
    assert!(slugs.len() >= 2, "{slugs:?}");
    assert_eq!(slugs, sorted);

    // Voice sessions: by user, descending; oldest first without a sort.
    let now = Utc::now();
    for (task, user_id, age) in [("a", 7, 3), ("b", 9, 1), ("c", 8, 2)] {
        app.state
            .db
            .insert_session(&VoiceChatSession {
                task_id: task.repeat(32),
                user_id,
                room_id: format!("room_{user_id}"),
                agent_user_id: format!("bot_{user_id}"),
                status: SessionStatus::Running,
                started_at: now - Duration::minutes(age),
                offline_since: None,
                conversation_id: None,
            })
            .await
            .unwrap();
    }
    let list = get(
        &app,
        &admin,
        "/api/v1/admin/voice-sessions/?sort=user&order=desc",
    )
    .await;
    assert_eq!(column(&list["sessions"], "user_id"), ["9", "8", "7"]);
    let list = get(&app, &admin, "/api/v1/admin/voice-sessions/").await;
    assert_eq!(column(&list["sessions"], "user_id"), ["7", "8", "9"]);

    // Firmware: by version; the audit log: by action.
    for (board, version) in [("b1", "1.2.0"), ("b2", "1.0.0"), ("b3", "1.1.0")] {
        app.state
            .db
            .create_firmware_release(
                lty_core::xiaozhi::NewFirmwareRelease {
                    board: board.into(),
                    version: version.into(),
                    blob_key: format!("firmware/{board}.bin"),
                    size: 1024,
                    sha256: "0".repeat(64),
                    notes: None,
                    created_by: None,
                },
                now,
            )
            .await
            .unwrap();
    }
    let list = get(&app, &admin, "/api/v1/admin/firmware/?sort=version").await;
    assert_eq!(
        column(&list["releases"], "version"),
        ["1.0.0", "1.1.0", "1.2.0"]
    );
    let list = get(&app, &admin, "/api/v1/admin/audit/?sort=action").await;
    let actions = column(&list["entries"], "action");
    let mut sorted = actions.clone();
    sorted.sort();
    assert!(actions.len() >= 3, "{actions:?}");
    assert_eq!(actions, sorted);
}

#[tokio::test]
async fn devices_filter_by_reported_firmware_with_kind_and_sort_by_it() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    app.user_with_device("family_a", "02:00:00:00:0f:01").await;
    app.user_with_device("family_b", "02:00:00:00:0f:02").await;
    app.user_with_device("family_c", "02:00:00:00:0f:03").await;
    xiaozhi_device(&app, "02:00:00:00:0f:01", "board-z", "1.6.2").await;
    xiaozhi_device(&app, "02:00:00:00:0f:02", "board-a", "1.7.0").await;
    // Not bound: listed as a xiaozhi device only.
    xiaozhi_device(&app, "02:00:00:00:0f:04", "board-m", "1.6.2").await;

    let macs = |v: &Value| column(&v["devices"], "mac_address");
    let all = get(&app, &admin, "/api/v1/admin/devices/?firmware=1.6.2").await;
    assert_eq!(macs(&all), ["02:00:00:00:0f:01"], "bound devices on 1.6.2");
    let xz = get(
        &app,
        &admin,
        "/api/v1/admin/devices/?kind=xiaozhi&firmware=1.6.2&sort=mac",
    )
    .await;
    assert_eq!(macs(&xz), ["02:00:00:00:0f:01", "02:00:00:00:0f:04"]);
    assert_eq!(xz["total"], 2);
    let none = get(&app, &admin, "/api/v1/admin/devices/?firmware=9.9.9").await;
    assert_eq!(none["total"], 0);

    // Bound devices by firmware: the one without a report first, ascending.
    let by_fw = get(&app, &admin, "/api/v1/admin/devices/?sort=firmware").await;
    assert_eq!(
        macs(&by_fw),
        [
            "02:00:00:00:0f:03",
            "02:00:00:00:0f:01",
            "02:00:00:00:0f:02"
        ]
    );
    let by_board = get(
        &app,
        &admin,
        "/api/v1/admin/devices/?kind=xiaozhi&sort=board&order=desc",
    )
    .await;
    assert_eq!(
        macs(&by_board),
        [
            "02:00:00:00:0f:01",
            "02:00:00:00:0f:04",
            "02:00:00:00:0f:02"
        ]
    );
    let res = app
        .client
        .get(app.url("/api/v1/admin/devices/?firmware=1.6.2%00"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
}

/// Sets the creation time of every chat message with `content`.
pub async fn message_at(app: &TestApp, content: &str, at: DateTime<Utc>) {
    use lty_store::entity::ai_message;
    ai_message::Entity::update_many()
        .col_expr(ai_message::Column::CreatedAt, Expr::value(at))
        .filter(ai_message::Column::Content.eq(content))
        .exec(app.state.db.conn())
        .await
        .unwrap();
}

/// A conversation of `uid` with one child message per text.
pub async fn messages(app: &TestApp, uid: i64, texts: &[&str]) {
    let conv = app
        .state
        .db
        .create_conversation(uid, None, "t")
        .await
        .unwrap();
    for text in texts {
        app.state
            .db
            .add_message(lty_core::chat::NewMessage {
                conversation_id: conv.id,
                role: lty_core::chat::Role::User,
                content: (*text).into(),
                incomplete: false,
                moderated: false,
                usage: None,
            })
            .await
            .unwrap();
    }
}

/// Messages and voice minutes at the edges of the rolling 24 hours that
/// start with the clock hour `first`: its first second (counted), the
/// second before it (not), and now (the last hour).
pub async fn edge_activity(app: &TestApp, uid: i64, first: DateTime<Utc>) {
    messages(app, uid, &["edge-in", "edge-out", "edge-now", "edge-old"]).await;
    message_at(app, "edge-in", first).await;
    message_at(app, "edge-out", first - Duration::seconds(1)).await;
    message_at(app, "edge-old", first - Duration::hours(30)).await;
    let voice = lty_core::achievement::VOICE_MINUTES;
    app.state
        .db
        .add_progress(uid, voice, 4, first + Duration::minutes(59))
        .await
        .unwrap();
    app.state
        .db
        .add_progress(uid, voice, 6, first - Duration::seconds(1))
        .await
        .unwrap();
    app.state
        .db
        .add_progress(uid, voice, 2, Utc::now())
        .await
        .unwrap();
}

/// The first clock hour of the rolling 24 hours now.
pub fn first_hour() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(23)
}

#[tokio::test]
async fn stats_per_hour_are_the_rolling_last_24_clock_hours() {
    // When the clock passes an hour while an attempt runs, the buckets move
    // under its edges: that attempt says so and a fresh one starts.
    for _ in 0..3 {
        if rolling_hours_once().await {
            return;
        }
    }
    panic!("the clock passed an hour during every attempt");
}

async fn rolling_hours_once() -> bool {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let uid = user(&app, "night_owl", None).await;
    let first = first_hour();
    edge_activity(&app, uid, first).await;
    let stats = get(&app, &admin, "/api/v1/admin/stats/?days=1").await;
    if first_hour() != first {
        return false;
    }
    let hours = stats["per_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let hour = |i: usize| {
        hours[i]["hour"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(hour(0), first);
    assert_eq!(hour(23), first + Duration::hours(23));
    assert_eq!(hours[0]["user_messages"], 1, "the first second counts");
    assert_eq!(hours[0]["voice_minutes"], 4);
    assert_eq!(hours[23]["user_messages"], 1, "now is in the last hour");
    assert_eq!(hours[23]["voice_minutes"], 2);
    let total: u64 = hours
        .iter()
        .map(|h| h["user_messages"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2, "the second before the window is not counted");
    let minutes: i64 = hours
        .iter()
        .map(|h| h["voice_minutes"].as_i64().unwrap())
        .sum();
    assert_eq!(minutes, 6);
    true
}
