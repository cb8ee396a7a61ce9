//! Device credentials and signed device requests (`X-Device-*` headers).

use std::time::{SystemTime, UNIX_EPOCH};

use lty_server::app::device_auth::{canonical_string, sign};
use lty_server::config::DeviceAuthMode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const MAC: &str = "02:00:00:00:99:01";
const LOGIN: &str = "/api/user/mac-login/";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn nonce() -> String {
    crate::helpers::random_hex(8)
}

/// Provisions `mac` (bound to a fresh user) and returns the owner's token
/// and the secret.
async fn provisioned(app: &TestApp, mac: &str) -> (String, String) {
    app.user_with_device(&format!("owner-{mac}"), mac).await;
    let token = app.mac_login(mac).await;
    let res = provision(app, &token, mac).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["algorithm"], "HMAC-SHA256");
    (token, secret)
}

async fn provision(app: &TestApp, token: &str, mac: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/device/credentials/"))
        .bearer_auth(token)
        .json(&json!({ "mac_address": mac }))
        .send()
        .await
        .unwrap()
}

/// A mac-login with the given signature headers.
async fn signed_login(
    app: &TestApp,
    mac: &str,
    header_mac: &str,
    ts: u64,
    nonce: &str,
    signature: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(LOGIN))
        .header("X-Device-Mac", header_mac)
        .header("X-Device-Timestamp", ts.to_string())
        .header("X-Device-Nonce", nonce)
        .header("X-Device-Signature", signature)
        .json(&json!({ "mac_address": mac }))
        .send()
        .await
        .unwrap()
}

fn signature(secret: &str, path: &str, ts: u64, nonce: &str) -> String {
    sign(
        secret,
        &canonical_string("POST", path, &ts.to_string(), nonce),
    )
}

