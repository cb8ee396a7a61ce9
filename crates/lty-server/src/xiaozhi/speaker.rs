//! The downlink of one spoken response (spec §4.4, §5.2, §5.3): text
//! pieces in (a streamed reply), then the `llm` emotion from a leading
//! emoji, one `tts sentence_start` per sentence followed by its audio as
//! 60 ms Opus packets, paced on a monotonic clock with a short pre-roll so
//! the device's 40-packet queue never overflows, and the return once the
//! last packet has played (the caller then sends `tts stop`).
//!
//! Three stages run side by side, so the next sentence is synthesized while
//! the current one plays: sentences (from the text), synthesis (TTS,
//! decoding, resampling, Opus), and the paced sender. Everything they send
//! carries the response's generation: once the response is cancelled, the
//! connection's writer drops whatever of it is still queued.

use std::time::Duration;

use bytes::Bytes;
use lty_core::speech::{AudioFormat, TtsRequest};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::framing::{self, ProtocolVersion};
use super::session::Outbound;
use crate::app::audio::opus::{Packetizer, XIAOZHI_FRAME_MS};
use crate::app::speech::emotion::{leading_emotion, strip_emoji};
use crate::app::speech::sentences::SentenceSplitter;
use crate::state::AppState;

/// Packets sent at once when a response starts (the device buffers them).
const PREROLL_PACKETS: u32 = 3;

/// What a response needs to reach the device.
#[derive(Clone)]
pub struct Downlink {
    pub state: AppState,
    pub out: mpsc::Sender<Outbound>,
    pub version: ProtocolVersion,
    /// This response's generation.
    pub generation: u64,
    /// Downlink sample rate announced in the server hello.
    pub sample_rate: u32,
    /// The persona's voice, when it has one.
    pub voice: Option<String>,
}

impl std::fmt::Debug for Downlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downlink")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Downlink {
    /// Sends a JSON message of this response.
    pub async fn json(&self, value: serde_json::Value) -> bool {
        self.out
            .send(Outbound::Tagged(self.generation, Outbound::text(value)))
            .await
            .is_ok()
    }
}

/// What the synthesis stage hands the sender, in order.
enum Piece {
    /// A sentence begins: its subtitle.
    Sentence(String),
    /// Packets of the current sentence, in order.
    Packets(Vec<Bytes>),
}

/// Samples (16 kHz) encoded per batch: 180 ms, the pre-roll, so the first
/// packets of a sentence go out before the rest is encoded.
const BATCH_SAMPLES: usize = 2880;

/// Speaks the pieces of `text` as they arrive; returns once the last
/// packet is due plus `margin`, with the instant the first packet went out
/// (`None` when nothing was spoken). `false` in the result means the
/// channel is gone.
pub async fn speak(
    link: &Downlink,
    mut text: mpsc::Receiver<String>,
    margin: Duration,
) -> Option<Instant> {
    let (sentences_tx, sentences_rx) = mpsc::channel::<String>(8);
    // About two sentences of audio ahead of the sender.
    let (pieces_tx, pieces_rx) = mpsc::channel::<Piece>(32);

    let emotions = link.clone();
    let split = async move {
        let mut splitter = SentenceSplitter::new();
        let mut first = true;
        while let Some(piece) = text.recv().await {
            let mut piece = piece.as_str();
            if first && !piece.trim().is_empty() {
                first = false;
                let (emotion, emoji) = match leading_emotion(piece) {
                    Some((emotion, emoji, used)) => {
                        let emoji = emoji.to_owned();
                        piece = &piece[used..];
                        (emotion, emoji)
                    }
                    None => ("neutral", "🙂".to_owned()),
                };
                emotions
                    .json(json!({ "type": "llm", "text": emoji, "emotion": emotion }))
                    .await;
            }
            for sentence in splitter.push(&strip_emoji(piece)) {
                if sentences_tx.send(sentence).await.is_err() {
                    return;
                }
            }
        }
        if let Some(rest) = splitter.finish() {
            let _ = sentences_tx.send(rest).await;
        }
    };

    let synth_link = link.clone();
    let synth = async move {
        let mut sentences = sentences_rx;
        let mut packetizer = match Packetizer::new(synth_link.sample_rate, XIAOZHI_FRAME_MS) {
            Ok(p) => p,
            Err(err) => {
                tracing::error!(%err, "cannot build the Opus encoder");
                return;
            }
        };
        while let Some(sentence) = sentences.recv().await {
            let text = sentence.trim().to_owned();
            if text.is_empty() {
                continue;
            }
            if pieces_tx.send(Piece::Sentence(text.clone())).await.is_err() {
                return;
            }
            let Some(back) = synthesize(&synth_link, &text, packetizer, &pieces_tx).await else {
                return;
            };
            packetizer = back;
        }
        // The last partial frame, padded with silence.
        if let Ok(tail) = packetizer.flush()
            && !tail.is_empty()
        {
            let _ = pieces_tx.send(Piece::Packets(tail)).await;
        }
    };

    let send = pace(link, pieces_rx, margin);
    let ((), (), first) = tokio::join!(split, synth, send);
    first
}

