//! Audio uploads on `/api/ai/asr/`: WAV at any rate and channel count, MP3
//! and Ogg/Opus are decoded and resampled, and the recognizer (the Tencent
//! fake) receives 16 kHz 16-bit mono PCM of the right length; other formats,
//! damaged files and too long audio are refused with 4xx before any
//! provider call.

use lty_server::config::Config;
use serde_json::Value;

use crate::fakes::tencent::FakeTencent;
use crate::helpers::{TestApp, asr, asr_form, assert_error, spawn_app_with};

const MAC: &str = "02:00:00:00:0a:31";

/// 1.5 s of a 440 Hz tone, 44.1 kHz stereo, 32 kbit/s MP3 (ID3v2 tag first).
const MP3: &[u8] = include_bytes!("fixtures/tone-1500ms-44k-stereo.mp3");
/// 1.5 s of a 440 Hz tone, mono Ogg/Opus (encoded from 48 kHz).
const OPUS: &[u8] = include_bytes!("fixtures/tone-1500ms-mono.opus");
/// 1.5 s of a 330 Hz tone, Ogg/Vorbis: refused.
const VORBIS: &[u8] = include_bytes!("fixtures/tone-1500ms.ogg");

async fn app(tweak: impl FnOnce(&mut Config)) -> (TestApp, String, FakeTencent) {
    let fake = FakeTencent::start().await;
    let app = spawn_app_with(|c| {
        fake.configure(c);
        tweak(c);
    })
    .await;
    app.user_with_device("audio_user", MAC).await;
    let token = app.mac_login(MAC).await;
    (app, token, fake)
}

/// `seconds` of a 440 Hz tone at `rate` over `channels` as 16-bit WAV.
fn tone_wav(rate: u32, channels: u16, seconds: f64) -> Vec<u8> {
    let frames = (f64::from(rate) * seconds) as usize;
    let mut pcm = Vec::new();
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        let v = ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16;
        for _ in 0..channels {
            pcm.extend_from_slice(&v.to_le_bytes());
        }
    }
    lty_core::speech::wav_from_pcm16(&pcm, rate, channels).to_vec()
}

/// The PCM the recognizer received in its last call, as samples.
fn received_samples(fake: &FakeTencent) -> Vec<i16> {
    use base64::Engine as _;
    let calls = fake.calls();
    let call = calls.last().expect("a recognizer call");
    assert_eq!(call.body["VoiceFormat"], "pcm");
    assert_eq!(call.body["EngSerViceType"], "16k_zh");
    let data = base64::engine::general_purpose::STANDARD
        .decode(call.body["Data"].as_str().unwrap())
        .unwrap();
    assert_eq!(call.body["DataLen"], data.len());
    data.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Asserts a 16 kHz recording of `expected_ms` (within `slack_ms`) that
/// still carries the tone (not silence, not clipped noise).
fn assert_tone(samples: &[i16], expected_ms: u64, slack_ms: u64) {
    let ms = samples.len() as u64 * 1000 / 16_000;
    assert!(
        ms.abs_diff(expected_ms) <= slack_ms,
        "{ms} ms received, {expected_ms} ms expected"
    );
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak > 1_500, "peak {peak}: the tone was lost");
    // A 440 Hz tone at 16 kHz crosses zero about 880 times a second.
    let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count() as f64;
    let per_second = crossings * 16_000.0 / middle.len() as f64;
    assert!(
        (800.0..960.0).contains(&per_second),
        "{per_second} zero crossings per second"
    );
}

