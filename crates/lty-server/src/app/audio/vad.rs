//! Energy-based voice activity detection over 16 kHz mono PCM, the decoded
//! uplink of a device in auto or realtime listening mode: it tells when an
//! utterance starts and when it has ended.
//!
//! A frame's level is measured in 10 ms blocks, each with its mean removed
//! (so a DC offset reads as silence), and the frame takes the median block
//! level (so a click, which fills one or two blocks, does not make a quiet
//! frame loud: more than half of its blocks must be). A frame is voiced
//! when that level reaches [`VadConfig::threshold_dbfs`]. Hysteresis in time: speech starts after
//! [`VadConfig::speech_start_ms`] of consecutive voiced audio and ends after
//! [`VadConfig::end_silence_ms`] of consecutive unvoiced audio.

/// The sample rate the VAD counts time at.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in one measuring block (10 ms).
const BLOCK: usize = (SAMPLE_RATE / 100) as usize;

/// Thresholds of a [`Vad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// The level (RMS, dB relative to full scale) at which a frame counts
    /// as voiced. Default −40 dBFS.
    pub threshold_dbfs: f32,
    /// Voiced audio needed, without a break, before speech starts. Default
    /// 120 ms (two 60 ms frames).
    pub speech_start_ms: u32,
    /// Unvoiced audio needed, without a break, before speech ends. Default
    /// 600 ms.
    pub end_silence_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold_dbfs: -40.0,
            speech_start_ms: 120,
            end_silence_ms: 600,
        }
    }
}

/// What a frame changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Nothing: still in speech, or still not.
    None,
    /// Speech started with this frame. It began `speech_start_ms` earlier,
    /// so a caller that wants the onset keeps that much audio from before.
    SpeechStarted,
    /// Speech ended with this frame, after `end_silence_ms` of quiet.
    SpeechEnded,
}

/// A voice activity detector for one audio stream.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    in_speech: bool,
    /// Consecutive voiced samples while not in speech.
    voiced_run: u64,
    /// Consecutive unvoiced samples while in speech.
    silent_run: u64,
}

impl Default for Vad {
    fn default() -> Self {
        Self::new(VadConfig::default())
    }
}

/// Samples at 16 kHz in `ms`.
fn samples(ms: u32) -> u64 {
    u64::from(ms) * u64::from(SAMPLE_RATE) / 1000
}

/// The RMS level in dBFS of `block` around its own mean; −120 for silence.
fn block_dbfs(block: &[i16]) -> f32 {
    let n = block.len().max(1) as f64;
    let mean = block.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let power = block
        .iter()
        .map(|&s| (f64::from(s) - mean).powi(2))
        .sum::<f64>()
        / n;
    let rms = power.sqrt() / 32_768.0;
    if rms <= 1e-6 {
        -120.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

/// The level of a frame as the VAD sees it: the median of its 10 ms block
/// levels (the lower middle one for an even count, so more than half the
/// frame must be loud), each block's DC offset removed. An empty frame is
/// −120 dBFS.
pub fn frame_level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -120.0;
    }
    // A short tail block is folded into the one before, so every block
    // holds at least 10 ms.
    let full = (frame.len() / BLOCK).max(1);
    let mut levels: Vec<f32> = (0..full)
        .map(|i| {
            let end = if i + 1 == full {
                frame.len()
            } else {
                (i + 1) * BLOCK
            };
            block_dbfs(&frame[i * BLOCK..end])
        })
        .collect();
    levels.sort_by(|a, b| b.total_cmp(a));
    levels[levels.len() / 2]
}

