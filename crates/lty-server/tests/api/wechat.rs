//! WeChat login and binding against the fake WeChat API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::wechat::{FakeWechat, Script};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

async fn app_with_wechat() -> (TestApp, FakeWechat) {
    let fake = FakeWechat::start().await;
    let app = spawn_app_with(|c| fake.configure(c)).await;
    (app, fake)
}

async fn wechat_login(app: &TestApp, code: &str) -> reqwest::Response {
    app.post_json("/api/user/wechat-login/", &json!({ "code": code }))
        .await
}

async fn bind(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/user/wechat-bind/"))
        .bearer_auth(token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

async fn profile(app: &TestApp, token: &str) -> Value {
    let res = app
        .client
        .get(app.url("/api/user/profile/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn wechat_login_creates_a_user_then_finds_it_again() {
    let (app, fake) = app_with_wechat().await;
    let code = fake.issue_code("openid-1", Some("union-1"), "小明妈妈");
    let res = wechat_login(&app, &code).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["created"], true);
    let user_id = body["user_id"].as_i64().unwrap();
    let p = profile(&app, body["token"].as_str().unwrap()).await;
    assert_eq!(p["id"], user_id);
    assert_eq!(p["wechat_linked"], true);
    assert_eq!(p["nickname"], "小明妈妈");

    let code = fake.issue_code("openid-1", Some("union-1"), "小明妈妈");
    let body: Value = wechat_login(&app, &code).await.json().await.unwrap();
    assert_eq!(body["created"], false);
    assert_eq!(body["user_id"], user_id);
    assert_eq!(
        fake.calls(),
        [
            "/sns/oauth2/access_token",
            "/sns/userinfo",
            "/sns/oauth2/access_token",
            "/sns/userinfo"
        ]
    );
}

#[tokio::test]
async fn another_openid_with_the_same_unionid_reaches_the_same_user() {
    let (app, fake) = app_with_wechat().await;
    let code = fake.issue_code("openid-app", Some("union-7"), "a");
    let first: Value = wechat_login(&app, &code).await.json().await.unwrap();
    let code = fake.issue_code("openid-web", Some("union-7"), "a");
    let second: Value = wechat_login(&app, &code).await.json().await.unwrap();
    assert_eq!(second["created"], false);
    assert_eq!(second["user_id"], first["user_id"]);
}

#[tokio::test]
async fn without_a_unionid_users_are_matched_by_openid() {
    let (app, fake) = app_with_wechat().await;
    let code = fake.issue_base_code("openid-base");
    let first: Value = wechat_login(&app, &code).await.json().await.unwrap();
    assert_eq!(first["created"], true);
    let code = fake.issue_base_code("openid-base");
    let second: Value = wechat_login(&app, &code).await.json().await.unwrap();
    assert_eq!(second["user_id"], first["user_id"]);
    let code = fake.issue_base_code("openid-other");
    let third: Value = wechat_login(&app, &code).await.json().await.unwrap();
    assert_ne!(third["user_id"], first["user_id"]);
    // snsapi_base grants no userinfo, so it is never asked for.
    assert!(!fake.calls().iter().any(|c| c == "/sns/userinfo"));
}

#[tokio::test]
async fn unknown_and_reused_codes_are_invalid_wechat_codes() {
    let (app, fake) = app_with_wechat().await;
    let err = assert_error(
        wechat_login(&app, "never-issued").await,
        400,
        "invalid_wechat_code",
    )
    .await;
    assert_eq!(err["details"]["errcode"], 40029);
    let code = fake.issue_code("o", None, "n");
    assert_eq!(wechat_login(&app, &code).await.status(), 200);
    let err = assert_error(wechat_login(&app, &code).await, 400, "invalid_wechat_code").await;
    assert_eq!(err["details"]["errcode"], 40163);
}

#[tokio::test]
async fn wechat_login_validates_the_code() {
    let (app, _fake) = app_with_wechat().await;
    for body in [json!({}), json!({"code": ""}), json!({"code": "a b"})] {
        let res = app.post_json("/api/user/wechat-login/", &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], "code", "{body}");
    }
}

#[tokio::test]
async fn a_busy_answer_is_retried_once_then_reported_as_502() {
    let (app, fake) = app_with_wechat().await;
    fake.script(Script::Errcode(-1));
    let code = fake.issue_code("o-busy", None, "n");
    assert_eq!(wechat_login(&app, &code).await.status(), 200);

    fake.script(Script::Errcode(-1));
    fake.script(Script::Errcode(-1));
    let code = fake.issue_code("o-busy2", None, "n");
    let err = assert_error(wechat_login(&app, &code).await, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "wechat");
}

#[tokio::test]
async fn wechat_rate_limits_blocks_and_config_errors_become_clear_answers() {
    let (app, fake) = app_with_wechat().await;
    fake.script(Script::Errcode(45011));
    let res = wechat_login(&app, &fake.issue_code("o1", None, "n")).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "rate_limited").await;

    fake.script(Script::Errcode(40226));
    let res = wechat_login(&app, &fake.issue_code("o2", None, "n")).await;
    assert_error(res, 403, "wechat_user_blocked").await;

    let bad = FakeWechat::start().await;
    let app = spawn_app_with(|c| {
        bad.configure(c);
        c.wechat.app_secret = Some(lty_server::config::Secret::new("wrong"));
    })
    .await;
    let res = wechat_login(&app, &bad.issue_code("o3", None, "n")).await;
    assert_error(res, 502, "upstream_error").await;
}

#[tokio::test]
async fn a_slow_wechat_times_out_as_502() {
    let fake = FakeWechat::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.wechat.timeout_secs = 1;
    })
    .await;
    fake.script(Script::Delay(Duration::from_secs(3)));
    let res = wechat_login(&app, &fake.issue_code("o", None, "n")).await;
    assert_error(res, 502, "upstream_error").await;
}

