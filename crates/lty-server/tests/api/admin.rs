//! Admin accounts: `/api/v1/admin/login/`, logout, lockout, and the
//! separation of admin and user tokens.

use std::time::Duration;

use lty_core::admin::AdminRole;
use lty_server::config::RateLimit;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery staple";

async fn create(app: &TestApp, username: &str, role: AdminRole) -> i64 {
    lty_server::app::admin::create_admin(&app.state.db, username, PASSWORD, role)
        .await
        .unwrap()
        .id
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/admin/login/",
        &json!({ "username": username, "password": password }),
    )
    .await
}

async fn get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_login_returns_an_admin_token_that_is_not_a_user_token() {
    let app = spawn_app().await;
    let id = create(&app, "ops", AdminRole::Operator).await;
    let res = login(&app, "ops", PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["admin_id"], id);
    assert_eq!(body["role"], "operator");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 40);
    let key = format!("admin_token:{token}");
    assert_eq!(
        app.state.cache.get(&key).await.unwrap(),
        Some(id.to_string())
    );
    assert_eq!(
        app.state
            .cache
            .get(&format!("token:{token}"))
            .await
            .unwrap(),
        None
    );

    let me: Value = get(&app, "/api/v1/admin/me/", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "ops");
    assert_eq!(me["role"], "operator");
    assert!(me["last_login_at"].is_string());

    // The admin token is worthless on user routes.
    assert_error(
        get(&app, "/api/user/profile/", token).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn user_tokens_are_refused_by_the_admin_api() {
    let app = spawn_app().await;
    let user_id = app.user_with_device("kid", "02:00:00:00:88:01").await;
    let token = app.mac_login("02:00:00:00:88:01").await;
    // Even when an admin with the same numeric id exists.
    let admin_id = create(&app, "root", AdminRole::Superadmin).await;
    assert_eq!(admin_id, user_id);
    assert_error(
        get(&app, "/api/v1/admin/me/", &token).await,
        401,
        "unauthenticated",
    )
    .await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/logout/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
    assert_error(app.get("/api/v1/admin/me/").await, 401, "unauthenticated").await;
}

#[tokio::test]
async fn wrong_passwords_and_unknown_admins_get_the_same_answer() {
    let app = spawn_app().await;
    create(&app, "ops", AdminRole::Operator).await;
    let a = assert_error(
        login(&app, "ops", "wrong password!").await,
        401,
        "invalid_credentials",
    )
    .await;
    let b = assert_error(
        login(&app, "nobody", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn admin_login_requires_username_and_password() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"password": PASSWORD}), "username"),
        (json!({"username": " ", "password": PASSWORD}), "username"),
        (json!({"username": "ops"}), "password"),
        (json!({"username": "ops", "password": ""}), "password"),
    ] {
        let res = app.post_json("/api/v1/admin/login/", &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn five_failures_lock_the_account_for_the_lockout_period() {
    let app = spawn_app_with(|c| c.auth.admin_lockout_secs = 2).await;
    create(&app, "ops", AdminRole::Operator).await;
    for _ in 0..4 {
        assert_error(
            login(&app, "ops", "wrong password!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let res = login(&app, "ops", "wrong password!").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_error(res, 429, "admin_locked").await;
    // Locked: the right password does not help.
    assert_error(login(&app, "ops", PASSWORD).await, 429, "admin_locked").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(login(&app, "ops", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let app = spawn_app().await;
    create(&app, "ops", AdminRole::Operator).await;
    for _ in 0..4 {
        assert_error(
            login(&app, "ops", "wrong password!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_eq!(login(&app, "ops", PASSWORD).await.status(), 200);
    for _ in 0..4 {
        assert_error(
            login(&app, "ops", "wrong password!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_eq!(login(&app, "ops", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn admin_logout_deletes_the_admin_token() {
    let app = spawn_app().await;
    create(&app, "ops", AdminRole::Superadmin).await;
    let body: Value = login(&app, "ops", PASSWORD).await.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/admin/logout/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["logged_out"], true);
    assert_error(
        get(&app, "/api/v1/admin/me/", token).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn admin_login_is_limited_per_client_ip() {
    let app = spawn_app_with(|c| {
        c.limits.exempt_loopback = false;
        c.limits.admin_login_per_ip = RateLimit {
            max: 2,
            window_secs: 600,
        };
    })
    .await;
    for _ in 0..2 {
        assert_error(
            login(&app, "nobody", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_error(login(&app, "nobody", PASSWORD).await, 429, "rate_limited").await;
}

#[tokio::test]
async fn operators_lack_what_only_a_superadmin_may_do() {
    let app = spawn_app().await;
    create(&app, "ops", AdminRole::Operator).await;
    create(&app, "root", AdminRole::Superadmin).await;
    for (name, allowed) in [("ops", false), ("root", true)] {
        let body: Value = login(&app, name, PASSWORD).await.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        // Resolve the extractor the admin API uses, then ask for the role.
        let admin = app
            .state
            .db
            .admin(body["admin_id"].as_i64().unwrap())
            .await
            .unwrap()
            .unwrap();
        let auth = lty_server::auth::AuthAdmin { admin, token };
        assert!(auth.require(AdminRole::Operator).is_ok());
        assert_eq!(
            auth.require(AdminRole::Superadmin).is_ok(),
            allowed,
            "{name}"
        );
    }
}
