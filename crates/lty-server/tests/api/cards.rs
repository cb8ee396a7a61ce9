//! Cards: batch generation and export, scans pushed to the family's
//! devices, the distinct refusals, rate limits, and exactly-once redemption
//! under concurrent requests.

use chrono::{Duration, Utc};
use lty_core::admin::AdminRole;
use lty_core::card::{CardCode, CardKind, NewBatch};
use lty_server::config::RateLimit;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, next_json, spawn_app, spawn_app_with};
use crate::subscriptions::{admin_token, create_plan};

async fn admin_post(app: &TestApp, admin: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn admin_get(app: &TestApp, admin: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
}

async fn content_batch(app: &TestApp, admin: &str, count: u32) -> i64 {
    let res = admin_post(
        app,
        admin,
        "/api/v1/admin/card-batches/",
        &json!({ "kind": "content", "count": count, "content_ref": "story:42",
                 "payload": { "title": "The Moon" }, "notes": "test" }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["count"], count);
    body["id"].as_i64().unwrap()
}

async fn export(app: &TestApp, admin: &str, batch: i64) -> Vec<String> {
    let res = admin_get(
        app,
        admin,
        &format!("/api/v1/admin/card-batches/{batch}/export.csv"),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("code,card_id,disabled"));
    lines
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect()
}

async fn user_post(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_generated_batch_exports_unique_well_formed_codes() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let batch = content_batch(&app, &admin, 6_000).await;
    let codes = export(&app, &admin, batch).await;
    assert_eq!(codes.len(), 6_000);
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), 6_000);
    for code in &codes {
        assert_eq!(code.len(), 19, "{code}");
        let parsed = CardCode::parse(code).unwrap();
        assert!(
            parsed
                .as_str()
                .bytes()
                .all(|b| lty_core::card::ALPHABET.contains(&b))
        );
    }
}

#[tokio::test]
async fn a_batch_of_100_000_cards_is_generated_in_one_request() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let batch = content_batch(&app, &admin, 100_000).await;
    assert_eq!(app.state.db.count_cards(batch).await.unwrap(), 100_000);
    let page: Value = admin_get(
        &app,
        &admin,
        &format!("/api/v1/admin/card-batches/{batch}/cards/?limit=10"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["cards"].as_array().unwrap().len(), 10);
    assert!(page["next_after"].is_i64());
}

