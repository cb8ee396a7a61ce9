//! RTC tokens: `POST /api/device/rtc-token/get_by_mac/`, the app's
//! `POST /api/device/rtc-token/`, and the `lty rtc-token` command.

use std::process::{Command, Output};

use lty_vendors::volcengine::rtc_token::{self, unix_now};
use serde_json::Value;

use crate::fakes::volcengine::{APP_ID, APP_KEY};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

async fn rtc_app() -> TestApp {
    spawn_app_with(|c| {
        c.volcengine.app_id = Some(APP_ID.into());
        c.volcengine.app_key = Some(lty_server::config::Secret::new(APP_KEY));
    })
    .await
}

async fn get_by_mac(app: &TestApp, query: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/device/rtc-token/get_by_mac/{query}")))
        .header("content-length", "0")
        .send()
        .await
        .unwrap()
}

/// Checks a route's answer: the family's room, the RTC user, and a token
/// that verifies with the AppKey and carries the legacy privileges.
fn assert_token_for(body: &Value, user_id: i64) {
    assert_eq!(body["app_id"], APP_ID);
    assert_eq!(body["room_id"], format!("room_{user_id}"));
    assert_eq!(body["user_id"], user_id.to_string());
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with(&format!("001{APP_ID}")));
    let parsed = rtc_token::verify(token, APP_KEY, unix_now()).unwrap();
    assert_eq!(parsed.room_id(), format!("room_{user_id}"));
    assert_eq!(parsed.user_id(), user_id.to_string());
    let now = unix_now();
    let expire = u64::from(parsed.expire_at());
    assert!((now + 86_400 - 60..=now + 86_400 + 60).contains(&expire));
    let ids: Vec<u16> = parsed.privileges().keys().copied().collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert!(
        parsed
            .privileges()
            .values()
            .all(|&e| e == parsed.expire_at())
    );
}

#[tokio::test]
async fn get_by_mac_returns_a_token_for_the_room_of_the_latest_binding() {
    let app = rtc_app().await;
    let first = app.user_with_device("first", "02:00:00:00:00:05").await;
    let res = get_by_mac(&app, "?mac_address=02:00:00:00:00:05").await;
    assert_eq!(res.status(), 200);
    assert_token_for(&res.json().await.unwrap(), first);

    // Any spelling of the MAC; a rebinding moves the device to the new room.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = app.user_with_device("second", "02:00:00:00:00:05").await;
    let res = get_by_mac(&app, "?mac_address=02-00-00-00-00-05").await;
    assert_eq!(res.status(), 200);
    assert_token_for(&res.json().await.unwrap(), second);
}

#[tokio::test]
async fn get_by_mac_returns_404_for_an_unbound_mac() {
    let app = rtc_app().await;
    let res = get_by_mac(&app, "?mac_address=02:ff:ff:ff:ff:ff").await;
    assert_error(res, 404, "device_not_bound").await;
}

#[tokio::test]
async fn get_by_mac_returns_400_for_a_missing_or_malformed_mac() {
    let app = rtc_app().await;
    for query in [
        "",
        "?mac_address=",
        "?mac_address=02:00:00:00:13",
        "?mac=02:00:00:00:00:05",
    ] {
        let res = get_by_mac(&app, query).await;
        assert_error(res, 400, "validation_error").await;
    }
}

#[tokio::test]
async fn get_by_mac_answers_503_when_the_rtc_app_is_not_configured() {
    let app = spawn_app().await;
    app.user_with_device("u", "02:00:00:00:00:07").await;
    let res = get_by_mac(&app, "?mac_address=02:00:00:00:00:07").await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(body["details"]["provider"], "volcengine");
}

