//! Mono Opus packets for the device voice channel, with the pure-Rust
//! `opus-pure` codec (no C library, no build script).
//!
//! - [`OpusEncoder`]: one frame of 16-bit PCM in, one packet out, with
//!   settings for speech (VoIP application, VBR, a modest bitrate, audio
//!   up to 8 kHz, and a complexity chosen for CPU cost, see
//!   [`DEFAULT_COMPLEXITY`]).
//! - [`OpusDecoder`]: one packet in, the PCM it carries out, at the rate the
//!   decoder was opened with (Opus decodes any packet at any of its rates).
//! - [`Packetizer`]: PCM at any rate in (what a TTS provider returns), fixed
//!   length packets at the output rate out, resampled with `rubato` on the
//!   way; what the xiaozhi downlink sends (60 ms at 24 kHz).
//!
//! Nothing here does I/O or keeps time; pacing is the caller's.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use opus_pure::{Application, Bandwidth, RateControl, Signal};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::{AudioError, MAX_RATE, MIN_RATE};

/// The sample rates Opus codes at.
pub const SAMPLE_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// The frame durations [`OpusEncoder`] accepts, in milliseconds.
pub const FRAME_MS: [u32; 4] = [10, 20, 40, 60];
/// The frame duration of the xiaozhi channel, both directions.
pub const XIAOZHI_FRAME_MS: u32 = 60;
/// The encoder complexity (0–10) of a new [`OpusEncoder`]. Measured with
/// `benches/voice.rs` (24 kHz, 60 ms, wideband): complexity 3 costs about
/// half of complexity 9 and keeps SILK's delayed-decision quantizer (from
/// 2 up); complexity 0 is about half again, for a server short of CPU.
pub const DEFAULT_COMPLEXITY: u8 = 3;
/// The audio bandwidth a new [`OpusEncoder`] codes, in Hz: wideband, what
/// a toy's speaker plays, coded by SILK alone, which costs about 0.6 of
/// the hybrid mode Opus picks for the superwideband band at these rates.
pub const DEFAULT_MAX_BANDWIDTH_HZ: u32 = 8_000;
/// The longest packet Opus allows.
const MAX_PACKET_MS: u32 = 120;

/// The bitrate [`OpusEncoder`] aims at for mono speech at `rate`.
fn speech_bitrate(rate: u32) -> i32 {
    match rate {
        8_000 => 12_000,
        12_000 => 16_000,
        16_000 => 20_000,
        24_000 => 24_000,
        _ => 32_000,
    }
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if SAMPLE_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::Unsupported(format!(
            "Opus does not code at {rate} Hz (8000, 12000, 16000, 24000 or 48000)"
        )))
    }
}

/// `rate` as the codec's integer type; every rate checked above fits.
fn codec_rate(rate: u32) -> i32 {
    i32::try_from(rate).unwrap_or(i32::MAX)
}

fn codec_error(what: &str, e: opus_pure::Error) -> AudioError {
    AudioError::Unsupported(format!("Opus {what}: {e}"))
}

