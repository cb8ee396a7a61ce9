//! Resuming device sockets (`?since=`): pushes missed while disconnected are
//! replayed in order, exactly once, then live ones follow; a cursor the log
//! no longer holds gets a `resync`; sockets without `since` see the legacy
//! frames. Runs on the in-process ring buffer, and on Redis Streams when
//! `TEST_REDIS_URL` is set.

use futures_util::{SinkExt, StreamExt};
use lty_core::ports::LogId;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Socket, TestApp, assert_silent, next_json, spawn_app, spawn_app_with, wait_until,
};

/// Opens a device socket resuming from `since`.
async fn connect_since(app: &TestApp, token: &str, since: &str) -> Socket {
    let url = format!("ws://{}/ws/device/token/{token}/?since={since}", app.addr);
    let (socket, res) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake");
    assert_eq!(res.status(), 101);
    socket
}

/// Pushes `body` and returns the id the push API reports for it.
async fn push_id(app: &TestApp, token: &str, body: &Value) -> String {
    let res = app
        .client
        .post(app.url("/api/device/send/"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-lty-push-id"].to_str().unwrap().to_owned();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"delivered": true})
    );
    id
}

/// Waits until the family of `user` has no socket left on this instance.
async fn wait_for_no_sockets(app: &TestApp, user: i64) {
    let group = lty_server::ws::protocol::device_group(user);
    wait_until("the socket left its group", async || {
        app.state.pubsub.local_members(&group) == 0
    })
    .await;
}

#[tokio::test]
async fn a_socket_without_since_gets_pushes_exactly_as_before() {
    let app = spawn_app().await;
    let user = app.user_with_device("kid", "02:00:00:00:30:01").await;
    let token = app.mac_login("02:00:00:00:30:01").await;
    let mut socket = app.ws_connect(&token, Some("02:00:00:00:30:01")).await;
    app.wait_for_sockets(user, 1).await;
    let body = json!({"type": "story", "id": 7});
    push_id(&app, &token, &body).await;
    let frame = loop {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(t) => break t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    };
    assert_eq!(frame, serde_json::to_string(&body).unwrap());
}

#[tokio::test]
async fn a_resuming_socket_gets_exactly_the_pushes_it_missed_then_live_ones() {
    let app = spawn_app().await;
    let user = app.user_with_device("kid", "02:00:00:00:31:01").await;
    let token = app.mac_login("02:00:00:00:31:01").await;

    let mut socket = connect_since(&app, &token, "now").await;
    let cursor = next_json(&mut socket).await;
    assert_eq!(cursor["type"], "cursor");
    assert!(cursor["id"].is_string(), "{cursor}");
    app.wait_for_sockets(user, 1).await;
    let first = json!({"n": 1});
    let id1 = push_id(&app, &token, &first).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": id1, "message": first})
    );
    socket.close(None).await.unwrap();
    wait_for_no_sockets(&app, user).await;

    // Pushed while the device is away.
    let missed = [json!({"n": 2}), json!({"n": 3, "text": "晚安"})];
    let mut missed_ids = Vec::new();
    for body in &missed {
        missed_ids.push(push_id(&app, &token, body).await);
    }

    let mut socket = connect_since(&app, &token, &id1).await;
    for (id, body) in missed_ids.iter().zip(&missed) {
        assert_eq!(
            next_json(&mut socket).await,
            json!({"id": id, "message": body})
        );
    }
    app.wait_for_sockets(user, 1).await;
    let live = json!({"n": 4});
    let id4 = push_id(&app, &token, &live).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": id4, "message": live})
    );
    assert_silent(&mut socket, 300).await;

    // Device frames get ids too; text that is not JSON comes as `text`.
    socket.send(Message::text("hello")).await.unwrap();
    let echo = next_json(&mut socket).await;
    assert_eq!(echo["text"], "hello");
    let id_of = |v: &str| v.parse::<LogId>().unwrap();
    assert!(id_of(echo["id"].as_str().unwrap()) > id_of(&id4), "{echo}");
}

#[tokio::test]
async fn a_socket_that_resumes_while_pushes_go_on_gets_each_push_once_in_order() {
    let app = spawn_app().await;
    let user = app.user_with_device("kid", "02:00:00:00:32:01").await;
    let token = app.mac_login("02:00:00:00:32:01").await;
    let mut socket = connect_since(&app, &token, "now").await;
    let cursor = next_json(&mut socket).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    socket.close(None).await.unwrap();
    wait_for_no_sockets(&app, user).await;

    // Pushes go on before, during and after the reconnection: each is
    // either replayed or live (or both, then sent once).
    let pushes = 60;
    let pusher = {
        let client = app.client.clone();
        let url = app.url("/api/device/send/");
        let token = token.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..pushes {
                let res = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"n": n}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                ids.push(res.headers()["x-lty-push-id"].to_str().unwrap().to_owned());
            }
            ids
        })
    };
    let mut socket = connect_since(&app, &token, &cursor).await;
    let mut received = Vec::new();
    while received.len() < pushes {
        let frame = next_json(&mut socket).await;
        assert_eq!(frame["message"]["n"], received.len(), "{frame}");
        received.push(frame["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(received, pusher.await.unwrap());
    assert_silent(&mut socket, 300).await;
}

#[tokio::test]
async fn a_cursor_the_log_no_longer_holds_gets_a_resync_then_live_pushes() {
    // Redis trims whole stream nodes (100 entries): push past them.
    let app = spawn_app_with(|c| c.ws.replay_len = 3).await;
    let user = app.user_with_device("kid", "02:00:00:00:33:01").await;
    let token = app.mac_login("02:00:00:00:33:01").await;
    let old = push_id(&app, &token, &json!({"n": 0})).await;
    for n in 1..=150 {
        push_id(&app, &token, &json!({"n": n})).await;
    }
    let mut socket = connect_since(&app, &token, &old).await;
    let resync = next_json(&mut socket).await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert!(resync["id"].is_string());
    app.wait_for_sockets(user, 1).await;
    let live = json!({"n": "live"});
    let id = push_id(&app, &token, &live).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": id, "message": live})
    );

    // The resync cursor resumes without a gap.
    socket.close(None).await.unwrap();
    wait_for_no_sockets(&app, user).await;
    let after = json!({"n": "after"});
    let after_id = push_id(&app, &token, &after).await;
    let mut socket = connect_since(&app, &token, resync["id"].as_str().unwrap()).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": id, "message": live})
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": after_id, "message": after})
    );
}

#[tokio::test]
async fn a_malformed_since_is_refused_at_the_handshake() {
    let app = spawn_app().await;
    app.user_with_device("kid", "02:00:00:00:34:01").await;
    let token = app.mac_login("02:00:00:00:34:01").await;
    for bad in ["yesterday", "1-2-3", "-5"] {
        let url = format!("ws://{}/ws/device/token/{token}/?since={bad}", app.addr);
        match tokio_tungstenite::connect_async(url).await.unwrap_err() {
            tokio_tungstenite::tungstenite::Error::Http(res) => {
                assert_eq!(res.status(), 400, "{bad}");
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["details"]["field"], "since", "{body}");
            }
            other => panic!("expected an HTTP refusal for {bad}, got {other}"),
        }
    }
}
