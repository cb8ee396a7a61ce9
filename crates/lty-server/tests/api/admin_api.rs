//! The admin API: the role policy on every admin route, audit entries for
//! writes and sensitive reads, disabling users (tokens, sockets, logins),
//! devices, conversations, voice sessions, the catalog, stats and
//! pagination.

use std::collections::BTreeSet;

use lty_core::MacAddress;
use lty_core::admin::AdminRole;
use lty_core::user::NewUser;
use lty_server::config::{Config, Secret};
use lty_server::http::admin::policy::POLICY;
use lty_server::ws::protocol::last_seen_key;
use serde_json::{Value, json};

use crate::fakes::volcengine::{AK, APP_ID, APP_KEY, FakeVolcengine, SK};
use crate::helpers::{
    TestApp, assert_error, next_close, next_json, spawn_app, spawn_app_with, wait_until,
};
use crate::subscriptions::admin_token;

const MAC: &str = "02:00:00:00:0a:01";

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let res = call(app, "GET", path, Some(token), None).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

async fn post_json(app: &TestApp, path: &str, token: &str, body: &Value) -> Value {
    let res = call(app, "POST", path, Some(token), Some(body)).await;
    let status = res.status();
    let out: Value = res.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {out}");
    out
}

/// Audit entries matching `query` (e.g. `action=user.`), newest first.
async fn audit(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let body = get_json(
        app,
        &format!("/api/v1/admin/audit/?page_size=100&{query}"),
        token,
    )
    .await;
    body["entries"].as_array().unwrap().clone()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

async fn phone_user(app: &TestApp, username: &str, phone: &str) -> i64 {
    app.state
        .db
        .create_user(NewUser {
            username: username.into(),
            nickname: Some("Family".into()),
            phone: Some(phone.into()),
        })
        .await
        .unwrap()
        .id
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "987654")
        .replace("{mac}", "02:00:00:00:99:99")
        .replace("{code}", "ABCD-EFGH-JKLM")
        .replace("{task_id}", "0123456789abcdef0123456789abcdef")
}

#[tokio::test]
async fn every_admin_route_has_a_policy_and_is_tagged_admin() {
    let doc = serde_json::to_value(lty_server::http::openapi()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/admin/") || path == "/api/v1/admin/login/" {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            assert!(
                POLICY.iter().any(|p| p.path == path && p.method == method),
                "{method} {path} has no entry in the admin policy"
            );
            documented.insert((method.clone(), path.clone()));
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert!(
                tags.contains(&"admin"),
                "{method} {path} is not tagged admin"
            );
        }
    }
    let unique: BTreeSet<(&str, &str)> = POLICY.iter().map(|p| (p.method, p.path)).collect();
    assert_eq!(
        unique.len(),
        POLICY.len(),
        "a route is listed twice in the policy"
    );
    for p in POLICY {
        assert!(
            documented.contains(&(p.method.to_owned(), p.path.to_owned())),
            "policy lists {} {} which is not a documented route",
            p.method,
            p.path
        );
    }
}

#[tokio::test]
async fn the_role_policy_applies_to_every_admin_route() {
    let app = spawn_app().await;
    app.user_with_device("family", MAC).await;
    let user = app.mac_login(MAC).await;
    let operator = admin_token(&app, AdminRole::Operator).await;
    let superadmin = admin_token(&app, AdminRole::Superadmin).await;
    let body = json!({});
    for p in POLICY.iter().filter(|p| p.path != "/api/v1/admin/logout/") {
        let path = concrete(p.path);
        let with_body = (p.method != "GET" && p.method != "DELETE").then_some(&body);
        let res = call(&app, p.method, &path, None, with_body).await;
        assert_eq!(res.status(), 401, "{} {path} without a token", p.method);
        let res = call(&app, p.method, &path, Some(&user), with_body).await;
        assert_eq!(res.status(), 401, "{} {path} with a user token", p.method);
        let res = call(&app, p.method, &path, Some(&operator), with_body).await;
        let status = res.status().as_u16();
        if p.role == AdminRole::Superadmin {
            let err = assert_error(res, 403, "forbidden").await;
            assert_eq!(err["details"]["required_role"], "superadmin");
        } else {
            assert!(
                ![401, 403].contains(&status) && status < 500,
                "{} {path} as operator: {status}",
                p.method
            );
        }
        let res = call(&app, p.method, &path, Some(&superadmin), with_body).await;
        let status = res.status().as_u16();
        assert!(
            ![401, 403].contains(&status) && status < 500,
            "{} {path} as superadmin: {status}",
            p.method
        );
    }
    // Routes of other modules follow the same table: plans need superadmin.
    let res = call(
        &app,
        "POST",
        "/api/v1/admin/plans/",
        Some(&operator),
        Some(&json!({"code": "x", "name": "X", "daily_ai_messages": 1,
                     "daily_voice_minutes": 1, "price_cents": 0})),
    )
    .await;
    assert_error(res, 403, "forbidden").await;
}

