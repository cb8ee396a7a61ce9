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

// --- Mini program (`/sns/jscode2session`) ---------------------------------------------

async fn app_with_mini() -> (TestApp, FakeWechat) {
    let fake = FakeWechat::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        fake.configure_mini(c);
    })
    .await;
    (app, fake)
}

async fn mini_login(app: &TestApp, code: &str) -> reqwest::Response {
    app.post_json("/api/user/wechat-mini-login/", &json!({ "code": code }))
        .await
}

async fn mini_login_ok(app: &TestApp, code: &str) -> Value {
    let res = mini_login(app, code).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn mini_login_creates_a_user_then_finds_it_again_and_never_returns_the_session_key() {
    let (app, fake) = app_with_mini().await;
    let res = mini_login(&app, &fake.issue_js_code("o-mini-1", Some("u-mini-1"))).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let first: Value = serde_json::from_str(&text).unwrap();
    // The same answer as /api/user/wechat-login/, and nothing else.
    let mut keys: Vec<_> = first.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created", "token", "user_id"]);
    assert_eq!(first["created"], true);
    let p = profile(&app, first["token"].as_str().unwrap()).await;
    assert_eq!(p["id"], first["user_id"]);
    assert_eq!(p["wechat_linked"], true);

    let res = mini_login(&app, &fake.issue_js_code("o-mini-1", Some("u-mini-1"))).await;
    let text2 = res.text().await.unwrap();
    let second: Value = serde_json::from_str(&text2).unwrap();
    assert_eq!(second["created"], false);
    assert_eq!(second["user_id"], first["user_id"]);

    let keys = fake.session_keys();
    assert_eq!(keys.len(), 2, "both logins went to jscode2session");
    for body in [&text, &text2] {
        assert!(!body.contains("session_key"), "{body}");
        for key in &keys {
            assert!(!body.contains(key.as_str()), "{body}");
        }
    }
    assert_eq!(fake.calls(), ["/sns/jscode2session", "/sns/jscode2session"]);
}

#[tokio::test]
async fn mini_login_finds_the_app_user_through_the_shared_unionid() {
    let (app, fake) = app_with_mini().await;
    let app_user: Value = wechat_login(&app, &fake.issue_code("o-app", Some("u-shared"), "a"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app_user["created"], true);

    // Another AppID, another openid: only the unionid says it is the same person.
    let mini = mini_login_ok(&app, &fake.issue_js_code("o-mini", Some("u-shared"))).await;
    assert_eq!(mini["created"], false);
    assert_eq!(mini["user_id"], app_user["user_id"]);
    // From now on the mini identity itself leads there, and so does the app.
    let again = mini_login_ok(&app, &fake.issue_js_code("o-mini", Some("u-shared"))).await;
    assert_eq!(again["user_id"], app_user["user_id"]);
    let app_again: Value = wechat_login(&app, &fake.issue_code("o-app", Some("u-shared"), "a"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app_again["user_id"], app_user["user_id"]);
}

#[tokio::test]
async fn an_unbound_mini_program_without_unionid_creates_users_of_its_own() {
    let (app, fake) = app_with_mini().await;
    fake.unbind_mini();
    let app_user: Value = wechat_login(&app, &fake.issue_code("o-app", Some("u-same"), "a"))
        .await
        .json()
        .await
        .unwrap();
    // Same person, but WeChat withholds the unionid: nothing links the two.
    let mini = mini_login_ok(&app, &fake.issue_js_code("o-mini", Some("u-same"))).await;
    assert_eq!(mini["created"], true);
    assert_ne!(mini["user_id"], app_user["user_id"]);
    // The mini user is found again by the mini program's openid.
    let again = mini_login_ok(&app, &fake.issue_js_code("o-mini", Some("u-same"))).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["user_id"], mini["user_id"]);
    let other = mini_login_ok(&app, &fake.issue_js_code("o-mini-other", None)).await;
    assert_ne!(other["user_id"], mini["user_id"]);
}

#[tokio::test]
async fn unknown_reused_expired_and_foreign_mini_codes_are_invalid_wechat_codes() {
    let (app, fake) = app_with_mini().await;
    let err = assert_error(
        mini_login(&app, "never-issued").await,
        400,
        "invalid_wechat_code",
    )
    .await;
    assert_eq!(err["details"]["errcode"], 40029);

    let code = fake.issue_js_code("o-used", None);
    mini_login_ok(&app, &code).await;
    let err = assert_error(mini_login(&app, &code).await, 400, "invalid_wechat_code").await;
    assert_eq!(err["details"]["errcode"], 40163);

    // A code lives about five minutes.
    let fresh = fake.issue_js_code("o-age", None);
    fake.advance(Duration::from_secs(200));
    mini_login_ok(&app, &fresh).await;
    let stale = fake.issue_js_code("o-age", None);
    fake.advance(Duration::from_secs(301));
    assert_error(mini_login(&app, &stale).await, 400, "invalid_wechat_code").await;

    // A code of the Open Platform app means nothing to the mini program.
    let app_code = fake.issue_code("o-app", None, "n");
    assert_error(
        mini_login(&app, &app_code).await,
        400,
        "invalid_wechat_code",
    )
    .await;
    // Nor is it spent by the failed try.
    assert_eq!(wechat_login(&app, &app_code).await.status(), 200);
}

#[tokio::test]
async fn mini_login_with_wrong_mini_credentials_is_502() {
    let fake = FakeWechat::start().await;
    let app = spawn_app_with(|c| {
        fake.configure_mini(c);
        c.wechat.mini_app_secret = Some(lty_server::config::Secret::new("wrong"));
    })
    .await;
    let res = mini_login(&app, &fake.issue_js_code("o", None)).await;
    let err = assert_error(res, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "wechat");

    // The app's AppID is not the mini program's.
    let app = spawn_app_with(|c| {
        fake.configure_mini(c);
        c.wechat.mini_app_id = Some(crate::fakes::wechat::APP_ID.into());
    })
    .await;
    let res = mini_login(&app, &fake.issue_js_code("o", None)).await;
    assert_error(res, 502, "upstream_error").await;
}

#[tokio::test]
async fn a_busy_mini_answer_is_retried_once_then_reported_as_502() {
    let (app, fake) = app_with_mini().await;
    fake.script(Script::Errcode(-1));
    let body = mini_login_ok(&app, &fake.issue_js_code("o-busy", None)).await;
    assert_eq!(body["created"], true);
    assert_eq!(fake.calls(), ["/sns/jscode2session", "/sns/jscode2session"]);

    fake.script(Script::Errcode(-1));
    fake.script(Script::Errcode(-1));
    let res = mini_login(&app, &fake.issue_js_code("o-busy2", None)).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.calls().len(), 4, "one retry, not more");
}

#[tokio::test]
async fn a_slow_jscode2session_is_not_retried_and_answers_502() {
    let fake = FakeWechat::start().await;
    let app = spawn_app_with(|c| {
        fake.configure_mini(c);
        c.wechat.timeout_secs = 1;
    })
    .await;
    fake.script(Script::Delay(Duration::from_secs(3)));
    let res = mini_login(&app, &fake.issue_js_code("o", None)).await;
    assert_error(res, 502, "upstream_error").await;
    // The code may have been spent: it is never exchanged twice.
    assert_eq!(fake.calls(), ["/sns/jscode2session"]);
}

#[tokio::test]
async fn mini_rate_limits_and_blocks_become_429_and_403() {
    let (app, fake) = app_with_mini().await;
    fake.script(Script::Errcode(45011));
    let res = mini_login(&app, &fake.issue_js_code("o1", None)).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "rate_limited").await;

    fake.script(Script::Errcode(40226));
    let res = mini_login(&app, &fake.issue_js_code("o2", None)).await;
    assert_error(res, 403, "wechat_user_blocked").await;
}

