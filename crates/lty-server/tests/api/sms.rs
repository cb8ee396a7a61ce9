//! SMS login: `/api/user/sms/send/` and `/api/user/sms-login/` against the
//! fake Aliyun SMS gateway.

use std::time::Duration;

use lty_server::config::{Config, RateLimit};
use serde_json::{Value, json};

use crate::fakes::aliyun_sms::{self, FakeAliyunSms, Script};
use crate::helpers::{TestApp, assert_error, spawn_app_with};

const PHONE: &str = "13812345678";

/// The app wired to a fresh fake, with per-phone send limits off unless
/// `tweak` sets them.
async fn app_with_sms(tweak: impl FnOnce(&mut Config)) -> (TestApp, FakeAliyunSms) {
    let fake = FakeAliyunSms::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.limits.sms_send_per_phone = RateLimit {
            max: 0,
            window_secs: 60,
        };
        tweak(c);
    })
    .await;
    (app, fake)
}

async fn send(app: &TestApp, phone: &str) -> reqwest::Response {
    app.post_json("/api/user/sms/send/", &json!({ "phone": phone }))
        .await
}

async fn login(app: &TestApp, phone: &str, code: &str) -> reqwest::Response {
    app.post_json(
        "/api/user/sms-login/",
        &json!({ "phone": phone, "code": code }),
    )
    .await
}

/// Sends a code and returns it as the fake received it.
async fn code_for(app: &TestApp, fake: &FakeAliyunSms, phone: &str) -> String {
    let res = send(app, phone).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    fake.last_code(PHONE)
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn sms_login_signs_up_a_new_user_and_logs_the_same_user_in_again() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let code = code_for(&app, &fake, PHONE).await;
    let res = login(&app, PHONE, &code).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["created"], true);
    let user_id = body["user_id"].as_i64().unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 40);

    let res = app
        .client
        .get(app.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["id"], user_id);
    assert_eq!(profile["phone"], "138****5678");
    assert_eq!(profile["wechat_linked"], false);
    assert!(!profile["username"].as_str().unwrap().contains(PHONE));

    // Another spelling of the same number reaches the same account.
    let code = code_for(&app, &fake, "+86 138-1234-5678").await;
    let res = login(&app, "008613812345678", &code).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["created"], false);
    assert_eq!(body["user_id"], user_id);
}

#[tokio::test]
async fn sms_send_delivers_a_signed_send_sms_with_the_code_in_template_param() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let res = send(&app, "+86 138 1234 5678").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sent"], true);
    assert_eq!(body["expires_in"], 300);
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].phone_numbers, PHONE);
    assert_eq!(sent[0].sign_name, aliyun_sms::SIGN_NAME);
    assert_eq!(sent[0].template_code, aliyun_sms::TEMPLATE_CODE);
    let code = sent[0].template_param["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert!(fake.rejected().is_empty());

    // International numbers go out with their country code, no `+`.
    assert_eq!(send(&app, "+852 9123 4567").await.status(), 200);
    assert_eq!(fake.sent()[1].phone_numbers, "85291234567");
}

#[tokio::test]
async fn codes_are_stored_hashed_never_in_plaintext() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let code = code_for(&app, &fake, PHONE).await;
    let stored = app
        .state
        .cache
        .get(&format!("sms_code:{PHONE}"))
        .await
        .unwrap()
        .expect("a code record");
    assert!(!stored.contains(&code), "{stored}");
    assert!(stored.len() > 64, "{stored}");
}

#[tokio::test]
async fn sms_send_rejects_missing_and_malformed_phones() {
    let (app, fake) = app_with_sms(|_| {}).await;
    for body in [
        json!({}),
        json!({"phone": ""}),
        json!({"phone": "12345"}),
        json!({"phone": "12812345678"}),
        json!({"phone": "+86 128 1234 5678"}),
        json!({"phone": "phone"}),
    ] {
        let res = app.post_json("/api/user/sms/send/", &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], "phone", "{body}");
    }
    assert_error(
        app.post_json("/api/user/sms/send/", &json!({"phone": 13812345678_u64}))
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn sms_send_allows_one_code_a_minute_per_phone_with_retry_after() {
    let (app, fake) = app_with_sms(|c| {
        c.limits.sms_send_per_phone = RateLimit {
            max: 1,
            window_secs: 60,
        };
    })
    .await;
    let res = send(&app, PHONE).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["resend_after"], 60);
    let res = send(&app, "+8613812345678").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let err = assert_error(res, 429, "rate_limited").await;
    assert_eq!(err["details"]["retry_after"], retry);
    // Another number is not affected.
    assert_eq!(send(&app, "13912345678").await.status(), 200);
    assert_eq!(fake.sent().len(), 2);
}

