//! Streaming recognition (`Speech::streaming_asr`, the port the xiaozhi
//! voice channel uses) against each provider's fake: huoshan
//! `bigmodel_async`, the Aliyun NLS `SpeechRecognizer` WebSocket and
//! Tencent real-time ASR. A synthesized utterance is pushed in 60 ms
//! frames, as the device's decoded Opus arrives; the fake must receive
//! every sample in order and its transcript must come back. Then errors
//! mid-stream, a dropped session, refused credentials, a stalled provider,
//! the buffering fallback and the metrics.

use std::sync::Arc;

use lty_core::Error;
use lty_core::speech::{StreamingAsr, Transcript};
use lty_server::config::{Config, Secret};

use crate::fakes::Ended;
use crate::fakes::aliyun_nls::{self, FakeAliyunNls, RecognizerScript};
use crate::fakes::huoshan::{self, AsrScript, FakeHuoshan};
use crate::fakes::tencent::{self, FakeTencent, RealtimeScript};
use crate::helpers::{TestApp, spawn_app_with, wait_until};

/// Samples per push: one 60 ms xiaozhi frame at 16 kHz.
const FRAME: usize = 960;

/// `ms` of a rising chirp, so every stretch of samples differs and any
/// reordering or loss shows.
fn utterance(ms: usize) -> Vec<i16> {
    (0..ms * 16)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let phase = std::f64::consts::TAU * (200.0 * t + 300.0 * t * t);
            (phase.sin() * 9000.0) as i16
        })
        .collect()
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn streaming(app: &TestApp) -> Arc<dyn StreamingAsr> {
    app.state.speech.streaming_asr().unwrap().clone()
}

/// Opens a session, pushes `pcm` in 60 ms frames and finishes it: the
/// transcript, or the first error.
async fn recognize(asr: &Arc<dyn StreamingAsr>, pcm: &[i16]) -> Result<Transcript, Error> {
    let mut session = asr.open().await?;
    for frame in pcm.chunks(FRAME) {
        session.push(frame).await?;
    }
    session.finish().await
}

async fn app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(|c| {
        c.audio.local_fallback = false;
        configure(c);
    })
    .await
}

/// The details of a coded error.
fn details(err: &Error) -> serde_json::Value {
    match err {
        Error::Coded(c) => c.details.clone().unwrap_or_default(),
        other => panic!("not a coded error: {other:?}"),
    }
}

fn assert_upstream(err: &Error, provider: &str) {
    assert!(
        matches!(err, Error::Upstream { provider: p, .. } if *p == provider),
        "{err:?}"
    );
}

// --- huoshan ----------------------------------------------------------------

#[tokio::test]
async fn huoshan_streaming_sends_every_sample_in_order_and_returns_the_final_text() {
    let fake = FakeHuoshan::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    fake.set_transcript("今天天气怎么样？");
    let pcm = utterance(1500);
    let text = recognize(&streaming(&app), &pcm).await.unwrap().text;
    assert_eq!(text, "今天天气怎么样？");

    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.path, "/api/v3/sauc/bigmodel_async");
    assert_eq!(
        (s.app_key.as_str(), s.access_key.as_str()),
        (huoshan::APPID, huoshan::TOKEN)
    );
    assert_eq!(s.request.as_ref().unwrap()["audio"]["rate"], 16_000);
    assert!(s.completed && s.all_gzip && s.answered);
    assert_eq!(s.audio, le_bytes(&pcm), "every sample, in order");
    // 1.5 s = 48 000 bytes: seven 200 ms packets and a 3200-byte last one.
    assert_eq!(
        s.chunk_sizes,
        [6400, 6400, 6400, 6400, 6400, 6400, 6400, 3200]
    );
    assert_eq!(s.sequences, [1, 2, 3, 4, 5, 6, 7, 8, -9]);
}

#[tokio::test]
async fn a_huoshan_error_frame_mid_stream_ends_the_session_with_the_mapped_error() {
    let fake = FakeHuoshan::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let asr = streaming(&app);

    fake.script_asr(AsrScript::Error {
        code: 55_000_031,
        after: 2,
    });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_eq!(err.code(), "upstream_rate_limited", "{err:?}");
    assert_eq!(details(&err)["provider"], "huoshan");
    assert_eq!(details(&err)["vendor_code"], "55000031");

    fake.script_asr(AsrScript::Error {
        code: 45_000_001,
        after: 3,
    });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_upstream(&err, "huoshan");

    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 2, "no retries");
    assert!(
        sessions
            .iter()
            .all(|s| !s.completed && s.violations.is_empty())
    );
}

