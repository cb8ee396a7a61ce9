//! Speech ports: text to speech ([`Tts`]), speech recognition of a whole
//! clip ([`Asr`]) and while it is spoken ([`StreamingAsr`], with
//! [`BufferedAsr`] over any one-shot recognizer), the audio formats they
//! exchange, and the WAV container (RIFF/PCM) that lty reads and writes
//! itself.
//!
//! Adapters (huoshan, aliyun, tencent, local espeak-ng) live in
//! `lty-vendors` and the server; one of each is chosen at start-up.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Error, Result};

/// An audio encoding handed to or returned by a speech provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// RIFF/WAVE with 16-bit PCM.
    Wav,
    /// MPEG-1/2 Layer III.
    Mp3,
    /// Raw signed 16-bit little-endian PCM, mono.
    Pcm,
}

impl AudioFormat {
    /// Parses a client's format name (`wav`, `mp3`, `pcm`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wav" => Ok(Self::Wav),
            "mp3" => Ok(Self::Mp3),
            "pcm" => Ok(Self::Pcm),
            _ => Err(Error::validation("format", "must be one of wav, mp3, pcm")),
        }
    }

    /// The name clients and vendors use, also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Mp3 => "mp3",
            Self::Pcm => "pcm",
        }
    }

    /// The MIME type the object is stored and served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Mp3 => "audio/mpeg",
            Self::Pcm => "application/octet-stream",
        }
    }
}

/// What to synthesize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsRequest {
    /// The text, already validated (non-empty, within the length limit).
    pub text: String,
    /// A provider-specific voice; `None` means the configured default.
    pub voice: Option<String>,
    /// The encoding the caller asked for; a provider that cannot produce it
    /// answers with another one and says so in [`Synthesis::format`].
    pub format: AudioFormat,
}

/// Synthesized speech.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthesis {
    pub audio: Bytes,
    pub format: AudioFormat,
    /// Playing time in milliseconds (0 when the provider does not say and
    /// the encoding cannot be measured).
    pub duration_ms: u64,
}

impl Synthesis {
    /// The synthesis of pieces joined in `audio`: MP3 frames and PCM join
    /// byte-wise; `Wav` (asked of the provider as PCM at `sample_rate`, mono)
    /// gets one header over every piece.
    pub fn joined(audio: Vec<u8>, format: AudioFormat, sample_rate: u32, duration_ms: u64) -> Self {
        let audio = match format {
            AudioFormat::Wav => wav_from_pcm16(&audio, sample_rate, 1),
            _ => Bytes::from(audio),
        };
        Self {
            audio,
            format,
            duration_ms,
        }
    }
}

/// Text to speech.
#[async_trait]
pub trait Tts: Send + Sync {
    /// The provider's name (`huoshan`, `aliyun`, `tencent`, `local`), for
    /// error details, logs and cache keys.
    fn provider(&self) -> &'static str;
    /// Synthesizes `req`.
    async fn synthesize(&self, req: &TtsRequest) -> Result<Synthesis>;
}

/// Audio to recognize: 16 kHz, 16-bit, mono PCM (what every provider takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm16k {
    /// Signed 16-bit little-endian samples.
    pub samples: Bytes,
}

impl Pcm16k {
    /// Sample rate of every recognition input.
    pub const SAMPLE_RATE: u32 = 16_000;

    /// Playing time in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        (self.samples.len() as u64 / 2) * 1000 / u64::from(Self::SAMPLE_RATE)
    }
}

/// Recognized speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// 0..1 when the provider reports one.
    pub confidence: Option<f32>,
}

/// Speech recognition of one short utterance.
#[async_trait]
pub trait Asr: Send + Sync {
    /// The provider's name.
    fn provider(&self) -> &'static str;
    /// Recognizes `audio`.
    async fn recognize(&self, audio: &Pcm16k) -> Result<Transcript>;
}

/// Streaming speech recognition: the audio goes to the provider while it is
/// spoken, so the final transcript arrives right after the end of speech.
#[async_trait]
pub trait StreamingAsr: Send + Sync {
    /// The provider's name.
    fn provider(&self) -> &'static str;
    /// Opens a recognition session for 16 kHz mono 16-bit PCM.
    async fn open(&self) -> Result<Box<dyn AsrSession>>;
}

/// One utterance being recognized. Dropping a session without
/// [`finish`](AsrSession::finish) cancels it and closes the provider
/// connection.
#[async_trait]
pub trait AsrSession: Send {
    /// Sends more audio (any length; the session packs it as the provider wants).
    async fn push(&mut self, pcm: &[i16]) -> Result<()>;
    /// Ends the utterance and waits for the final transcript.
    async fn finish(self: Box<Self>) -> Result<Transcript>;
}

