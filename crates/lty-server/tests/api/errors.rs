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