#[tokio::test]
async fn dropping_a_huoshan_session_closes_the_provider_connection() {
    let fake = FakeHuoshan::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let mut session = streaming(&app).open().await.unwrap();
    let pcm = utterance(500);
    for frame in pcm.chunks(FRAME) {
        session.push(frame).await.unwrap();
    }
    drop(session);
    wait_until("the fake sees the connection end", async || {
        fake.sessions().first().is_some_and(|s| s.ended.is_some())
    })
    .await;
    let s = &fake.sessions()[0];
    assert_eq!(s.ended, Some(Ended::CloseFrame));
    assert!(!s.completed, "no last packet was sent");
    assert!(le_bytes(&pcm).starts_with(&s.audio));
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}

#[tokio::test]
async fn a_wrong_huoshan_token_is_refused_at_the_handshake_as_provider_unavailable() {
    let fake = FakeHuoshan::start().await;
    let app = app_with(|c| {
        fake.configure(c);
        c.audio.huoshan.access_token = Some(Secret::new("not-the-token"));
    })
    .await;
    let err = streaming(&app).open().await.err().unwrap();
    assert_eq!(err.code(), "provider_unavailable", "{err:?}");
    assert_eq!(details(&err)["provider"], "huoshan");
    assert_eq!(fake.handshake_refusals(), [401]);
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn a_huoshan_server_that_stalls_after_the_last_packet_fails_the_finish() {
    let fake = FakeHuoshan::start().await;
    let app = app_with(|c| {
        fake.configure(c);
        c.audio.timeout_secs = 1;
    })
    .await;
    fake.script_asr(AsrScript::Silent);
    let err = recognize(&streaming(&app), &utterance(400))
        .await
        .unwrap_err();
    assert_upstream(&err, "huoshan");
    assert!(fake.sessions()[0].completed, "all audio went out first");
}

// --- Aliyun NLS ---------------------------------------------------------------

#[tokio::test]
async fn aliyun_streaming_starts_a_task_sends_every_sample_in_order_and_stops_it() {
    let fake = FakeAliyunNls::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    fake.set_recognizer_transcript("我想听小兔子的故事。");
    let pcm = utterance(1530);
    let text = recognize(&streaming(&app), &pcm).await.unwrap().text;
    assert_eq!(text, "我想听小兔子的故事。");

    let sessions = fake.recognizers();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.token, fake.issued()[0], "the cached CreateToken token");
    let start = s.start.as_ref().unwrap();
    assert_eq!(start["header"]["appkey"], aliyun_nls::APPKEY);
    assert_eq!(start["header"]["name"], "StartRecognition");
    assert_eq!(start["payload"]["format"], "pcm");
    assert_eq!(start["payload"]["sample_rate"], 16_000);
    assert_eq!(s.audio, le_bytes(&pcm), "every sample, in order");
    // 48 960 bytes: 15 frames of 100 ms and the 960-byte rest before the stop.
    let (last, full) = s.frame_sizes.split_last().unwrap();
    assert!(full.iter().all(|n| *n == 3200), "100 ms frames");
    assert_eq!((full.len(), *last), (15, 960));
    assert!(s.stopped && s.completed && s.failed.is_none());
}

#[tokio::test]
async fn an_aliyun_task_failure_mid_stream_ends_the_session_with_the_mapped_error() {
    let fake = FakeAliyunNls::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let asr = streaming(&app);

    fake.script_recognizer(RecognizerScript::Fail {
        status: 40_000_005,
        after: 3,
    });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_eq!(err.code(), "upstream_rate_limited", "{err:?}");
    assert_eq!(details(&err)["vendor_code"], "40000005");

    fake.script_recognizer(RecognizerScript::Fail {
        status: 50_000_000,
        after: 2,
    });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_upstream(&err, "aliyun");

    fake.script_recognizer(RecognizerScript::Drop { after: 2 });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_upstream(&err, "aliyun");

    let sessions = fake.recognizers();
    assert_eq!(sessions.len(), 3);
    assert!(
        sessions
            .iter()
            .all(|s| !s.completed && s.violations.is_empty())
    );
}

#[tokio::test]
async fn dropping_an_aliyun_session_closes_the_gateway_connection_without_a_stop() {
    let fake = FakeAliyunNls::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let mut session = streaming(&app).open().await.unwrap();
    let pcm = utterance(500);
    for frame in pcm.chunks(FRAME) {
        session.push(frame).await.unwrap();
    }
    drop(session);
    wait_until("the gateway sees the connection end", async || {
        fake.recognizers()
            .first()
            .is_some_and(|s| s.ended.is_some())
    })
    .await;
    let s = &fake.recognizers()[0];
    assert_eq!(s.ended, Some(Ended::CloseFrame));
    assert!(!s.stopped && !s.completed);
    assert!(le_bytes(&pcm).starts_with(&s.audio));
}