#[tokio::test]
async fn answers_labelled_text_plain_are_parsed_as_json() {
    let (app, fake) = app_with_wechat().await;
    fake.plain_text();
    let code = fake.issue_code("o-plain", Some("u-plain"), "n");
    assert_eq!(wechat_login(&app, &code).await.status(), 200);
}

#[tokio::test]
async fn wechat_login_is_503_when_wechat_is_not_configured() {
    let app = spawn_app().await;
    let err = assert_error(
        wechat_login(&app, "some-code").await,
        503,
        "provider_not_configured",
    )
    .await;
    assert_eq!(err["details"]["provider"], "wechat");
}

#[tokio::test]
async fn wechat_bind_links_wechat_to_an_existing_account() {
    let (app, fake) = app_with_wechat().await;
    let user_id = app.user_with_device("family", "02:00:00:00:77:01").await;
    let token = app.mac_login("02:00:00:00:77:01").await;
    assert_eq!(profile(&app, &token).await["wechat_linked"], false);

    let res = bind(
        &app,
        &token,
        &fake.issue_code("o-bind", Some("u-bind"), "n"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["wechat_linked"], true);
    assert_eq!(body["already_linked"], false);
    assert_eq!(profile(&app, &token).await["wechat_linked"], true);

    // WeChat login now reaches the same account.
    let body: Value = wechat_login(&app, &fake.issue_code("o-bind", Some("u-bind"), "n"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["user_id"], user_id);
    assert_eq!(body["created"], false);

    let res = bind(
        &app,
        &token,
        &fake.issue_code("o-bind", Some("u-bind"), "n"),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["already_linked"], true);
}

#[tokio::test]
async fn wechat_bind_refuses_identities_of_other_users_and_second_identities() {
    let (app, fake) = app_with_wechat().await;
    let taken: Value = wechat_login(&app, &fake.issue_code("o-taken", Some("u-taken"), "n"))
        .await
        .json()
        .await
        .unwrap();
    let other = taken["token"].as_str().unwrap();

    app.user_with_device("family", "02:00:00:00:77:02").await;
    let token = app.mac_login("02:00:00:00:77:02").await;
    let res = bind(
        &app,
        &token,
        &fake.issue_code("o-taken", Some("u-taken"), "n"),
    )
    .await;
    assert_error(res, 409, "wechat_already_linked").await;
    // Same person through another openid: the unionid gives it away.
    let res = bind(
        &app,
        &token,
        &fake.issue_code("o-taken-2", Some("u-taken"), "n"),
    )
    .await;
    assert_error(res, 409, "wechat_already_linked").await;

    // A user that has a WeChat identity cannot add a second one of the app.
    let res = bind(&app, other, &fake.issue_code("o-second", None, "n")).await;
    assert_error(res, 409, "wechat_link_conflict").await;

    let res = app
        .post_json("/api/user/wechat-bind/", &json!({"code": "x"}))
        .await;
    assert_error(res, 401, "unauthenticated").await;
    let res = bind(&app, &token, "never-issued").await;
    assert_error(res, 400, "invalid_wechat_code").await;
}