/// Synthesizes one sentence and hands its packets to `out` in batches as
/// they are encoded (the packetizer keeps its state across the sentences
/// of a response, so the stream is continuous, and is handed back; `None`
/// when the response is over: the sender is gone or the encoder died).
async fn synthesize(
    link: &Downlink,
    text: &str,
    packetizer: Packetizer,
    out: &mpsc::Sender<Piece>,
) -> Option<Packetizer> {
    let tts = match link.state.speech.tts() {
        Ok(tts) => tts.clone(),
        Err(err) => {
            tracing::warn!(code = err.code(), "no TTS for a xiaozhi response");
            return Some(packetizer);
        }
    };
    let started = std::time::Instant::now();
    let req = TtsRequest {
        text: text.to_owned(),
        voice: link.voice.clone(),
        format: AudioFormat::Wav,
    };
    let synthesis = match tts.synthesize(&req).await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(
                code = err.code(),
                provider = tts.provider(),
                "xiaozhi sentence synthesis failed"
            );
            metrics::counter!("lty_xiaozhi_tts_failures_total", "provider" => tts.provider())
                .increment(1);
            return Some(packetizer);
        }
    };
    metrics::histogram!("lty_xiaozhi_tts_seconds", "provider" => tts.provider())
        .record(started.elapsed().as_secs_f64());
    let content_type = match synthesis.format {
        AudioFormat::Wav => "audio/wav",
        AudioFormat::Mp3 => "audio/mpeg",
        AudioFormat::Pcm => "audio/pcm",
    };
    let audio = synthesis.audio;
    let out = out.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut packetizer = packetizer;
        let pcm = match crate::app::audio::decode(audio, content_type, 300) {
            Ok(pcm) => pcm,
            Err(err) => {
                tracing::warn!(%err, "cannot decode a xiaozhi sentence");
                return Some(packetizer);
            }
        };
        let samples: Vec<i16> = pcm
            .samples
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        for batch in samples.chunks(BATCH_SAMPLES) {
            match packetizer.push(batch, lty_core::speech::Pcm16k::SAMPLE_RATE) {
                Ok(packets) if packets.is_empty() => {}
                Ok(packets) => {
                    if out.blocking_send(Piece::Packets(packets)).is_err() {
                        return None;
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot encode a xiaozhi sentence");
                    break;
                }
            }
        }
        Some(packetizer)
    })
    .await;
    match encoded {
        Ok(back) => back,
        Err(err) => {
            tracing::error!(%err, "the encoding task failed");
            None
        }
    }
}

/// Sends each sentence's subtitle and then its packets, packet *k* of the
/// response due at `t0 + k × 60 ms`, sent a pre-roll of three packets ahead
/// of its due time; a producer that falls behind moves `t0` instead of
/// bursting. Returns once the last packet is due plus `margin`, with when
/// the first packet went out.
async fn pace(
    link: &Downlink,
    mut pieces: mpsc::Receiver<Piece>,
    margin: Duration,
) -> Option<Instant> {
    let frame = Duration::from_millis(u64::from(XIAOZHI_FRAME_MS));
    let lead = frame * PREROLL_PACKETS;
    let mut t0: Option<Instant> = None;
    let mut first_sent = None;
    let mut k: u32 = 0;
    while let Some(piece) = pieces.recv().await {
        let packets = match piece {
            Piece::Sentence(text) => {
                let start = json!({ "type": "tts", "state": "sentence_start", "text": text });
                if !link.json(start).await {
                    return first_sent;
                }
                continue;
            }
            Piece::Packets(packets) => packets,
        };
        for packet in packets {
            let now = Instant::now();
            let start = *t0.get_or_insert(now);
            let mut due = start + frame * k;
            // Behind (slow synthesis): restart the clock rather than burst.
            if now > due + frame {
                t0 = Some(now - frame * k);
                due = now;
            }
            tokio::time::sleep_until(due.checked_sub(lead).unwrap_or(due)).await;
            let stamp = k.saturating_mul(XIAOZHI_FRAME_MS).saturating_add(1);
            let Ok(frame_bytes) = framing::encode(link.version, &packet, stamp) else {
                continue;
            };
            if link
                .out
                .send(Outbound::Tagged(
                    link.generation,
                    Outbound::binary(frame_bytes),
                ))
                .await
                .is_err()
            {
                return first_sent;
            }
            first_sent.get_or_insert_with(Instant::now);
            metrics::counter!("lty_xiaozhi_audio_packets_total").increment(1);
            k += 1;
        }
    }
    if let Some(start) = t0 {
        tokio::time::sleep_until(start + frame * k + margin).await;
    }
    first_sent
}
