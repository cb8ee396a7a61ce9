//! Speech: `/api/ai/tts/` with the local espeak-ng provider (real audio)
//! and the cloud providers against their fakes, the TTS cache, the legacy
//! object layout, and `/media/` serving.

use lty_server::config::Config;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, asr, asr_form, assert_error, media_path, spawn_app_with, tts, tts_ok,
};

const MAC: &str = "02:00:00:00:0a:01";

/// An app with `tweak` applied and a logged-in user's token.
async fn app_and_token(tweak: impl FnOnce(&mut Config)) -> (TestApp, String) {
    let app = spawn_app_with(tweak).await;
    app.user_with_device("speech_user", MAC).await;
    let token = app.mac_login(MAC).await;
    (app, token)
}

fn local(c: &mut Config) {
    c.audio.provider = "local".into();
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks a canonical PCM WAV file and returns its duration in ms.
fn wav_duration_ms(wav: &[u8]) -> u64 {
    assert!(wav.len() > 44, "too short for a WAV file");
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(le32(wav, 4) as usize, wav.len() - 8, "RIFF size");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(le16(wav, 20), 1, "PCM");
    let channels = u64::from(le16(wav, 22));
    let rate = u64::from(le32(wav, 24));
    assert_eq!(le16(wav, 34), 16, "16-bit");
    assert_eq!(&wav[36..40], b"data");
    let data = le32(wav, 40) as usize;
    assert_eq!(data, wav.len() - 44, "data size");
    assert!(wav[44..].iter().any(|b| *b != 0), "silence only");
    (data as u64 / (2 * channels)) * 1000 / rate
}

#[tokio::test]
async fn the_local_provider_speaks_real_wav_audio_served_under_media() {
    let (app, token) = app_and_token(local).await;
    let body = tts_ok(&app, &token, &json!({"text": "你好，小朋友。Hello!"})).await;
    assert_eq!(body["format"], "wav");
    let duration = body["duration_ms"].as_u64().unwrap();
    assert!(duration > 200, "{body}");

    let path = media_path(body["audio_url"].as_str().unwrap());
    let parts: Vec<&str> = path.trim_start_matches("/media/").split('/').collect();
    assert_eq!(parts[..2], ["audio", "temporary"], "{path}");
    assert!(parts[2].len() == 8 && parts[2].bytes().all(|b| b.is_ascii_digit()));
    assert!(parts[3].ends_with(".wav"));

    let res = app.get(&path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    let wav = res.bytes().await.unwrap();
    let measured = wav_duration_ms(&wav);
    assert!(measured.abs_diff(duration) <= 1, "{measured} vs {duration}");
}

#[tokio::test]
async fn pcm_asked_of_the_local_provider_is_raw_samples() {
    let (app, token) = app_and_token(local).await;
    let body = tts_ok(&app, &token, &json!({"text": "hello", "format": "pcm"})).await;
    assert_eq!(body["format"], "pcm");
    let res = app
        .get(&media_path(body["audio_url"].as_str().unwrap()))
        .await;
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let pcm = res.bytes().await.unwrap();
    assert_ne!(&pcm[..4], b"RIFF");
    assert_eq!(pcm.len() % 2, 0);
}

#[tokio::test]
async fn identical_text_and_voice_are_served_from_the_tts_cache() {
    let (app, token) = app_and_token(local).await;
    let req = json!({"text": "cache me", "voice": "en"});
    let first = tts_ok(&app, &token, &req).await;
    let second = tts_ok(&app, &token, &req).await;
    assert_eq!(first, second);
    let other_voice = tts_ok(&app, &token, &json!({"text": "cache me", "voice": "en-us"})).await;
    assert_ne!(first["audio_url"], other_voice["audio_url"]);

    // Two syntheses stored, not three.
    let mut files = 0;
    let mut dirs = vec![app.config.data_dir.join("media")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                files += 1;
            }
        }
    }
    assert_eq!(files, 2);
}

#[tokio::test]
async fn the_embedded_default_falls_back_to_espeak_without_huoshan_credentials() {
    let (app, token) = app_and_token(|_| {}).await;
    let body = tts_ok(&app, &token, &json!({"text": "offline"})).await;
    assert_eq!(body["format"], "wav");
}

