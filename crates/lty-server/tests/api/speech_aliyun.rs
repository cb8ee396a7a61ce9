//! Aliyun NLS speech through `/api/ai/tts/` and `/api/ai/asr/` with
//! `AUDIO_SERVICE_PROVIDER=aliyun`, against `fakes/aliyun_nls.rs`: the
//! `CreateToken` cache (one call for many concurrent requests, refresh
//! before expiry, refresh once after a refused token), long text split into
//! several gateway calls and joined, JSON errors never taken for audio,
//! wrong secrets and missing credentials.

use std::time::Duration;

use lty_server::config::{Config, Secret};
use serde_json::{Value, json};

use crate::fakes::aliyun_nls::{
    self, FakeAliyunNls, MP3_FRAME_BYTES, MP3_FRAMES_PER_CHAR, PCM_MS_PER_CHAR, TRANSCRIPT,
};
use crate::helpers::{self, TestApp, assert_error, fetch_audio, spawn_app_with, tts, tts_ok};

const MAC: &str = "02:00:00:00:0b:01";

async fn aliyun_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeAliyunNls) {
    let fake = FakeAliyunNls::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.audio.local_fallback = false;
        tweak(c);
    })
    .await;
    app.user_with_device("aliyun_speech_user", MAC).await;
    let token = app.mac_login(MAC).await;
    (app, token, fake)
}

fn pcm_second() -> Vec<u8> {
    (0..16_000)
        .flat_map(|i: i32| (((i % 40) - 20) as i16 * 500).to_le_bytes())
        .collect()
}

async fn asr(app: &TestApp, token: &str, body: Vec<u8>) -> reqwest::Response {
    let wav = lty_core::speech::wav_from_pcm16(&body, 16_000, 1).to_vec();
    helpers::asr(app, token, "audio/wav", wav).await
}

#[tokio::test]
async fn aliyun_tts_gets_one_token_and_returns_one_wav_file() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    let body = tts_ok(
        &app,
        &token,
        &json!({"text": "你好，小朋友", "format": "wav"}),
    )
    .await;
    assert_eq!(body["format"], "wav");
    assert_eq!(body["duration_ms"], 6 * PCM_MS_PER_CHAR);

    let calls = fake.tts_calls();
    assert_eq!(calls.len(), 1);
    let p = &calls[0].params;
    assert_eq!(calls[0].method, "POST");
    assert_eq!(p["appkey"], aliyun_nls::APPKEY);
    assert_eq!(p["text"], "你好，小朋友");
    // WAV is asked as PCM and wrapped in one header by lty.
    assert_eq!(p["format"], "pcm");
    assert_eq!(p["sample_rate"], "16000");
    assert_eq!(p["voice"], "xiaoyun");
    assert!(!p.contains_key("token"), "the token travels in X-NLS-Token");
    assert_eq!(fake.issued(), [calls[0].token.clone()]);

    let (content_type, wav) = fetch_audio(&app, &body).await;
    assert_eq!(content_type, "audio/wav");
    let info = lty_core::speech::parse_wav(&wav).unwrap();
    assert_eq!((info.sample_rate, info.channels), (16_000, 1));
    assert_eq!(info.data.len(), wav.len() - 44, "exactly one header");
    assert_eq!(info.duration_ms(), 6 * PCM_MS_PER_CHAR);

    // The token is reused by the next synthesis and by recognition.
    let body = tts_ok(&app, &token, &json!({"text": "再见", "voice": "aixia"})).await;
    assert_eq!(body["format"], "mp3");
    let res = asr(&app, &token, pcm_second()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.issued().len(), 1);
    let calls = fake.tts_calls();
    assert_eq!(calls[1].params["voice"], "aixia");
    assert_eq!(calls[1].params["format"], "mp3");
    assert_eq!(calls[1].token, calls[0].token);
}

#[tokio::test]
async fn concurrent_requests_share_a_single_create_token_call() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    // A slow CreateToken keeps every request waiting on the same refresh.
    fake.set_token_delay(Duration::from_millis(300));
    let requests = (0..8).map(|i| {
        let (app, token) = (&app, &token);
        async move { tts(app, token, &json!({"text": format!("第{i}句话。")})).await }
    });
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), 200);
    }
    let issued = fake.issued();
    assert_eq!(issued.len(), 1, "one CreateToken for 8 concurrent requests");
    let calls = fake.tts_calls();
    assert_eq!(calls.len(), 8);
    assert!(calls.iter().all(|c| c.token == issued[0]));
}

