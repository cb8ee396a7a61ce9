//! xiaozhi-esp32 devices over HTTP, driven by the simulated device: the
//! OTA check (spec §1), activation (§2) and firmware releases.

use lty_core::admin::AdminRole;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app_on};
use crate::subscriptions::admin_token;
use crate::xiaozhi_sim::SimDevice;

/// An app whose voice channel URL is its own address.
pub async fn xiaozhi_app(tweak: impl FnOnce(&mut lty_server::config::Config)) -> TestApp {
    spawn_app_on(|c, addr| {
        c.xiaozhi.websocket_url = Some(format!("ws://{addr}/xiaozhi/v1/"));
        tweak(c);
    })
    .await
}

/// A user with a token, bound to nothing.
async fn parent(app: &TestApp) -> (i64, String) {
    let user = app
        .state
        .db
        .create_user(lty_core::user::NewUser {
            username: format!("parent_{}", crate::helpers::random_hex(4)),
            nickname: None,
            phone: None,
        })
        .await
        .unwrap();
    let token = app
        .state
        .tokens
        .issue(lty_core::token::TokenKind::User, user.id)
        .await
        .unwrap();
    (user.id, token)
}

async fn enter_code(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/device/activate/"))
        .bearer_auth(token)
        .json(&json!({ "code": code, "name": "小熊" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_unknown_device_gets_the_channel_and_an_activation_code_at_both_ota_urls() {
    let app = xiaozhi_app(|_| {}).await;
    let device = SimDevice::new();
    for path in ["/xiaozhi/ota/", "/xiaozhi/ota"] {
        let ota = device.ota(&app, path).await;
        assert_eq!(ota.websocket_url, format!("ws://{}/xiaozhi/v1/", app.addr));
        assert_eq!(ota.token.len(), 64);
        assert_eq!(ota.protocol_version, 1);
        let now = chrono::Utc::now().timestamp_millis();
        let at = ota.body["server_time"]["timestamp"].as_i64().unwrap();
        assert!((now - at).abs() < 60_000, "server_time {at} vs {now}");
        assert_eq!(ota.body["server_time"]["timezone_offset"], 480);
        // No release yet: the device's own version, no URL.
        assert_eq!(ota.firmware, Some(("2.4.2".to_owned(), String::new())));
        let activation = ota.activation.expect("an unbound device activates");
        assert_eq!(activation.code.len(), 6);
        assert!(activation.code.bytes().all(|b| b.is_ascii_digit()));
        assert!(activation.message.contains(&activation.code));
        assert_eq!(activation.challenge.len(), 64);
    }
}

#[tokio::test]
async fn a_pending_device_keeps_its_code_and_gets_a_fresh_challenge_every_boot() {
    let app = xiaozhi_app(|_| {}).await;
    let device = SimDevice::new();
    let first = device.ota(&app, "/xiaozhi/ota/").await.activation.unwrap();
    let second = device.ota(&app, "/xiaozhi/ota/").await.activation.unwrap();
    assert_eq!(first.code, second.code);
    assert_ne!(first.challenge, second.challenge);
    // Each device has its own code.
    let other = SimDevice::new()
        .ota(&app, "/xiaozhi/ota/")
        .await
        .activation
        .unwrap();
    assert_ne!(other.code, first.code);
}

#[tokio::test]
async fn activation_polls_answer_202_until_a_parent_enters_the_code_then_200() {
    let app = xiaozhi_app(|_| {}).await;
    let device = SimDevice::new();
    let activation = device.ota(&app, "/xiaozhi/ota/").await.activation.unwrap();
    assert_eq!(device.poll(&app, &activation.challenge).await, 202);
    assert_eq!(device.poll(&app, &activation.challenge).await, 202);

    let (user_id, token) = parent(&app).await;
    let res = enter_code(&app, &token, "000000").await;
    assert_error(res, 404, "activation_code_not_found").await;
    let res = enter_code(&app, &token, "12ab").await;
    assert_error(res, 400, "validation_error").await;
    let res = enter_code(&app, &token, &activation.code).await;
    assert_eq!(res.status(), 201);
    let bound: Value = res.json().await.unwrap();
    assert_eq!(bound["mac_address"], device.mac);
    assert_eq!(bound["name"], "小熊");
    let binding = app
        .state
        .db
        .latest_binding(&lty_core::MacAddress::parse(&device.mac).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.user_id, user_id);

    assert_eq!(device.poll(&app, &activation.challenge).await, 200);
    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    assert!(ota.activation.is_none(), "{}", ota.body);
    // The code is used up.
    let (_, other) = parent(&app).await;
    let res = enter_code(&app, &other, &activation.code).await;
    assert_error(res, 404, "activation_code_not_found").await;
}

#[tokio::test]
async fn version_2_activation_checks_the_hmac_of_a_live_challenge() {
    let app = xiaozhi_app(|_| {}).await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    let key: [u8; 32] = rand::random();
    let mut device = SimDevice::new();
    device.serial = Some(("SN-TEST-0001".into(), key));
    let res = app
        .client
        .put(app.url("/api/v1/admin/device-keys/SN-TEST-0001/"))
        .bearer_auth(&admin)
        .json(&json!({ "key": hex::encode(key) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let activation = device.ota(&app, "/xiaozhi/ota/").await.activation.unwrap();
    // The same challenge is good for every poll of a cycle.
    assert_eq!(device.poll(&app, &activation.challenge).await, 202);
    assert_eq!(device.poll(&app, &activation.challenge).await, 202);
    // A wrong key, and a challenge never issued, are refused.
    let mut impostor = device.clone();
    impostor.serial = Some(("SN-TEST-0001".into(), rand::random()));
    assert_eq!(impostor.poll(&app, &activation.challenge).await, 403);
    assert_eq!(device.poll(&app, &"ab".repeat(32)).await, 403);

    let (_, token) = parent(&app).await;
    assert_eq!(
        enter_code(&app, &token, &activation.code).await.status(),
        201
    );
    assert_eq!(device.poll(&app, &activation.challenge).await, 200);
    // The challenge was consumed by the successful activation.
    assert_eq!(device.poll(&app, &activation.challenge).await, 403);
}

#[tokio::test]
async fn activation_codes_cannot_be_guessed_quickly() {
    let app = xiaozhi_app(|c| {
        c.limits.activate_per_user = lty_server::config::RateLimit {
            max: 3,
            window_secs: 600,
        };
    })
    .await;
    let (_, token) = parent(&app).await;
    for _ in 0..3 {
        assert_eq!(enter_code(&app, &token, "999999").await.status(), 404);
    }
    assert_error(
        enter_code(&app, &token, "999999").await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn without_a_channel_url_the_ota_check_fails_so_the_device_retries() {
    let app = crate::helpers::spawn_app().await;
    let device = SimDevice::new();
    let res = device.ota_raw(&app, "/xiaozhi/ota/").await;
    assert_error(res, 503, "xiaozhi_not_configured").await;
    let status: Value = app.get("/xiaozhi/ota/").await.json().await.unwrap();
    assert_eq!(status["websocket_url"], Value::Null);
}

#[tokio::test]
async fn a_missing_or_malformed_device_id_is_a_400() {
    let app = xiaozhi_app(|_| {}).await;
    let res = app
        .client
        .post(app.url("/xiaozhi/ota/"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
    let mut device = SimDevice::new();
    device.mac = "not-a-mac".into();
    assert_error(
        device.ota_raw(&app, "/xiaozhi/ota/").await,
        400,
        "validation_error",
    )
    .await;
    let res = SimDevice::new().ota_raw(&app, "/xiaozhi/ota/").await;
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(app.url("/xiaozhi/ota/"))
        .header("Device-Id", "02:00:00:00:00:01")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "validation_error").await;
}

/// A fake application image: the ESP32 image magic, then `len` bytes.
fn image(len: usize, fill: u8) -> Vec<u8> {
    let mut data = vec![fill; len];
    data[0] = 0xE9;
    data
}

async fn upload(
    app: &TestApp,
    admin: &str,
    board: &str,
    version: &str,
    data: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("board", board.to_owned())
        .text("version", version.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name("xiaozhi.bin"),
        );
    app.client
        .post(app.url("/api/v1/admin/firmware/"))
        .bearer_auth(admin)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_newest_release_for_the_board_is_offered_and_downloaded_with_its_length() {
    let app = xiaozhi_app(|_| {}).await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    let device = SimDevice::new();

    // A release for the board family, then newer ones for the variant.
    assert_eq!(
        upload(&app, &admin, &device.board_type, "2.4.5", image(4096, 1))
            .await
            .status(),
        201
    );
    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    assert_eq!(ota.firmware.as_ref().unwrap().0, "2.4.5");
    assert_eq!(
        upload(&app, &admin, &device.board_name, "2.4.3", image(2048, 2))
            .await
            .status(),
        201
    );
    let res = upload(&app, &admin, &device.board_name, "2.10.0", image(3000, 3)).await;
    assert_eq!(res.status(), 201);
    let release: Value = res.json().await.unwrap();
    assert_eq!(release["size"], 3000);

    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    let (version, url) = ota.firmware.unwrap();
    assert_eq!(version, "2.10.0");
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    assert_eq!(res.headers()["content-length"], "3000");
    assert_eq!(res.bytes().await.unwrap().to_vec(), image(3000, 3));

    // Retired, it is no longer offered: the variant's other release is
    // (the build variant wins over the board family).
    let id = release["id"].as_i64().unwrap();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/firmware/{id}/")))
        .bearer_auth(&admin)
        .json(&json!({ "is_active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ota = device.ota(&app, "/xiaozhi/ota/").await;
    assert_eq!(ota.firmware.unwrap().0, "2.4.3");

    // A device already on the newest version is told its own version.
    let mut current = SimDevice::new();
    current.version = "3.0.0".into();
    let ota = current.ota(&app, "/xiaozhi/ota/").await;
    assert_eq!(ota.firmware, Some(("3.0.0".into(), String::new())));
    // A custom build with a version the firmware cannot compare gets none.
    let mut custom = SimDevice::new();
    custom.version = "v2.4.2-dirty".into();
    let ota = custom.ota(&app, "/xiaozhi/ota/").await;
    assert!(ota.body.get("firmware").is_none(), "{}", ota.body);

    let list: Value = app
        .client
        .get(app.url("/api/v1/admin/firmware/?board=bread-compact-wifi-128x64"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2);
}

#[tokio::test]
async fn releases_are_checked_before_they_are_offered() {
    let app = xiaozhi_app(|_| {}).await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    for version in ["v2.4.2", "2..1", "1.2-beta", ""] {
        let res = upload(&app, &admin, "bread-compact-wifi", version, image(100, 0)).await;
        assert_error(res, 400, "validation_error").await;
    }
    let res = upload(&app, &admin, "Bread Board", "1.0.0", image(100, 0)).await;
    assert_error(res, 400, "validation_error").await;
    let res = upload(&app, &admin, "b", "1.0.0", vec![0x00; 64]).await;
    assert_error(res, 400, "validation_error").await;
    let mut merged = image(0x9000, 0);
    merged[0x8000] = 0xAA;
    merged[0x8001] = 0x50;
    let res = upload(&app, &admin, "b", "1.0.0", merged).await;
    assert_error(res, 400, "validation_error").await;
    assert_eq!(
        upload(&app, &admin, "b", "1.0.0", image(64, 0))
            .await
            .status(),
        201
    );
    assert_error(
        upload(&app, &admin, "b", "1.0.0", image(64, 1)).await,
        409,
        "firmware_exists",
    )
    .await;

    let operator = admin_token(&app, AdminRole::Operator).await;
    let res = upload(&app, &operator, "b", "1.0.1", image(64, 0)).await;
    assert_error(res, 403, "forbidden").await;
    let res = app
        .client
        .get(app.url("/xiaozhi/firmware/999999/x.bin"))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "firmware_not_found").await;
}

async fn admin_get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn operators_see_xiaozhi_devices_with_board_firmware_framing_and_online_state() {
    let app = xiaozhi_app(|_| {}).await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    // A device that only checked in, one a family has and that opens its
    // channel, and a legacy device.
    let mut waiting = SimDevice::new();
    waiting.board_name = "lichuang-dev".into();
    waiting.version = "1.9.0".into();
    waiting.ota(&app, "/xiaozhi/ota/").await;
    let talking = SimDevice::new();
    app.user_with_device("xz_family", &talking.mac).await;
    let ota = talking.ota(&app, "/xiaozhi/ota/").await;
    app.user_with_device("legacy_family", "02:00:00:00:0a:01")
        .await;

    let list: Value = admin_get(&app, &admin, "/api/v1/admin/devices/?kind=xiaozhi")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2, "{list}");
    let newest = &list["devices"][0];
    assert_eq!(newest["mac_address"], talking.mac.as_str());
    assert_eq!(newest["xiaozhi"]["board_type"], talking.board_type.as_str());
    assert_eq!(newest["xiaozhi"]["firmware_version"], "2.4.2");
    assert_eq!(newest["online"], false);
    assert!(newest["binding"].is_object());
    let older = &list["devices"][1];
    assert_eq!(older["mac_address"], waiting.mac.as_str());
    assert_eq!(older["xiaozhi"]["board_name"], "lichuang-dev");
    assert_eq!(older["xiaozhi"]["firmware_version"], "1.9.0");
    assert!(older["binding"].is_null());

    // The channel: online, with the framing it chose.
    let mut ch = talking
        .connect(&ota.websocket_url, &ota.token, 3)
        .await
        .unwrap();
    ch.hello(false).await;
    let path = format!("/api/v1/admin/devices/{}/", talking.mac);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let detail = loop {
        let detail: Value = admin_get(&app, &admin, &path).await.json().await.unwrap();
        if detail["online"] == true || tokio::time::Instant::now() > deadline {
            break detail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(detail["online"], true, "{detail}");
    assert_eq!(detail["xiaozhi"]["protocol_version"], 3);
    // Filtered by online state: the channel's device, then the other.
    for (online, mac) in [("true", &talking.mac), ("false", &waiting.mac)] {
        let path = format!("/api/v1/admin/devices/?kind=xiaozhi&online={online}");
        let list: Value = admin_get(&app, &admin, &path).await.json().await.unwrap();
        assert_eq!(list["total"], 1, "{path}: {list}");
        assert_eq!(list["devices"][0]["mac_address"], mac.as_str(), "{path}");
    }

    // Every bound device, xiaozhi or not; the unbound one by itself.
    let all: Value = admin_get(&app, &admin, "/api/v1/admin/devices/")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 2, "{all}");
    let legacy = all["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mac_address"] == "02:00:00:00:0a:01")
        .unwrap();
    assert!(legacy["xiaozhi"].is_null());
    let res = admin_get(
        &app,
        &admin,
        &format!("/api/v1/admin/devices/{}/", waiting.mac),
    )
    .await;
    assert_eq!(res.status(), 200);
    let detail: Value = res.json().await.unwrap();
    assert_eq!(detail["xiaozhi"]["board_name"], "lichuang-dev");

    let res = admin_get(&app, &admin, "/api/v1/admin/devices/?kind=speaker").await;
    assert_error(res, 400, "invalid_query").await;
}