#[tokio::test]
async fn batch_generation_validates_its_input_and_needs_an_admin() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    for body in [
        json!({ "kind": "content", "count": 0, "content_ref": "x" }),
        json!({ "kind": "content", "count": 100_001, "content_ref": "x" }),
        json!({ "kind": "content", "count": 1 }),
        json!({ "kind": "membership", "count": 1, "plan_id": 999, "days": 30 }),
        json!({ "kind": "membership", "count": 1, "plan_id": 1, "days": 0 }),
    ] {
        let res = admin_post(&app, &admin, "/api/v1/admin/card-batches/", &body).await;
        assert_error(res, 400, "validation_error").await;
    }
    let res = admin_post(
        &app,
        &admin,
        "/api/v1/admin/card-batches/",
        &json!({ "kind": "gift", "count": 1 }),
    )
    .await;
    assert_error(res, 400, "invalid_body").await;
    app.user_with_device("card_user", "02:00:00:00:0a:01").await;
    let user = app.mac_login("02:00:00:00:0a:01").await;
    let res = admin_post(
        &app,
        &user,
        "/api/v1/admin/card-batches/",
        &json!({ "kind": "content", "count": 1, "content_ref": "x" }),
    )
    .await;
    assert_error(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn scanning_a_content_card_pushes_it_to_the_family_and_is_recorded() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let batch = content_batch(&app, &admin, 3).await;
    let code = export(&app, &admin, batch).await.remove(0);
    let user = app.user_with_device("card_scan", "02:00:00:00:0a:02").await;
    let token = app.mac_login("02:00:00:00:0a:02").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;

    let res = user_post(
        &app,
        &token,
        "/api/card/scan/",
        &json!({ "code": code.to_lowercase(), "mac_address": "02:00:00:00:0a:02" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["kind"], "content");
    assert_eq!(body["content_ref"], "story:42");
    assert_eq!(body["pushed"], true);

    let push = next_json(&mut socket).await;
    assert_eq!(push["type"], "card_content");
    assert_eq!(push["content_ref"], "story:42");
    assert_eq!(push["payload"]["title"], "The Moon");
    assert_eq!(push["mac_address"], "02:00:00:00:0a:02");

    let history: Value = app
        .client
        .get(app.url("/api/card/history/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["scans"].as_array().unwrap().len(), 1);
    assert_eq!(history["scans"][0]["batch_id"], batch);

    let detail: Value = admin_get(
        &app,
        &admin,
        &format!("/api/v1/admin/card-batches/{batch}/"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(detail["usage"]["scans"], 1);
    assert_eq!(detail["usage"]["unique_users"], 1);
    assert!(detail["usage"]["last_scan_at"].is_string());
    let card: Value = admin_get(&app, &admin, &format!("/api/v1/admin/cards/{code}/"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(card["card"]["code"], code);
    assert_eq!(card["usage"]["scans"], 1);
}

#[tokio::test]
async fn unknown_mistyped_disabled_and_expired_cards_get_distinct_errors() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let batch = content_batch(&app, &admin, 2).await;
    let codes = export(&app, &admin, batch).await;
    app.user_with_device("card_errors", "02:00:00:00:0a:03")
        .await;
    let token = app.mac_login("02:00:00:00:0a:03").await;
    let scan = |code: String| {
        let (app, token) = (&app, &token);
        async move { user_post(app, token, "/api/card/scan/", &json!({ "code": code })).await }
    };

    assert_error(
        scan(CardCode::generate().display()).await,
        404,
        "card_not_found",
    )
    .await;
    let mut typo = codes[0].clone().into_bytes();
    typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    assert_error(scan(typo).await, 400, "validation_error").await;
    assert_error(scan("hello".into()).await, 400, "validation_error").await;

    let res = admin_post(
        &app,
        &admin,
        &format!("/api/v1/admin/cards/{}/disable/", codes[0]),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_error(scan(codes[0].clone()).await, 403, "card_disabled").await;
    assert_eq!(scan(codes[1].clone()).await.status(), 200);
    let res = admin_post(
        &app,
        &admin,
        &format!("/api/v1/admin/card-batches/{batch}/disable/"),
        &json!({ "disabled": true }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_error(scan(codes[1].clone()).await, 403, "card_disabled").await;

    let expired = app
        .state
        .db
        .create_batch(NewBatch {
            kind: CardKind::Content,
            count: 1,
            content_ref: Some("song:1".into()),
            payload: None,
            plan_id: None,
            days: None,
            expires_at: Some(Utc::now() - Duration::minutes(1)),
            notes: None,
            created_by: None,
        })
        .await
        .unwrap();
    let code = export(&app, &admin, expired.id).await.remove(0);
    assert_error(scan(code).await, 410, "card_expired").await;
}

#[tokio::test]
async fn scans_from_one_device_are_rate_limited() {
    let app = spawn_app_with(|c| {
        c.limits.card_scan_per_device = RateLimit {
            max: 2,
            window_secs: 60,
        }
    })
    .await;
    app.user_with_device("card_limit", "02:00:00:00:0a:04")
        .await;
    let token = app.mac_login("02:00:00:00:0a:04").await;
    let body = json!({ "code": CardCode::generate().as_str(), "mac_address": "02:00:00:00:0a:04" });
    for _ in 0..2 {
        let res = user_post(&app, &token, "/api/card/scan/", &body).await;
        assert_error(res, 404, "card_not_found").await;
    }
    let res = user_post(&app, &token, "/api/card/scan/", &body).await;
    assert_error(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn scanning_with_a_device_of_another_family_is_refused() {
    let app = spawn_app().await;
    app.user_with_device("card_a", "02:00:00:00:0a:05").await;
    app.user_with_device("card_b", "02:00:00:00:0a:06").await;
    let token = app.mac_login("02:00:00:00:0a:05").await;
    let res = user_post(
        &app,
        &token,
        "/api/card/scan/",
        &json!({ "code": CardCode::generate().as_str(), "mac_address": "02:00:00:00:0a:06" }),
    )
    .await;
    assert_error(res, 404, "device_not_bound").await;
}

#[tokio::test]
async fn a_membership_card_is_redeemed_exactly_once_under_concurrent_requests() {
    let app = spawn_app().await;
    let superadmin = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &superadmin, "premium", 500).await;
    let res = admin_post(
        &app,
        &superadmin,
        "/api/v1/admin/card-batches/",
        &json!({ "kind": "membership", "count": 1, "plan_id": plan, "days": 30 }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let batch = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let code = export(&app, &superadmin, batch).await.remove(0);

    const N: usize = 16;
    let mut tokens = Vec::new();
    for i in 0..N {
        let mac = format!("02:00:00:00:0b:{i:02x}");
        app.user_with_device(&format!("redeem_{i}"), &mac).await;
        tokens.push(app.mac_login(&mac).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for token in tokens.clone() {
        let (client, url, code, barrier) = (
            app.client.clone(),
            app.url("/api/card/redeem/"),
            code.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let res = task.await.unwrap();
        if res.status() == 200 {
            ok += 1;
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["plan"]["code"], "premium");
        } else {
            assert_error(res, 409, "card_already_redeemed").await;
        }
    }
    assert_eq!(ok, 1);
    let detail: Value = admin_get(
        &app,
        &superadmin,
        &format!("/api/v1/admin/card-batches/{batch}/"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(detail["usage"]["redeemed"], 1);
}

#[tokio::test]
async fn redeeming_a_second_card_extends_the_subscription() {
    let app = spawn_app().await;
    let superadmin = admin_token(&app, AdminRole::Superadmin).await;
    let plan = create_plan(&app, &superadmin, "premium", 500).await;
    let res = admin_post(
        &app,
        &superadmin,
        "/api/v1/admin/card-batches/",
        &json!({ "kind": "membership", "count": 2, "plan_id": plan, "days": 30 }),
    )
    .await;
    let batch = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let codes = export(&app, &superadmin, batch).await;
    let user = app
        .user_with_device("redeem_twice", "02:00:00:00:0a:07")
        .await;
    let token = app.mac_login("02:00:00:00:0a:07").await;
    let mut body = Value::Null;
    for code in &codes {
        let res = user_post(&app, &token, "/api/card/redeem/", &json!({ "code": code })).await;
        assert_eq!(res.status(), 200);
        body = res.json().await.unwrap();
    }
    let ends: chrono::DateTime<Utc> = body["ends_at"].as_str().unwrap().parse().unwrap();
    let days = (ends - Utc::now()).num_hours() as f64 / 24.0;
    assert!((59.9..=60.1).contains(&days), "ends in {days} days");
    let limits = lty_server::app::subscriptions::limits_for(&app.state, user)
        .await
        .unwrap();
    assert_eq!(limits.daily_ai_messages, 500);
    let res = user_post(
        &app,
        &token,
        "/api/card/redeem/",
        &json!({ "code": codes[0] }),
    )
    .await;
    assert_error(res, 409, "card_already_redeemed").await;
}

#[tokio::test]
async fn a_content_card_cannot_be_redeemed() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let batch = content_batch(&app, &admin, 1).await;
    let code = export(&app, &admin, batch).await.remove(0);
    app.user_with_device("redeem_content", "02:00:00:00:0a:08")
        .await;
    let token = app.mac_login("02:00:00:00:0a:08").await;
    let res = user_post(&app, &token, "/api/card/redeem/", &json!({ "code": code })).await;
    assert_error(res, 409, "card_not_redeemable").await;
}

/// Decodes the QR code in a greyscale or RGB(A) PNG image.
fn decode_qr_png(bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[(y * w + x) * channels]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "expected one QR code in the image");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn a_cards_qr_code_decodes_back_to_its_code_for_operators_and_its_family_only() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let batch = content_batch(&app, &admin, 2).await;
    let codes = export(&app, &admin, batch).await;
    let code = &codes[0];

    // Operators get the PNG and the SVG of any card.
    let res = admin_get(&app, &admin, &format!("/api/card/{code}/qr.png")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().await.unwrap();
    let decoded = decode_qr_png(&png);
    assert_eq!(
        CardCode::parse(&decoded).unwrap().as_str(),
        CardCode::parse(code).unwrap().as_str()
    );
    let res = admin_get(&app, &admin, &format!("/api/card/{code}/qr.svg")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.text().await.unwrap().starts_with("<?xml"));

    // A family sees the QR code of a card it scanned, and only that one.
    app.user_with_device("qr_family", "02:00:00:00:0a:31").await;
    let token = app.mac_login("02:00:00:00:0a:31").await;
    let path = format!("/api/card/{code}/qr.png");
    let res = app
        .client
        .get(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "card_not_found").await;
    let res = user_post(&app, &token, "/api/card/scan/", &json!({ "code": code })).await;
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let other = format!("/api/card/{}/qr.svg", codes[1]);
    let res = app
        .client
        .get(app.url(&other))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "card_not_found").await;

    // No token, a malformed code, an unknown code.
    assert_error(app.get(&path).await, 401, "unauthenticated").await;
    let res = admin_get(&app, &admin, "/api/card/not-a-code/qr.png").await;
    assert_eq!(res.status(), 400);
    let unknown = CardCode::generate().display();
    let res = admin_get(&app, &admin, &format!("/api/card/{unknown}/qr.png")).await;
    assert_error(res, 404, "card_not_found").await;
}

/// The entries of a ZIP archive, by name, in archive order.
pub(crate) fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            file.read_to_end(&mut data).unwrap();
            (file.name().unwrap().into_owned(), data)
        })
        .collect()
}

/// Checks an exported archive of a batch against its CSV export: the CSV,
/// then a PNG that decodes to its code and an SVG for every card.
pub(crate) fn check_batch_zip(entries: &[(String, Vec<u8>)], batch: i64, codes: &[String]) {
    assert_eq!(entries.len(), 1 + 2 * codes.len());
    let (name, csv) = &entries[0];
    assert_eq!(name, &format!("batch-{batch}.csv"));
    let csv = String::from_utf8(csv.clone()).unwrap();
    let in_csv: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(in_csv, codes);
    for code in codes {
        assert!(entries.iter().any(|(n, _)| n == &format!("png/{code}.png")));
        let svg = entries
            .iter()
            .find(|(n, _)| n == &format!("svg/{code}.svg"))
            .unwrap();
        assert!(String::from_utf8_lossy(&svg.1).contains("<svg"));
    }
    let last = codes.last().unwrap();
    let png = entries
        .iter()
        .find(|(n, _)| n == &format!("png/{last}.png"))
        .unwrap();
    assert_eq!(&decode_qr_png(&png.1), last);
}

#[tokio::test]
async fn a_batch_exports_as_a_streamed_zip_of_its_csv_and_qr_images() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    // More cards than one page of images, so the archive spans pages.
    let batch = content_batch(&app, &admin, 300).await;
    let codes = export(&app, &admin, batch).await;

    let path = format!("/api/v1/admin/card-batches/{batch}/export.zip");
    let res = admin_get(&app, &admin, &path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    // Streamed: the length is not known up front.
    assert!(res.content_length().is_none());
    let bytes = res.bytes().await.unwrap();
    check_batch_zip(&unzip(&bytes), batch, &codes);

    let res = admin_get(&app, &admin, "/api/v1/admin/card-batches/999999/export.zip").await;
    assert_error(res, 404, "batch_not_found").await;
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 401);
}