#[tokio::test]
async fn a_token_near_expiry_is_replaced_before_it_runs_out() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    // Five minutes left is inside the ten-minute refresh margin.
    fake.set_token_lifetime(300);
    tts_ok(&app, &token, &json!({"text": "一"})).await;
    fake.set_token_lifetime(86_400);
    tts_ok(&app, &token, &json!({"text": "二"})).await;
    tts_ok(&app, &token, &json!({"text": "三"})).await;
    let issued = fake.issued();
    assert_eq!(issued.len(), 2);
    let used: Vec<String> = fake.tts_calls().into_iter().map(|c| c.token).collect();
    assert_eq!(used, [issued[0].as_str(), &issued[1], &issued[1]]);
}

#[tokio::test]
async fn a_failed_refresh_keeps_using_the_still_valid_token() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    fake.set_token_lifetime(300);
    tts_ok(&app, &token, &json!({"text": "一"})).await;
    fake.script_token_error(400, "Throttling.User");
    tts_ok(&app, &token, &json!({"text": "二"})).await;
    // Within the pause after a failed refresh, no new CreateToken is tried.
    tts_ok(&app, &token, &json!({"text": "三"})).await;
    assert_eq!(fake.token_rejections(), ["Throttling.User"]);
    let issued = fake.issued();
    assert_eq!(issued.len(), 1);
    assert!(fake.tts_calls().iter().all(|c| c.token == issued[0]));
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_call_retried() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    tts_ok(&app, &token, &json!({"text": "一"})).await;
    fake.revoke_tokens();
    tts_ok(&app, &token, &json!({"text": "二"})).await;
    assert_eq!(fake.gateway_errors(), [40_000_001]);
    let issued = fake.issued();
    assert_eq!(issued.len(), 2);
    assert_eq!(fake.tts_calls()[1].token, issued[1]);

    // Recognition recovers the same way.
    fake.revoke_tokens();
    let res = asr(&app, &token, pcm_second()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.issued().len(), 3);

    // A gateway that refuses every token costs one refresh, then 502.
    fake.refuse_all_tokens();
    let res = tts(&app, &token, &json!({"text": "三"})).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "aliyun");
    assert_eq!(fake.issued().len(), 4);
    assert_eq!(
        fake.gateway_errors(),
        [40_000_001, 40_000_001, 40_000_001, 40_000_001]
    );
}

#[tokio::test]
async fn long_text_is_split_under_the_limit_and_the_mp3_joined() {
    let (app, token, fake) = aliyun_app(|c| c.audio.tts_max_chars = 1000).await;
    let sentence = format!("{}。", "好".repeat(119));
    let text = sentence.repeat(5);
    let body = tts_ok(&app, &token, &json!({"text": text, "format": "mp3"})).await;
    assert_eq!(body["format"], "mp3");
    // 36 ms per MPEG-2 Layer III frame at 16 kHz.
    assert_eq!(body["duration_ms"], 600 * MP3_FRAMES_PER_CHAR as u64 * 36);

    let calls = fake.tts_calls();
    let texts: Vec<&str> = calls.iter().map(|c| c.params["text"].as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    for (call, t) in calls.iter().zip(&texts) {
        assert!(!call.truncated);
        assert!(t.chars().count() <= 300 && t.ends_with('。'), "{t}");
        assert_eq!(call.params["format"], "mp3");
    }
    assert_eq!(texts.concat(), text);
    assert_eq!(fake.issued().len(), 1);

    let (content_type, mp3) = fetch_audio(&app, &body).await;
    assert_eq!(content_type, "audio/mpeg");
    assert_eq!(mp3.len(), 600 * MP3_FRAMES_PER_CHAR * MP3_FRAME_BYTES);
    assert!(
        mp3.chunks(MP3_FRAME_BYTES)
            .all(|f| f[..4] == [0xff, 0xf3, 0x48, 0xc0]),
        "frames joined end to end"
    );
}

#[tokio::test]
async fn long_text_as_wav_is_one_header_over_every_piece() {
    let (app, token, fake) = aliyun_app(|c| c.audio.tts_max_chars = 1000).await;
    let text = format!("{}！", "字".repeat(199)).repeat(2);
    let body = tts_ok(&app, &token, &json!({"text": text, "format": "wav"})).await;
    assert_eq!(fake.tts_calls().len(), 2);
    assert_eq!(body["duration_ms"], 400 * PCM_MS_PER_CHAR);
    let (_, wav) = fetch_audio(&app, &body).await;
    let info = lty_core::speech::parse_wav(&wav).unwrap();
    assert_eq!(info.data.len(), wav.len() - 44);
    assert_eq!(info.duration_ms(), 400 * PCM_MS_PER_CHAR);
}

#[tokio::test]
async fn json_errors_are_never_stored_as_audio_whatever_the_http_status() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    // HTTP 200 with a JSON body is an error (Content-Type decides).
    fake.script_gateway_error(200, 40_000_003);
    let res = tts(&app, &token, &json!({"text": "坏参数"})).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "aliyun");
    // So is a 4xx; neither is retried.
    fake.script_gateway_error(403, 40_000_010);
    let res = tts(&app, &token, &json!({"text": "试用期"})).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.gateway_errors(), [40_000_003, 40_000_010]);
    assert!(fake.tts_calls().is_empty());

    // The same texts synthesize once the gateway recovers: nothing was cached.
    let ok = tts_ok(&app, &token, &json!({"text": "坏参数"})).await;
    assert_eq!(ok["duration_ms"], 3 * 108);
    assert_eq!(fake.tts_calls().len(), 1);
}

