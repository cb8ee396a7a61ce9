//! Media storage in both modes: Aliyun OSS (against the fake, which checks
//! every V1 signature) and an S3-compatible bucket (against the fake, which
//! checks every SigV4 signature) with presigned or public URLs, and the
//! local directory served under `/media/`; the expiry sweeper on the
//! directory and on S3.

use bytes::Bytes;
use chrono::{Duration, Utc};
use lty_server::app::media::sweep_temporary;
use lty_server::app::speech::{Retention, object_key};
use lty_server::config::{Config, Secret};
use lty_server::state::{StorageBackend, storage_backend};
use serde_json::{Value, json};

use crate::fakes::aliyun_oss::{BUCKET, FakeOss};
use crate::fakes::s3::FakeS3;
use crate::fakes::tencent::FakeTencent;
use crate::helpers::{self, TestApp, assert_error, spawn_app_with};

const MAC: &str = "02:00:00:00:0a:41";

/// An app speaking through the Tencent fake and storing on the OSS fake.
async fn oss_app(
    tweak: impl FnOnce(&mut Config, &FakeOss),
) -> (TestApp, String, FakeOss, FakeTencent) {
    let oss = FakeOss::start().await;
    let tencent = FakeTencent::start().await;
    let app = spawn_app_with(|c| {
        tencent.configure(c);
        oss.configure(c);
        tweak(c, &oss);
    })
    .await;
    app.user_with_device("storage_user", MAC).await;
    let token = app.mac_login(MAC).await;
    (app, token, oss, tencent)
}

async fn tts(app: &TestApp, token: &str, text: &str) -> reqwest::Response {
    helpers::tts(app, token, &json!({ "text": text })).await
}

/// `{base}/temporary/{YYYYMMDD}/{32 hex}.{ext}`, dated today in Shanghai.
fn assert_legacy_key(key: &str, base: &str) {
    let today = (Utc::now() + Duration::hours(8))
        .format("%Y%m%d")
        .to_string();
    let prefix = format!("{base}/temporary/{today}/");
    let file = key.strip_prefix(&prefix).unwrap_or_else(|| panic!("{key}"));
    let (name, ext) = file.split_once('.').unwrap();
    assert_eq!(name.len(), 32, "{key}");
    assert!(name.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    assert!(["wav", "mp3", "pcm"].contains(&ext), "{key}");
}

#[tokio::test]
async fn tts_audio_is_stored_on_oss_and_served_by_a_presigned_url() {
    let (app, token, oss, _tencent) = oss_app(|c, _| {
        c.aliyun.oss.audio_base_dir = Some("/kids/voice/".into());
        c.storage.url_expiry_secs = 600;
    })
    .await;
    assert_eq!(storage_backend(&app.config).unwrap(), StorageBackend::Oss);
    let res = tts(&app, &token, "存到对象存储").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["audio_url"].as_str().unwrap().to_owned();

    // One object, under the legacy layout, stored with a signed PUT.
    let keys = oss.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_legacy_key(key, "kids/voice");
    assert_eq!(oss.requests(), [format!("PUT {key}")]);
    let object = oss.object(key).unwrap();
    assert_eq!(body["format"], "mp3");
    assert!(key.ends_with(".mp3"));
    assert_eq!(object.content_type, "audio/mpeg");
    assert!(!object.data.is_empty());

    // The URL is a V1 presigned GET on ALIYUN_OSS_HOST, valid 600 s.
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.path(), format!("/{key}"));
    let q: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["OSSAccessKeyId"], crate::fakes::aliyun_oss::ACCESS_KEY_ID);
    let expires: i64 = q["Expires"].parse().unwrap();
    let in_secs = expires - Utc::now().timestamp();
    assert!((590..=601).contains(&in_secs), "{in_secs}");

    // Fetching it needs nothing but the URL.
    let plain = reqwest::Client::new();
    let res = plain.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), object.data);

    // A tampered signature and an expired URL are refused by the store.
    let tampered = url.replace("Signature=", "Signature=A");
    let res = plain.get(&tampered).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("SignatureDoesNotMatch"));
    oss.advance(601);
    let res = plain.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("Request has expired."));
    assert_eq!(oss.errors(), ["SignatureDoesNotMatch", "AccessDenied"]);
}

