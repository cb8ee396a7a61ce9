//! `/api/ai/image/`: uploads stored under the legacy layout and recognized
//! by Aliyun Visual Intelligence (signed RPC against its fake, which
//! downloads the image from `/media/`) or by an OpenAI-compatible vision
//! model (the image inline as a data URL); format sniffing, limits and the
//! child-safety checks on the result.

use std::time::{SystemTime, UNIX_EPOCH};

use lty_server::config::{Config, Secret};
use lty_vendors::aliyun::AccessKey;
use lty_vendors::aliyun::vi::sign_tagging_image;
use serde_json::Value;

use crate::fakes::aliyun_vi::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyunVi};
use crate::fakes::openai::{FLAG_MARKER, FakeOpenAi, VISION_MODEL, VISION_REPLY};
use crate::helpers::{TestApp, assert_error, spawn_app_with};

/// A PNG signature and the start of its header chunk.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";
/// The start of a JPEG file.
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";

async fn login(app: &TestApp) -> String {
    let mac = format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        rand::random::<u8>(),
        rand::random::<u8>(),
        rand::random::<u8>()
    );
    app.user_with_device("image_user", &mac).await;
    app.mac_login(&mac).await
}

async fn vi_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeAliyunVi) {
    let fake = FakeAliyunVi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        tweak(c);
    })
    .await;
    fake.download_from(app.addr);
    let token = login(&app).await;
    (app, token, fake)
}

async fn upload(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/ai/image/"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn media_path(url: &str) -> String {
    let at = url.find("/media/").expect("a /media/ URL");
    url[at..].to_owned()
}

#[tokio::test]
async fn aliyun_vi_tags_an_image_it_downloads_from_media() {
    let (app, token, fake) = vi_app(|_| {}).await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["provider"], "aliyun_vi");
    assert_eq!(body["moderated"], false);
    assert!(body["description"].is_null());
    // Most confident first; the one under `min_confidence` is left out.
    let names: Vec<&str> = body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["猫", "动物"]);
    assert_eq!(body["labels"][0]["confidence"], 92.5);

    // Stored as a temporary object under the legacy layout.
    let path = media_path(body["image_url"].as_str().unwrap());
    let parts: Vec<&str> = path.trim_start_matches("/media/").split('/').collect();
    assert_eq!(parts[..3], ["audio", "image", "temporary"], "{path}");
    assert_eq!(parts[3].len(), 8);
    let (name, ext) = parts[4].split_once('.').unwrap();
    assert_eq!((name.len(), ext), (32, "png"));
    let served = app.get(&path).await;
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap(), PNG);

    // The vendor was given the stored URL and got the very bytes.
    let tagged = fake.tagged();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].image_url, body["image_url"].as_str().unwrap());
    assert_eq!(tagged[0].image, PNG);
}

#[tokio::test]
async fn a_multipart_image_part_is_accepted_and_stored_by_its_real_format() {
    let (app, token, fake) = vi_app(|_| {}).await;
    let form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(JPEG.to_vec())
            .file_name("photo.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let res = app
        .client
        .post(app.url("/api/ai/image/"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["image_url"].as_str().unwrap().ends_with(".jpg"));
    assert_eq!(fake.tagged()[0].image, JPEG);
}

#[tokio::test]
async fn bad_images_are_415_too_big_413_empty_400_and_never_reach_the_vendor() {
    let (app, token, fake) = vi_app(|c| c.image.max_bytes = 1024).await;
    for (ct, bytes) in [
        ("image/png", b"%PDF-1.7 not an image".to_vec()),
        ("image/webp", b"RIFF\x10\0\0\0WAVEfmt ".to_vec()),
        ("application/octet-stream", b"\x89PNX".to_vec()),
    ] {
        let res = upload(&app, &token, ct, bytes).await;
        assert_error(res, 415, "unsupported_image_format").await;
    }
    let mut big = PNG.to_vec();
    big.resize(2048, 0);
    let res = upload(&app, &token, "image/png", big.clone()).await;
    assert_error(res, 413, "payload_too_large").await;
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(big));
    let res = app
        .client
        .post(app.url("/api/ai/image/"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "payload_too_large").await;
    let res = upload(&app, &token, "image/png", Vec::new()).await;
    assert_error(res, 400, "validation_error").await;
    let res = app
        .client
        .post(app.url("/api/ai/image/"))
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
    assert!(fake.tagged().is_empty());
    assert!(fake.rejected().is_empty());
}

#[tokio::test]
async fn a_wrong_vi_secret_is_refused_by_the_vendor_and_answers_502() {
    let (app, token, fake) = vi_app(|c| {
        c.aliyun.vi.access_key_secret = Some(Secret::new("not-the-secret"));
    })
    .await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "aliyun_vi");
    assert_eq!(body["details"]["vendor_code"], "SignatureDoesNotMatch");
    assert_eq!(fake.rejected(), ["SignatureDoesNotMatch"]);
}

#[tokio::test]
async fn vendor_flow_control_is_retried_once_then_429() {
    let (app, token, fake) = vi_app(|_| {}).await;
    fake.script(400, "Throttling.User");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200, "one throttled attempt is retried");
    fake.script(400, "Throttling.User");
    fake.script(400, "Throttling.User");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_error(res, 429, "upstream_rate_limited").await;
    fake.script(400, "InvalidImage.Content");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["vendor_code"], "InvalidImage.Content");
    assert_eq!(fake.tagged().len(), 1);
}