#[tokio::test]
async fn server_errors_and_flow_control_are_retried() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    fake.script_gateway_error(500, 50_000_000);
    fake.script_gateway_error(429, 40_000_005);
    tts_ok(&app, &token, &json!({"text": "重试"})).await;
    assert_eq!(fake.gateway_errors(), [50_000_000, 40_000_005]);
    assert_eq!(fake.tts_calls().len(), 1);

    fake.script_gateway_error(200, 50_000_000);
    let res = asr(&app, &token, pcm_second()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.asr_calls().len(), 1);
}

#[tokio::test]
async fn a_foreign_appkey_is_a_502_without_retries() {
    let (app, token, fake) = aliyun_app(|c| c.aliyun.nls.app_id = Some("otherAppkey".into())).await;
    let res = tts(&app, &token, &json!({"text": "你好"})).await;
    assert_error(res, 502, "upstream_error").await;
    let res = asr(&app, &token, pcm_second()).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.gateway_errors(), [40_020_105, 40_020_105]);
    assert_eq!(fake.issued().len(), 1);
}

#[tokio::test]
async fn a_wrong_aliyun_secret_is_refused_at_create_token_and_answers_502() {
    let (app, token, fake) = aliyun_app(|c| {
        c.aliyun.nls.access_key_secret = Some(Secret::new("wrong"));
    })
    .await;
    let res = tts(&app, &token, &json!({"text": "你好"})).await;
    let body = assert_error(res, 502, "upstream_error").await;
    assert_eq!(body["details"]["provider"], "aliyun");
    let res = asr(&app, &token, pcm_second()).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(
        fake.token_rejections(),
        ["SignatureDoesNotMatch", "SignatureDoesNotMatch"]
    );
    assert!(fake.issued().is_empty());
    assert!(fake.tts_calls().is_empty() && fake.gateway_errors().is_empty());

    let (app, token, fake) = aliyun_app(|c| {
        c.aliyun.nls.access_key_id = Some("LTAIunknown".into());
    })
    .await;
    let res = tts(&app, &token, &json!({"text": "你好"})).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.token_rejections(), ["InvalidAccessKeyId.NotFound"]);
}

#[tokio::test]
async fn aliyun_asr_posts_raw_pcm_with_the_token_and_appkey() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    let res = asr(&app, &token, pcm_second()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["text"], TRANSCRIPT);

    let calls = fake.asr_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.token, fake.issued()[0]);
    assert_eq!(call.query["appkey"], aliyun_nls::APPKEY);
    assert_eq!(call.query["format"], "pcm");
    assert_eq!(call.query["sample_rate"], "16000");
    assert_eq!(call.content_type, "application/octet-stream");
    // The samples only, never the WAV header.
    assert_eq!(call.bytes, 32_000);
}

#[tokio::test]
async fn aliyun_rejects_voices_it_cannot_name_with_400() {
    let (app, token, fake) = aliyun_app(|_| {}).await;
    let res = tts(&app, &token, &json!({"text": "你好", "voice": "en-us"})).await;
    let body = assert_error(res, 400, "validation_error").await;
    assert_eq!(body["details"]["field"], "voice");
    assert!(fake.issued().is_empty());
}

#[tokio::test]
async fn missing_aliyun_credentials_answer_503_provider_not_configured() {
    type Tweak = fn(&mut Config);
    let tweaks: [Tweak; 3] = [
        |c| c.aliyun.nls.access_key_secret = None,
        |c| c.aliyun.nls.access_key_id = None,
        |c| c.aliyun.nls.app_id = None,
    ];
    for tweak in tweaks {
        let (app, token, fake) = aliyun_app(tweak).await;
        let res = tts(&app, &token, &json!({"text": "你好"})).await;
        let body = assert_error(res, 503, "provider_not_configured").await;
        assert_eq!(body["details"]["provider"], "aliyun");
        let res = asr(&app, &token, pcm_second()).await;
        let body = assert_error(res, 503, "provider_not_configured").await;
        assert_eq!(body["details"]["provider"], "aliyun");
        assert!(fake.issued().is_empty() && fake.token_rejections().is_empty());
    }
}