#[tokio::test]
async fn the_app_token_is_for_the_family_room_as_the_caller() {
    let app = rtc_app().await;
    let id = app.user_with_device("parent", "02:00:00:00:00:09").await;
    let token = app.mac_login("02:00:00:00:00:09").await;
    let res = app
        .client
        .post(app.url("/api/device/rtc-token/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_token_for(&res.json().await.unwrap(), id);
}

#[tokio::test]
async fn the_app_token_needs_a_bearer_token() {
    let app = rtc_app().await;
    let res = app
        .client
        .post(app.url("/api/device/rtc-token/"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
    let res = app
        .client
        .post(app.url("/api/device/rtc-token/"))
        .bearer_auth("0000000000000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
}

// ---- lty rtc-token -------------------------------------------------------

const LTY: &str = env!("CARGO_BIN_EXE_lty");

/// Spec §1.7 worked examples (fictional AppId/AppKey), also produced by
/// Volcengine's official Node.js token library.
const TOKEN_A: &str = "0015f3c0e1d2b4a69788796a5b4OQDA/jQBP4rGZ7/bx2cHAHJvb21fNDICADQyBQAAAL/bx2cBAL/bx2cCAL/bx2cDAL/bx2cEAL/bx2cgAHxQQqBfOLAbvWapTBmZfPU7hDdcKySVI+1EkRtZ5Pyh";
const TOKEN_B: &str = "0015f3c0e1d2b4a69788796a5b4GAABAAAAP4rGZwAAAAAGAOaIv+mXtAAAAAAgAIMH+UrXnnG9tzhGIwM8Lb/6HmIsdSgowF87tX+qglpR";
/// All six privileges, u32 extremes, non-ASCII ids (official library output).
const TOKEN_ALL: &str = "0015f3c0e1d2b4a69788796a5b4TAD/////AAAAAP////8NAPCfjqfmiL/pl7QgNDIJAOeUqOaIty3DqQYAAAAAAAAAAQABAAAAAgD/////AwAHAAAABAC/28dnBQAVzVsHIAC+WeBhv0CszrHt36pDQKaMqV2p4Zn4DqOrAPmULR4+8Q==";
/// The SDK's sample inputs with fixed times (official library output).
const TOKEN_SDK: &str = "001123456781234567812345678QwBOYbwAAPFTZRD/U2UIAG5ldyByb29tCwBuZXcgdXNlciBpZAUAAAAQ/1NlAQAQ/1NlAgAQ/1NlAwAQ/1NlBAAAAAAAIACBb1UkubyLiQbgSE8mW0V1iap6eADRs2XDmO8kgOsmtQ==";

/// `lty` with a clean environment plus `vars`.
fn lty(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(LTY)
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mint(extra: &[&str]) -> Output {
    let mut args = vec!["rtc-token", "--app-id", APP_ID, "--app-key", APP_KEY];
    args.extend_from_slice(extra);
    lty(&args, &[])
}

#[test]
fn rtc_token_prints_the_worked_example_tokens_alone_on_stdout() {
    // A: privileges omitted → the legacy default set.
    let out = mint(&[
        "--room",
        "room_42",
        "--user",
        "42",
        "--nonce",
        "20250304",
        "--issued-at",
        "1741064767",
        "--expire-at",
        "1741151167",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), format!("{TOKEN_A}\n"));
    assert!(out.stderr.is_empty());

    // B: non-ASCII room, empty user, never expires, `--privileges ""`.
    let out = mint(&[
        "--room",
        "房间",
        "--user",
        "",
        "--nonce",
        "1",
        "--issued-at",
        "1741064767",
        "--expire-at",
        "0",
        "--privileges",
        "",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("{TOKEN_B}\n"));
}

#[test]
fn rtc_token_matches_the_vendor_library_for_ids_and_names_in_any_mix() {
    let out = mint(&[
        "--room",
        "🎧房间 42",
        "--user",
        "用户-é",
        "--nonce",
        "4294967295",
        "--issued-at",
        "0",
        "--expire-at",
        "4294967295",
        "--privileges",
        "PrivPublishStream=0,1=1,privPublishVideoStream=4294967295,3=7,PrivSubscribeStream=1741151167,5=123456789",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), format!("{TOKEN_ALL}\n"));

    // The list is the wire map, in any order: publish fan-out is explicit.
    let out = lty(
        &[
            "rtc-token",
            "--app-id",
            "123456781234567812345678",
            "--app-key",
            "app key",
            "--room",
            "new room",
            "--user",
            "new user id",
            "--nonce",
            "12345678",
            "--issued-at",
            "1700000000",
            "--expire-at",
            "1700003600",
            "--privileges",
            "4=0,0=1700003600,3=1700003600,1=1700003600,2=1700003600",
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("{TOKEN_SDK}\n"));
}

#[test]
fn rtc_token_defaults_are_random_nonce_now_and_a_day() {
    let before = unix_now();
    let out = mint(&["--room", "room_1", "--user", "1"]);
    assert!(out.status.success());
    let token = stdout(&out);
    let parsed = rtc_token::verify(token.trim_end(), APP_KEY, before).unwrap();
    let issued = u64::from(parsed.issued_at());
    assert!(issued >= before && issued <= unix_now());
    assert_eq!(parsed.expire_at(), parsed.issued_at() + 86_400);
    assert!((1..99_999_999).contains(&parsed.nonce()));
    let ids: Vec<u16> = parsed.privileges().keys().copied().collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
}

#[test]
fn rtc_token_needs_no_configuration_and_ignores_a_broken_one() {
    let out = lty(
        &[
            "--config",
            "/no/such/lty.toml",
            "rtc-token",
            "--app-id",
            APP_ID,
            "--app-key",
            APP_KEY,
            "--room",
            "r",
            "--user",
            "u",
        ],
        &[
            ("LTY_BIND", "nowhere"),
            ("REDIS_LOCATION", "not a url"),
            ("VOLCENGINE_APP_ID", "short"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rtc_token::verify(stdout(&out).trim_end(), APP_KEY, unix_now()).is_ok());
}

#[test]
fn rtc_token_rejects_bad_arguments_as_usage_errors() {
    for extra in [
        &["--room", "r", "--user", "u", "--privileges", "0=1,0=2"][..],
        &["--room", "r", "--user", "u", "--privileges", "7=1"],
        &[
            "--room",
            "r",
            "--user",
            "u",
            "--privileges",
            "PrivPublish=1",
        ],
        &["--room", "r", "--user", "u", "--privileges", "0=4294967296"],
        &["--room", "r", "--user", "u", "--privileges", "0"],
        &["--room", "r", "--user", "u", "--nonce", "4294967296"],
        &["--room", "r", "--user", "u", "--expire-at", "-1"],
        &["--room", "r"],
    ] {
        let out = mint(extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?} was accepted");
        assert!(out.stdout.is_empty());
    }
    let out = lty(
        &[
            "rtc-token",
            "--app-id",
            "short",
            "--app-key",
            "k",
            "--room",
            "r",
            "--user",
            "u",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("24"));
}

#[test]
fn rtc_token_verify_prints_the_fields_and_accepts_an_expired_token() {
    let out = lty(
        &["rtc-token", "--verify", TOKEN_A, "--app-key", APP_KEY],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let t = 1741151167;
    assert_eq!(
        report,
        serde_json::json!({
            "app_id": APP_ID, "room_id": "room_42", "user_id": "42",
            "nonce": 20250304, "issued_at": 1741064767, "expire_at": t,
            "privileges": {"0": t, "1": t, "2": t, "3": t, "4": t},
            "signature_valid": true, "expired": true,
        })
    );
    let out = lty(
        &["rtc-token", "--verify", TOKEN_B, "--app-key", APP_KEY],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["room_id"], "房间");
    assert_eq!(report["expired"], false);
    assert_eq!(report["privileges"], serde_json::json!({}));
}

#[test]
fn rtc_token_verify_exits_1_on_a_wrong_key_or_a_malformed_token() {
    let wrong = format!("{APP_KEY}x");
    let out = lty(
        &["rtc-token", "--verify", TOKEN_A, "--app-key", &wrong],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["signature_valid"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));

    for bad in ["", "001", &TOKEN_A[..60], &format!("{TOKEN_A}=")] {
        let out = lty(&["rtc-token", "--verify", bad, "--app-key", APP_KEY], &[]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("malformed"));
    }
}

#[tokio::test]
async fn a_device_holding_a_secret_must_sign_its_rtc_token_request() {
    use lty_server::app::device_auth::{canonical_string, sign};
    let app = rtc_app().await;
    let mac = "02:00:00:00:00:0b";
    let id = app.user_with_device("signed", mac).await;
    let parsed = lty_core::MacAddress::parse(mac).unwrap();
    app.state
        .db
        .set_secret(&parsed, "device-secret-0001", id)
        .await
        .unwrap();
    let target = format!("/api/device/rtc-token/get_by_mac/?mac_address={mac}");

    // MAC alone is no longer enough.
    let res = get_by_mac(&app, &format!("?mac_address={mac}")).await;
    assert_eq!(res.status(), 401);

    let ts = unix_now().to_string();
    let signed = |nonce: &str, secret: &str| {
        let sig = sign(secret, &canonical_string("POST", &target, &ts, nonce));
        app.client
            .post(app.url(&target))
            .header("x-device-mac", mac)
            .header("x-device-timestamp", ts.as_str())
            .header("x-device-nonce", nonce)
            .header("x-device-signature", sig)
            .send()
    };
    let res = signed("nonce-rtc-00000001", "wrong-secret").await.unwrap();
    assert_eq!(res.status(), 401);
    let res = signed("nonce-rtc-00000002", "device-secret-0001")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_token_for(&res.json().await.unwrap(), id);
}
