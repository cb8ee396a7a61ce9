//! Speech with `AUDIO_SERVICE_PROVIDER=huoshan` against the fake huoshan
//! service: HTTP TTS (`Bearer;` auth, documented body, long text split,
//! vendor codes) and streaming ASR over WebSocket (handshake headers,
//! numbered gzip packets, final result, error frames, silent and dropped
//! connections).

use lty_server::config::{Config, Secret};
use serde_json::{Value, json};

use crate::fakes::huoshan::{self, AsrScript, FakeHuoshan};
use crate::helpers::{TestApp, asr, assert_error, fetch_audio, spawn_app_with, tts, tts_ok};

const MAC: &str = "02:00:00:00:0b:01";

async fn huoshan_app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeHuoshan) {
    let fake = FakeHuoshan::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        c.audio.local_fallback = false;
        tweak(c);
    })
    .await;
    app.user_with_device("huoshan_user", MAC).await;
    let token = app.mac_login(MAC).await;
    (app, token, fake)
}

#[tokio::test]
async fn huoshan_tts_sends_the_documented_request_and_stores_the_mp3() {
    let (app, token, fake) = huoshan_app(|_| {}).await;
    let body = tts_ok(&app, &token, &json!({"text": "你好，小朋友"})).await;
    assert_eq!(body["format"], "mp3");
    assert_eq!(body["duration_ms"], 600);
    let (ct, audio) = fetch_audio(&app, &body).await;
    assert_eq!(ct, "audio/mpeg");
    assert_eq!(audio, huoshan::fake_mp3("你好，小朋友"));

    let calls = fake.tts_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.authorization, format!("Bearer;{}", huoshan::TOKEN));
    let b = &call.body;
    assert_eq!(b["app"]["appid"], huoshan::APPID);
    assert_eq!(b["app"]["token"], huoshan::TOKEN);
    assert_eq!(b["app"]["cluster"], "volcano_tts");
    assert_eq!(b["audio"]["voice_type"], huoshan::VOICE);
    assert_eq!(b["audio"]["encoding"], "mp3");
    assert_eq!(b["request"]["text"], "你好，小朋友");
    assert_eq!(b["request"]["operation"], "query");
    assert_eq!(b["request"]["text_type"], "plain");

    // A voice named by the caller replaces the default.
    tts_ok(
        &app,
        &token,
        &json!({"text": "再见", "voice": huoshan::OTHER_VOICE}),
    )
    .await;
    assert_eq!(
        fake.tts_calls()[1].body["audio"]["voice_type"],
        huoshan::OTHER_VOICE
    );
}

#[tokio::test]
async fn huoshan_tts_splits_long_text_and_joins_pcm_under_one_wav_header() {
    let (app, token, fake) = huoshan_app(|c| c.audio.tts_max_chars = 1000).await;
    let sentence = format!("{}。", "好".repeat(199));
    let text = sentence.repeat(4);
    let body = tts_ok(&app, &token, &json!({"text": text, "format": "wav"})).await;
    assert_eq!(body["format"], "wav");
    assert_eq!(body["duration_ms"], 100 * 800);

    let calls = fake.tts_calls();
    assert_eq!(calls.len(), 4, "one request per ≤ 300-character piece");
    let mut reqids = std::collections::HashSet::new();
    for call in &calls {
        let piece = call.body["request"]["text"].as_str().unwrap();
        assert!(piece.chars().count() <= 300 && piece.len() <= 1024);
        assert!(piece.ends_with('。'), "{piece}");
        assert_eq!(call.body["audio"]["encoding"], "pcm");
        assert!(reqids.insert(call.body["request"]["reqid"].as_str().unwrap().to_owned()));
    }
    let joined: String = calls
        .iter()
        .map(|c| c.body["request"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined, text);

    let (ct, wav) = fetch_audio(&app, &body).await;
    assert_eq!(ct, "audio/wav");
    let info = lty_core::speech::parse_wav(&wav).unwrap();
    assert_eq!(info.sample_rate, 24_000);
    assert_eq!(info.data, 44..wav.len(), "one header for all pieces");
    assert_eq!(info.duration_ms(), 100 * 800);
}

#[tokio::test]
async fn huoshan_tts_vendor_codes_become_400_502_or_a_retry() {
    let (app, token, fake) = huoshan_app(|_| {}).await;

    // 3011: the caller's text cannot be spoken.
    fake.script_tts(200, 3011);
    let res = tts(&app, &token, &json!({"text": "？？？"})).await;
    let err = assert_error(res, 400, "validation_error").await;
    assert_eq!(err["details"]["field"], "text");

    // Busy: retried with a fresh reqid, then served.
    fake.script_tts(200, 3005);
    tts_ok(&app, &token, &json!({"text": "busy then fine"})).await;
    let calls = fake.tts_calls();
    let (a, b) = (&calls[1], &calls[2]);
    assert_eq!((a.code, b.code), (3005, 3000));
    assert_ne!(a.body["request"]["reqid"], b.body["request"]["reqid"]);

    // A timeout is retried once only.
    fake.script_tts(200, 3030);
    fake.script_tts(503, 3030);
    let res = tts(&app, &token, &json!({"text": "slow"})).await;
    let err = assert_error(res, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "huoshan");
    assert_eq!(fake.tts_calls().len(), 5);

    // An unknown voice in a 4xx answer: no retry.
    fake.script_tts(400, 3050);
    let res = tts(&app, &token, &json!({"text": "who"})).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.tts_calls().len(), 6);
    // Not cached: a failure is not remembered as audio.
    tts_ok(&app, &token, &json!({"text": "who"})).await;
    assert_eq!(fake.tts_errors(), [3011, 3005, 3030, 3030, 3050]);
}

