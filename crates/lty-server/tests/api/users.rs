//! `/api/user/`: MAC login, profile, logout, Bearer authentication.

use std::time::Duration;

use lty_core::token::{TOKEN_TTL, TokenKind};
use serde_json::{Value, json};

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn mac_login_returns_a_new_token_for_the_latest_binding() {
    let app = spawn_app().await;
    let first = app.user_with_device("first", "02:00:00:00:00:05").await;
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &json!({"mac_address": "02:00:00:00:00:05"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], first);
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 40);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    // The token is stored under the legacy key with a 30-day expiry.
    let key = format!("token:{token}");
    assert_eq!(
        app.state.cache.get(&key).await.unwrap(),
        Some(first.to_string())
    );
    let ttl = app.state.cache.ttl(&key).await.unwrap().unwrap();
    assert!(ttl <= TOKEN_TTL && ttl > TOKEN_TTL - Duration::from_secs(60));

    // Each call issues a different token.
    assert_ne!(app.mac_login("02:00:00:00:00:05").await, token);

    // Re-binding the MAC to another user moves the login to that user.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = app.user_with_device("second", "02:00:00:00:00:05").await;
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &json!({"mac_address": "02:00:00:00:00:05"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], second);
}

#[tokio::test]
async fn mac_login_accepts_any_case_and_dash_separators() {
    let app = spawn_app().await;
    let id = app.user_with_device("u", "aa:bb:cc:dd:ee:0f").await;
    for mac in ["AA:BB:CC:DD:EE:0F", "aa-bb-cc-dd-ee-0f", "AABBCCDDEE0F"] {
        let res = app
            .post_json("/api/user/mac-login/", &json!({"mac_address": mac}))
            .await;
        assert_eq!(res.status(), 200, "{mac}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user_id"], id);
    }
}

#[tokio::test]
async fn mac_login_accepts_a_form_encoded_body() {
    let app = spawn_app().await;
    let id = app.user_with_device("u", "02:00:00:00:00:07").await;
    let res = app
        .client
        .post(app.url("/api/user/mac-login/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("mac_address=02%3A00%3A00%3A00%3A00%3A07")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], id);
}

#[tokio::test]
async fn mac_login_returns_404_for_an_unbound_mac() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &json!({"mac_address": "02:ff:ff:ff:ff:ff"}),
        )
        .await;
    assert_error(res, 404, "device_not_bound").await;
}

#[tokio::test]
async fn mac_login_returns_400_for_a_missing_empty_or_malformed_mac() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({"mac_address": ""}),
        json!({"mac_address": null}),
        json!({"mac_address": "02:00:00:00:00"}),
        json!({"mac_address": "zz:00:00:00:00:00"}),
    ] {
        let res = app.post_json("/api/user/mac-login/", &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], "mac_address", "{body}");
    }
}

#[tokio::test]
async fn profile_returns_the_contract_fields_for_the_token_user() {
    let app = spawn_app().await;
    let id = app.user_with_device("kid", "02:00:00:00:00:09").await;
    let token = app.mac_login("02:00:00:00:00:09").await;
    let res = app
        .client
        .get(app.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["username"], "kid");
    let joined = body["date_joined"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(joined).is_ok(),
        "{joined}"
    );
}

#[tokio::test]
async fn profile_rejects_missing_malformed_unknown_and_admin_tokens() {
    let app = spawn_app().await;
    let id = app.user_with_device("kid", "02:00:00:00:00:0a").await;
    assert_error(app.get("/api/user/profile/").await, 401, "unauthenticated").await;
    let admin_token = app.state.tokens.issue(TokenKind::Admin, id).await.unwrap();
    for header in [
        "Bearer".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer 0123456789abcdef0123456789abcdef01234567".to_owned(),
        "Bearer ../../etc".to_owned(),
        format!("Bearer {admin_token}"),
    ] {
        let res = app
            .client
            .get(app.url("/api/user/profile/"))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers().get("www-authenticate").unwrap(),
            "Bearer",
            "{header}"
        );
        assert_error(res, 401, "unauthenticated").await;
    }
}

#[tokio::test]
async fn profile_can_be_edited_validated_and_cleared() {
    let app = spawn_app().await;
    app.user_with_device("kid", "02:00:00:00:00:0b").await;
    let token = app.mac_login("02:00:00:00:00:0b").await;
    let patch = |body: Value| {
        app.client
            .patch(app.url("/api/user/profile/"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let res = patch(json!({"nickname": "  小明 ", "avatar_url": "https://cdn.example.com/a.png"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["nickname"], "小明");
    assert_eq!(body["avatar_url"], "https://cdn.example.com/a.png");

    for (bad, field) in [
        (json!({"nickname": ""}), "nickname"),
        (json!({"nickname": "x".repeat(65)}), "nickname"),
        (json!({"avatar_url": "javascript:alert(1)"}), "avatar_url"),
    ] {
        let err = assert_error(patch(bad).await.unwrap(), 400, "validation_error").await;
        assert_eq!(err["details"]["field"], field);
    }
    assert_error(
        patch(json!({"is_staff": true})).await.unwrap(),
        400,
        "invalid_body",
    )
    .await;

    let res = patch(json!({"avatar_url": null})).await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["avatar_url"], Value::Null);
    assert_eq!(body["nickname"], "小明");
}

#[tokio::test]
async fn logout_deletes_the_token() {
    let app = spawn_app().await;
    app.user_with_device("kid", "02:00:00:00:00:0c").await;
    let token = app.mac_login("02:00:00:00:00:0c").await;
    let other = app.mac_login("02:00:00:00:00:0c").await;
    let res = app
        .client
        .post(app.url("/api/user/logout/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["logged_out"], true);
    let res = app
        .client
        .get(app.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
    // Other sessions of the same user are unaffected.
    let res = app
        .client
        .get(app.url("/api/user/profile/"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