impl Vad {
    /// A detector in silence.
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            in_speech: false,
            voiced_run: 0,
            silent_run: 0,
        }
    }

    /// The thresholds.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Whether speech has started and not yet ended.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Back to silence, forgetting the frames seen (a new utterance).
    pub fn reset(&mut self) {
        self.in_speech = false;
        self.voiced_run = 0;
        self.silent_run = 0;
    }

    /// Takes the next frame of 16 kHz mono PCM (any length; the xiaozhi
    /// uplink gives 960 samples, 60 ms) and says whether speech started or
    /// ended with it.
    pub fn push(&mut self, frame: &[i16]) -> VadEvent {
        let len = frame.len() as u64;
        if len == 0 {
            return VadEvent::None;
        }
        let voiced = frame_level_dbfs(frame) >= self.config.threshold_dbfs;
        if self.in_speech {
            self.silent_run = if voiced { 0 } else { self.silent_run + len };
            if self.silent_run >= samples(self.config.end_silence_ms) && !voiced {
                self.in_speech = false;
                self.voiced_run = 0;
                return VadEvent::SpeechEnded;
            }
        } else {
            self.voiced_run = if voiced { self.voiced_run + len } else { 0 };
            if voiced && self.voiced_run >= samples(self.config.speech_start_ms) {
                self.in_speech = true;
                self.silent_run = 0;
                return VadEvent::SpeechStarted;
            }
        }
        VadEvent::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 960;

    /// `frames` frames of a 300 Hz tone at `dbfs` (RMS), plus `dc`.
    fn tone(frames: usize, dbfs: f32, dc: i16) -> Vec<i16> {
        let amplitude = 32_768.0 * 10f32.powf(dbfs / 20.0) * std::f32::consts::SQRT_2;
        (0..frames * FRAME)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                ((t * 300.0 * std::f32::consts::TAU).sin() * amplitude) as i16 + dc
            })
            .collect()
    }

    /// Uniform white noise at about `dbfs` (RMS), from a fixed seed.
    fn noise(frames: usize, dbfs: f32) -> Vec<i16> {
        let amplitude = 32_768.0 * 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..frames * FRAME)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f32 / (1u64 << 53) as f32;
                ((u * 2.0 - 1.0) * amplitude) as i16
            })
            .collect()
    }

    /// The events of pushing `pcm` in 60 ms frames, with their frame index.
    fn events(vad: &mut Vad, pcm: &[i16]) -> Vec<(usize, VadEvent)> {
        pcm.chunks(FRAME)
            .enumerate()
            .map(|(i, f)| (i, vad.push(f)))
            .filter(|(_, e)| *e != VadEvent::None)
            .collect()
    }

    #[test]
    fn the_level_of_a_tone_is_its_rms_in_dbfs() {
        let level = frame_level_dbfs(&tone(1, -20.0, 0));
        assert!((level + 20.0).abs() < 0.2, "{level}");
        assert_eq!(frame_level_dbfs(&[0; FRAME]), -120.0);
        assert_eq!(frame_level_dbfs(&[]), -120.0);
        // Short frames are measured too.
        let level = frame_level_dbfs(&tone(1, -30.0, 0)[..100]);
        assert!((level + 30.0).abs() < 1.5, "{level}");
    }

    #[test]
    fn a_tone_between_silences_starts_and_ends_speech_once() {
        let mut pcm = vec![0i16; 5 * FRAME];
        pcm.extend(tone(25, -20.0, 0)); // 1.5 s
        pcm.extend(vec![0i16; 25 * FRAME]);
        let mut vad = Vad::default();
        // Frames 5 and 6 are voiced: speech starts with the second (120 ms).
        // The tone ends after frame 29; ten silent frames (600 ms) end it.
        assert_eq!(
            events(&mut vad, &pcm),
            vec![(6, VadEvent::SpeechStarted), (39, VadEvent::SpeechEnded)]
        );
        assert!(!vad.in_speech());
    }

    #[test]
    fn a_pause_shorter_than_the_end_silence_does_not_end_speech() {
        let mut pcm = tone(10, -25.0, 0);
        pcm.extend(vec![0i16; 9 * FRAME]); // 540 ms
        pcm.extend(tone(10, -25.0, 0));
        let mut vad = Vad::default();
        let got = events(&mut vad, &pcm);
        assert_eq!(got, vec![(1, VadEvent::SpeechStarted)]);
        assert!(vad.in_speech());
    }

    #[test]
    fn one_voiced_frame_is_too_short_to_start_speech() {
        let mut pcm = vec![0i16; 3 * FRAME];
        pcm.extend(tone(1, -10.0, 0));
        pcm.extend(vec![0i16; 3 * FRAME]);
        pcm.extend(tone(1, -10.0, 0));
        let mut vad = Vad::default();
        assert!(events(&mut vad, &pcm).is_empty());
    }

    #[test]
    fn quiet_noise_is_silence_and_loud_noise_is_voice() {
        let mut vad = Vad::default();
        assert!(events(&mut vad, &noise(30, -55.0)).is_empty());
        let got = events(&mut vad, &noise(10, -25.0));
        assert_eq!(got, vec![(1, VadEvent::SpeechStarted)]);
        // Back to the quiet noise floor: speech ends after 600 ms.
        let got = events(&mut vad, &noise(20, -55.0));
        assert_eq!(got, vec![(9, VadEvent::SpeechEnded)]);
    }

    #[test]
    fn a_dc_offset_is_not_voice() {
        let mut vad = Vad::default();
        // A large constant offset with faint noise on top.
        let pcm: Vec<i16> = noise(30, -60.0).iter().map(|s| s + 8_000).collect();
        assert!(events(&mut vad, &pcm).is_empty());
        // The same offset under a tone: speech is found as without it.
        let mut pcm = tone(10, -25.0, 8_000);
        pcm.extend(vec![8_000i16; 12 * FRAME]);
        assert_eq!(
            events(&mut vad, &pcm),
            vec![(1, VadEvent::SpeechStarted), (19, VadEvent::SpeechEnded)]
        );
    }

    #[test]
    fn clicks_in_silence_are_not_voice() {
        let mut vad = Vad::default();
        // A full-scale click in every frame, and a 5 ms burst in some.
        let mut pcm = vec![0i16; 40 * FRAME];
        for f in 0..40 {
            pcm[f * FRAME + 500] = i16::MAX;
            pcm[f * FRAME + 501] = i16::MIN;
            if f % 3 == 0 {
                for s in &mut pcm[f * FRAME + 100..f * FRAME + 180] {
                    *s = 20_000;
                }
            }
        }
        assert!(events(&mut vad, &pcm).is_empty());
        // Nor do they keep speech going once it has started.
        let mut speech = tone(5, -20.0, 0);
        speech.extend_from_slice(&pcm[..20 * FRAME]);
        let got = events(&mut vad, &speech);
        assert_eq!(
            got,
            vec![(1, VadEvent::SpeechStarted), (14, VadEvent::SpeechEnded)]
        );
    }

    #[test]
    fn thresholds_come_from_the_config() {
        let config = VadConfig {
            threshold_dbfs: -20.0,
            speech_start_ms: 60,
            end_silence_ms: 180,
        };
        let mut vad = Vad::new(config);
        assert_eq!(vad.config(), &config);
        // −25 dBFS is below this threshold.
        assert!(events(&mut vad, &tone(5, -25.0, 0)).is_empty());
        let mut pcm = tone(2, -15.0, 0);
        pcm.extend(vec![0i16; 4 * FRAME]);
        assert_eq!(
            events(&mut vad, &pcm),
            vec![(0, VadEvent::SpeechStarted), (4, VadEvent::SpeechEnded)]
        );
    }

    #[test]
    fn time_is_counted_in_samples_whatever_the_frame_length() {
        let mut vad = Vad::default();
        // 20 ms frames: speech starts on the sixth voiced one (120 ms).
        let pcm = tone(2, -20.0, 0);
        let got: Vec<_> = pcm
            .chunks(320)
            .enumerate()
            .map(|(i, f)| (i, vad.push(f)))
            .filter(|(_, e)| *e != VadEvent::None)
            .collect();
        assert_eq!(got, vec![(5, VadEvent::SpeechStarted)]);
        assert_eq!(vad.push(&[]), VadEvent::None);
        vad.reset();
        assert!(!vad.in_speech());
    }
}