#[tokio::test]
async fn public_read_buckets_get_plain_urls_on_the_oss_host() {
    let (app, token, oss, _tencent) = oss_app(|c, oss| {
        c.storage.public_read = true;
        // The region endpoint form is for real OSS; the fake is the host.
        c.aliyun.oss.endpoint = None;
        c.aliyun.oss.host = Some(format!("{}/", oss.url()));
    })
    .await;
    oss.set_public_read(true);
    let res = tts(&app, &token, "公开读").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["audio_url"].as_str().unwrap();
    let key = &oss.keys()[0];
    assert_eq!(url, format!("{}/{key}", oss.url()));
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), oss.object(key).unwrap().data);
}

#[tokio::test]
async fn oss_refuses_a_wrong_secret_and_a_skewed_clock_and_tts_answers_503() {
    let (app, token, oss, _tencent) = oss_app(|c, _| {
        c.aliyun.oss.access_key_secret = Some(Secret::new("not-the-secret"));
    })
    .await;
    let res = tts(&app, &token, "错误的密钥").await;
    assert_error(res, 503, "service_unavailable").await;
    assert_eq!(oss.errors(), ["SignatureDoesNotMatch"]);
    assert!(oss.keys().is_empty());

    let (app, token, oss, _tencent) = oss_app(|_, _| {}).await;
    oss.advance(16 * 60);
    let res = tts(&app, &token, "时钟偏差").await;
    assert_eq!(res.status(), 503);
    assert_eq!(oss.errors(), ["RequestTimeTooSkewed"]);
    oss.advance(-16 * 60);
    let res = tts(&app, &token, "时钟正常").await;
    assert_eq!(res.status(), 200);
    assert_eq!(oss.keys().len(), 1);
}

#[tokio::test]
async fn the_oss_store_reads_deletes_and_pings_through_the_port() {
    let (app, _token, oss, _tencent) = oss_app(|_, _| {}).await;
    let blobs = &app.state.blobs;
    blobs.ping().await.unwrap();
    let key = "audio/permanent/20261125/a.mp3";
    let data = Bytes::from_static(b"ID3 not really an mp3");
    blobs.put(key, data.clone(), "audio/mpeg").await.unwrap();
    assert_eq!(oss.object(key).unwrap().content_type, "audio/mpeg");
    assert_eq!(blobs.get(key).await.unwrap(), Some(data));
    blobs.delete(key).await.unwrap();
    assert_eq!(blobs.get(key).await.unwrap(), None);
    // Deleting a missing object is not an error.
    blobs.delete(key).await.unwrap();
    assert!(oss.keys().is_empty());
    // Expiry is the bucket's lifecycle rule, not a sweep.
    assert!(sweep_temporary(&app.state, Utc::now()).await.is_err());
    assert_eq!(
        oss.requests(),
        [
            "GET ".to_owned(),
            format!("PUT {key}"),
            format!("GET {key}"),
            format!("DELETE {key}"),
            format!("GET {key}"),
            format!("DELETE {key}"),
        ]
    );
}

#[tokio::test]
async fn the_backend_follows_the_configuration() {
    let mut c = Config::default();
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::Fs);
    c.aliyun.oss.bucket = Some(BUCKET.into());
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::Fs);
    c.storage.backend = Some("oss".into());
    assert!(storage_backend(&c).is_err(), "OSS without a key pair");
    c.aliyun.oss.access_key_id = Some("id".into());
    c.aliyun.oss.access_key_secret = Some(Secret::new("secret"));
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::Oss);
    c.storage.backend = None;
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::Oss);
    c.storage.backend = Some("fs".into());
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::Fs);
    c.storage.backend = Some("s4".into());
    assert!(storage_backend(&c).is_err());
}

#[tokio::test]
async fn fs_mode_sweeps_expired_temporary_folders_and_never_permanent_ones() {
    let app = spawn_app_with(|c| {
        c.aliyun.oss.audio_base_dir = Some("voice".into());
        c.audio.temporary_days = 7;
    })
    .await;
    assert_eq!(storage_backend(&app.config).unwrap(), StorageBackend::Fs);
    let now = Utc::now();
    let put = |retention, days_ago: i64, file: &str| {
        object_key("voice", retention, now - Duration::days(days_ago), file)
    };
    let old = put(Retention::Temporary, 30, "old.wav");
    let nine = put(Retention::Temporary, 9, "nine.wav");
    let recent = put(Retention::Temporary, 3, "recent.wav");
    let today = put(Retention::Temporary, 0, "today.wav");
    let kept = put(Retention::Permanent, 400, "kept.wav");
    let odd = "voice/temporary/not-a-date/x.wav".to_owned();
    let all = [&old, &nine, &recent, &today, &kept, &odd];
    for key in all {
        app.state
            .blobs
            .put(key, Bytes::from_static(b"RIFF"), "audio/wav")
            .await
            .unwrap();
        assert_eq!(
            app.get(&format!("/media/{key}")).await.status(),
            200,
            "{key}"
        );
    }

    let deleted = sweep_temporary(&app.state, now).await.unwrap();
    let folder = |key: &str| format!("{}/", key.rsplit_once('/').unwrap().0);
    assert_eq!(deleted, [folder(&old), folder(&nine)]);
    for key in [&old, &nine] {
        assert_eq!(
            app.get(&format!("/media/{key}")).await.status(),
            404,
            "{key}"
        );
    }
    for key in [&recent, &today, &kept, &odd] {
        assert_eq!(
            app.get(&format!("/media/{key}")).await.status(),
            200,
            "{key}"
        );
    }
    // A second sweep finds nothing more.
    assert!(sweep_temporary(&app.state, now).await.unwrap().is_empty());
}