#[tokio::test]
async fn wav_at_other_rates_and_stereo_is_resampled_to_16k_mono() {
    let (app, token, fake) = app(|_| {}).await;
    for (rate, channels) in [(44_100, 2), (48_000, 1), (8_000, 1), (22_050, 2)] {
        let res = asr(&app, &token, "audio/wav", tone_wav(rate, channels, 1.0)).await;
        assert_eq!(res.status(), 200, "{rate} Hz x{channels}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["text"], "你好，小朋友");
        assert_tone(&received_samples(&fake), 1000, 5);
    }
}

#[tokio::test]
async fn mp3_uploads_are_decoded_to_16k_mono_pcm() {
    let (app, token, fake) = app(|_| {}).await;
    let res = asr(&app, &token, "audio/mpeg", MP3.to_vec()).await;
    assert_eq!(res.status(), 200);
    // MP3 adds encoder delay and pads the last frame: tens of milliseconds.
    assert_tone(&received_samples(&fake), 1500, 80);

    // In a multipart form, whatever the part says its type is.
    let res = asr_form(
        &app,
        &token,
        "a.mp3",
        "application/octet-stream",
        MP3.to_vec(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn ogg_opus_uploads_are_decoded_to_16k_mono_pcm() {
    let (app, token, fake) = app(|_| {}).await;
    let res = asr(&app, &token, "audio/ogg", OPUS.to_vec()).await;
    assert_eq!(res.status(), 200);
    // Pre-skip and end trimming make Ogg/Opus sample-exact.
    assert_tone(&received_samples(&fake), 1500, 5);
}

#[tokio::test]
async fn other_formats_are_refused_with_415() {
    let (app, token, fake) = app(|_| {}).await;
    let flac = b"fLaC\0\0\0\x22\x10\0\x10\0".to_vec();
    let adts_aac = vec![0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc, 0, 0];
    let adpcm_wav = {
        let mut w = tone_wav(16_000, 1, 0.1);
        w[20] = 2; // format tag 2: MS ADPCM
        w
    };
    for (ct, body) in [
        ("audio/ogg", VORBIS.to_vec()),
        ("audio/flac", flac),
        ("audio/aac", adts_aac),
        ("audio/wav", adpcm_wav),
        (
            "application/octet-stream",
            tone_wav(16_000, 1, 0.1)[44..].to_vec(),
        ),
        ("text/plain", b"hello".to_vec()),
    ] {
        let res = asr(&app, &token, ct, body).await;
        let body = assert_error(res, 415, "unsupported_audio_format").await;
        assert!(body["message"].as_str().unwrap().contains("Ogg/Opus"));
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn damaged_files_are_refused_with_400() {
    let (app, token, fake) = app(|_| {}).await;
    // A flipped byte inside an Ogg page breaks its checksum.
    let mut opus = OPUS.to_vec();
    let last = opus.len() - 10;
    opus[last] ^= 0x55;
    let res = asr(&app, &token, "audio/ogg", opus).await;
    assert_error(res, 400, "validation_error").await;
    // An Ogg/Opus file cut off in the middle of a page.
    let res = asr(&app, &token, "audio/ogg", OPUS[..OPUS.len() / 2].to_vec()).await;
    assert_error(res, 400, "validation_error").await;
    // An MP3 whose frames are all overwritten after the ID3 tag.
    let tag_end = 10 + usize::from(MP3[9]);
    let mut mp3 = MP3.to_vec();
    for b in &mut mp3[tag_end..] {
        *b = 0x5a;
    }
    let res = asr(&app, &token, "audio/mpeg", mp3).await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 415, "{status}");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn audio_over_the_duration_limit_is_refused_before_the_provider() {
    let (app, token, fake) = app(|c| c.audio.asr_max_seconds = 1).await;
    for (ct, body) in [
        ("audio/mpeg", MP3.to_vec()),
        ("audio/ogg", OPUS.to_vec()),
        ("audio/wav", tone_wav(44_100, 2, 1.5)),
    ] {
        let res = asr(&app, &token, ct, body).await;
        let body = assert_error(res, 400, "validation_error").await;
        assert!(
            body["message"].as_str().unwrap().contains("1 seconds")
                || body.to_string().contains("1 seconds"),
            "{body}"
        );
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn uploads_over_the_byte_limit_are_refused_with_413() {
    let (app, token, fake) = app(|c| c.audio.asr_max_bytes = 4 * 1024).await;
    let res = asr(&app, &token, "audio/mpeg", MP3.to_vec()).await;
    assert_error(res, 413, "payload_too_large").await;
    assert!(fake.calls().is_empty());
}