/// Encodes mono 16-bit PCM into Opus packets of one fixed duration.
pub struct OpusEncoder {
    inner: opus_pure::OpusEncoder,
    rate: u32,
    frame_ms: u32,
    frame_samples: usize,
    /// The packet being written; sized for the largest packet, so the
    /// encoder's byte budget never limits it.
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .field("frame_ms", &self.frame_ms)
            .field("complexity", &self.inner.complexity)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder for mono speech at `sample_rate` (8000, 12000, 16000,
    /// 24000 or 48000) in frames of `frame_ms` (10, 20, 40 or 60 ms):
    /// VoIP application with a voice signal hint, unconstrained VBR around
    /// 24 kb/s at 24 kHz (12–32 kb/s by rate), audio up to
    /// [`DEFAULT_MAX_BANDWIDTH_HZ`], no FEC (the channel is TCP), no DTX,
    /// complexity [`DEFAULT_COMPLEXITY`].
    pub fn new(sample_rate: u32, frame_ms: u32) -> Result<Self, AudioError> {
        check_rate(sample_rate)?;
        if !FRAME_MS.contains(&frame_ms) {
            return Err(AudioError::Unsupported(format!(
                "an Opus frame of {frame_ms} ms is not accepted (10, 20, 40 or 60 ms)"
            )));
        }
        let mut inner = opus_pure::OpusEncoder::new(codec_rate(sample_rate), 1, Application::Voip)
            .map_err(|e| codec_error("encoder", e))?;
        inner.bitrate_bps = speech_bitrate(sample_rate);
        inner.rate_control = RateControl::Vbr;
        inner.signal_type = Some(Signal::Voice);
        inner.complexity = i32::from(DEFAULT_COMPLEXITY);
        inner.use_inband_fec = false;
        inner.use_dtx = false;
        let mut encoder = Self {
            inner,
            rate: sample_rate,
            frame_ms,
            frame_samples: (sample_rate * frame_ms / 1000) as usize,
            packet: vec![0; opus_pure::MAX_PACKET_BYTES],
        };
        encoder.set_max_bandwidth_hz(DEFAULT_MAX_BANDWIDTH_HZ);
        Ok(encoder)
    }

    /// Samples in one frame: `sample_rate × frame_ms / 1000`.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// The sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The frame duration in milliseconds.
    pub fn frame_ms(&self) -> u32 {
        self.frame_ms
    }

    /// The encoder's delay in samples at its rate: how far its output lags
    /// its input (an Ogg stream's pre-skip).
    pub fn lookahead(&self) -> usize {
        self.inner.lookahead()
    }

    /// Sets the complexity, 0 (cheapest) to 10; larger values are taken as 10.
    pub fn set_complexity(&mut self, complexity: u8) {
        self.inner.complexity = i32::from(complexity.min(10));
    }

    /// Limits the audio bandwidth coded to at most `hz` (4000 narrowband,
    /// 6000 mediumband, 8000 wideband, 12 000 superwideband, more:
    /// fullband). The rate can limit it further (8 kHz at 16 kHz).
    pub fn set_max_bandwidth_hz(&mut self, hz: u32) {
        self.inner.max_bandwidth = match hz {
            0..=4_000 => Bandwidth::Narrowband,
            4_001..=6_000 => Bandwidth::Mediumband,
            6_001..=8_000 => Bandwidth::Wideband,
            8_001..=12_000 => Bandwidth::Superwideband,
            _ => Bandwidth::Fullband,
        };
    }

    /// Turns discontinuous transmission on or off: with it on, silence is
    /// coded as 1-byte packets after a short while (as xiaozhi devices send
    /// their uplink).
    pub fn set_dtx(&mut self, on: bool) {
        self.inner.use_dtx = on;
    }

    /// Encodes exactly one frame ([`frame_samples`](Self::frame_samples)
    /// samples) into one packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Bytes, AudioError> {
        if pcm.len() != self.frame_samples {
            return Err(AudioError::Unsupported(format!(
                "an Opus frame of {} ms at {} Hz is {} samples, not {}",
                self.frame_ms,
                self.rate,
                self.frame_samples,
                pcm.len()
            )));
        }
        let n = self
            .inner
            .encode_s16(pcm, self.frame_samples, &mut self.packet)
            .map_err(|e| codec_error("encoder", e))?;
        Ok(Bytes::copy_from_slice(&self.packet[..n]))
    }

    /// Forgets the previous audio, keeping the settings: the next packet
    /// starts a new stream, as the device's decoder does at `tts start`.
    pub fn reset(&mut self) -> Result<(), AudioError> {
        self.inner
            .reset_state()
            .map_err(|e| codec_error("encoder", e))
    }
}

