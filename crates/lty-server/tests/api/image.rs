//! `/api/ai/image/`: uploads stored under the legacy layout and recognized
//! by Aliyun Visual Intelligence (signed RPC against its fake, which only
//! downloads from OSS in cn-shanghai: embedded images go through the
//! temporary upload, images on such OSS are passed directly) or by an
//! OpenAI-compatible vision model (the image inline as a data URL); format
//! sniffing, limits and the child-safety checks on the result.

use std::time::{SystemTime, UNIX_EPOCH};

use lty_server::config::{Config, Secret};
use lty_vendors::aliyun::AccessKey;
use lty_vendors::aliyun::vi::sign_tagging_image;
use lty_vendors::aliyun::vi::upload::{parse_authorize_response, sign_authorize_file_upload};
use serde_json::Value;

use crate::fakes::aliyun_oss::{BUCKET, FakeOss};
use crate::fakes::aliyun_vi::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyunVi, TEMP_BUCKET};
use crate::fakes::openai::{FLAG_MARKER, FakeOpenAi, VISION_MODEL, VISION_REPLY};
use crate::helpers::{TestApp, assert_error, media_path, post_bytes, spawn_app_with};

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
    post_bytes(app, token, "/api/ai/image/", content_type, body).await
}

#[tokio::test]
async fn aliyun_vi_tags_an_embedded_image_through_the_temporary_upload() {
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

    // `/media/` is out of the vendor's reach: one grant, one PostObject of
    // the very bytes under the granted key, fields in order and `file` last.
    let grants = fake.grants();
    assert_eq!(grants.len(), 1);
    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].key, grants[0]);
    assert_eq!(uploads[0].data, PNG);
    assert_eq!(
        uploads[0].fields,
        [
            "OSSAccessKeyId",
            "policy",
            "Signature",
            "key",
            "success_action_status",
            "file"
        ]
    );
    assert_eq!(uploads[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(uploads[0].file_name.as_deref(), Some(parts[4]));

    // The vendor was given the temporary object's URL and got the bytes.
    let tagged = fake.tagged();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].image_url, FakeAliyunVi::temp_url(&grants[0]));
    assert!(tagged[0].image_url.starts_with(&format!(
        "http://{TEMP_BUCKET}.oss-cn-shanghai.aliyuncs.com/"
    )));
    assert_eq!(tagged[0].image, PNG);
    assert!(fake.rejected().is_empty());
}

#[tokio::test]
async fn with_uploads_turned_off_an_embedded_image_is_a_502_download_error() {
    let (app, token, fake) = vi_app(|c| c.image.vi_upload = "never".into()).await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "aliyun_vi");
    assert_eq!(body["details"]["vendor_code"], "InvalidImage.Download");
    assert!(fake.grants().is_empty());
    assert!(fake.uploads().is_empty());
    assert_eq!(fake.rejected(), ["InvalidImage.Download"]);
}

#[tokio::test]
async fn a_refused_temporary_upload_is_a_502_with_the_oss_code() {
    let (app, token, fake) = vi_app(|_| {}).await;
    fake.script_upload(403, "AccessDenied");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "aliyun_vi");
    assert_eq!(body["details"]["vendor_code"], "AccessDenied");
    assert_eq!(fake.upload_errors(), ["AccessDenied"]);
    assert_eq!(fake.grants().len(), 1, "a refusal is not retried");
    assert!(fake.uploads().is_empty());
    assert!(fake.tagged().is_empty());
}

#[tokio::test]
async fn upload_grant_flow_control_is_retried_once_then_429() {
    let (app, token, fake) = vi_app(|_| {}).await;
    fake.script_authorize(400, "Throttling.User");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200, "one throttled grant is retried");
    fake.script_authorize(400, "Throttling.User");
    fake.script_authorize(400, "Throttling.User");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    let body = assert_error(res, 429, "upstream_rate_limited").await;
    assert_eq!(body["details"]["vendor_code"], "Throttling.User");
    fake.script_authorize(403, "Forbidden.NoPermission");
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["vendor_code"], "Forbidden.NoPermission");
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(fake.tagged().len(), 1);
}

/// An app storing on the OSS fake, whose URLs name a cn-shanghai bucket
/// host; the VI fake fetches them from the OSS fake.
async fn oss_vi_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeAliyunVi, FakeOss) {
    let oss = FakeOss::start().await;
    let (app, token, fake) = vi_app(|c| {
        oss.configure(c);
        c.aliyun.oss.host = Some(format!("https://{BUCKET}.oss-cn-shanghai.aliyuncs.com"));
        tweak(c);
    })
    .await;
    fake.download_from(oss.addr());
    (app, token, fake, oss)
}