/// Appends `samples` to `out` as signed 16-bit little-endian bytes (the
/// layout of [`Pcm16k::samples`]).
pub fn extend_pcm16le(out: &mut Vec<u8>, samples: &[i16]) {
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// [`StreamingAsr`] over a one-shot [`Asr`], for providers without a
/// streaming protocol: a session collects the PCM and recognizes it all on
/// [`finish`](AsrSession::finish). Nothing reaches the provider before then,
/// so this saves no latency; it lets callers use one interface everywhere.
pub struct BufferedAsr {
    asr: Arc<dyn Asr>,
    max_ms: u64,
}

impl std::fmt::Debug for BufferedAsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedAsr")
            .field("provider", &self.asr.provider())
            .field("max_ms", &self.max_ms)
            .finish()
    }
}

impl BufferedAsr {
    /// Buffers for `asr`, refusing sessions longer than `max_ms` of audio.
    pub fn new(asr: Arc<dyn Asr>, max_ms: u64) -> Self {
        Self { asr, max_ms }
    }
}

#[async_trait]
impl StreamingAsr for BufferedAsr {
    fn provider(&self) -> &'static str {
        self.asr.provider()
    }

    async fn open(&self) -> Result<Box<dyn AsrSession>> {
        Ok(Box::new(BufferedSession {
            asr: self.asr.clone(),
            max_bytes: usize::try_from(self.max_ms * u64::from(Pcm16k::SAMPLE_RATE) / 1000 * 2)
                .unwrap_or(usize::MAX),
            max_ms: self.max_ms,
            samples: Vec::new(),
        }))
    }
}

/// A [`BufferedAsr`] session: the PCM so far.
struct BufferedSession {
    asr: Arc<dyn Asr>,
    max_bytes: usize,
    max_ms: u64,
    samples: Vec<u8>,
}

#[async_trait]
impl AsrSession for BufferedSession {
    async fn push(&mut self, pcm: &[i16]) -> Result<()> {
        if self.samples.len() + pcm.len() * 2 > self.max_bytes {
            return Err(Error::validation(
                "audio",
                format!("at most {} ms of audio per utterance", self.max_ms),
            ));
        }
        extend_pcm16le(&mut self.samples, pcm);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<Transcript> {
        let audio = Pcm16k {
            samples: Bytes::from(self.samples),
        };
        self.asr.recognize(&audio).await
    }
}

/// The `fmt ` facts of a WAV file and where its samples are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavInfo {
    /// 1 = integer PCM.
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// Byte range of the `data` chunk within the file.
    pub data: std::ops::Range<usize>,
}

