//! `/api/device/`: bindings, status and pushes.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, next_close, next_json, spawn_app};

async fn login_user(app: &TestApp, name: &str, mac: &str) -> (i64, String) {
    let id = app.user_with_device(name, mac).await;
    (id, app.mac_login(mac).await)
}

async fn authed(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(token)
}

#[tokio::test]
async fn binding_a_device_lists_it_and_binding_again_is_idempotent() {
    let app = spawn_app().await;
    let (_, token) = login_user(&app, "parent", "02:00:00:00:01:01").await;
    let res = authed(&app, reqwest::Method::POST, "/api/device/bind/", &token)
        .await
        .json(&json!({"mac_address": "02-00-00-00-01-02", "name": "Bunny"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let bound: Value = res.json().await.unwrap();
    assert_eq!(bound["mac_address"], "02:00:00:00:01:02");
    assert_eq!(bound["name"], "Bunny");
    assert_eq!(bound["online"], false);

    let res = authed(&app, reqwest::Method::POST, "/api/device/bind/", &token)
        .await
        .json(&json!({"mac_address": "02:00:00:00:01:02", "name": "Bear"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["id"], bound["id"]);
    assert_eq!(again["name"], "Bear");

    let list: Value = authed(&app, reqwest::Method::GET, "/api/device/list/", &token)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let macs: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mac_address"].as_str().unwrap())
        .collect();
    assert_eq!(macs, ["02:00:00:00:01:01", "02:00:00:00:01:02"]);
}

#[tokio::test]
async fn bind_validates_its_input() {
    let app = spawn_app().await;
    let (_, token) = login_user(&app, "parent", "02:00:00:00:01:03").await;
    for (body, field) in [
        (json!({}), "mac_address"),
        (json!({"mac_address": "nope"}), "mac_address"),
        (
            json!({"mac_address": "02:00:00:00:01:04", "name": "x".repeat(65)}),
            "name",
        ),
    ] {
        let res = authed(&app, reqwest::Method::POST, "/api/device/bind/", &token)
            .await
            .json(&body)
            .send()
            .await
            .unwrap();
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], field);
    }
    let res = app
        .post_json(
            "/api/device/bind/",
            &json!({"mac_address": "02:00:00:00:01:04"}),
        )
        .await;
    assert_error(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn rebinding_to_another_family_moves_login_and_kicks_the_old_sockets() {
    let app = spawn_app().await;
    let mac = "02:00:00:00:02:01";
    let (first, first_token) = login_user(&app, "first", mac).await;
    let mut old_socket = app.ws_connect(&first_token, Some(mac)).await;
    app.wait_for_sockets(first, 1).await;

    let (_, second_token) = login_user(&app, "second", "02:00:00:00:02:02").await;
    let res = authed(
        &app,
        reqwest::Method::POST,
        "/api/device/bind/",
        &second_token,
    )
    .await
    .json(&json!({"mac_address": mac}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(next_close(&mut old_socket).await, 4003);

    let res = app
        .post_json("/api/user/mac-login/", &json!({"mac_address": mac}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_ne!(body["user_id"], first);

    // The first family no longer sees it.
    let status = authed(
        &app,
        reqwest::Method::GET,
        &format!("/api/device/status/?mac_address={mac}"),
        &first_token,
    )
    .await
    .send()
    .await
    .unwrap();
    assert_error(status, 404, "device_not_bound").await;
}

#[tokio::test]
async fn unbinding_ends_the_binding_kicks_sockets_and_keeps_history() {
    let app = spawn_app().await;
    let mac = "02:00:00:00:03:01";
    let (user, token) = login_user(&app, "parent", mac).await;
    let mut socket = app.ws_connect(&token, Some(mac)).await;
    app.wait_for_sockets(user, 1).await;

    let res = authed(&app, reqwest::Method::POST, "/api/device/unbind/", &token)
        .await
        .json(&json!({"mac_address": mac}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(next_close(&mut socket).await, 4003);

    // The MAC is unbound now: no login, no status, and unbinding again is 404.
    let res = app
        .post_json("/api/user/mac-login/", &json!({"mac_address": mac}))
        .await;
    assert_error(res, 404, "device_not_bound").await;
    let res = authed(&app, reqwest::Method::POST, "/api/device/unbind/", &token)
        .await
        .json(&json!({"mac_address": mac}))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "device_not_bound").await;
    let history = app
        .state
        .db
        .binding_history(&lty_core::MacAddress::parse(mac).unwrap())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].unbound_at.is_some());
}

#[tokio::test]
async fn unbinding_someone_elses_device_is_refused() {
    let app = spawn_app().await;
    let (_, _owner) = login_user(&app, "owner", "02:00:00:00:04:01").await;
    let (_, other) = login_user(&app, "other", "02:00:00:00:04:02").await;
    let res = authed(&app, reqwest::Method::POST, "/api/device/unbind/", &other)
        .await
        .json(&json!({"mac_address": "02:00:00:00:04:01"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "device_not_bound").await;
    assert_eq!(app.mac_login("02:00:00:00:04:01").await.len(), 40);
}

#[tokio::test]
async fn binding_status_tells_the_owner_more_than_strangers() {
    let app = spawn_app().await;
    let (owner_id, owner) = login_user(&app, "owner", "02:00:00:00:05:01").await;
    let (_, stranger) = login_user(&app, "stranger", "02:00:00:00:05:02").await;
    let path = "/api/device/binding-status/?mac_address=02:00:00:00:05:01";

    let anonymous: Value = app.get(path).await.json().await.unwrap();
    assert_eq!(anonymous["bound"], true);
    assert_eq!(anonymous["bound_to_you"], false);
    assert_eq!(anonymous["user_id"], Value::Null);

    let as_stranger: Value = authed(&app, reqwest::Method::GET, path, &stranger)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_stranger["user_id"], Value::Null);

    let as_owner: Value = authed(&app, reqwest::Method::GET, path, &owner)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_owner["bound_to_you"], true);
    assert_eq!(as_owner["user_id"], owner_id);

    let unbound: Value = app
        .get("/api/device/binding-status/?mac_address=02:ff:ff:ff:ff:ff")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unbound["bound"], false);
    assert_error(
        app.get("/api/device/binding-status/").await,
        400,
        "validation_error",
    )
    .await;
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth("not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_device_can_be_renamed_by_its_owner_only() {
    let app = spawn_app().await;
    let (_, owner) = login_user(&app, "owner", "02:00:00:00:06:01").await;
    let (_, stranger) = login_user(&app, "stranger", "02:00:00:00:06:02").await;
    let list: Value = authed(&app, reqwest::Method::GET, "/api/device/list/", &owner)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["devices"][0]["id"].as_i64().unwrap();
    let path = format!("/api/device/{id}/");
    let res = authed(&app, reqwest::Method::PATCH, &path, &owner)
        .await
        .json(&json!({"name": "Kitchen speaker"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["name"],
        "Kitchen speaker"
    );
    let res = authed(&app, reqwest::Method::PATCH, &path, &stranger)
        .await
        .json(&json!({"name": "Mine now"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "device_not_bound").await;
    let res = authed(&app, reqwest::Method::PATCH, "/api/device/abc/", &owner)
        .await
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_path").await;
}

#[tokio::test]
async fn status_reports_online_while_the_device_talks() {
    let app = spawn_app().await;
    let mac = "02:00:00:00:07:01";
    let (_, token) = login_user(&app, "parent", mac).await;
    let path = format!("/api/device/status/?mac_address={mac}");
    let before: Value = authed(&app, reqwest::Method::GET, &path, &token)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["online"], false);
    assert_eq!(before["last_seen"], Value::Null);

    let mut socket = app.ws_connect(&token, Some(mac)).await;
    use futures_util::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"hello":1}"#,
        ))
        .await
        .unwrap();
    next_json(&mut socket).await;
    let after: Value = authed(&app, reqwest::Method::GET, &path, &token)
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["online"], true);
    assert!(after["last_seen"].is_string());
    let key = format!("device:last_seen:{mac}");
    let ttl = app.state.cache.ttl(&key).await.unwrap().unwrap();
    assert!(ttl.as_secs() <= 300 && ttl.as_secs() > 290);
}

#[tokio::test]
async fn send_requires_a_token_and_a_json_object() {
    let app = spawn_app().await;
    let (_, token) = login_user(&app, "parent", "02:00:00:00:08:01").await;
    let res = app.post_json("/api/device/send/", &json!({"a": 1})).await;
    assert_error(res, 401, "unauthenticated").await;
    let res = authed(&app, reqwest::Method::POST, "/api/device/send/", &token)
        .await
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
    // Legacy clients compare the body: exactly {"delivered": true}.
    let body = app.push(&token, &json!({"type": "noop"})).await;
    assert_eq!(body, json!({"delivered": true}));
}

#[tokio::test]
async fn send_reports_its_reach_in_headers_and_on_request_in_the_body() {
    let app = spawn_app().await;
    let (user, token) = login_user(&app, "parent", "02:00:00:00:08:02").await;
    let _a = app.ws_connect(&token, None).await;
    let _b = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 2).await;
    let res = authed(
        &app,
        reqwest::Method::POST,
        "/api/device/send/?detail=true",
        &token,
    )
    .await
    .json(&json!({"n": 1}))
    .send()
    .await
    .unwrap();
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["delivered"], true);
    if crate::helpers::test_redis_url().is_some() {
        assert_eq!(headers["x-lty-instances"], "1");
        assert_eq!(body["instances"], 1);
    } else {
        assert_eq!(headers["x-lty-sockets"], "2");
        assert_eq!(body["sockets"], 2);
    }
}

#[tokio::test]
async fn unbinding_one_device_leaves_the_familys_other_sockets_open() {
    let app = spawn_app().await;
    let (user, token) = login_user(&app, "parent", "02:00:00:00:09:01").await;
    let res = authed(&app, reqwest::Method::POST, "/api/device/bind/", &token)
        .await
        .json(&json!({"mac_address": "02:00:00:00:09:02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut kept = app.ws_connect(&token, Some("02:00:00:00:09:01")).await;
    let mut phone = app.ws_connect(&token, None).await;
    let mut gone = app.ws_connect(&token, Some("02:00:00:00:09:02")).await;
    app.wait_for_sockets(user, 3).await;
    let res = authed(&app, reqwest::Method::POST, "/api/device/unbind/", &token)
        .await
        .json(&json!({"mac_address": "02:00:00:00:09:02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(next_close(&mut gone).await, 4003);
    // The control message is not forwarded to the others, who stay open.
    app.push(&token, &json!({"after": "unbind"})).await;
    assert_eq!(next_json(&mut kept).await, json!({"after": "unbind"}));
    assert_eq!(next_json(&mut phone).await, json!({"after": "unbind"}));
}