#[tokio::test]
async fn mini_login_is_503_until_the_mini_program_is_configured_on_its_own() {
    // The Open Platform app alone does not enable the mini program...
    let (app, fake) = app_with_wechat().await;
    let err = assert_error(
        mini_login(&app, "some-code").await,
        503,
        "provider_not_configured",
    )
    .await;
    assert_eq!(err["details"]["provider"], "wechat_mini");
    assert_eq!(
        wechat_login(&app, &fake.issue_code("o", None, "n"))
            .await
            .status(),
        200
    );

    // ...nor the mini program the app.
    let app = spawn_app_with(|c| fake.configure_mini(c)).await;
    mini_login_ok(&app, &fake.issue_js_code("o", None)).await;
    let err = assert_error(
        wechat_login(&app, "some-code").await,
        503,
        "provider_not_configured",
    )
    .await;
    assert_eq!(err["details"]["provider"], "wechat");

    let res = app
        .post_json("/api/user/wechat-mini-login/", &json!({}))
        .await;
    let err = assert_error(res, 400, "validation_error").await;
    assert_eq!(err["details"]["field"], "code");
}

/// Two concurrent first logins of one person: both succeed as the same
/// user, and exactly one of them created it.
async fn assert_one_user_created(round: usize, ra: reqwest::Response, rb: reqwest::Response) {
    let (sa, sb) = (ra.status(), rb.status());
    let (ra, rb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
    assert_eq!((sa.as_u16(), sb.as_u16()), (200, 200), "{ra} {rb}");
    assert_eq!(ra["user_id"], rb["user_id"], "round {round}: {ra} {rb}");
    let created = [&ra, &rb].iter().filter(|r| r["created"] == true).count();
    assert_eq!(created, 1, "round {round}: {ra} {rb}");
}

#[tokio::test]
async fn concurrent_first_mini_logins_of_one_person_create_one_user() {
    let (app, fake) = app_with_mini().await;
    for round in 0..4 {
        let openid = format!("o-race-{round}");
        let unionid = format!("u-race-{round}");
        let a = fake.issue_js_code(&openid, Some(&unionid));
        let b = fake.issue_js_code(&openid, Some(&unionid));
        let (ra, rb) = tokio::join!(mini_login(&app, &a), mini_login(&app, &b));
        assert_one_user_created(round, ra, rb).await;
    }
}

#[tokio::test]
async fn concurrent_first_logins_from_the_app_and_the_mini_program_create_one_user() {
    let (app, fake) = app_with_mini().await;
    for round in 0..6 {
        let unionid = format!("u-cross-{round}");
        let from_app = fake.issue_code(&format!("o-app-{round}"), Some(&unionid), "n");
        let from_mini = fake.issue_js_code(&format!("o-mini-{round}"), Some(&unionid));
        let (ra, rb) = tokio::join!(wechat_login(&app, &from_app), mini_login(&app, &from_mini));
        assert_one_user_created(round, ra, rb).await;
    }
}

#[tokio::test]
async fn wechat_mini_bind_links_the_mini_program_to_an_existing_account() {
    let (app, fake) = app_with_mini().await;
    let user_id = app.user_with_device("family", "02:00:00:00:77:11").await;
    let token = app.mac_login("02:00:00:00:77:11").await;
    let res = app
        .client
        .post(app.url("/api/user/wechat-mini-bind/"))
        .bearer_auth(&token)
        .json(&json!({ "code": fake.issue_js_code("o-mini-bind", None) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["wechat_linked"], true);
    assert_eq!(body["already_linked"], false);

    let login = mini_login_ok(&app, &fake.issue_js_code("o-mini-bind", None)).await;
    assert_eq!(login["user_id"], user_id);
    assert_eq!(login["created"], false);
    // One identity per app: the app's WeChat can still be linked as well.
    let res = bind(&app, &token, &fake.issue_code("o-app-bind", None, "n")).await;
    assert_eq!(res.status(), 200);

    let res = app
        .post_json("/api/user/wechat-mini-bind/", &json!({"code": "x"}))
        .await;
    assert_error(res, 401, "unauthenticated").await;
}

#[test]
fn mini_program_credentials_come_from_either_variable_and_the_secret_never_prints() {
    use lty_server::config::{Config, EnvProvider};
    let load = |vars: &[(&str, &str)]| {
        let env = EnvProvider::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lty.toml");
        std::fs::write(&file, "").unwrap();
        Config::load(Some(&file), env).unwrap()
    };
    for (id_var, secret_var) in [
        ("WECHAT_MINI_APP_ID", "WECHAT_MINI_APP_SECRET"),
        ("LTY_WECHAT__MINI_APP_ID", "LTY_WECHAT__MINI_APP_SECRET"),
    ] {
        let c = load(&[(id_var, "wxmini123"), (secret_var, "mini-secret-456")]);
        assert_eq!(c.wechat.mini_app_id.as_deref(), Some("wxmini123"));
        assert_eq!(
            c.wechat.mini_app_secret.as_ref().map(|s| s.expose()),
            Some("mini-secret-456")
        );
        assert_eq!(c.wechat.app_id, None, "the app's own AppID stays unset");
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("mini-secret-456"), "{printed}");
        assert!(printed.contains("wxmini123"), "{printed}");
    }
    // Half a configuration stops the server at start.
    let c = load(&[("WECHAT_MINI_APP_ID", "wxmini123")]);
    let err = lty_server::app::wechat::mini_client(&c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("WECHAT_MINI_APP_SECRET"), "{err}");
}