#[tokio::test]
async fn sms_send_allows_ten_codes_a_day_per_phone_by_default() {
    let (app, fake) = app_with_sms(|_| {}).await;
    for _ in 0..10 {
        assert_eq!(send(&app, PHONE).await.status(), 200);
    }
    assert_error(send(&app, PHONE).await, 429, "rate_limited").await;
    assert_eq!(fake.sent().len(), 10);
}

#[tokio::test]
async fn sms_send_and_login_are_limited_per_client_ip() {
    let (app, _fake) = app_with_sms(|c| {
        c.limits.exempt_loopback = false;
        c.limits.sms_send_per_ip = RateLimit {
            max: 2,
            window_secs: 3600,
        };
        c.limits.sms_login_per_ip = RateLimit {
            max: 2,
            window_secs: 600,
        };
    })
    .await;
    assert_eq!(send(&app, "13800000001").await.status(), 200);
    assert_eq!(send(&app, "13800000002").await.status(), 200);
    assert_error(send(&app, "13800000003").await, 429, "rate_limited").await;
    for _ in 0..2 {
        assert_error(
            login(&app, "13800000001", "000000").await,
            400,
            "sms_code_invalid",
        )
        .await;
    }
    assert_error(
        login(&app, "13800000001", "000000").await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn a_code_locks_after_five_wrong_tries_until_a_new_one_is_sent() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let code = code_for(&app, &fake, PHONE).await;
    for left in (1..=4).rev() {
        let err = assert_error(
            login(&app, PHONE, &wrong(&code)).await,
            400,
            "sms_code_invalid",
        )
        .await;
        assert_eq!(err["details"]["attempts_left"], left);
    }
    assert_error(
        login(&app, PHONE, &wrong(&code)).await,
        429,
        "sms_code_locked",
    )
    .await;
    // Even the right code is refused now.
    assert_error(login(&app, PHONE, &code).await, 429, "sms_code_locked").await;
    // A new code works.
    let code = code_for(&app, &fake, PHONE).await;
    assert_eq!(login(&app, PHONE, &code).await.status(), 200);
}

#[tokio::test]
async fn a_code_works_once() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let code = code_for(&app, &fake, PHONE).await;
    assert_eq!(login(&app, PHONE, &code).await.status(), 200);
    assert_error(login(&app, PHONE, &code).await, 400, "sms_code_expired").await;
}

#[tokio::test]
async fn a_code_expires() {
    let (app, fake) = app_with_sms(|c| c.auth.sms_code_ttl_secs = 1).await;
    let code = code_for(&app, &fake, PHONE).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_error(login(&app, PHONE, &code).await, 400, "sms_code_expired").await;
}

#[tokio::test]
async fn a_new_code_replaces_the_previous_one() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let old = code_for(&app, &fake, PHONE).await;
    let mut new = code_for(&app, &fake, PHONE).await;
    while new == old {
        new = code_for(&app, &fake, PHONE).await;
    }
    assert_error(login(&app, PHONE, &old).await, 400, "sms_code_invalid").await;
    assert_eq!(login(&app, PHONE, &new).await.status(), 200);
}

#[tokio::test]
async fn sms_login_without_a_code_sent_says_so() {
    let (app, _fake) = app_with_sms(|_| {}).await;
    assert_error(login(&app, PHONE, "123456").await, 400, "sms_code_expired").await;
}