/// Decodes Opus packets (mono or stereo, any duration up to 120 ms) to mono
/// 16-bit PCM at one rate.
///
/// An **empty** packet carries no audio but stands for one lost or
/// skipped packet: it is concealed (packet-loss concealment, fading to
/// silence) for the duration of the last packet decoded, or 60 ms before
/// the first. So a caller that counts time in decoded samples (a VAD
/// waiting for trailing silence) keeps counting when a device sends empty
/// frames in silence. A 1-byte packet (a DTX frame) decodes like any other,
/// to comfort noise or concealment of its declared duration.
pub struct OpusDecoder {
    inner: opus_pure::OpusDecoder,
    rate: u32,
    /// Samples of the longest packet, 120 ms.
    max_samples: usize,
    /// Samples of the last packet decoded, the length an empty one conceals.
    last_samples: usize,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl OpusDecoder {
    /// A mono decoder producing PCM at `sample_rate` (8000, 12000, 16000,
    /// 24000 or 48000).
    pub fn new(sample_rate: u32) -> Result<Self, AudioError> {
        check_rate(sample_rate)?;
        let inner = opus_pure::OpusDecoder::new(codec_rate(sample_rate), 1)
            .map_err(|e| codec_error("decoder", e))?;
        let max_samples = (sample_rate * MAX_PACKET_MS / 1000) as usize;
        Ok(Self {
            inner,
            rate: sample_rate,
            max_samples,
            last_samples: (sample_rate * XIAOZHI_FRAME_MS / 1000) as usize,
            pcm: vec![0; max_samples],
        })
    }

    /// The output sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one packet into the samples it carries (e.g. 960 for 60 ms
    /// at 16 kHz). Undecodable data is [`AudioError::Corrupt`] and leaves
    /// the decoder usable for the next packet; an empty packet is
    /// concealed as described on [`OpusDecoder`]. Never panics: a panic
    /// inside the codec is caught, the decoder reset, and reported as
    /// `Corrupt`.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, AudioError> {
        let frame = if packet.is_empty() {
            self.last_samples
        } else {
            self.max_samples
        };
        let Self { inner, pcm, .. } = self;
        let outcome = catch_unwind(AssertUnwindSafe(|| inner.decode_s16(packet, frame, pcm)));
        match outcome {
            Ok(Ok(n)) => {
                let n = n.min(self.pcm.len());
                if !packet.is_empty() && n > 0 {
                    self.last_samples = n;
                }
                Ok(self.pcm[..n].to_vec())
            }
            Ok(Err(e)) => Err(AudioError::Corrupt(format!(
                "an undecodable Opus packet of {} bytes: {e}",
                packet.len()
            ))),
            Err(_) => {
                // The codec state may be half-updated: start clean.
                let _ = self.inner.reset_state();
                Err(AudioError::Corrupt(format!(
                    "an undecodable Opus packet of {} bytes",
                    packet.len()
                )))
            }
        }
    }

    /// Forgets the previous packets (a new stream starts).
    pub fn reset(&mut self) -> Result<(), AudioError> {
        self.last_samples = (self.rate * XIAOZHI_FRAME_MS / 1000) as usize;
        self.inner
            .reset_state()
            .map_err(|e| codec_error("decoder", e))
    }
}

/// A streaming fixed-ratio resampler of mono 16-bit PCM whose output lines
/// up with its input: the filter's start-up delay is dropped and
/// [`finish`](Self::finish) drains its tail, so `n` samples in give
/// `round(n × out / in)` samples out.
struct StreamResampler {
    in_rate: u32,
    out_rate: u32,
    inner: Fft<f32>,
    /// Input not yet processed, as floats.
    input: Vec<f32>,
    output: Vec<f32>,
    /// Output samples still to drop for the filter's delay.
    skip: usize,
    taken_in: u64,
    given_out: u64,
}

impl StreamResampler {
    fn new(in_rate: u32, out_rate: u32) -> Result<Self, AudioError> {
        let failed =
            |e: &dyn std::fmt::Display| AudioError::Unsupported(format!("resampling: {e}"));
        // 20 ms chunks: small enough that the first packet is not held back
        // long, large enough for the FFT to be cheap per sample.
        let chunk = (in_rate / 50).max(1) as usize;
        let inner = Fft::<f32>::new(
            in_rate as usize,
            out_rate as usize,
            chunk,
            1,
            FixedSync::Input,
        )
        .map_err(|e| failed(&e))?;
        let skip = inner.output_delay();
        let output = vec![0.0; inner.output_frames_max()];
        Ok(Self {
            in_rate,
            out_rate,
            inner,
            input: Vec::with_capacity(chunk * 2),
            output,
            skip,
            taken_in: 0,
            given_out: 0,
        })
    }

