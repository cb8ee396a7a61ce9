//! The device WebSocket channel.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    assert_silent, next_close, next_json, required_redis_url, spawn_app, spawn_app_with, wait_until,
};

#[tokio::test]
async fn a_bad_token_is_refused_at_the_handshake() {
    let app = spawn_app().await;
    for url in [
        format!(
            "ws://{}/ws/device/token/0123456789abcdef0123456789abcdef01234567/",
            app.addr
        ),
        format!("ws://{}/ws/device/", app.addr),
    ] {
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 401),
            other => panic!("expected an HTTP refusal, got {other}"),
        }
    }
}

#[tokio::test]
async fn the_bearer_header_route_authenticates_too() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    app.user_with_device("kid", "02:00:00:00:10:01").await;
    let token = app.mac_login("02:00:00:00:10:01").await;
    let mut req = format!("ws://{}/ws/device/?mac=02:00:00:00:10:01", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    socket
        .send(Message::text(r#"{"ping":true}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await, json!({"ping": true}));
}

#[tokio::test]
async fn text_from_a_device_reaches_every_socket_of_its_family_including_itself() {
    let app = spawn_app().await;
    let user = app.user_with_device("kid", "02:00:00:00:11:01").await;
    let token = app.mac_login("02:00:00:00:11:01").await;
    let mut device = app.ws_connect(&token, Some("02:00:00:00:11:01")).await;
    let mut phone = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 2).await;
    device
        .send(Message::text(r#"{"type":"hello","n":1}"#))
        .await
        .unwrap();
    let expected = json!({"type": "hello", "n": 1});
    assert_eq!(next_json(&mut device).await, expected);
    assert_eq!(next_json(&mut phone).await, expected);
}

#[tokio::test]
async fn a_push_reaches_both_sockets_of_a_user_and_no_other_family() {
    let app = spawn_app().await;
    let user_a = app.user_with_device("a", "02:00:00:00:12:01").await;
    let user_b = app.user_with_device("b", "02:00:00:00:12:02").await;
    let token_a = app.mac_login("02:00:00:00:12:01").await;
    let token_b = app.mac_login("02:00:00:00:12:02").await;
    let mut a1 = app.ws_connect(&token_a, Some("02:00:00:00:12:01")).await;
    let mut a2 = app.ws_connect(&token_a, None).await;
    let mut b = app.ws_connect(&token_b, None).await;
    app.wait_for_sockets(user_a, 2).await;
    app.wait_for_sockets(user_b, 1).await;

    let body = json!({"type": "story", "id": 7, "nested": {"ok": [1, 2]}});
    let answer = app.push(&token_a, &body).await;
    assert_eq!(answer["delivered"], true);
    assert_eq!(next_json(&mut a1).await, body);
    assert_eq!(next_json(&mut a2).await, body);
    assert_silent(&mut b, 300).await;
}

#[tokio::test]
async fn binary_frames_get_an_error_frame_and_the_socket_stays_open() {
    let app = spawn_app().await;
    app.user_with_device("kid", "02:00:00:00:13:01").await;
    let token = app.mac_login("02:00:00:00:13:01").await;
    let mut socket = app.ws_connect(&token, None).await;
    socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let err: Value = next_json(&mut socket).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "binary_not_supported");
    socket
        .send(Message::text(r#"{"still":"open"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await, json!({"still": "open"}));
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket_with_1009() {
    let app = spawn_app_with(|c| c.ws.max_frame_bytes = 1024).await;
    app.user_with_device("kid", "02:00:00:00:14:01").await;
    let token = app.mac_login("02:00:00:00:14:01").await;
    let mut socket = app.ws_connect(&token, None).await;
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(1500));
    socket.send(Message::text(big)).await.unwrap();
    assert_eq!(next_close(&mut socket).await, 1009);
}

#[tokio::test]
async fn a_socket_that_does_not_read_is_closed_as_too_slow_not_silently_starved() {
    let app = spawn_app_with(|c| c.ws.queue_capacity = 4).await;
    let user = app.user_with_device("kid", "02:00:00:00:15:01").await;
    let token = app.mac_login("02:00:00:00:15:01").await;
    // Only this test lets a socket fall behind: the count moves by exactly one.
    let closed_before = app.metric("lty_ws_closed_slow_total", &[]).await;
    let mut slow = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    // Large pushes fill the socket's TCP buffers, then its queue.
    let blob = "y".repeat(60_000);
    for i in 0..200 {
        app.push(&token, &json!({"i": i, "blob": blob})).await;
    }
    // Reading now: some messages, then the documented close code.
    let mut received = 0;
    let code = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .expect("no close within 10 s");
        match msg {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, 4008);
    assert!(received < 200, "the slow socket got every message?");
    assert_eq!(
        app.metric("lty_ws_closed_slow_total", &[]).await,
        closed_before + 1.0
    );
}

#[tokio::test]
async fn a_socket_that_never_answers_pings_is_closed() {
    let app = spawn_app_with(|c| c.ws.ping_interval_secs = 1).await;
    let user = app.user_with_device("kid", "02:00:00:00:16:01").await;
    let token = app.mac_login("02:00:00:00:16:01").await;
    // A raw client that never reads cannot answer pings: tungstenite only
    // pongs while the stream is polled, so stop polling after the handshake
    // until the server has ended the session (it leaves the group).
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    let group = lty_server::ws::protocol::device_group(user);
    wait_until("the unanswered socket is closed", async || {
        app.state.pubsub.local_members(&group) == 0
    })
    .await;
    assert_eq!(next_close(&mut socket).await, 4010);
}

#[tokio::test]
async fn a_polled_socket_answers_pings_and_stays_open() {
    let app = spawn_app_with(|c| c.ws.ping_interval_secs = 1).await;
    app.user_with_device("kid", "02:00:00:00:17:01").await;
    let token = app.mac_login("02:00:00:00:17:01").await;
    let mut socket = app.ws_connect(&token, None).await;
    // Polling for 2.5 s lets the client answer two pings automatically.
    assert_silent(&mut socket, 2500).await;
    socket
        .send(Message::text(r#"{"alive":true}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await, json!({"alive": true}));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_service_restart() {
    let app = spawn_app().await;
    let user = app.user_with_device("kid", "02:00:00:00:18:01").await;
    let token = app.mac_login("02:00:00:00:18:01").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    app.state.shutdown.cancel();
    assert_eq!(next_close(&mut socket).await, 1012);
}

#[tokio::test]
async fn a_malformed_mac_is_refused_at_the_handshake() {
    let app = spawn_app().await;
    app.user_with_device("kid", "02:00:00:00:19:01").await;
    let token = app.mac_login("02:00:00:00:19:01").await;
    let url = format!("ws://{}/ws/device/token/{token}/?mac=not-a-mac", app.addr);
    match tokio_tungstenite::connect_async(url).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 400),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (PostgreSQL + Redis leg)"]
async fn two_instances_sharing_redis_deliver_a_push_across_them() {
    required_redis_url();
    let a = spawn_app().await;
    // Instance B shares A's database and Redis prefix: two servers of one
    // deployment.
    let shared = a.config.clone();
    let b = spawn_app_with(move |c| {
        c.database = shared.database.clone();
        c.redis = shared.redis.clone();
    })
    .await;
    let user = a.user_with_device("kid", "02:00:00:00:20:01").await;
    let token = a.mac_login("02:00:00:00:20:01").await;
    let mut on_b = b.ws_connect(&token, Some("02:00:00:00:20:01")).await;
    b.wait_for_sockets(user, 1).await;
    let body = json!({"type": "cross-instance", "ok": true});
    let res = a
        .client
        .post(a.url("/api/device/send/?detail=true"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["x-lty-instances"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 2
    );
    let answer: Value = res.json().await.unwrap();
    assert!(answer["instances"].as_u64().unwrap() >= 2, "{answer}");
    assert_eq!(next_json(&mut on_b).await, body);
    // And a device frame on B reaches a socket on A.
    let mut on_a = a.ws_connect(&token, None).await;
    a.wait_for_sockets(user, 1).await;
    on_b.send(Message::text(r#"{"from":"b"}"#)).await.unwrap();
    assert_eq!(next_json(&mut on_a).await, json!({"from": "b"}));
}
