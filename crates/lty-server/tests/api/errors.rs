//! Every error is `{"code","message","details"?}` JSON with a 4xx status.

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_unknown_route_gives_a_json_404() {
    let app = spawn_app().await;
    assert_error(app.get("/api/no/such/route/").await, 404, "not_found").await;
}

#[tokio::test]
async fn a_wrong_method_gives_a_json_405() {
    let app = spawn_app().await;
    let res = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_error(res, 405, "method_not_allowed").await;
    let res = app.get("/api/user/mac-login/").await;
    assert_error(res, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn malformed_json_gives_a_400_with_its_own_code() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/user/mac-login/"))
        .header("content-type", "application/json")
        .body(r#"{"mac_address": "#)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "malformed_json").await;
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_gives_a_400() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &serde_json::json!({"mac_address": 42}),
        )
        .await;
    assert_error(res, 400, "invalid_body").await;
}

#[tokio::test]
async fn a_wrong_content_type_gives_a_415() {
    let app = spawn_app().await;
    let res = app
        .client
        .patch(app.url("/api/user/profile/"))
        .header("authorization", "Bearer whatever")
        .header("content-type", "text/plain")
        .body("nickname=x")
        .send()
        .await
        .unwrap();
    // Authentication runs first: an unknown token is a 401 before the body.
    assert_error(res, 401, "unauthenticated").await;
    let res = app
        .client
        .post(app.url("/api/user/mac-login/"))
        .header("content-type", "text/plain")
        .body("02:00:00:00:00:01")
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn an_oversized_body_gives_a_413() {
    let app = spawn_app_with(|c| c.http.body_limit = 2048).await;
    let big = format!(r#"{{"mac_address": "{}"}}"#, "a".repeat(4096));
    let res = app
        .client
        .post(app.url("/api/user/mac-login/"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "payload_too_large").await;
    // Just under the limit is parsed (and rejected for its content).
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &serde_json::json!({"mac_address": "x"}),
        )
        .await;
    assert_error(res, 400, "validation_error").await;
}

#[tokio::test]
async fn a_json_array_is_not_taken_for_an_object() {
    let app = spawn_app().await;
    app.user_with_device("family_e1", "02:00:00:00:0e:01").await;
    let token = app.mac_login("02:00:00:00:0e:01").await;
    let res = app
        .client
        .patch(app.url("/api/user/profile/"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"nickname": "小明"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Read field by field, `[null, null]` would clear the nickname.
    let res = app
        .client
        .patch(app.url("/api/user/profile/"))
        .bearer_auth(&token)
        .json(&serde_json::json!([null, null]))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
    let profile: serde_json::Value = app
        .client
        .get(app.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["nickname"], "小明");
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &serde_json::json!(["02:00:00:00:0e:01"]),
        )
        .await;
    assert_error(res, 400, "validation_error").await;
}

#[tokio::test]
async fn limits_the_spec_states_are_the_ones_the_server_keeps() {
    let app = spawn_app().await;
    app.user_with_device("family_e2", "02:00:00:00:0e:02").await;
    let token = app.mac_login("02:00:00:00:0e:02").await;
    let res = app
        .client
        .get(app.url("/api/ai/conversations/?page=1000001"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;

    // A plan's daily limits are 32-bit: a larger one was kept as the
    // largest 32-bit value without a word.
    let admin =
        crate::subscriptions::admin_token(&app, lty_core::admin::AdminRole::Superadmin).await;
    let res = app
        .client
        .patch(app.url("/api/v1/admin/plans/1/"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"daily_voice_minutes": 2_147_483_648u64}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/plans/"))
        .bearer_auth(&admin)
        .json(
            &serde_json::json!({"code": "big", "name": "Big", "daily_ai_messages": 4_000_000_000u64,
                                  "daily_voice_minutes": 10, "price_cents": 100}),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
}