impl WavInfo {
    /// Playing time in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        let frame = u64::from(self.channels) * u64::from(self.bits_per_sample / 8);
        if frame == 0 || self.sample_rate == 0 {
            return 0;
        }
        (self.data.len() as u64 / frame) * 1000 / u64::from(self.sample_rate)
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a RIFF/WAVE header. A `data` chunk whose declared size runs past
/// the end (what streaming writers such as `espeak-ng --stdout` emit) is
/// clamped to the bytes present.
pub fn parse_wav(bytes: &[u8]) -> Option<WavInfo> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut fmt = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(bytes, at + 4)? as usize;
        let body = at + 8;
        if id == b"fmt " {
            fmt = Some((
                u16_at(bytes, body)?,
                u16_at(bytes, body + 2)?,
                u32_at(bytes, body + 4)?,
                u16_at(bytes, body + 14)?,
            ));
        } else if id == b"data" {
            let (format_tag, channels, sample_rate, bits_per_sample) = fmt?;
            let end = body.saturating_add(size).min(bytes.len());
            return Some(WavInfo {
                format_tag,
                channels,
                sample_rate,
                bits_per_sample,
                data: body..end,
            });
        }
        // Chunks are padded to an even length.
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// A canonical 44-byte-header WAV file around 16-bit PCM `samples`.
pub fn wav_from_pcm16(samples: &[u8], sample_rate: u32, channels: u16) -> Bytes {
    let data_len = samples.len() as u32;
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44 + samples.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(samples);
    Bytes::from(out)
}

/// Splits `text` into pieces of at most `max_chars` characters, cutting
/// after sentence punctuation where possible, then after commas, then at
/// whitespace, and only then inside a run of characters.
pub fn split_sentences(text: &str, max_chars: usize) -> Vec<String> {
    const SENTENCE: &[char] = &['。', '！', '？', '!', '?', '；', ';', '.', '\n'];
    const CLAUSE: &[char] = &['，', ',', '、', '：', ':'];
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest: Vec<char> = text.trim().chars().collect();
    while rest.len() > max_chars {
        let window = &rest[..max_chars];
        let cut_after = |set: &dyn Fn(char) -> bool| window.iter().rposition(|c| set(*c));
        let cut = cut_after(&|c| SENTENCE.contains(&c))
            .or_else(|| cut_after(&|c| CLAUSE.contains(&c)))
            .or_else(|| cut_after(&char::is_whitespace))
            .map_or(max_chars, |i| i + 1);
        let piece: String = rest[..cut].iter().collect();
        if !piece.trim().is_empty() {
            pieces.push(piece.trim().to_owned());
        }
        rest.drain(..cut);
    }
    let last: String = rest.iter().collect();
    if !last.trim().is_empty() {
        pieces.push(last.trim().to_owned());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_wav_parses_back_with_its_duration() {
        let samples = vec![0u8; 32_000];
        let wav = wav_from_pcm16(&samples, 16_000, 1);
        let info = parse_wav(&wav).unwrap();
        assert_eq!(info.format_tag, 1);
        assert_eq!((info.channels, info.sample_rate), (1, 16_000));
        assert_eq!(info.bits_per_sample, 16);
        assert_eq!(info.data, 44..44 + 32_000);
        assert_eq!(info.duration_ms(), 1000);
    }

    #[test]
    fn a_streaming_header_with_an_oversized_data_chunk_is_clamped() {
        let mut wav = wav_from_pcm16(&[1, 0, 2, 0], 22_050, 1).to_vec();
        wav[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        assert_eq!(parse_wav(&wav).unwrap().data, 44..48);
    }

    #[test]
    fn non_wav_and_truncated_input_is_refused() {
        assert!(parse_wav(b"ID3\x03rest").is_none());
        assert!(parse_wav(b"RIFF\0\0\0\0WAVE").is_none());
        assert!(parse_wav(&wav_from_pcm16(&[0; 4], 16_000, 1)[..30]).is_none());
    }

    #[test]
    fn long_text_is_split_after_sentence_punctuation_under_the_limit() {
        let text = "今天天气很好。我们去公园玩吧！好不好？";
        let pieces = split_sentences(text, 10);
        assert_eq!(
            pieces,
            vec!["今天天气很好。", "我们去公园玩吧！", "好不好？"]
        );
        for p in split_sentences(&"字".repeat(25), 10) {
            assert!(p.chars().count() <= 10);
        }
        assert_eq!(split_sentences("short", 10), vec!["short"]);
        assert_eq!(
            split_sentences("one two three", 8),
            vec!["one two", "three"]
        );
    }

    /// A recognizer that answers with the number of samples it got.
    struct Counting;

    #[async_trait]
    impl Asr for Counting {
        fn provider(&self) -> &'static str {
            "counting"
        }

        async fn recognize(&self, audio: &Pcm16k) -> Result<Transcript> {
            Ok(Transcript {
                text: format!("{:?}", &audio.samples[..]),
                confidence: None,
            })
        }
    }

    #[tokio::test]
    async fn a_buffered_session_recognizes_every_pushed_sample_in_order_on_finish() {
        let asr = BufferedAsr::new(Arc::new(Counting), 1000);
        assert_eq!(asr.provider(), "counting");
        let mut session = asr.open().await.unwrap();
        session.push(&[1, -2]).await.unwrap();
        session.push(&[]).await.unwrap();
        session.push(&[0x0304]).await.unwrap();
        let t = session.finish().await.unwrap();
        assert_eq!(t.text, format!("{:?}", [1u8, 0, 0xfe, 0xff, 4, 3]));
    }

    #[tokio::test]
    async fn a_buffered_session_refuses_audio_past_its_limit() {
        // 10 ms at 16 kHz is 160 samples.
        let asr = BufferedAsr::new(Arc::new(Counting), 10);
        let mut session = asr.open().await.unwrap();
        session.push(&[0; 160]).await.unwrap();
        let err = session.push(&[0]).await.unwrap_err();
        assert_eq!(err.code(), "validation_error");
    }

    #[test]
    fn format_names_parse_case_insensitively() {
        assert_eq!(AudioFormat::parse("WAV").unwrap(), AudioFormat::Wav);
        assert!(AudioFormat::parse("ogg").is_err());
    }
}