#[tokio::test]
async fn sms_login_validates_phone_and_code() {
    let (app, _fake) = app_with_sms(|_| {}).await;
    for (body, field) in [
        (json!({"code": "123456"}), "phone"),
        (json!({"phone": "123", "code": "123456"}), "phone"),
        (json!({"phone": PHONE}), "code"),
        (json!({"phone": PHONE, "code": ""}), "code"),
        (json!({"phone": PHONE, "code": "12345"}), "code"),
        (json!({"phone": PHONE, "code": "12345a"}), "code"),
        (json!({"phone": PHONE, "code": "１２３４５６"}), "code"),
    ] {
        let res = app.post_json("/api/user/sms-login/", &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn two_simultaneous_logins_with_one_code_give_exactly_one_token() {
    let (app, fake) = app_with_sms(|_| {}).await;
    let code = code_for(&app, &fake, PHONE).await;
    let attempts = (0..5).map(|_| login(&app, PHONE, &code));
    let results = futures_util::future::join_all(attempts).await;
    let mut tokens = 0;
    for res in results {
        if res.status() == 200 {
            tokens += 1;
        } else {
            assert_error(res, 400, "sms_code_expired").await;
        }
    }
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn two_simultaneous_first_logins_create_one_account() {
    // The race behind two first SMS logins of one new number, at the
    // repository: the unique phone column lets one insert win.
    let app = crate::helpers::spawn_app().await;
    let phone = lty_core::PhoneNumber::parse(PHONE).unwrap();
    let new = || lty_core::user::NewUser {
        username: lty_core::account::generated_username("u_"),
        nickname: None,
        phone: None,
    };
    let (a, b) = tokio::join!(
        app.state.db.find_or_create_phone_user(&phone, new()),
        app.state.db.find_or_create_phone_user(&phone, new()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.0.id, b.0.id);
    assert_eq!(u8::from(a.1) + u8::from(b.1), 1, "exactly one created it");
    assert_eq!(a.0.phone.as_deref(), Some(PHONE));
}

#[tokio::test]
async fn aliyun_flow_control_and_bad_numbers_become_clear_errors() {
    let (app, fake) = app_with_sms(|_| {}).await;
    fake.script(Script::Business("isv.BUSINESS_LIMIT_CONTROL"));
    let res = send(&app, "13800000001").await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "rate_limited").await;

    fake.script(Script::Gateway(400, "Throttling.User"));
    assert_error(send(&app, "13800000002").await, 429, "rate_limited").await;

    fake.script(Script::Business("isv.MOBILE_NUMBER_ILLEGAL"));
    let err = assert_error(send(&app, "13800000003").await, 400, "validation_error").await;
    assert_eq!(err["details"]["field"], "phone");

    fake.script(Script::Business("isv.DAY_LIMIT_CONTROL"));
    let err = assert_error(send(&app, "13800000004").await, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "aliyun_sms");
    assert!(!err["message"].as_str().unwrap().contains("DAY_LIMIT"));
}

#[tokio::test]
async fn a_slow_sms_gateway_times_out_as_502_and_the_code_stays_valid() {
    let (app, fake) = app_with_sms(|c| c.aliyun.sms.timeout_secs = 1).await;
    fake.script(Script::Delay(Duration::from_secs(3)));
    let err = assert_error(send(&app, PHONE).await, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "aliyun_sms");
    // The message went out after all: its code still logs in.
    let code = fake.last_code(PHONE);
    assert_eq!(login(&app, PHONE, &code).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_sms_secret_is_refused_by_the_gateway_and_reported_as_502() {
    let fake = FakeAliyunSms::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.aliyun.sms.access_key_secret = Some(lty_server::config::Secret::new("not-the-secret"));
    })
    .await;
    assert_error(send(&app, PHONE).await, 502, "upstream_error").await;
    assert_eq!(fake.rejected(), vec!["SignatureDoesNotMatch".to_owned()]);
}

#[tokio::test]
async fn the_fake_gateway_answers_a_bad_signature_with_aliyuns_error_shape() {
    let fake = FakeAliyunSms::start().await;
    let key = lty_vendors::aliyun::AccessKey::new(aliyun_sms::ACCESS_KEY_ID, "wrong");
    let req = lty_vendors::aliyun::sms::SendSms {
        phone_numbers: PHONE,
        sign_name: aliyun_sms::SIGN_NAME,
        template_code: aliyun_sms::TEMPLATE_CODE,
        template_param: Some(r#"{"code":"123456"}"#),
        out_id: None,
    };
    let now = chrono::Utc::now().timestamp().unsigned_abs();
    let signed = lty_vendors::aliyun::sms::sign_send_sms(&req, &key, now, "n-1").unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/", fake.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(signed.signed_query)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
    for field in ["RequestId", "HostId", "Message", "Recommend"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    assert!(fake.sent().is_empty());
}