#[tokio::test]
async fn an_operator_finds_a_family_by_phone_and_sees_its_devices_and_usage() {
    let app = spawn_app().await;
    let uid = phone_user(&app, "fam_phone", "13812345678").await;
    phone_user(&app, "other", "13900000000").await;
    let mac = MacAddress::parse(MAC).unwrap();
    app.state.db.bind(uid, &mac, Some("bear")).await.unwrap();
    let today = chrono::Utc::now().format("%Y%m%d");
    app.state
        .cache
        .set(&format!("ai:quota:{uid}:{today}"), "7", None)
        .await
        .unwrap();
    let ops = admin_token(&app, AdminRole::Operator).await;

    let found = get_json(
        &app,
        "/api/v1/admin/users/?phone=%2B86%20138%201234%205678",
        &ops,
    )
    .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["users"][0]["id"], uid);
    assert_eq!(found["users"][0]["phone"], "13812345678");
    let by_text = get_json(&app, "/api/v1/admin/users/?q=1234", &ops).await;
    assert_eq!(by_text["total"], 1);
    let by_id = get_json(&app, &format!("/api/v1/admin/users/?q={uid}"), &ops).await;
    assert_eq!(by_id["users"][0]["id"], uid);
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/users/?phone=12",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 400, "validation_error").await;

    let detail = get_json(&app, &format!("/api/v1/admin/users/{uid}/"), &ops).await;
    assert_eq!(detail["user"]["username"], "fam_phone");
    assert_eq!(detail["devices"][0]["mac_address"], MAC);
    assert_eq!(detail["devices"][0]["name"], "bear");
    assert_eq!(detail["devices"][0]["online"], false);
    assert_eq!(detail["binding_history"].as_array().unwrap().len(), 1);
    assert_eq!(detail["subscription"]["plan"]["code"], "free");
    assert_eq!(detail["usage"]["chat_messages_today"], 7);
    assert!(detail["card_history"].as_array().unwrap().is_empty());
    let res = call(&app, "GET", "/api/v1/admin/users/999999/", Some(&ops), None).await;
    assert_error(res, 404, "user_not_found").await;

    let entries = audit(&app, &ops, "action=user.").await;
    assert_eq!(
        actions(&entries),
        ["user.view", "user.search", "user.search", "user.search"]
    );
    let view = &entries[0];
    assert_eq!(view["target_type"], "user");
    assert_eq!(view["target_id"], uid.to_string());
    assert!(view["admin_username"].as_str().unwrap().starts_with("ops_"));
    assert_eq!(view["ip"], "127.0.0.1");
    assert_eq!(view["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(entries[3]["details"]["phone"], "13812345678");
    assert_eq!(entries[3]["target_id"], Value::Null);
}

#[tokio::test]
async fn disabling_a_user_stops_its_tokens_and_sockets_and_refuses_logins() {
    let app = spawn_app_with(|c| {
        c.volcengine.app_id = Some(APP_ID.into());
        c.volcengine.app_key = Some(Secret::new(APP_KEY));
    })
    .await;
    let rtc_by_mac = || async {
        app.client
            .post(app.url(&format!(
                "/api/device/rtc-token/get_by_mac/?mac_address={MAC}"
            )))
            .header("content-length", "0")
            .send()
            .await
            .unwrap()
    };
    let uid = app.user_with_device("family", MAC).await;
    assert_eq!(rtc_by_mac().await.status(), 200);
    let token = app.mac_login(MAC).await;
    let mut socket = app.ws_connect(&token, Some(MAC)).await;
    let mut app_socket = app.ws_connect(&token, None).await;
    let ops = admin_token(&app, AdminRole::Operator).await;

    let out = post_json(
        &app,
        &format!("/api/v1/admin/users/{uid}/disable/"),
        &ops,
        &json!({"reason": "abuse report 42"}),
    )
    .await;
    assert_eq!(out["is_active"], false);
    assert_eq!(next_close(&mut socket).await, 4001);
    assert_eq!(next_close(&mut app_socket).await, 4001);

    // Every kind of user route refuses the token at once.
    for path in [
        "/api/user/profile/",
        "/api/card/history/",
        "/api/device/list/",
    ] {
        let res = call(&app, "GET", path, Some(&token), None).await;
        assert_error(res, 403, "forbidden").await;
    }
    // New logins and sockets are refused.
    let res = app
        .post_json("/api/user/mac-login/", &json!({ "mac_address": MAC }))
        .await;
    assert_error(res, 403, "forbidden").await;
    // The device gets no RTC token for the family's room either.
    assert_error(rtc_by_mac().await, 403, "forbidden").await;
    let url = format!("ws://{}/ws/device/token/{token}/", app.addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    let res = call(
        &app,
        "POST",
        &format!("/api/v1/admin/users/{uid}/disable/"),
        Some(&ops),
        Some(&json!({"reason": 5})),
    )
    .await;
    assert_error(res, 400, "invalid_body").await;

    // The body is optional, but one that is there must be JSON: white
    // space alone is not.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/admin/users/{uid}/enable/")))
        .bearer_auth(&ops)
        .header("content-type", "application/json")
        .body(" ")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "malformed_json").await;
    post_json(
        &app,
        &format!("/api/v1/admin/users/{uid}/enable/"),
        &ops,
        &json!({}),
    )
    .await;
    let again = app.mac_login(MAC).await;
    assert_eq!(rtc_by_mac().await.status(), 200);
    let res = call(&app, "GET", "/api/user/profile/", Some(&again), None).await;
    assert_eq!(res.status(), 200);
    let res = call(&app, "GET", "/api/user/profile/", Some(&token), None).await;
    assert_eq!(res.status(), 200, "old tokens work again once enabled");

    let entries = audit(&app, &ops, &format!("target_type=user&target_id={uid}")).await;
    assert_eq!(actions(&entries), ["user.enable", "user.disable"]);
    assert_eq!(entries[1]["details"]["reason"], "abuse report 42");
}

#[tokio::test]
async fn disabled_markers_lost_with_the_cache_can_be_restored_from_the_database() {
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    app.user_with_device("other", "02:00:00:00:0b:02").await;
    let token = app.mac_login(MAC).await;
    let ops = admin_token(&app, AdminRole::Operator).await;
    post_json(
        &app,
        &format!("/api/v1/admin/users/{uid}/disable/"),
        &ops,
        &json!({}),
    )
    .await;
    let key = lty_server::auth::disabled_key(uid);
    app.state.cache.delete(&key).await.unwrap();
    // Token-only routes rely on the marker...
    let res = call(&app, "GET", "/api/card/history/", Some(&token), None).await;
    assert_eq!(res.status(), 200, "without the marker the token works");
    // ...device logins read the account itself and still refuse.
    let res = app
        .post_json("/api/user/mac-login/", &json!({ "mac_address": MAC }))
        .await;
    assert_error(res, 403, "forbidden").await;
    let restored = lty_server::app::auth::restore_disabled_markers(&app.state)
        .await
        .unwrap();
    assert_eq!(restored, 1);
    let res = call(&app, "GET", "/api/card/history/", Some(&token), None).await;
    assert_error(res, 403, "forbidden").await;
}

#[tokio::test]
async fn a_socket_accepted_while_its_account_is_being_disabled_is_closed() {
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    let token = app.mac_login(MAC).await;
    // The account state is still active (the handshake passes) but the
    // disable has marked it: the socket closes at once.
    lty_server::app::auth::mark_disabled(&app.state, uid, true)
        .await
        .unwrap();
    let mut socket = app.ws_connect(&token, Some(MAC)).await;
    assert_eq!(next_close(&mut socket).await, 4001);
}

#[tokio::test]
async fn an_audit_failure_fails_the_write() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    let ops = admin_token(&app, AdminRole::Operator).await;
    let batch = post_json(
        &app,
        "/api/v1/admin/card-batches/",
        &ops,
        &json!({ "kind": "content", "count": 1, "content_ref": "story:1" }),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    app.state
        .db
        .conn()
        .execute_unprepared("DROP TABLE admin_audit_log")
        .await
        .unwrap();
    let res = call(
        &app,
        "POST",
        &format!("/api/v1/admin/card-batches/{batch}/disable/"),
        Some(&ops),
        Some(&json!({})),
    )
    .await;
    assert!(res.status().is_server_error(), "{}", res.status());
    assert!(!app.state.db.batch(batch).await.unwrap().unwrap().disabled);
    let res = call(
        &app,
        "POST",
        &format!("/api/v1/admin/users/{uid}/disable/"),
        Some(&ops),
        Some(&json!({})),
    )
    .await;
    assert!(res.status().is_server_error(), "{}", res.status());
    assert!(app.state.db.user(uid).await.unwrap().unwrap().is_active);
    app.mac_login(MAC).await;
    // Sensitive reads are refused too when they cannot be audited.
    let res = call(
        &app,
        "GET",
        &format!("/api/v1/admin/users/{uid}/"),
        Some(&ops),
        None,
    )
    .await;
    assert!(res.status().is_server_error());
    // Routes of other modules audited by the policy are refused as well.
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/card-batches/1/cards/",
        Some(&ops),
        None,
    )
    .await;
    assert!(res.status().is_server_error());
}