#[tokio::test]
async fn fs_mode_urls_point_at_media_under_the_legacy_layout() {
    let tencent = FakeTencent::start().await;
    let app = spawn_app_with(|c| tencent.configure(c)).await;
    app.user_with_device("storage_fs_user", MAC).await;
    let token = app.mac_login(MAC).await;
    let res = tts(&app, &token, "本地存储").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["audio_url"].as_str().unwrap();
    let path = url.strip_prefix(&app.config.public_base()).unwrap();
    let key = path.strip_prefix("/media/").unwrap();
    assert_legacy_key(key, "audio");
    let res = app.get(path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/mpeg");
    let served = res.bytes().await.unwrap();
    assert_eq!(app.state.blobs.get(key).await.unwrap(), Some(served));
}

/// An app speaking through the Tencent fake and storing on the S3 fake.
async fn s3_app(
    tweak: impl FnOnce(&mut Config, &FakeS3),
) -> (TestApp, String, FakeS3, FakeTencent) {
    let s3 = FakeS3::start().await;
    let tencent = FakeTencent::start().await;
    let app = spawn_app_with(|c| {
        tencent.configure(c);
        s3.configure(c);
        tweak(c, &s3);
    })
    .await;
    app.user_with_device("s3_user", MAC).await;
    let token = app.mac_login(MAC).await;
    (app, token, s3, tencent)
}

#[tokio::test]
async fn tts_audio_is_stored_on_s3_and_served_by_a_sigv4_presigned_url() {
    let (app, token, s3, _tencent) = s3_app(|c, _| {
        c.aliyun.oss.audio_base_dir = Some("/kids/voice/".into());
        c.storage.url_expiry_secs = 600;
    })
    .await;
    assert_eq!(storage_backend(&app.config).unwrap(), StorageBackend::S3);
    let res = tts(&app, &token, "存到兼容 S3 的存储").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["audio_url"].as_str().unwrap().to_owned();

    // One object under the legacy layout, stored with a SigV4-signed PUT.
    let keys = s3.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_legacy_key(key, "kids/voice");
    assert_eq!(s3.requests(), [format!("PUT {key}")]);
    assert!(s3.errors().is_empty(), "{:?}", s3.errors());
    let object = s3.object(key).unwrap();
    assert_eq!(object.content_type, "audio/mpeg");
    assert!(!object.data.is_empty());

    // A path-style SigV4 presigned GET, valid 600 s.
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.host_str(), Some("127.0.0.1"));
    assert_eq!(parsed.port(), Some(s3.addr().port()));
    assert_eq!(
        parsed.path(),
        format!("/{}/{key}", crate::fakes::s3::BUCKET)
    );
    let q: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(q["X-Amz-Expires"], "600");
    assert_eq!(q["X-Amz-SignedHeaders"], "host");
    let date = &q["X-Amz-Date"];
    assert_eq!(
        q["X-Amz-Credential"],
        format!(
            "{}/{}/{}/s3/aws4_request",
            crate::fakes::s3::ACCESS_KEY_ID,
            &date[..8],
            crate::fakes::s3::REGION
        )
    );
    assert_eq!(q["X-Amz-Signature"].len(), 64);

    // Fetching it needs nothing but the URL.
    let plain = reqwest::Client::new();
    let res = plain.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), object.data);
    assert_eq!(
        s3.requests().last().unwrap(),
        &format!("GET {key} (presigned)")
    );

    // A tampered signature, another key and an expired URL are refused.
    let tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let res = plain.get(&tampered).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("SignatureDoesNotMatch"));
    let other = url.replace(".mp3?", ".wav?");
    let res = plain.get(&other).send().await.unwrap();
    assert_eq!(res.status(), 403);
    s3.advance(601);
    let res = plain.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("Request has expired"));
    assert_eq!(
        s3.errors(),
        [
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch",
            "AccessDenied"
        ]
    );
}

