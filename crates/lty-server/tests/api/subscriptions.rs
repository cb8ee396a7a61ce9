//! Plans and subscriptions: the free plan, admin-defined plans, grants that
//! extend, expiry falling back to free, and `limits_for`.

use chrono::{Duration, Utc};
use lty_core::admin::AdminRole;
use lty_store::subscriptions::Grant;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app};

/// Creates an admin with `role` and returns its token.
pub async fn admin_token(app: &TestApp, role: AdminRole) -> String {
    let username = format!("ops_{}", crate::helpers::random_hex(4));
    let password = "correct horse battery staple";
    lty_server::app::admin::create_admin(&app.state.db, &username, password, role)
        .await
        .unwrap();
    let res = app
        .post_json(
            "/api/v1/admin/login/",
            &json!({ "username": username, "password": password }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Defines a plan `code` through the admin API and returns its id.
pub async fn create_plan(app: &TestApp, admin: &str, code: &str, messages: u32) -> i64 {
    let res = app
        .client
        .post(app.url("/api/v1/admin/plans/"))
        .bearer_auth(admin)
        .json(&json!({
            "code": code, "name": "Premium", "daily_ai_messages": messages,
            "daily_voice_minutes": 60, "personas": ["default", "pirate"],
            "price_cents": 1990,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["id"].as_i64().unwrap()
}

async fn subscription(app: &TestApp, token: &str) -> Value {
    let res = app
        .client
        .get(app.url("/api/user/subscription/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn plans_lists_the_seeded_free_plan_without_a_token() {
    let app = spawn_app().await;
    let res = app.get("/api/plans/").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["plans"][0]["code"], "free");
    assert_eq!(body["plans"][0]["price_cents"], 0);
    assert!(body["plans"][0]["daily_ai_messages"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_new_user_is_on_the_free_plan_with_no_history() {
    let app = spawn_app().await;
    app.user_with_device("sub_free", "02:00:00:00:09:01").await;
    let token = app.mac_login("02:00:00:00:09:01").await;
    let body = subscription(&app, &token).await;
    assert_eq!(body["plan"]["code"], "free");
    assert!(body["current"].is_null());
    assert!(body["ends_at"].is_null());
    assert_eq!(body["history"], json!([]));
}

#[tokio::test]
async fn subscription_needs_a_user_token() {
    let app = spawn_app().await;
    assert_error(
        app.get("/api/user/subscription/").await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn an_admin_grant_switches_the_plan_and_a_second_grant_extends_it() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &admin, "premium", 500).await;
    let user = app.user_with_device("sub_grant", "02:00:00:00:09:02").await;
    let token = app.mac_login("02:00:00:00:09:02").await;
    for _ in 0..2 {
        let res = app
            .client
            .post(app.url(&format!("/api/v1/admin/users/{user}/subscription/")))
            .bearer_auth(&admin)
            .json(&json!({ "plan_id": plan, "days": 30 }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let body = subscription(&app, &token).await;
    assert_eq!(body["plan"]["code"], "premium");
    assert_eq!(body["history"].as_array().unwrap().len(), 2);
    let ends: chrono::DateTime<Utc> = body["ends_at"].as_str().unwrap().parse().unwrap();
    let days = (ends - Utc::now()).num_hours() as f64 / 24.0;
    assert!((59.9..=60.1).contains(&days), "ends in {days} days");
    let limits = lty_server::app::subscriptions::limits_for(&app.state, user)
        .await
        .unwrap();
    assert_eq!(limits.plan, "premium");
    assert_eq!(limits.daily_ai_messages, 500);
    assert_eq!(limits.personas, vec!["default", "pirate"]);
}

#[tokio::test]
async fn an_expired_period_falls_back_to_the_free_plan() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &admin, "premium", 500).await;
    let user = app
        .user_with_device("sub_expired", "02:00:00:00:09:03")
        .await;
    let token = app.mac_login("02:00:00:00:09:03").await;
    // A 1-day period granted 2 days ago.
    app.state
        .db
        .grant_subscription(user, plan, 1, Grant::Admin, Utc::now() - Duration::days(2))
        .await
        .unwrap();
    let body = subscription(&app, &token).await;
    assert_eq!(body["plan"]["code"], "free");
    assert!(body["current"].is_null());
    assert_eq!(body["history"].as_array().unwrap().len(), 1);
    let limits = lty_server::app::subscriptions::limits_for(&app.state, user)
        .await
        .unwrap();
    assert_eq!(limits.plan, "free");
}

#[tokio::test]
async fn defining_plans_needs_a_superadmin_and_a_free_code() {
    let app = spawn_app().await;
    let operator = admin_token(&app, AdminRole::Operator).await;
    let body = json!({ "code": "gold", "name": "Gold", "daily_ai_messages": 1,
        "daily_voice_minutes": 1, "price_cents": 1 });
    let res = app
        .client
        .post(app.url("/api/v1/admin/plans/"))
        .bearer_auth(&operator)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "forbidden").await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/plans/"))
        .bearer_auth(&admin)
        .json(
            &json!({ "code": "free", "name": "Again", "daily_ai_messages": 1,
            "daily_voice_minutes": 1, "price_cents": 0 }),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 409, "plan_exists").await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/plans/"))
        .bearer_auth(&admin)
        .json(
            &json!({ "code": "Bad Code", "name": "x", "daily_ai_messages": 1,
            "daily_voice_minutes": 1, "price_cents": 0 }),
        )
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
}

#[tokio::test]
async fn granting_to_an_unknown_user_is_404() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/users/999999/subscription/"))
        .bearer_auth(&admin)
        .json(&json!({ "plan_id": 1, "days": 3 }))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "not_found").await;
}
