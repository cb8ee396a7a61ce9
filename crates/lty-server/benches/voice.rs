//! Per-frame CPU cost of a device voice turn (the xiaozhi channel): what
//! one connection pays every 60 ms while the device talks (uplink Opus
//! decode at 16 kHz, then the VAD) and while we talk (downlink Opus encode
//! at 24 kHz), and the cost of turning 1 s of 16 kHz TTS audio into 24 kHz
//! 60 ms packets (resampling included). The encoder is measured at several
//! complexities, wideband (the default) and superwideband, to choose
//! `DEFAULT_COMPLEXITY` and `DEFAULT_MAX_BANDWIDTH_HZ`.
//!
//! Times are CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`,
//! through `cpu-time`), not wall time: on a machine shared with builds,
//! wall time mostly measures the wait for a core. A turn needs about 16.7
//! frames a second in one direction, so the concurrent real-time turns one
//! core carries is about `1 s / (16.7 × per-frame time)`. Not a pass/fail
//! test: numbers for docs/benchmarks.md.
//!
//! `cargo bench -p lty-server --bench voice`

#![allow(clippy::expect_used)]
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lty_server::app::audio::opus::{
    DEFAULT_COMPLEXITY, DEFAULT_MAX_BANDWIDTH_HZ, OpusDecoder, OpusEncoder, Packetizer,
};
use lty_server::app::audio::vad::Vad;

/// CPU time of the calling thread, in nanoseconds, as criterion's clock.
struct ThreadCpu {
    /// Only lends its formatter: the values are nanoseconds too.
    wall: WallTime,
}

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = u64;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, start: ThreadTime) -> u64 {
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

/// `ms` of a speech-like signal at `rate`: a 140 Hz voice with falling
/// harmonics, a vowel-like formant, a syllable rhythm of about 4 Hz, and a
/// little noise, so the encoder codes something like speech rather than a
/// pure tone.
fn speech_like(rate: u32, ms: u32) -> Vec<i16> {
    let mut noise = 0x2545_f491_4f6c_dd1d_u64;
    (0..rate * ms / 1000)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let f0 = 140.0 + 20.0 * (t * 1.3 * std::f32::consts::TAU).sin();
            let voice: f32 = (1..=20)
                .map(|h| {
                    let f = f0 * h as f32;
                    let formant = 1.0 / (1.0 + ((f - 700.0) / 300.0).powi(2))
                        + 0.5 / (1.0 + ((f - 1_200.0) / 400.0).powi(2));
                    (t * f * std::f32::consts::TAU).sin() * formant / h as f32
                })
                .sum();
            let syllables = (0.5 + 0.5 * (t * 4.0 * std::f32::consts::TAU).sin()).powi(2);
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = (noise >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            ((voice * syllables * 0.5 + n * 0.01) * 20_000.0).clamp(-32_000.0, 32_000.0) as i16
        })
        .collect()
}

/// Frames of `samples` each, cycled by the benchmarks.
fn frames(pcm: &[i16], samples: usize) -> Vec<Vec<i16>> {
    pcm.chunks_exact(samples).map(<[i16]>::to_vec).collect()
}

fn voice(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("voice_frame");
    group.throughput(Throughput::Elements(1));

    // Uplink: 16 kHz 60 ms packets as a device sends them (complexity 0,
    // wideband), decoded.
    let uplink = frames(&speech_like(16_000, 3_000), 960);
    let mut encoder = OpusEncoder::new(16_000, 60).expect("encoder");
    encoder.set_complexity(0);
    let packets: Vec<Bytes> = uplink
        .iter()
        .map(|f| encoder.encode(f).expect("encode"))
        .collect();
    let mut decoder = OpusDecoder::new(16_000).expect("decoder");
    let mut i = 0;
    group.bench_function("uplink_decode_16k_60ms", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            decoder.decode(black_box(&packets[i])).expect("decode")
        })
    });

    let mut vad = Vad::default();
    let mut i = 0;
    group.bench_function("vad_16k_60ms", |b| {
        b.iter(|| {
            i = (i + 1) % uplink.len();
            vad.push(black_box(&uplink[i]))
        })
    });

    // Downlink: 24 kHz 60 ms frames encoded, at several complexities, with
    // the default wideband limit (SILK) and without it (hybrid).
    let downlink = frames(&speech_like(24_000, 3_000), 1_440);
    for (name, bandwidth_hz) in [
        ("downlink_encode_24k_60ms", DEFAULT_MAX_BANDWIDTH_HZ),
        ("downlink_encode_24k_60ms_superwideband", 12_000),
    ] {
        for complexity in [0u8, 2, DEFAULT_COMPLEXITY, 5, 9] {
            let mut encoder = OpusEncoder::new(24_000, 60).expect("encoder");
            encoder.set_complexity(complexity);
            encoder.set_max_bandwidth_hz(bandwidth_hz);
            let mut i = 0;
            group.bench_with_input(BenchmarkId::new(name, complexity), &complexity, |b, _| {
                b.iter(|| {
                    i = (i + 1) % downlink.len();
                    encoder.encode(black_box(&downlink[i])).expect("encode")
                })
            });
        }
    }
    group.finish();

    // 1 s of 16 kHz TTS audio, in 100 ms pieces, to 24 kHz 60 ms packets.
    let mut group = c.benchmark_group("tts_second");
    group.throughput(Throughput::Elements(1));
    let tts = speech_like(16_000, 1_000);
    let mut packetizer = Packetizer::new(24_000, 60).expect("packetizer");
    group.bench_function("resample_and_packetize_1s_16k_to_24k", |b| {
        b.iter(|| {
            let mut n = 0;
            for piece in tts.chunks(1_600) {
                n += packetizer
                    .push(black_box(piece), 16_000)
                    .expect("push")
                    .len();
            }
            n + packetizer.flush().expect("flush").len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpu { wall: WallTime })
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = voice
}
criterion_main!(benches);