/// Posts a signed `TaggingImage` straight to the fake.
async fn signed_call(fake: &FakeAliyunVi, image_url: &str, at: u64, nonce: &str) -> Value {
    let key = AccessKey::new(ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    let signed = sign_tagging_image(image_url, "cn-shanghai", &key, at, nonce).unwrap();
    reqwest::Client::new()
        .post(format!("http://{}/", fake.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(signed.signed_query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_vi_signature_survives_awkward_characters_and_the_gateway_rules_hold() {
    let (_app, _token, fake) = vi_app(|_| {}).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // `*`, `~`, space and Chinese pass the signature check; the (missing)
    // image is what fails.
    let awkward = "http://127.0.0.1/media/a b*~/小猫.png";
    let body = signed_call(&fake, awkward, now, "nonce-1").await;
    assert_eq!(body["Code"], "InvalidImage.Download", "{body}");
    let body = signed_call(&fake, awkward, now, "nonce-1").await;
    assert_eq!(body["Code"], "SignatureNonceUsed");
    let body = signed_call(&fake, awkward, now - 3600, "nonce-2").await;
    assert_eq!(body["Code"], "InvalidTimeStamp.Expired");
    let body = signed_call(&fake, "http://example.com/x.png", now, "nonce-3").await;
    assert_eq!(body["Code"], "InvalidImage.Region");
}

#[tokio::test]
async fn labels_that_hit_a_blocked_term_are_replaced_by_the_refusal() {
    let (app, token, fake) = vi_app(|c| {
        c.ai.blocked_output_terms = lty_server::chat::TermList(vec!["血腥".into()]);
    })
    .await;
    fake.set_tags(&[("风景", 80.0), ("血腥", 70.0)]);
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["labels"], serde_json::json!([]));
    assert_eq!(body["description"], app.config.ai.refusal_message);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("lty_moderation_blocks_total{side=\"output\"}"),
        "{metrics}"
    );
}

async fn vision_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeOpenAi) {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.image.model = Some(VISION_MODEL.into());
        tweak(c);
    })
    .await;
    let token = login(&app).await;
    (app, token, fake)
}

#[tokio::test]
async fn an_openai_vision_model_describes_the_image_sent_inline() {
    let (app, token, fake) = vision_app(|_| {}).await;
    let res = upload(&app, &token, "image/jpeg", JPEG.to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["description"], VISION_REPLY);
    assert_eq!(body["labels"], serde_json::json!([]));
    assert_eq!(body["moderated"], false);
    let served = app
        .get(&media_path(body["image_url"].as_str().unwrap()))
        .await;
    assert_eq!(served.bytes().await.unwrap(), JPEG);

    let request = fake.requests().last().unwrap().clone();
    assert_eq!(request["model"], VISION_MODEL);
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let parts = messages[1]["content"].as_array().unwrap();
    assert_eq!(parts[0]["text"], app.config.image.prompt);
    use base64::Engine;
    let inline = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(JPEG)
    );
    assert_eq!(parts[1]["image_url"]["url"], inline);
}

#[tokio::test]
async fn a_description_the_moderation_api_flags_is_refused() {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        fake.configure_moderation(c);
        c.image.model = Some(VISION_MODEL.into());
    })
    .await;
    let token = login(&app).await;
    fake.set_vision_reply(&format!("图片里有{FLAG_MARKER}"));
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["description"], app.config.ai.refusal_message);
    assert!(fake.moderated().iter().any(|m| m.contains(FLAG_MARKER)));
}

#[tokio::test]
async fn without_a_vision_provider_images_are_503_and_the_choice_follows_the_config() {
    // A chat model alone is not enough: the vision model must be named.
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(|c| fake.configure(c)).await;
    let token = login(&app).await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_error(res, 503, "provider_not_configured").await;

    // VI keys win by default; `provider = openai` picks the model instead.
    let vi = FakeAliyunVi::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        vi.configure(c);
        c.image.model = Some(VISION_MODEL.into());
    })
    .await;
    vi.download_from(app.addr);
    let token = login(&app).await;
    let body: Value = upload(&app, &token, "image/png", PNG.to_vec())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["provider"], "aliyun_vi");
    let app = spawn_app_with(|c| {
        fake.configure(c);
        vi.configure(c);
        c.image.model = Some(VISION_MODEL.into());
        c.image.provider = Some("openai".into());
    })
    .await;
    let token = login(&app).await;
    let body: Value = upload(&app, &token, "image/png", PNG.to_vec())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["provider"], "openai");
    let app = spawn_app_with(|c| {
        vi.configure(c);
        c.image.provider = Some("none".into());
    })
    .await;
    let token = login(&app).await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_error(res, 503, "provider_not_configured").await;
}