    /// Output samples owed for the input taken so far.
    fn owed(&self) -> u64 {
        (self.taken_in * u64::from(self.out_rate) + u64::from(self.in_rate) / 2)
            / u64::from(self.in_rate)
    }

    /// Resamples what whole chunks of `pcm` (with what was left over)
    /// allow, appending the output to `out`.
    fn push(&mut self, pcm: &[i16], out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.taken_in += pcm.len() as u64;
        self.input
            .extend(pcm.iter().map(|&s| f32::from(s) / 32_768.0));
        let mut at = 0;
        while self.input.len() - at >= self.inner.input_frames_next() {
            let used = self.process(at, None, out)?;
            at += used;
        }
        self.input.drain(..at);
        Ok(())
    }

    /// Pushes the rest of the input and the filter's tail through,
    /// appending exactly the output still owed.
    fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let owed = self.owed();
        // Each round feeds at least one chunk of silence, which brings out at
        // least one chunk of output; the delay is under two chunks.
        let mut rounds = 0;
        while self.given_out < owed && rounds < 8 {
            let partial = self.input.len().min(self.inner.input_frames_next());
            self.process(0, Some(partial), out)?;
            self.input.drain(..partial);
            rounds += 1;
        }
        self.input.clear();
        self.inner.reset();
        self.skip = self.inner.output_delay();
        self.taken_in = 0;
        self.given_out = 0;
        Ok(())
    }

    /// One chunk from `input[at..]` (`partial`: only that many real samples,
    /// silence after them); returns the input samples used.
    fn process(
        &mut self,
        at: usize,
        partial: Option<usize>,
        out: &mut Vec<i16>,
    ) -> Result<usize, AudioError> {
        let failed =
            |e: &dyn std::fmt::Display| AudioError::Unsupported(format!("resampling: {e}"));
        let need = self.inner.input_frames_next();
        // A partial chunk still needs a buffer of full length.
        let mut padded;
        let chunk: &[f32] = match partial {
            Some(n) => {
                padded = vec![0.0; need];
                padded[..n].copy_from_slice(&self.input[at..at + n]);
                &padded
            }
            None => &self.input[at..at + need],
        };
        let input = InterleavedSlice::new(chunk, 1, need).map_err(|e| failed(&e))?;
        let frames = self.output.len();
        let mut output =
            InterleavedSlice::new_mut(&mut self.output[..], 1, frames).map_err(|e| failed(&e))?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (used, made) = self
            .inner
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| failed(&e))?;
        let made = &self.output[..made];
        let skipped = self.skip.min(made.len());
        self.skip -= skipped;
        let owed = self.owed().saturating_sub(self.given_out);
        let keep = &made[skipped..];
        let keep = &keep[..keep.len().min(usize::try_from(owed).unwrap_or(usize::MAX))];
        out.extend(keep.iter().map(|&s| to_i16(s)));
        self.given_out += keep.len() as u64;
        Ok(partial.unwrap_or(used))
    }
}