#[tokio::test]
async fn tts_answers_503_provider_not_configured_when_nothing_can_speak() {
    let (app, token) = app_and_token(|c| {
        c.audio.provider = "tencent".into();
        c.audio.local_fallback = false;
    })
    .await;
    let res = tts(&app, &token, &json!({"text": "hi"})).await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(body["details"]["provider"], "tencent");

    let (app, token) =
        app_and_token(|c| c.audio.espeak_path = "/nonexistent/espeak-ng".into()).await;
    let res = tts(&app, &token, &json!({"text": "hi"})).await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(body["details"]["provider"], "huoshan");
}

#[tokio::test]
async fn tts_rejects_bad_input_with_4xx_before_synthesizing() {
    let (app, token) = app_and_token(|c| {
        local(c);
        c.audio.tts_max_chars = 10;
    })
    .await;
    for (body, field) in [
        (json!({"text": "   "}), "text"),
        (json!({"text": "字".repeat(11)}), "text"),
        (json!({"text": "a\u{0}b"}), "text"),
        (json!({"text": "hi", "voice": "--help"}), "voice"),
        (json!({"text": "hi", "voice": "en; rm -rf /"}), "voice"),
        (json!({"text": "hi", "format": "ogg"}), "format"),
    ] {
        let res = tts(&app, &token, &body).await;
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
    // Exactly at the limit is fine.
    tts_ok(&app, &token, &json!({"text": "字".repeat(10)})).await;

    let res = tts(&app, &token, &json!({"voice": "en"})).await;
    assert_error(res, 400, "invalid_body").await;
    let res = app
        .client
        .post(app.url("/api/ai/tts/"))
        .bearer_auth(&token)
        .body("text=hi")
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "unsupported_media_type").await;
    let res = app.post_json("/api/ai/tts/", &json!({"text": "hi"})).await;
    assert_error(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn the_audio_base_dir_setting_prefixes_object_keys() {
    let (app, token) = app_and_token(|c| {
        local(c);
        c.aliyun.oss.audio_base_dir = Some("/kids/voice/".into());
    })
    .await;
    let body = tts_ok(&app, &token, &json!({"text": "prefix"})).await;
    let path = media_path(body["audio_url"].as_str().unwrap());
    assert!(path.starts_with("/media/kids/voice/temporary/"), "{path}");
    assert_eq!(app.get(&path).await.status(), 200);
}

#[tokio::test]
async fn media_answers_404_for_unknown_keys_and_traversal_attempts() {
    let (app, _token) = app_and_token(local).await;
    // The database file sits one level above the media root.
    assert!(
        app.config.data_dir.join("lty.db").exists()
            || crate::helpers::test_database_url().is_some()
    );
    for path in [
        "/media/audio/temporary/20260101/none.wav",
        "/media/..%2Flty.db",
        "/media/audio/..%2F..%2Flty.db",
        "/media/%2E%2E/lty.db",
        "/media/a%5C..%5Clty.db",
        "/media/%2Fetc%2Fpasswd",
    ] {
        let res = app.get(path).await;
        assert_error(res, 404, "not_found").await;
    }
}

// ---- Tencent Cloud (TC3-signed TextToVoice / SentenceRecognition) ----

use crate::fakes::tencent::FakeTencent;

async fn tencent_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeTencent) {
    let fake = FakeTencent::start().await;
    let (app, token) = app_and_token(|c| {
        fake.configure(c);
        tweak(c);
    })
    .await;
    (app, token, fake)
}

#[tokio::test]
async fn tencent_tts_is_signed_with_tc3_and_returns_one_wav_file() {
    let (app, token, fake) = tencent_app(|_| {}).await;
    let body = tts_ok(
        &app,
        &token,
        &json!({"text": "你好，小朋友", "format": "wav"}),
    )
    .await;
    assert_eq!(body["format"], "wav");
    assert_eq!(body["duration_ms"], 600);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].action, "TextToVoice");
    assert_eq!(calls[0].body["Text"], "你好，小朋友");
    assert_eq!(calls[0].body["Codec"], "pcm");
    let res = app
        .get(&media_path(body["audio_url"].as_str().unwrap()))
        .await;
    assert_eq!(wav_duration_ms(&res.bytes().await.unwrap()), 600);
}