#[tokio::test]
async fn a_signed_device_logs_in_while_a_mac_only_request_for_it_is_refused() {
    let app = spawn_app().await;
    let (_, secret) = provisioned(&app, MAC).await;
    let res = app.post_json(LOGIN, &json!({ "mac_address": MAC })).await;
    assert_error(res, 401, "device_signature_required").await;

    let (ts, n) = (now(), nonce());
    let res = signed_login(&app, MAC, MAC, ts, &n, &signature(&secret, LOGIN, ts, &n)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token"].as_str().unwrap().len(), 40);

    // Other, unprovisioned devices keep logging in by MAC (legacy mode).
    app.user_with_device("legacy", "02:00:00:00:99:02").await;
    app.mac_login("02:00:00:00:99:02").await;
}

#[tokio::test]
async fn bad_stale_and_replayed_signatures_are_refused() {
    let app = spawn_app().await;
    let (_, secret) = provisioned(&app, MAC).await;
    let ts = now();

    let n = nonce();
    let bad = signature("0".repeat(64).as_str(), LOGIN, ts, &n);
    assert_error(
        signed_login(&app, MAC, MAC, ts, &n, &bad).await,
        401,
        "device_signature_invalid",
    )
    .await;

    // Signed for another path.
    let n = nonce();
    let other = signature(&secret, "/api/user/mac-login/?x=1", ts, &n);
    assert_error(
        signed_login(&app, MAC, MAC, ts, &n, &other).await,
        401,
        "device_signature_invalid",
    )
    .await;

    // X-Device-Mac naming another device.
    let n = nonce();
    let sig = signature(&secret, LOGIN, ts, &n);
    assert_error(
        signed_login(&app, MAC, "02:00:00:00:99:03", ts, &n, &sig).await,
        401,
        "device_signature_invalid",
    )
    .await;

    // Malformed nonce and signature.
    let sig = signature(&secret, LOGIN, ts, "short");
    assert_error(
        signed_login(&app, MAC, MAC, ts, "short", &sig).await,
        401,
        "device_signature_invalid",
    )
    .await;
    let n = nonce();
    assert_error(
        signed_login(&app, MAC, MAC, ts, &n, "zz").await,
        401,
        "device_signature_invalid",
    )
    .await;

    // Outside the 5-minute window, either way (from the clock now: the
    // test may have taken seconds on a loaded machine).
    for skew in [-310_i64, 310] {
        let stale = now().checked_add_signed(skew).unwrap();
        let n = nonce();
        let sig = signature(&secret, LOGIN, stale, &n);
        let err = assert_error(
            signed_login(&app, MAC, MAC, stale, &n, &sig).await,
            401,
            "device_clock_skew",
        )
        .await;
        let server = err["details"]["server_time"].as_u64().unwrap();
        assert!(server.abs_diff(ts) < 60);
    }

    // A correct request works once; its replay is refused.
    let n = nonce();
    let sig = signature(&secret, LOGIN, ts, &n);
    assert_eq!(
        signed_login(&app, MAC, MAC, ts, &n, &sig).await.status(),
        200
    );
    assert_error(
        signed_login(&app, MAC, MAC, ts, &n, &sig).await,
        401,
        "device_nonce_reused",
    )
    .await;

    // The MAC header may be spelled any accepted way.
    let n = nonce();
    let sig = signature(&secret, LOGIN, ts, &n);
    let res = signed_login(&app, "02-00-00-00-99-01", "02-00-00-00-99-01", ts, &n, &sig).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_new_secret_replaces_the_old_one() {
    let app = spawn_app().await;
    let (token, old) = provisioned(&app, MAC).await;
    let res = provision(&app, &token, MAC).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["replaced"], true);
    let new = body["secret"].as_str().unwrap();
    assert_ne!(new, old);
    let (ts, n) = (now(), nonce());
    let res = signed_login(&app, MAC, MAC, ts, &n, &signature(&old, LOGIN, ts, &n)).await;
    assert_error(res, 401, "device_signature_invalid").await;
    let n = nonce();
    let res = signed_login(&app, MAC, MAC, ts, &n, &signature(new, LOGIN, ts, &n)).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn only_the_devices_owner_may_provision_it() {
    let app = spawn_app().await;
    app.user_with_device("owner", MAC).await;
    app.user_with_device("stranger", "02:00:00:00:99:04").await;
    let stranger = app.mac_login("02:00:00:00:99:04").await;
    assert_error(
        provision(&app, &stranger, MAC).await,
        403,
        "not_device_owner",
    )
    .await;
    assert_error(
        provision(&app, &stranger, "02:ff:ff:ff:ff:fe").await,
        404,
        "device_not_bound",
    )
    .await;
    let err = assert_error(
        provision(&app, &stranger, "nonsense").await,
        400,
        "validation_error",
    )
    .await;
    assert_eq!(err["details"]["field"], "mac_address");
    let res = app
        .post_json("/api/device/credentials/", &json!({ "mac_address": MAC }))
        .await;
    assert_error(res, 401, "unauthenticated").await;
    // Nothing was provisioned: MAC-only login still works.
    app.mac_login(MAC).await;
}

#[tokio::test]
async fn signed_mode_refuses_devices_without_a_secret() {
    let app = spawn_app_with(|c| c.device_auth = DeviceAuthMode::Signed).await;
    app.user_with_device("legacy", "02:00:00:00:99:05").await;
    let res = app
        .post_json(LOGIN, &json!({ "mac_address": "02:00:00:00:99:05" }))
        .await;
    assert_error(res, 401, "device_not_provisioned").await;
    // The owner provisions it through an already issued token; then it
    // signs and gets in.
    let owner = app
        .state
        .db
        .latest_binding(&lty_core::MacAddress::parse("02:00:00:00:99:05").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let token = app
        .state
        .tokens
        .issue(lty_core::token::TokenKind::User, owner)
        .await
        .unwrap();
    let res = provision(&app, &token, "02:00:00:00:99:05").await;
    let body: Value = res.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap();
    let (ts, n) = (now(), nonce());
    let sig = signature(secret, LOGIN, ts, &n);
    let res = signed_login(&app, "02:00:00:00:99:05", "02:00:00:00:99:05", ts, &n, &sig).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_header_that_is_not_ascii_is_named_in_the_refusal_and_ignored_for_legacy_devices() {
    let app = spawn_app().await;
    provisioned(&app, MAC).await;
    let not_ascii = reqwest::header::HeaderValue::from_bytes(b"n\xc3\xa9nce-1234").unwrap();
    // The timestamp is missing too: the unreadable header is reported first.
    let res = app
        .client
        .post(app.url(LOGIN))
        .header("X-Device-Mac", MAC)
        .header("X-Device-Nonce", not_ascii.clone())
        .header("X-Device-Signature", "0".repeat(64))
        .json(&json!({ "mac_address": MAC }))
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 401, "device_signature_invalid").await;
    assert_eq!(body["details"]["header"], "x-device-nonce");
    assert_eq!(body["message"], "x-device-nonce is not ASCII");

    // A device without a secret is not asked for a signature, so stray
    // headers do not matter while `device_auth = legacy`.
    app.user_with_device("legacy", "02:00:00:00:99:06").await;
    let res = app
        .client
        .post(app.url(LOGIN))
        .header("X-Device-Nonce", not_ascii)
        .json(&json!({ "mac_address": "02:00:00:00:99:06" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