fn to_i16(s: f32) -> i16 {
    (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// Turns PCM at any rate into fixed-duration Opus packets at one output
/// rate: the downlink of a spoken reply, fed as the TTS returns audio.
///
/// Input at another rate is resampled (FFT, fixed ratio, `rubato`); the
/// input rate may change between [`push`](Self::push) calls (the audio
/// resampled so far is drained first). [`flush`](Self::flush) ends the
/// stream; the packetizer is then ready for the next one.
pub struct Packetizer {
    encoder: OpusEncoder,
    resampler: Option<StreamResampler>,
    /// Samples at the output rate not yet making a whole frame.
    pending: Vec<i16>,
    /// Whether audio went in since the stream began.
    started: bool,
}

impl std::fmt::Debug for Packetizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packetizer")
            .field("encoder", &self.encoder)
            .field("input_rate", &self.resampler.as_ref().map(|r| r.in_rate))
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Packetizer {
    /// Packets of `frame_ms` (10, 20, 40 or 60) at `out_rate` (an Opus rate),
    /// coded by an [`OpusEncoder`] with its speech settings.
    pub fn new(out_rate: u32, frame_ms: u32) -> Result<Self, AudioError> {
        let encoder = OpusEncoder::new(out_rate, frame_ms)?;
        let pending = Vec::with_capacity(encoder.frame_samples() * 2);
        Ok(Self {
            encoder,
            resampler: None,
            pending,
            started: false,
        })
    }

    /// The encoder, e.g. to change its complexity.
    pub fn encoder_mut(&mut self) -> &mut OpusEncoder {
        &mut self.encoder
    }

    /// Samples of audio held back, at the output rate, for want of a whole
    /// frame (not counting the resampler's own short buffer).
    pub fn pending_samples(&self) -> usize {
        self.pending.len()
    }

    /// Takes mono PCM at `in_rate` (8 kHz to 192 kHz) and returns the
    /// packets it completes, each exactly one frame.
    pub fn push(&mut self, pcm: &[i16], in_rate: u32) -> Result<Vec<Bytes>, AudioError> {
        if !(MIN_RATE..=MAX_RATE).contains(&in_rate) {
            return Err(AudioError::Unsupported(format!(
                "a sample rate of {in_rate} Hz is not accepted ({MIN_RATE}..{MAX_RATE} Hz)"
            )));
        }
        self.started |= !pcm.is_empty();
        let out_rate = self.encoder.sample_rate();
        if self
            .resampler
            .as_ref()
            .is_some_and(|r| r.in_rate != in_rate)
        {
            self.drain_resampler()?;
        }
        if in_rate == out_rate {
            self.pending.extend_from_slice(pcm);
        } else {
            let resampler = match &mut self.resampler {
                Some(r) => r,
                empty => empty.insert(StreamResampler::new(in_rate, out_rate)?),
            };
            resampler.push(pcm, &mut self.pending)?;
        }
        self.encode_whole_frames()
    }

    /// Ends the stream: drains the resampler, pads the last partial frame
    /// with silence (and, where the encoder's look-ahead still holds the
    /// end of the audio, adds one more frame of silence so it is sent too),
    /// and returns the last packets. The encoder is then reset, so the next
    /// stream starts clean, as the device's decoder does at `tts start`.
    /// Without any audio since the stream began, returns nothing.
    pub fn flush(&mut self) -> Result<Vec<Bytes>, AudioError> {
        self.drain_resampler()?;
        let mut packets = Vec::new();
        if self.started {
            let frame = self.encoder.frame_samples();
            let wanted = (self.pending.len() + self.encoder.lookahead()).div_ceil(frame) * frame;
            self.pending.resize(wanted, 0);
            packets = self.encode_whole_frames()?;
        }
        self.reset()?;
        Ok(packets)
    }

    /// Drops all audio not yet packetized and starts a new stream (an
    /// interrupted reply).
    pub fn reset(&mut self) -> Result<(), AudioError> {
        self.resampler = None;
        self.pending.clear();
        self.started = false;
        self.encoder.reset()
    }

    fn drain_resampler(&mut self) -> Result<(), AudioError> {
        if let Some(mut r) = self.resampler.take() {
            r.finish(&mut self.pending)?;
        }
        Ok(())
    }

    fn encode_whole_frames(&mut self) -> Result<Vec<Bytes>, AudioError> {
        let frame = self.encoder.frame_samples();
        let whole = self.pending.len() / frame * frame;
        let packets = self.pending[..whole]
            .chunks_exact(frame)
            .map(|f| self.encoder.encode(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.pending.drain(..whole);
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of a sine at `hz` and `rate`, peak `amplitude`.
    pub(crate) fn tone(rate: u32, hz: f32, ms: u32, amplitude: f32) -> Vec<i16> {
        let n = (rate * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                ((t * hz * std::f32::consts::TAU).sin() * amplitude) as i16
            })
            .collect()
    }

    /// The level of `pcm` in dBFS (RMS).
    fn dbfs(pcm: &[i16]) -> f32 {
        let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = (sum / pcm.len().max(1) as f64).sqrt();
        (20.0 * (rms / 32_768.0).max(1e-9).log10()) as f32
    }

    /// The strongest frequency of `pcm` among 100..2000 Hz in 10 Hz steps
    /// (Goertzel), to check a tone came back as itself.
    fn dominant_hz(pcm: &[i16], rate: u32) -> f32 {
        let power = |hz: f32| {
            let w = std::f32::consts::TAU * hz / rate as f32;
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &x in pcm {
                let s = f32::from(x) + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
        };
        (10..200)
            .map(|k| k as f32 * 10.0)
            .max_by(|a, b| power(*a).total_cmp(&power(*b)))
            .unwrap()
    }

    #[test]
    fn only_opus_rates_and_the_accepted_frame_durations_make_an_encoder() {
        for rate in SAMPLE_RATES {
            for ms in FRAME_MS {
                let enc = OpusEncoder::new(rate, ms).unwrap();
                assert_eq!(enc.frame_samples(), (rate * ms / 1000) as usize);
            }
        }
        assert!(matches!(
            OpusEncoder::new(44_100, 20),
            Err(AudioError::Unsupported(_))
        ));
        assert!(OpusEncoder::new(24_000, 30).is_err());
        assert!(OpusEncoder::new(24_000, 120).is_err());
        assert!(OpusDecoder::new(22_050).is_err());
    }

    #[test]
    fn speech_is_coded_wideband_by_default_and_wider_on_request() {
        let pcm = tone(24_000, 440.0, 600, 8_000.0);
        let bandwidths = |enc: &mut OpusEncoder| {
            pcm.chunks_exact(1_440)
                .map(|f| opus_pure::packet::bandwidth(&enc.encode(f).unwrap()).unwrap())
                .collect::<Vec<_>>()
        };
        let mut enc = OpusEncoder::new(24_000, 60).unwrap();
        assert!(
            bandwidths(&mut enc)
                .iter()
                .all(|b| *b == Bandwidth::Wideband)
        );
        enc.set_max_bandwidth_hz(12_000);
        enc.reset().unwrap();
        assert!(bandwidths(&mut enc).contains(&Bandwidth::Superwideband));
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_refused() {
        let mut enc = OpusEncoder::new(24_000, 60).unwrap();
        assert!(enc.encode(&[0; 1439]).is_err());
        assert!(enc.encode(&[0; 1441]).is_err());
        assert!(enc.encode(&[]).is_err());
        assert!(enc.encode(&[0; 1440]).is_ok());
    }

    #[test]
    fn uplink_like_audio_round_trips_through_encoder_and_decoder() {
        // What a xiaozhi device sends: 16 kHz, 60 ms packets.
        let mut enc = OpusEncoder::new(16_000, 60).unwrap();
        let mut dec = OpusDecoder::new(16_000).unwrap();
        let input = tone(16_000, 440.0, 1_200, 8_000.0);
        let mut output = Vec::new();
        for frame in input.chunks_exact(enc.frame_samples()) {
            let packet = enc.encode(frame).unwrap();
            assert!(!packet.is_empty() && packet.len() < 400, "{}", packet.len());
            let pcm = dec.decode(&packet).unwrap();
            assert_eq!(pcm.len(), 960);
            output.extend(pcm);
        }
        assert_eq!(output.len(), input.len());
        // Past the codec's start-up, the tone is back at its level and pitch.
        let tail = &output[3_200..];
        let (level_in, level_out) = (dbfs(&input[3_200..]), dbfs(tail));
        assert!(
            (level_in - level_out).abs() < 2.0,
            "{level_in} vs {level_out}"
        );
        assert_eq!(dominant_hz(tail, 16_000), 440.0);
    }

    #[test]
    fn a_packet_decodes_at_any_opus_rate() {
        let mut enc = OpusEncoder::new(24_000, 60).unwrap();
        let packets: Vec<_> = tone(24_000, 440.0, 600, 8_000.0)
            .chunks_exact(1_440)
            .map(|f| enc.encode(f).unwrap())
            .collect();
        for rate in SAMPLE_RATES {
            let mut dec = OpusDecoder::new(rate).unwrap();
            for p in &packets {
                assert_eq!(dec.decode(p).unwrap().len(), (rate * 60 / 1000) as usize);
            }
        }
    }

    #[test]
    fn silence_with_dtx_gives_tiny_packets_that_still_decode_to_a_frame() {
        let mut enc = OpusEncoder::new(16_000, 60).unwrap();
        enc.set_dtx(true);
        let mut dec = OpusDecoder::new(16_000).unwrap();
        let mut sizes = Vec::new();
        for _ in 0..20 {
            let packet = enc.encode(&[0; 960]).unwrap();
            sizes.push(packet.len());
            let pcm = dec.decode(&packet).unwrap();
            assert_eq!(pcm.len(), 960);
            assert!(dbfs(&pcm) < -60.0);
        }
        // After a few frames, 1-byte packets, with a comfort-noise update
        // every 400 ms (as libopus does).
        let tiny = sizes[3..].iter().filter(|&&n| n <= 2).count();
        assert!(tiny >= 13, "{sizes:?}");
    }

    #[test]
    fn an_empty_packet_conceals_one_packet_of_the_last_duration() {
        let mut dec = OpusDecoder::new(16_000).unwrap();
        // Before any packet: 60 ms, the xiaozhi frame.
        assert_eq!(dec.decode(&[]).unwrap().len(), 960);
        let mut enc = OpusEncoder::new(16_000, 20).unwrap();
        let packet = enc.encode(&tone(16_000, 300.0, 20, 5_000.0)).unwrap();
        assert_eq!(dec.decode(&packet).unwrap().len(), 320);
        assert_eq!(dec.decode(&[]).unwrap().len(), 320);
        // Concealment fades out to silence.
        let mut last = Vec::new();
        for _ in 0..20 {
            last = dec.decode(&[]).unwrap();
        }
        assert!(dbfs(&last) < -60.0);
    }

    #[test]
    fn tiny_and_garbage_packets_never_panic_and_bad_ones_are_errors() {
        let mut dec = OpusDecoder::new(16_000).unwrap();
        // Code 3 (a frame count follows) with nothing after the TOC byte.
        assert!(matches!(dec.decode(&[0x03]), Err(AudioError::Corrupt(_))));
        // Code 3 with a frame count of 0, and a count of 63 x 60 ms.
        assert!(dec.decode(&[0x03, 0x00]).is_err());
        assert!(dec.decode(&[0xfb, 0x3f]).is_err());
        // Code 2 whose first frame length runs past the end.
        assert!(dec.decode(&[0x02, 0xfc, 0xff]).is_err());
        // Every 1- and 2-byte packet: decoded or refused, never a panic.
        for a in 0..=255u8 {
            let _ = dec.decode(&[a]);
            for b in [0u8, 1, 0x7f, 0xfc, 0xff] {
                let _ = dec.decode(&[a, b]);
            }
        }
        // And the decoder still works after all that.
        let mut enc = OpusEncoder::new(16_000, 60).unwrap();
        let packet = enc.encode(&[0; 960]).unwrap();
        assert_eq!(dec.decode(&packet).unwrap().len(), 960);
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            packets in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..400), 1..8),
        ) {
            let mut dec = OpusDecoder::new(16_000).unwrap();
            for p in &packets {
                if let Ok(pcm) = dec.decode(p) {
                    proptest::prop_assert!(pcm.len() <= 1_920);
                }
            }
        }
    }

    #[test]
    fn the_packetizer_turns_16k_pcm_into_60_ms_packets_at_24k() {
        let mut p = Packetizer::new(24_000, 60).unwrap();
        let input = tone(16_000, 440.0, 1_000, 8_000.0);
        let mut packets = Vec::new();
        // Pieces of odd sizes, as a TTS stream delivers them.
        for piece in input.chunks(777) {
            packets.extend(p.push(piece, 16_000).unwrap());
        }
        packets.extend(p.flush().unwrap());
        // 1 s is 16.7 frames: 17, plus none or one for the look-ahead.
        assert!((17..=18).contains(&packets.len()), "{}", packets.len());
        let mut dec = OpusDecoder::new(24_000).unwrap();
        let mut out = Vec::new();
        for packet in &packets {
            let pcm = dec.decode(packet).unwrap();
            assert_eq!(pcm.len(), 1_440);
            out.extend(pcm);
        }
        // The tone, resampled, at its pitch and level.
        let middle = &out[4_800..19_200];
        assert_eq!(dominant_hz(middle, 24_000), 440.0);
        assert!((dbfs(middle) - dbfs(&input)).abs() < 2.0);
    }

    #[test]
    fn the_resampler_gives_exactly_the_output_the_input_is_worth() {
        for (from, to, n) in [
            (16_000, 24_000, 16_000),
            (22_050, 24_000, 12_345),
            (24_000, 16_000, 7),
            (44_100, 48_000, 44_100),
            (8_000, 24_000, 1),
        ] {
            let mut r = StreamResampler::new(from, to).unwrap();
            let mut out = Vec::new();
            let input = tone(from, 300.0, n * 1000 / from, 8_000.0);
            let input = if input.is_empty() {
                vec![100; n as usize]
            } else {
                input
            };
            for piece in input.chunks(333) {
                r.push(piece, &mut out).unwrap();
            }
            r.finish(&mut out).unwrap();
            let expected =
                (input.len() as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from);
            assert_eq!(out.len() as u64, expected, "{from} -> {to}");
        }
    }

    #[test]
    fn the_resampled_tone_is_not_delayed() {
        // A click at 100 ms comes out at 100 ms, give or take the filter.
        let mut r = StreamResampler::new(16_000, 24_000).unwrap();
        let mut input = vec![0i16; 3_200];
        input[1_600] = 20_000;
        let mut out = Vec::new();
        r.push(&input, &mut out).unwrap();
        r.finish(&mut out).unwrap();
        let peak = out
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| s.unsigned_abs())
            .map(|(i, _)| i)
            .unwrap();
        assert!((2_398..=2_402).contains(&peak), "{peak}");
    }

    #[test]
    fn a_change_of_input_rate_keeps_the_audio_in_order() {
        let mut p = Packetizer::new(24_000, 60).unwrap();
        let mut samples = 0usize;
        let mut packets = p.push(&tone(16_000, 440.0, 500, 8_000.0), 16_000).unwrap();
        packets.extend(p.push(&tone(24_000, 440.0, 500, 8_000.0), 24_000).unwrap());
        packets.extend(p.push(&tone(48_000, 440.0, 500, 8_000.0), 48_000).unwrap());
        packets.extend(p.flush().unwrap());
        let mut dec = OpusDecoder::new(24_000).unwrap();
        for packet in &packets {
            samples += dec.decode(packet).unwrap().len();
        }
        // 1.5 s = 25 frames, plus none or one for the look-ahead.
        assert!((25 * 1_440..=26 * 1_440).contains(&samples), "{samples}");
    }

    #[test]
    fn flush_pads_the_last_frame_and_starts_a_new_stream() {
        let mut p = Packetizer::new(24_000, 60).unwrap();
        assert!(p.flush().unwrap().is_empty(), "no audio, no packets");
        assert!(p.push(&[1_000; 100], 24_000).unwrap().is_empty());
        assert_eq!(p.pending_samples(), 100);
        let last = p.flush().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(p.pending_samples(), 0);
        // Exactly one frame: the look-ahead spills into a second one.
        let packets = p.push(&[0; 1_440], 24_000).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(p.flush().unwrap().len(), 1);
        // A reset drops what was pending.
        p.push(&[5; 1_000], 24_000).unwrap();
        p.reset().unwrap();
        assert!(p.flush().unwrap().is_empty());
        assert!(p.push(&[0; 10], 7_000).is_err());
    }
}