#[tokio::test]
async fn tencent_tts_splits_long_text_at_sentence_boundaries_and_joins_the_audio() {
    let (app, token, fake) = tencent_app(|_| {}).await;
    let sentence = format!("{}。", "好".repeat(59));
    let text = sentence.repeat(4);
    let body = tts_ok(&app, &token, &json!({"text": text, "format": "mp3"})).await;
    assert_eq!(body["format"], "mp3");
    assert_eq!(body["duration_ms"], 100 * 240);
    let texts: Vec<String> = fake
        .calls()
        .iter()
        .map(|c| c.body["Text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    for t in &texts {
        assert!(t.chars().count() <= 150 && t.ends_with('。'), "{t}");
    }
    assert_eq!(texts.concat(), text);
}

#[tokio::test]
async fn a_wrong_tencent_secret_is_refused_by_the_vendor_and_answers_502() {
    let (app, token, fake) = tencent_app(|c| {
        c.audio.tencent.api_secret = Some(lty_server::config::Secret::new("wrong"));
    })
    .await;
    let res = tts(&app, &token, &json!({"text": "hi"})).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "tencent");
    assert_eq!(fake.errors(), ["AuthFailure.SignatureFailure"]);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn tencent_internal_errors_are_retried_and_business_errors_are_not() {
    let (app, token, fake) = tencent_app(|_| {}).await;
    fake.script_error("InternalError");
    tts_ok(&app, &token, &json!({"text": "retry"})).await;
    assert_eq!(fake.errors(), ["InternalError"]);

    fake.script_error("FailedOperation.ServiceIsolate");
    let res = tts(&app, &token, &json!({"text": "arrears"})).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.calls().len(), 1);
}

// ---- /api/ai/asr/ ----

/// One second of a 16 kHz tone as 16-bit PCM.
fn pcm_second() -> Vec<u8> {
    (0..16_000)
        .flat_map(|i: i32| (((i % 40) - 20) as i16 * 500).to_le_bytes())
        .collect()
}

fn wav(pcm: &[u8], rate: u32, channels: u16) -> Vec<u8> {
    lty_core::speech::wav_from_pcm16(pcm, rate, channels).to_vec()
}

#[tokio::test]
async fn asr_recognizes_wav_raw_pcm_and_multipart_uploads_through_tencent() {
    let (app, token, fake) = tencent_app(|_| {}).await;
    let res = asr(&app, &token, "audio/wav", wav(&pcm_second(), 16_000, 1)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["text"], "你好，小朋友");

    let res = asr(&app, &token, "audio/L16; rate=16000", pcm_second()).await;
    assert_eq!(res.status(), 200);

    let res = asr_form(
        &app,
        &token,
        "a.wav",
        "audio/wav",
        wav(&pcm_second(), 16_000, 1),
    )
    .await;
    assert_eq!(res.status(), 200);

    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    for call in calls {
        assert_eq!(call.action, "SentenceRecognition");
        assert_eq!(call.body["VoiceFormat"], "pcm");
        // The samples only, never the WAV header.
        assert_eq!(call.body["DataLen"], 32_000);
    }
}

#[tokio::test]
async fn asr_rejects_other_formats_empty_and_oversized_uploads() {
    let (app, token, fake) = tencent_app(|c| {
        c.audio.asr_max_bytes = 64 * 1024;
        c.audio.asr_max_seconds = 1;
    })
    .await;
    for (ct, body) in [
        (
            "audio/mpeg",
            b"ID3\x03\x00\x00\x00\x00\x00\x00rest".to_vec(),
        ),
        ("audio/ogg", b"OggS\x00\x02rest".to_vec()),
        ("application/octet-stream", pcm_second()),
    ] {
        let res = asr(&app, &token, ct, body).await;
        assert_error(res, 415, "unsupported_audio_format").await;
    }
    let res = asr(&app, &token, "audio/wav", Vec::new()).await;
    assert_error(res, 400, "validation_error").await;
    let res = asr(&app, &token, "audio/pcm", vec![0; 3]).await;
    assert_error(res, 400, "validation_error").await;
    let two_seconds = [pcm_second(), pcm_second()].concat();
    let res = asr(&app, &token, "audio/pcm", two_seconds).await;
    assert_error(res, 400, "validation_error").await;
    let res = asr(&app, &token, "audio/pcm", vec![0; 65 * 1024]).await;
    assert_error(res, 413, "payload_too_large").await;
    let res = app
        .client
        .post(app.url("/api/ai/asr/"))
        .body(pcm_second())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn asr_answers_503_when_the_provider_has_no_recognizer() {
    let (app, token) = app_and_token(local).await;
    let res = asr(&app, &token, "audio/wav", wav(&pcm_second(), 16_000, 1)).await;
    let body = assert_error(res, 503, "provider_not_configured").await;
    assert_eq!(body["details"]["provider"], "local");
}