#[tokio::test]
async fn resetting_a_quota_clears_todays_chat_count() {
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    let key = format!("ai:quota:{uid}:{}", chrono::Utc::now().format("%Y%m%d"));
    app.state.cache.set(&key, "30", None).await.unwrap();
    let ops = admin_token(&app, AdminRole::Operator).await;
    let out = post_json(
        &app,
        &format!("/api/v1/admin/users/{uid}/reset-quota/"),
        &ops,
        &json!({}),
    )
    .await;
    assert_eq!(out["chat_messages_before"], 30);
    assert_eq!(app.state.cache.get(&key).await.unwrap(), None);
    let entries = audit(&app, &ops, "action=user.reset_quota").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["details"]["chat_messages_before"], 30);
}

#[tokio::test]
async fn the_online_filter_pages_and_counts_only_the_devices_seen_now() {
    let app = spawn_app().await;
    let ops = admin_token(&app, AdminRole::Operator).await;
    let macs: Vec<String> = (1..=5).map(|i| format!("02:00:00:00:0c:0{i}")).collect();
    for (i, mac) in macs.iter().enumerate() {
        app.user_with_device(&format!("family_{i}"), mac).await;
    }
    // The first three come online through their sockets.
    let mut sockets = Vec::new();
    for mac in &macs[..3] {
        let token = app.mac_login(mac).await;
        sockets.push(app.ws_connect(&token, Some(mac)).await);
    }
    wait_until("the sockets mark their devices online", async || {
        app.state
            .cache
            .present("device:online")
            .await
            .unwrap()
            .len()
            == 3
    })
    .await;
    let listed = |v: &Value| -> Vec<(String, bool)> {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["mac_address"].as_str().unwrap().to_owned(),
                    d["online"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let page = |n: usize, online: bool| (macs[n].clone(), online);

    // Full pages of online devices and a total that counts only them, the
    // others, and either with the other filters.
    let cases = [
        (
            "online=true&sort=mac&page_size=2",
            3,
            vec![page(0, true), page(1, true)],
        ),
        (
            "online=true&sort=mac&page_size=2&page=2",
            3,
            vec![page(2, true)],
        ),
        (
            "online=false&sort=mac&order=desc",
            2,
            vec![page(4, false), page(3, false)],
        ),
        ("online=true&mac=0c:02", 1, vec![page(1, true)]),
        ("online=true&mac=0c:05", 0, vec![]),
    ];
    for (query, total, devices) in cases {
        let found = get_json(&app, &format!("/api/v1/admin/devices/?{query}"), &ops).await;
        assert_eq!(found["total"], total, "{query}: {found}");
        assert_eq!(listed(&found), devices, "{query}");
    }
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/devices/?online=maybe",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 400, "invalid_query").await;
    drop(sockets);
}

#[tokio::test]
async fn operators_search_inspect_push_to_and_unbind_devices() {
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    app.user_with_device("other", "02:00:00:00:0b:02").await;
    let token = app.mac_login(MAC).await;
    let mut socket = app.ws_connect(&token, Some(MAC)).await;
    // Online once its session has recorded it as seen.
    let seen = last_seen_key(&MacAddress::parse(MAC).unwrap());
    wait_until("the device socket marks the device seen", async || {
        app.state.cache.get(&seen).await.unwrap().is_some()
    })
    .await;
    let ops = admin_token(&app, AdminRole::Operator).await;

    let found = get_json(&app, "/api/v1/admin/devices/?mac=0A-01", &ops).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["devices"][0]["mac_address"], MAC);
    assert_eq!(found["devices"][0]["binding"]["user_id"], uid);
    assert_eq!(found["devices"][0]["online"], true);
    let all = get_json(&app, "/api/v1/admin/devices/?mac=02:00", &ops).await;
    assert_eq!(all["total"], 2);
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/devices/?mac=zz",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 400, "validation_error").await;

    let detail = get_json(&app, &format!("/api/v1/admin/devices/{MAC}/"), &ops).await;
    assert_eq!(detail["binding"]["user_id"], uid);
    assert_eq!(detail["history"].as_array().unwrap().len(), 1);
    assert_eq!(detail["online"], true);
    assert_eq!(detail["has_secret"], false);
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/devices/02:00:00:00:77:77/",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 404, "device_not_found").await;
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/devices/not-a-mac/",
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(res.status(), 400);

    let pushed = post_json(
        &app,
        &format!("/api/v1/admin/devices/{MAC}/push-test/"),
        &ops,
        &json!({"message": "hello from support"}),
    )
    .await;
    assert_eq!(pushed["delivered"], true);
    let got = next_json(&mut socket).await;
    assert_eq!(got["type"], "admin_test");
    assert_eq!(got["message"], "hello from support");

    post_json(
        &app,
        &format!("/api/v1/admin/devices/{MAC}/unbind/"),
        &ops,
        &json!({}),
    )
    .await;
    assert_eq!(next_close(&mut socket).await, 4003);
    let mac = MacAddress::parse(MAC).unwrap();
    assert!(app.state.db.latest_binding(&mac).await.unwrap().is_none());
    let res = call(
        &app,
        "POST",
        &format!("/api/v1/admin/devices/{MAC}/unbind/"),
        Some(&ops),
        Some(&json!({})),
    )
    .await;
    assert_error(res, 404, "device_not_bound").await;

    let entries = audit(&app, &ops, "target_type=device").await;
    assert_eq!(
        actions(&entries),
        ["device.unbind", "device.push_test", "device.view"]
    );
    assert_eq!(entries[0]["target_id"], MAC);
    assert_eq!(entries[0]["details"]["user_id"], uid);
}

#[tokio::test]
async fn only_a_superadmin_revokes_a_device_secret() {
    let app = spawn_app().await;
    app.user_with_device("family", MAC).await;
    let mac = MacAddress::parse(MAC).unwrap();
    app.state
        .db
        .set_secret(&mac, &"ab".repeat(32), 1)
        .await
        .unwrap();
    let ops = admin_token(&app, AdminRole::Operator).await;
    let root = admin_token(&app, AdminRole::Superadmin).await;
    let path = format!("/api/v1/admin/devices/{MAC}/revoke-secret/");
    let res = call(&app, "POST", &path, Some(&ops), Some(&json!({}))).await;
    assert_error(res, 403, "forbidden").await;
    assert!(app.state.db.secret_for(&mac).await.unwrap().is_some());
    let detail = get_json(&app, &format!("/api/v1/admin/devices/{MAC}/"), &ops).await;
    assert_eq!(detail["has_secret"], true);

    let out = post_json(&app, &path, &root, &json!({})).await;
    assert_eq!(out["revoked"], true);
    assert!(app.state.db.secret_for(&mac).await.unwrap().is_none());
    let res = call(&app, "POST", &path, Some(&root), Some(&json!({}))).await;
    assert_error(res, 404, "device_secret_not_found").await;
    let entries = audit(&app, &root, "action=device.revoke_secret").await;
    assert_eq!(entries.len(), 1);
}

#[tokio::test]
async fn every_conversation_view_is_audited() {
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    let conv = app
        .state
        .db
        .create_conversation(uid, None, "dinosaurs")
        .await
        .unwrap();
    for (role, text) in [
        (lty_core::chat::Role::User, "tell me about dinosaurs"),
        (lty_core::chat::Role::Assistant, "Long ago..."),
        (lty_core::chat::Role::User, "more!"),
    ] {
        app.state
            .db
            .add_message(lty_core::chat::NewMessage {
                conversation_id: conv.id,
                role,
                content: text.into(),
                incomplete: false,
                moderated: false,
                usage: None,
            })
            .await
            .unwrap();
    }
    let ops = admin_token(&app, AdminRole::Operator).await;
    let list = get_json(
        &app,
        &format!("/api/v1/admin/users/{uid}/conversations/"),
        &ops,
    )
    .await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["conversations"][0]["id"], conv.id);
    let page1 = get_json(
        &app,
        &format!("/api/v1/admin/conversations/{}/?page_size=2", conv.id),
        &ops,
    )
    .await;
    assert_eq!(page1["total"], 3);
    assert_eq!(page1["messages"][0]["content"], "tell me about dinosaurs");
    assert_eq!(page1["messages"][1]["role"], "assistant");
    let page2 = get_json(
        &app,
        &format!(
            "/api/v1/admin/conversations/{}/?page=2&page_size=2",
            conv.id
        ),
        &ops,
    )
    .await;
    assert_eq!(page2["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page2["messages"][0]["content"], "more!");
    // Read-only: nothing writes through these routes.
    let res = call(
        &app,
        "DELETE",
        &format!("/api/v1/admin/conversations/{}/", conv.id),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(res.status(), 405);

    let entries = audit(&app, &ops, "action=conversation.").await;
    assert_eq!(
        actions(&entries),
        [
            "conversation.view",
            "conversation.view",
            "conversation.list"
        ]
    );
    assert_eq!(entries[0]["target_type"], "conversation");
    assert_eq!(entries[0]["target_id"], conv.id.to_string());
    assert_eq!(entries[0]["details"]["user_id"], uid);
    assert_eq!(entries[0]["details"]["page"], 2);
}

pub fn volcengine(c: &mut Config, fake: &FakeVolcengine) {
    let vc = &mut c.volcengine;
    vc.app_id = Some(APP_ID.into());
    vc.app_key = Some(Secret::new(APP_KEY));
    vc.access_key = Some(AK.into());
    vc.secret_key = Some(Secret::new(SK));
    vc.api_base_url = fake.base_url();
    vc.callback_secret = Some(Secret::new("cb-secret-example-0001"));
    vc.custom_llm_api_key = Some(Secret::new("custom-llm-key"));
    vc.api_timeout_ms = 1500;
    vc.voice_chat_sweep_secs = 3600;
    c.public_base_url = Some("https://lty.example".into());
    c.audio.huoshan.appid = Some("speech-app".into());
    c.audio.huoshan.access_token = Some(Secret::new("speech-token"));
    c.audio.huoshan.voice_type = Some("BV700_streaming".into());
}

#[tokio::test]
async fn an_operator_stops_a_runaway_voice_session() {
    let fake = FakeVolcengine::start().await;
    let app = spawn_app_with(|c| volcengine(c, &fake)).await;
    let uid = app.user_with_device("family", MAC).await;
    let token = app.mac_login(MAC).await;
    let started = post_json(&app, "/api/device/voice-chat/start/", &token, &json!({})).await;
    let task = started["task_id"].as_str().unwrap().to_owned();
    let ops = admin_token(&app, AdminRole::Operator).await;

    let list = get_json(&app, "/api/v1/admin/voice-sessions/", &ops).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["sessions"][0]["task_id"], task);
    assert_eq!(list["sessions"][0]["user_id"], uid);
    assert_eq!(list["sessions"][0]["status"], "running");
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/voice-sessions/?status=odd",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 400, "validation_error").await;

    let out = post_json(
        &app,
        &format!("/api/v1/admin/voice-sessions/{task}/stop/"),
        &ops,
        &json!({}),
    )
    .await;
    assert_eq!(out["stopped"], true);
    let stops = fake.calls_of("StopVoiceChat");
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].body["TaskId"], task);
    assert!(fake.running().is_empty());
    let list = get_json(&app, "/api/v1/admin/voice-sessions/", &ops).await;
    assert_eq!(list["total"], 0);
    let res = call(
        &app,
        "POST",
        &format!("/api/v1/admin/voice-sessions/{task}/stop/"),
        Some(&ops),
        Some(&json!({})),
    )
    .await;
    assert_error(res, 404, "voice_session_not_found").await;
    let res = call(
        &app,
        "POST",
        "/api/v1/admin/voice-sessions/XYZ/stop/",
        Some(&ops),
        Some(&json!({})),
    )
    .await;
    assert_error(res, 400, "validation_error").await;

    let entries = audit(&app, &ops, "target_type=voice_session").await;
    assert_eq!(actions(&entries), ["voice_session.stop"]);
    assert_eq!(entries[0]["target_id"], task);
    assert_eq!(entries[0]["details"]["user_id"], uid);
}