#[tokio::test]
async fn a_wrong_huoshan_token_is_refused_with_401_3001_and_answers_502() {
    let (app, token, fake) = huoshan_app(|c| {
        c.audio.huoshan.access_token = Some(Secret::new("not-the-token"));
    })
    .await;
    let res = tts(&app, &token, &json!({"text": "hi"})).await;
    let err = assert_error(res, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "huoshan");
    assert_eq!(fake.tts_errors(), [3001], "refused once, not retried");
    assert!(fake.tts_calls().is_empty());

    let res = asr(&app, &token, "audio/wav", wav(&pcm_ms(1000))).await;
    assert_error(res, 502, "upstream_error").await;
    assert_eq!(fake.handshake_refusals(), [401]);
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn huoshan_without_credentials_answers_503_provider_not_configured() {
    for unset in [0, 1, 2] {
        let (app, token, fake) = huoshan_app(|c| match unset {
            0 => c.audio.huoshan.appid = None,
            1 => c.audio.huoshan.access_token = None,
            _ => c.audio.huoshan.access_token = Some(Secret::new("")),
        })
        .await;
        let res = tts(&app, &token, &json!({"text": "hi"})).await;
        let err = assert_error(res, 503, "provider_not_configured").await;
        assert_eq!(err["details"]["provider"], "huoshan");
        let res = asr(&app, &token, "audio/wav", wav(&pcm_ms(500))).await;
        let err = assert_error(res, 503, "provider_not_configured").await;
        assert_eq!(err["details"]["provider"], "huoshan");
        assert!(fake.tts_calls().is_empty() && fake.sessions().is_empty());
    }
}

#[tokio::test]
async fn without_a_default_voice_only_requests_naming_one_are_spoken() {
    let (app, token, fake) = huoshan_app(|c| c.audio.huoshan.voice_type = None).await;
    let res = tts(&app, &token, &json!({"text": "hi"})).await;
    assert_error(res, 503, "provider_not_configured").await;
    tts_ok(
        &app,
        &token,
        &json!({"text": "hi", "voice": huoshan::OTHER_VOICE}),
    )
    .await;
    assert_eq!(fake.tts_calls().len(), 1);
}

// ---- streaming ASR ----

/// `ms` milliseconds of a 16 kHz 16-bit tone.
fn pcm_ms(ms: usize) -> Vec<u8> {
    crate::fakes::tone(ms, 16_000)
}

fn wav(pcm: &[u8]) -> Vec<u8> {
    lty_core::speech::wav_from_pcm16(pcm, 16_000, 1).to_vec()
}

async fn asr_text(app: &TestApp, token: &str, body: Vec<u8>) -> String {
    let res = asr(app, token, "audio/wav", body).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn huoshan_asr_streams_numbered_gzip_packets_and_returns_the_final_text() {
    let (app, token, fake) = huoshan_app(|_| {}).await;
    // 1.3 s: six full 200 ms packets and a short last one.
    let pcm = pcm_ms(1300);
    assert_eq!(asr_text(&app, &token, wav(&pcm)).await, "你好，小朋友。");

    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.app_key, huoshan::APPID);
    assert_eq!(s.access_key, huoshan::TOKEN);
    assert_eq!(s.resource_id, huoshan::RESOURCE_ID);
    assert_eq!(s.connect_id.len(), 36);
    assert!(s.completed && s.all_gzip);
    let request = s.request.as_ref().unwrap();
    assert_eq!(request["audio"]["format"], "pcm");
    assert_eq!(request["audio"]["rate"], 16_000);
    assert_eq!(request["request"]["model_name"], "bigmodel");
    assert_eq!(s.sequences, [1, 2, 3, 4, 5, 6, 7, -8]);
    assert_eq!(s.headers[0], [0x11, 0x11, 0x11, 0x00]);
    assert!(
        s.headers[1..7]
            .iter()
            .all(|h| *h == [0x11, 0x21, 0x01, 0x00])
    );
    assert_eq!(s.headers[7], [0x11, 0x23, 0x01, 0x00]);
    assert_eq!(s.chunk_sizes, [6400, 6400, 6400, 6400, 6400, 6400, 3200]);
    // The samples only, never the WAV header.
    assert_eq!(s.audio_bytes(), pcm.len());

    // Raw PCM uploads take the same path.
    let res = asr(&app, &token, "audio/L16; rate=16000", pcm_ms(400)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.sessions()[1].sequences, [1, 2, -3]);
}

#[tokio::test]
async fn huoshan_asr_error_frames_end_the_session_with_400_or_502() {
    let (app, token, fake) = huoshan_app(|_| {}).await;
    let audio = || wav(&pcm_ms(1000));

    for code in [45_000_001, 45_000_151, 55_000_001] {
        fake.script_asr(AsrScript::Error { code, after: 2 });
        let res = asr(&app, &token, "audio/wav", audio()).await;
        let err = assert_error(res, 502, "upstream_error").await;
        assert_eq!(err["details"]["provider"], "huoshan");
    }
    assert_eq!(fake.sessions().len(), 3, "no retries");

    // No speech: the caller's audio.
    fake.script_asr(AsrScript::Error {
        code: 45_000_002,
        after: 5,
    });
    let res = asr(&app, &token, "audio/wav", audio()).await;
    let err = assert_error(res, 400, "validation_error").await;
    assert_eq!(err["details"]["field"], "audio");
    assert_eq!(fake.sessions().len(), 4);
}

#[tokio::test]
async fn huoshan_asr_retries_busy_and_packet_timeouts_a_bounded_number_of_times() {
    let (app, token, fake) = huoshan_app(|_| {}).await;
    let audio = || wav(&pcm_ms(600));

    // Busy right after the parameters, then a normal session.
    fake.script_asr(AsrScript::Error {
        code: 55_000_031,
        after: 0,
    });
    assert_eq!(asr_text(&app, &token, audio()).await, "你好，小朋友。");
    assert_eq!(fake.sessions().len(), 2);

    // 45000081 twice: reconnected once, then given up.
    for _ in 0..2 {
        fake.script_asr(AsrScript::Error {
            code: 45_000_081,
            after: 1,
        });
    }
    let res = asr(&app, &token, "audio/wav", audio()).await;
    assert_error(res, 502, "upstream_error").await;
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 4);
    assert!(sessions.iter().all(|s| s.violations.is_empty()));
}

#[tokio::test]
async fn a_dropped_huoshan_connection_is_a_502_not_a_hang() {
    let (app, token, fake) = huoshan_app(|_| {}).await;
    fake.script_asr(AsrScript::Drop { after: 2 });
    let res = asr(&app, &token, "audio/wav", wav(&pcm_ms(2000))).await;
    let err = assert_error(res, 502, "upstream_error").await;
    assert_eq!(err["details"]["provider"], "huoshan");
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(!sessions[0].completed);
}

#[tokio::test]
async fn a_silent_huoshan_server_times_out_with_502() {
    let (app, token, fake) = huoshan_app(|c| c.audio.timeout_secs = 1).await;
    fake.script_asr(AsrScript::Silent);
    let res = asr(&app, &token, "audio/wav", wav(&pcm_ms(400))).await;
    assert_error(res, 502, "upstream_error").await;
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].completed, "all audio was sent before giving up");
}