#[tokio::test]
async fn public_s3_buckets_get_plain_urls_on_the_public_base() {
    // Without a public base, URLs point at the bucket itself.
    let (app, token, s3, _tencent) = s3_app(|c, _| c.storage.public_read = true).await;
    s3.set_public_read(true);
    let res = tts(&app, &token, "公开读的桶").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["audio_url"].as_str().unwrap();
    let key = &s3.keys()[0];
    assert_eq!(
        url,
        format!("{}/{}/{key}", s3.url(), crate::fakes::s3::BUCKET)
    );
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), s3.object(key).unwrap().data);
    assert_eq!(
        s3.requests(),
        [format!("PUT {key}"), format!("GET {key} (anonymous)")]
    );

    // With one (a CDN), URLs are `{public_base}/{key}`.
    let (app, token, s3, _tencent) = s3_app(|c, _| {
        c.storage.public_read = true;
        c.storage.s3.public_base = Some("https://cdn.example.com/media/".into());
    })
    .await;
    let res = tts(&app, &token, "走 CDN").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let key = &s3.keys()[0];
    assert_eq!(
        body["audio_url"],
        format!("https://cdn.example.com/media/{key}")
    );
}

#[tokio::test]
async fn a_wrong_s3_secret_answers_503_and_readyz_reports_storage_degraded() {
    let (app, token, s3, _tencent) = s3_app(|c, _| {
        c.storage.s3.secret_access_key = Some(Secret::new("not-the-secret"));
    })
    .await;
    let res = tts(&app, &token, "错误的密钥").await;
    let body = assert_error(res, 503, "service_unavailable").await;
    assert!(
        !body.to_string().contains("SignatureDoesNotMatch"),
        "{body}"
    );
    assert!(s3.keys().is_empty());
    assert_eq!(s3.errors(), ["SignatureDoesNotMatch"]);

    // The instance still serves everything but media: reported, not
    // taken out of rotation.
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["storage"], "down");
    assert_eq!(body["checks"]["database"], "ok");

    // With the right key pair the store is ready.
    let (app, _token, s3, _tencent) = s3_app(|_, _| {}).await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["storage"], "ok");
    assert!(s3.errors().is_empty(), "{:?}", s3.errors());
    assert_eq!(s3.requests(), ["LIST "]);
}

#[tokio::test]
async fn a_skewed_clock_is_refused_by_s3_and_tts_answers_503() {
    let (app, token, s3, _tencent) = s3_app(|_, _| {}).await;
    s3.advance(16 * 60);
    let res = tts(&app, &token, "时钟偏差").await;
    assert_error(res, 503, "service_unavailable").await;
    assert_eq!(s3.errors(), ["RequestTimeTooSkewed"]);
    s3.advance(-16 * 60);
    let res = tts(&app, &token, "时钟正常").await;
    assert_eq!(res.status(), 200);
    assert_eq!(s3.keys().len(), 1);
}

#[tokio::test]
async fn the_s3_store_reads_deletes_and_pings_through_the_port() {
    let (app, _token, s3, _tencent) = s3_app(|_, _| {}).await;
    let blobs = &app.state.blobs;
    blobs.ping().await.unwrap();
    let key = "audio/permanent/20261125/a.mp3";
    let data = Bytes::from_static(b"ID3 not really an mp3");
    blobs.put(key, data.clone(), "audio/mpeg").await.unwrap();
    assert_eq!(s3.object(key).unwrap().content_type, "audio/mpeg");
    assert_eq!(blobs.get(key).await.unwrap(), Some(data));
    blobs.delete(key).await.unwrap();
    assert_eq!(blobs.get(key).await.unwrap(), None);
    // Deleting a missing object is not an error.
    blobs.delete(key).await.unwrap();
    assert!(s3.keys().is_empty());
    assert!(
        s3.errors().iter().all(|e| e == "NoSuchKey"),
        "{:?}",
        s3.errors()
    );
}