#[tokio::test]
async fn a_refused_aliyun_token_is_replaced_once_then_the_gateway_refusal_is_provider_unavailable()
{
    let fake = FakeAliyunNls::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let asr = streaming(&app);

    // A revoked cached token: one new CreateToken, then the task starts.
    recognize(&asr, &utterance(300)).await.unwrap();
    fake.revoke_tokens();
    recognize(&asr, &utterance(300)).await.unwrap();
    assert_eq!(fake.issued().len(), 2);
    let failed: Vec<_> = fake.recognizers().iter().map(|s| s.failed).collect();
    assert_eq!(failed, [None, Some(40_000_001), None]);

    // A gateway refusing every token: no audio is ever sent.
    fake.refuse_all_tokens();
    let err = asr.open().await.err().unwrap();
    assert_eq!(err.code(), "provider_unavailable", "{err:?}");
    assert_eq!(details(&err)["vendor_code"], "40000001");
    let sessions = fake.recognizers();
    assert_eq!(sessions.len(), 5, "one retry with a new token");
    assert!(
        sessions[3..]
            .iter()
            .all(|s| s.failed == Some(40_000_001) && s.audio.is_empty())
    );
}

#[tokio::test]
async fn a_wrong_aliyun_secret_is_refused_at_create_token() {
    let fake = FakeAliyunNls::start().await;
    let app = app_with(|c| {
        fake.configure(c);
        c.aliyun.nls.access_key_secret = Some(Secret::new("wrong-secret"));
    })
    .await;
    let err = streaming(&app).open().await.err().unwrap();
    assert_upstream(&err, "aliyun");
    assert_eq!(fake.token_rejections(), ["SignatureDoesNotMatch"]);
    assert!(fake.recognizers().is_empty());
}

#[tokio::test]
async fn an_aliyun_gateway_that_stalls_after_the_stop_fails_the_finish() {
    let fake = FakeAliyunNls::start().await;
    let app = app_with(|c| {
        fake.configure(c);
        c.audio.timeout_secs = 1;
    })
    .await;
    fake.script_recognizer(RecognizerScript::Silent);
    let err = recognize(&streaming(&app), &utterance(400))
        .await
        .unwrap_err();
    assert_upstream(&err, "aliyun");
    assert!(fake.recognizers()[0].stopped);
}

// --- Tencent ------------------------------------------------------------------

#[tokio::test]
async fn tencent_realtime_sends_every_sample_in_order_and_joins_the_sentences() {
    let fake = FakeTencent::start().await;
    let app = app_with(|c| fake.configure_realtime(c)).await;
    fake.set_sentences(&["今天天气很好，", "我们去公园吧！", "好不好？"]);
    let pcm = utterance(1500);
    let text = recognize(&streaming(&app), &pcm).await.unwrap().text;
    assert_eq!(text, "今天天气很好，我们去公园吧！好不好？");

    let sessions = fake.realtime_sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.handshake_code, 0);
    assert_eq!(s.query["secretid"], tencent::SECRET_ID);
    assert_eq!(s.query["engine_model_type"], "16k_zh");
    assert_eq!(s.audio, le_bytes(&pcm), "every sample, in order");
    // 48 000 bytes: 37 frames of 40 ms and the 640-byte rest at the end.
    let (last, full) = s.frame_sizes.split_last().unwrap();
    assert!(full.iter().all(|n| *n == 1280), "40 ms frames");
    assert_eq!(*last, 640);
    assert!(s.end_received && s.completed && s.failed.is_none());
    assert!(fake.calls().is_empty(), "no SentenceRecognition");
}

#[tokio::test]
async fn a_tencent_error_mid_stream_ends_the_session_with_the_mapped_error() {
    let fake = FakeTencent::start().await;
    let app = app_with(|c| fake.configure_realtime(c)).await;
    let asr = streaming(&app);

    fake.script_realtime(RealtimeScript::Fail {
        code: 4006,
        after: 5,
    });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_eq!(err.code(), "upstream_rate_limited", "{err:?}");
    assert_eq!(details(&err)["provider"], "tencent");
    assert_eq!(details(&err)["vendor_code"], "4006");

    fake.script_realtime(RealtimeScript::Fail {
        code: 5000,
        after: 3,
    });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_upstream(&err, "tencent");

    fake.script_realtime(RealtimeScript::Drop { after: 3 });
    let err = recognize(&asr, &utterance(1500)).await.unwrap_err();
    assert_upstream(&err, "tencent");

    let sessions = fake.realtime_sessions();
    assert_eq!(sessions.len(), 3);
    assert!(
        sessions
            .iter()
            .all(|s| !s.completed && s.violations.is_empty())
    );
}