#[tokio::test]
async fn catalog_changes_need_the_right_role_and_are_audited() {
    let app = spawn_app().await;
    let ops = admin_token(&app, AdminRole::Operator).await;
    let root = admin_token(&app, AdminRole::Superadmin).await;
    let persona = json!({"slug": "storyteller", "name": "Storyteller",
                         "system_prompt": "You tell gentle stories.", "greeting": "Hi!"});
    let res = call(
        &app,
        "POST",
        "/api/v1/admin/personas/",
        Some(&ops),
        Some(&persona),
    )
    .await;
    assert_error(res, 403, "forbidden").await;
    let created = post_json(&app, "/api/v1/admin/personas/", &root, &persona).await;
    let pid = created["id"].as_i64().unwrap();
    assert_eq!(created["is_active"], true);
    let res = call(
        &app,
        "POST",
        "/api/v1/admin/personas/",
        Some(&root),
        Some(&persona),
    )
    .await;
    assert_error(res, 409, "persona_exists").await;
    let res = call(
        &app,
        "POST",
        "/api/v1/admin/personas/",
        Some(&root),
        Some(&json!({"slug": "Bad Slug", "name": "x", "system_prompt": "x"})),
    )
    .await;
    assert_error(res, 400, "validation_error").await;
    let patched = call(
        &app,
        "PATCH",
        &format!("/api/v1/admin/personas/{pid}/"),
        Some(&root),
        Some(&json!({"name": "Story Bear", "age_min": 4})),
    )
    .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["name"], "Story Bear");
    assert_eq!(patched["age_min"], 4);
    let res = call(
        &app,
        "DELETE",
        &format!("/api/v1/admin/personas/{pid}/"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let listed = get_json(&app, "/api/v1/admin/personas/?page_size=100", &ops).await;
    let mine = listed["personas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == pid)
        .unwrap()
        .clone();
    assert_eq!(mine["is_active"], false);
    assert!(
        app.state.db.persona(pid).await.unwrap().is_none(),
        "inactive personas are not offered"
    );

    // Plans: created by the existing route (audited by the policy), changed here.
    let plan = post_json(
        &app,
        "/api/v1/admin/plans/",
        &root,
        &json!({"code": "premium", "name": "Premium", "daily_ai_messages": 100,
                "daily_voice_minutes": 30, "price_cents": 1900}),
    )
    .await;
    let plan_id = plan["id"].as_i64().unwrap();
    let res = call(
        &app,
        "PATCH",
        &format!("/api/v1/admin/plans/{plan_id}/"),
        Some(&ops),
        Some(&json!({"price_cents": 1})),
    )
    .await;
    assert_error(res, 403, "forbidden").await;
    let res = call(
        &app,
        "PATCH",
        &format!("/api/v1/admin/plans/{plan_id}/"),
        Some(&root),
        Some(&json!({"price_cents": 2900, "daily_ai_messages": 200})),
    )
    .await;
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["price_cents"], 2900);
    assert_eq!(changed["daily_ai_messages"], 200);
    let res = call(
        &app,
        "PATCH",
        &format!("/api/v1/admin/plans/{plan_id}/"),
        Some(&root),
        Some(&json!({"currency": "yuan"})),
    )
    .await;
    assert_error(res, 400, "validation_error").await;
    let res = call(
        &app,
        "DELETE",
        &format!("/api/v1/admin/plans/{plan_id}/"),
        Some(&root),
        None,
    )
    .await;
    let gone: Value = res.json().await.unwrap();
    assert_eq!(gone["is_active"], false);
    let public: Value = app.get("/api/plans/").await.json().await.unwrap();
    assert!(
        public["plans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["code"] != "premium")
    );

    // Achievements: operators manage them (as they create them).
    let a = post_json(&app, "/api/v1/admin/achievements/", &ops,
        &json!({"code": "scanner", "name": "Scanner", "event_kind": "card_scanned", "threshold": 3})).await;
    let aid = a["id"].as_i64().unwrap();
    let res = call(
        &app,
        "PATCH",
        &format!("/api/v1/admin/achievements/{aid}/"),
        Some(&ops),
        Some(&json!({"threshold": 5})),
    )
    .await;
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["threshold"], 5);
    let res = call(
        &app,
        "PATCH",
        &format!("/api/v1/admin/achievements/{aid}/"),
        Some(&ops),
        Some(&json!({"threshold": 0})),
    )
    .await;
    assert_error(res, 400, "validation_error").await;
    let res = call(
        &app,
        "DELETE",
        "/api/v1/admin/achievements/999999/",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 404, "achievement_not_found").await;
    let res = call(
        &app,
        "DELETE",
        &format!("/api/v1/admin/achievements/{aid}/"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let listed = get_json(&app, "/api/v1/admin/achievements/?page_size=100", &ops).await;
    let mine = listed["achievements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == aid)
        .unwrap()
        .clone();
    assert_eq!(mine["is_active"], false);

    let entries = audit(&app, &ops, "").await;
    let got = actions(&entries);
    for expected in [
        "persona.create",
        "persona.update",
        "persona.deactivate",
        "plan.create",
        "plan.update",
        "plan.deactivate",
        "achievement.create",
        "achievement.update",
        "achievement.deactivate",
    ] {
        assert!(got.contains(&expected), "{expected} missing from {got:?}");
    }
    // The policy records routes of other modules before they run.
    let plan_create = entries
        .iter()
        .find(|e| e["action"] == "plan.create")
        .unwrap();
    assert_eq!(plan_create["details"]["route"], "/api/v1/admin/plans/");
}

#[tokio::test]
async fn admin_listings_page_stably_and_validate_their_filters() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(phone_user(&app, &format!("kid{i}"), &format!("1380000000{i}")).await);
    }
    let ops = admin_token(&app, AdminRole::Operator).await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body = get_json(
            &app,
            &format!("/api/v1/admin/users/?page={page}&page_size=2"),
            &ops,
        )
        .await;
        assert_eq!(body["total"], 5);
        assert_eq!(body["page"], page);
        assert_eq!(body["page_size"], 2);
        for u in body["users"].as_array().unwrap() {
            seen.push(u["id"].as_i64().unwrap());
        }
    }
    assert_eq!(seen, ids, "pages are ordered by id without gaps or repeats");
    let beyond = get_json(&app, "/api/v1/admin/users/?page=4&page_size=2", &ops).await;
    assert!(beyond["users"].as_array().unwrap().is_empty());

    for bad in ["page=0", "page_size=0", "page_size=101"] {
        let res = call(
            &app,
            "GET",
            &format!("/api/v1/admin/users/?{bad}"),
            Some(&ops),
            None,
        )
        .await;
        assert_error(res, 400, "validation_error").await;
    }
    for bad in ["is_active=maybe", "id=abc", "page=-1"] {
        let res = call(
            &app,
            "GET",
            &format!("/api/v1/admin/users/?{bad}"),
            Some(&ops),
            None,
        )
        .await;
        assert_error(res, 400, "invalid_query").await;
    }
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/audit/?since=yesterday",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 400, "invalid_query").await;
    let res = call(
        &app,
        "GET",
        "/api/v1/admin/stats/?days=91",
        Some(&ops),
        None,
    )
    .await;
    assert_error(res, 400, "validation_error").await;

    // The audit log pages newest first, and cannot be changed.
    let first = get_json(&app, "/api/v1/admin/audit/?page_size=2", &ops).await;
    let second = get_json(&app, "/api/v1/admin/audit/?page=2&page_size=2", &ops).await;
    let a = first["entries"][1]["id"].as_i64().unwrap();
    let b = second["entries"][0]["id"].as_i64().unwrap();
    assert!(a > b);
    for method in ["POST", "PATCH", "DELETE", "PUT"] {
        let res = call(
            &app,
            method,
            "/api/v1/admin/audit/",
            Some(&ops),
            Some(&json!({})),
        )
        .await;
        assert_eq!(res.status(), 405, "{method} on the audit log");
    }
    let inactive = get_json(&app, "/api/v1/admin/users/?is_active=false", &ops).await;
    assert_eq!(inactive["total"], 0);
}

#[tokio::test]
async fn stats_count_users_devices_messages_and_scans() {
    let app = spawn_app().await;
    let uid = app.user_with_device("family", MAC).await;
    app.user_with_device("other", "02:00:00:00:0b:02").await;
    let token = app.mac_login(MAC).await;
    let _socket = app.ws_connect(&token, Some(MAC)).await;
    let conv = app
        .state
        .db
        .create_conversation(uid, None, "hi")
        .await
        .unwrap();
    for role in [
        lty_core::chat::Role::User,
        lty_core::chat::Role::Assistant,
        lty_core::chat::Role::User,
    ] {
        app.state
            .db
            .add_message(lty_core::chat::NewMessage {
                conversation_id: conv.id,
                role,
                content: "x".into(),
                incomplete: false,
                moderated: false,
                usage: None,
            })
            .await
            .unwrap();
    }
    // Voice minutes of sessions that ended today and yesterday.
    let now = chrono::Utc::now();
    let voice = lty_core::achievement::VOICE_MINUTES;
    for (minutes, at) in [(4, now), (3, now - chrono::Duration::days(1)), (2, now)] {
        lty_server::app::achievements::record_at(&app.state, uid, voice, minutes, at)
            .await
            .unwrap();
    }
    let ops = admin_token(&app, AdminRole::Operator).await;
    post_json(
        &app,
        "/api/v1/admin/users/{uid}/disable/"
            .replace("{uid}", &uid.to_string())
            .as_str(),
        &ops,
        &json!({}),
    )
    .await;
    wait_until("the socket marks its device online", async || {
        app.state
            .cache
            .present("device:online")
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;
    let stats = get_json(&app, "/api/v1/admin/stats/?days=3", &ops).await;
    assert_eq!(stats["devices"]["online"], 1, "{stats}");
    assert_eq!(stats["users"]["total"], 2);
    assert_eq!(stats["users"]["active"], 1);
    assert_eq!(stats["users"]["disabled"], 1);
    assert_eq!(stats["devices"]["bound"], 2);
    let days = stats["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    let today = now.format("%Y-%m-%d").to_string();
    assert_eq!(days[2]["day"], today);
    assert_eq!(days[2]["user_messages"], 2);
    assert_eq!(days[2]["assistant_messages"], 1);
    assert_eq!(days[2]["voice_minutes"], 6);
    assert_eq!(days[1]["voice_minutes"], 3);
    assert_eq!(days[0]["user_messages"], 0);
    assert_eq!(days[0]["voice_minutes"], 0);
    assert_eq!(stats["voice"]["minutes_total"], 9);
    assert!(stats["card_scans_per_batch"].as_array().unwrap().is_empty());
    assert_eq!(stats["voice"]["sessions_running"], 0);
    assert!(stats["provider_errors"].is_array());
    assert!(stats["upstream_errors_by_route"].is_array());
}