#[tokio::test]
async fn an_image_on_oss_in_the_vi_region_is_given_to_vi_directly() {
    let (app, token, fake, oss) = oss_vi_app(|_| {}).await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["labels"][0]["name"], "猫");
    let image_url = body["image_url"].as_str().unwrap();
    assert!(
        image_url.starts_with(&format!("https://{BUCKET}.oss-cn-shanghai.aliyuncs.com/")),
        "{image_url}"
    );
    let keys = oss.keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(oss.object(&keys[0]).unwrap().data, PNG);
    // No temporary upload: VI got the stored object's (presigned) URL.
    assert!(fake.grants().is_empty());
    assert!(fake.uploads().is_empty());
    let tagged = fake.tagged();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].image_url, image_url);
    assert_eq!(tagged[0].image, PNG);

    // `always` uploads even then.
    let (app, token, fake, _oss) = oss_vi_app(|c| c.image.vi_upload = "always".into()).await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(
        fake.tagged()[0].image_url,
        FakeAliyunVi::temp_url(&fake.grants()[0])
    );
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
    // The upload grant is the first signed call, and nothing follows it.
    assert_eq!(fake.rejected(), ["SignatureDoesNotMatch"]);
    assert!(fake.grants().is_empty());
    assert!(fake.uploads().is_empty());
    assert!(fake.tagged().is_empty());
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
        .post(format!("http://{}/", fake.addr()))
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
    // `*`, `~`, space and Chinese pass the signature check; the image
    // (never uploaded) is what fails.
    let awkward = format!("http://{TEMP_BUCKET}.oss-cn-shanghai.aliyuncs.com/a b*~/小猫.png");
    let awkward = awkward.as_str();
    let body = signed_call(&fake, awkward, now, "nonce-1").await;
    assert_eq!(body["Code"], "InvalidImage.Download", "{body}");
    assert!(
        body["Message"].as_str().unwrap().contains("no such object"),
        "{body}"
    );
    let body = signed_call(&fake, awkward, now, "nonce-1").await;
    assert_eq!(body["Code"], "SignatureNonceUsed");
    let body = signed_call(&fake, awkward, now - 3600, "nonce-2").await;
    assert_eq!(body["Code"], "InvalidTimeStamp.Expired");
    // Outside OSS in cn-shanghai the vendor does not even try.
    for (url, nonce) in [
        ("http://example.com/x.png", "nonce-3"),
        ("http://b.oss-cn-hangzhou.aliyuncs.com/x.png", "nonce-4"),
    ] {
        let body = signed_call(&fake, url, now, nonce).await;
        assert_eq!(body["Code"], "InvalidImage.Download");
        assert!(body["Message"].as_str().unwrap().contains("cn-shanghai"));
    }
}

#[tokio::test]
async fn the_fake_temporary_bucket_only_takes_the_granted_upload_with_file_last() {
    let (_app, _token, fake) = vi_app(|_| {}).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = AccessKey::new(ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    let signed =
        sign_authorize_file_upload("imagerecog", "cn-shanghai", &key, now, "grant-1").unwrap();
    let http = reqwest::Client::new();
    let res = http
        .post(format!("http://{}/openplatform/", fake.addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(signed.signed_query)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let grant = parse_authorize_response(status, &res.bytes().await.unwrap()).unwrap();
    let post = |fields: Vec<(&str, String)>, file_last: bool| {
        let mut form = reqwest::multipart::Form::new();
        if !file_last {
            form = form.part("file", reqwest::multipart::Part::bytes(PNG.to_vec()));
        }
        for (name, value) in fields {
            form = form.text(name.to_owned(), value);
        }
        if file_last {
            form = form.part("file", reqwest::multipart::Part::bytes(PNG.to_vec()));
        }
        http.post(format!("http://{}/oss/", fake.addr()))
            .multipart(form)
            .send()
    };
    let fields = |policy: &str, signature: &str| {
        vec![
            ("OSSAccessKeyId", grant.access_key_id.clone()),
            ("policy", policy.to_owned()),
            ("Signature", signature.to_owned()),
            ("key", grant.object_key.clone()),
            ("success_action_status", "201".to_owned()),
        ]
    };
    let ok = fields(&grant.encoded_policy, &grant.signature);
    let res = post(ok.clone(), false).await.unwrap();
    assert_eq!(res.status(), 400);
    let tampered = format!("{}e30=", grant.encoded_policy);
    let res = post(fields(&tampered, &grant.signature), true)
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = post(fields(&grant.encoded_policy, "c2lnbmF0dXJl"), true)
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        fake.upload_errors(),
        ["InvalidArgument", "AccessDenied", "SignatureDoesNotMatch"]
    );
    assert!(fake.uploads().is_empty());
    let res = post(ok, true).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(fake.uploads()[0].data, PNG);
    let body = signed_call(&fake, &grant.image_url(), now, "tag-1").await;
    assert_eq!(body["Data"]["Tags"][0]["Value"], "猫", "{body}");
}

#[tokio::test]
async fn labels_that_hit_a_blocked_term_are_replaced_by_the_refusal() {
    let (app, token, fake) = vi_app(|c| {
        c.ai.blocked_output_terms = lty_server::app::chat::TermList(vec!["血腥".into()]);
    })
    .await;
    fake.set_tags(&[("风景", 80.0), ("血腥", 70.0)]);
    let output_blocks = [("side", "output")];
    let blocks_before = app
        .metric("lty_moderation_blocks_total", &output_blocks)
        .await;
    let res = upload(&app, &token, "image/png", PNG.to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["moderated"], true);
    assert_eq!(body["labels"], serde_json::json!([]));
    assert_eq!(body["description"], app.config.ai.refusal_message);
    let blocks = app
        .metric("lty_moderation_blocks_total", &output_blocks)
        .await;
    assert!(blocks >= blocks_before + 1.0, "{blocks_before} -> {blocks}");
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