#[tokio::test]
async fn dropping_a_tencent_session_closes_the_connection_without_the_end_message() {
    let fake = FakeTencent::start().await;
    let app = app_with(|c| fake.configure_realtime(c)).await;
    let mut session = streaming(&app).open().await.unwrap();
    let pcm = utterance(500);
    for frame in pcm.chunks(FRAME) {
        session.push(frame).await.unwrap();
    }
    drop(session);
    wait_until("the fake sees the connection end", async || {
        fake.realtime_sessions()
            .first()
            .is_some_and(|s| s.ended.is_some())
    })
    .await;
    let s = &fake.realtime_sessions()[0];
    assert_eq!(s.ended, Some(Ended::CloseFrame));
    assert!(!s.end_received && !s.completed);
    assert!(le_bytes(&pcm).starts_with(&s.audio));
}

#[tokio::test]
async fn a_wrong_tencent_secret_fails_the_signature_as_provider_unavailable() {
    let fake = FakeTencent::start().await;
    let app = app_with(|c| {
        fake.configure_realtime(c);
        c.audio.tencent.api_secret = Some(Secret::new("wrong-secret"));
    })
    .await;
    let err = streaming(&app).open().await.err().unwrap();
    assert_eq!(err.code(), "provider_unavailable", "{err:?}");
    assert_eq!(details(&err)["vendor_code"], "4002");
    let sessions = fake.realtime_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].handshake_code, 4002);
    assert!(sessions[0].audio.is_empty());
}

#[tokio::test]
async fn a_tencent_server_that_stalls_after_the_end_fails_the_finish() {
    let fake = FakeTencent::start().await;
    let app = app_with(|c| {
        fake.configure_realtime(c);
        c.audio.timeout_secs = 1;
    })
    .await;
    fake.script_realtime(RealtimeScript::Silent);
    let err = recognize(&streaming(&app), &utterance(400))
        .await
        .unwrap_err();
    assert_upstream(&err, "tencent");
    assert!(fake.realtime_sessions()[0].end_received);
}

// --- fallback, embedded mode, metrics ----------------------------------------------

#[tokio::test]
async fn without_a_tencent_app_id_streaming_collects_the_audio_for_sentence_recognition() {
    use base64::Engine;
    let fake = FakeTencent::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let pcm = utterance(1200);
    let text = recognize(&streaming(&app), &pcm).await.unwrap().text;
    assert_eq!(text, "你好，小朋友");

    assert!(fake.realtime_sessions().is_empty());
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "one SentenceRecognition at the end");
    assert_eq!(calls[0].action, "SentenceRecognition");
    let data = base64::engine::general_purpose::STANDARD
        .decode(calls[0].body["Data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, le_bytes(&pcm), "every sample, in order");
}

#[tokio::test]
async fn the_embedded_default_has_no_streaming_recognizer() {
    let app = spawn_app_with(|_| {}).await;
    let err = app.state.speech.streaming_asr().err().unwrap();
    assert_eq!(err.code(), "provider_not_configured");
    assert!(matches!(
        err,
        Error::ProviderNotConfigured {
            provider: "huoshan"
        }
    ));
}

#[tokio::test]
async fn streaming_sessions_are_counted_by_provider_and_outcome() {
    let fake = FakeHuoshan::start().await;
    let app = app_with(|c| fake.configure(c)).await;
    let asr = streaming(&app);
    let series = |outcome| [("provider", "huoshan"), ("outcome", outcome)];
    let ok_before = app.metric("lty_asr_streams_total", &series("ok")).await;
    let cancelled_before = app
        .metric("lty_asr_streams_total", &series("cancelled"))
        .await;
    let error_before = app.metric("lty_asr_streams_total", &series("error")).await;

    recognize(&asr, &utterance(300)).await.unwrap();
    drop(asr.open().await.unwrap());
    fake.script_asr(AsrScript::Error {
        code: 45_000_001,
        after: 1,
    });
    recognize(&asr, &utterance(600)).await.unwrap_err();

    assert!(app.metric("lty_asr_streams_total", &series("ok")).await >= ok_before + 1.0);
    assert!(
        app.metric("lty_asr_streams_total", &series("cancelled"))
            .await
            >= cancelled_before + 1.0
    );
    assert!(app.metric("lty_asr_streams_total", &series("error")).await >= error_before + 1.0);
    let timed = app
        .metric(
            "lty_asr_stream_finish_duration_seconds_count",
            &[("provider", "huoshan")],
        )
        .await;
    assert!(timed >= 1.0);
}