#[tokio::test]
async fn s3_mode_sweeps_expired_temporary_folders_and_never_permanent_ones() {
    let (app, _token, s3, _tencent) = s3_app(|c, _| {
        c.aliyun.oss.audio_base_dir = Some("voice".into());
        c.audio.temporary_days = 7;
    })
    .await;
    let now = Utc::now();
    let put = |retention, days_ago: i64, file: &str| {
        object_key("voice", retention, now - Duration::days(days_ago), file)
    };
    let old = put(Retention::Temporary, 30, "old.wav");
    let old_too = put(Retention::Temporary, 30, "old-too.wav");
    let nine = put(Retention::Temporary, 9, "nine.wav");
    let recent = put(Retention::Temporary, 3, "recent.wav");
    let kept = put(Retention::Permanent, 400, "kept.wav");
    let odd = "voice/temporary/not-a-date/x.wav".to_owned();
    for key in [&old, &old_too, &nine, &recent, &kept, &odd] {
        app.state
            .blobs
            .put(key, Bytes::from_static(b"RIFF"), "audio/wav")
            .await
            .unwrap();
    }
    // Another writer's object in an expired folder goes with it.
    let foreign = format!("{}/nested/y.wav", old.rsplit_once('/').unwrap().0);
    s3.insert(&foreign, b"RIFF");

    let deleted = sweep_temporary(&app.state, now).await.unwrap();
    let folder = |key: &str| format!("{}/", key.rsplit_once('/').unwrap().0);
    assert_eq!(deleted, [folder(&old), folder(&nine)]);
    // Folders are found with ListObjectsV2 and emptied with DeleteObjects
    // (one object: DeleteObject).
    let requests = s3.requests();
    assert_eq!(
        requests[6..],
        [
            "LIST voice/temporary/".to_owned(),
            format!("LIST {}", folder(&old)),
            "DELETE-OBJECTS 3".to_owned(),
            format!("LIST {}", folder(&nine)),
            format!("DELETE {nine}"),
        ]
    );
    let mut left = vec![kept.clone(), odd.clone(), recent.clone()];
    left.sort();
    assert_eq!(s3.keys(), left);
    assert!(s3.errors().is_empty(), "{:?}", s3.errors());
    // A second sweep finds nothing more.
    assert!(sweep_temporary(&app.state, now).await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_without_a_bucket_or_keys_fails_naming_the_variables() {
    let mut c = Config::default();
    c.storage.backend = Some("s3".into());
    let err = storage_backend(&c).unwrap_err().to_string();
    for var in [
        "LTY_STORAGE__S3__BUCKET",
        "LTY_STORAGE__S3__ACCESS_KEY_ID",
        "LTY_STORAGE__S3__SECRET_ACCESS_KEY",
    ] {
        assert!(err.contains(var), "{err}");
    }
    c.storage.s3.bucket = Some("media".into());
    c.storage.s3.access_key_id = Some("id".into());
    let err = storage_backend(&c).unwrap_err().to_string();
    assert!(err.contains("LTY_STORAGE__S3__SECRET_ACCESS_KEY"), "{err}");
    assert!(!err.contains("LTY_STORAGE__S3__BUCKET"), "{err}");
    c.storage.s3.secret_access_key = Some(Secret::new("secret"));
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::S3);
    // OSS credentials alone never select S3, nor S3 ones OSS.
    c.storage.backend = None;
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::Fs);
}

#[test]
fn s3_settings_come_from_lty_storage_variables_and_the_secret_never_prints() {
    use lty_server::config::EnvProvider;
    let env = EnvProvider::from_vars(
        [
            ("LTY_STORAGE__BACKEND", "s3"),
            ("LTY_STORAGE__S3__ENDPOINT", "http://minio:9000"),
            ("LTY_STORAGE__S3__REGION", "auto"),
            ("LTY_STORAGE__S3__BUCKET", "media"),
            ("LTY_STORAGE__S3__ACCESS_KEY_ID", "minio"),
            ("LTY_STORAGE__S3__SECRET_ACCESS_KEY", "minio-secret-123"),
            ("LTY_STORAGE__S3__PUBLIC_BASE", "https://cdn.example.com"),
            ("LTY_STORAGE__S3__VIRTUAL_HOST_STYLE", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lty.toml");
    std::fs::write(&file, "").unwrap();
    let c = Config::load(Some(&file), env).unwrap();
    let s3 = &c.storage.s3;
    assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
    assert_eq!(s3.region, "auto");
    assert_eq!(s3.bucket.as_deref(), Some("media"));
    assert_eq!(s3.access_key_id.as_deref(), Some("minio"));
    assert_eq!(
        s3.secret_access_key.as_ref().map(Secret::expose),
        Some("minio-secret-123")
    );
    assert_eq!(s3.public_base.as_deref(), Some("https://cdn.example.com"));
    assert!(s3.virtual_host_style);
    assert_eq!(storage_backend(&c).unwrap(), StorageBackend::S3);
    let printed = serde_json::to_string(&c).unwrap();
    assert!(!printed.contains("minio-secret-123"), "{printed}");
    assert!(
        printed.contains(r#""secret_access_key":"***""#),
        "{printed}"
    );
}
