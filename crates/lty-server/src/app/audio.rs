//! Decoding of uploaded audio into what the speech recognizers take:
//! [`Pcm16k`], 16 kHz, 16-bit, mono.
//!
//! Accepted inputs, told apart by their first bytes:
//!
//! | input | detected by | decoded with |
//! |---|---|---|
//! | WAV (integer or float PCM, any rate, any channel count) | `RIFF....WAVE` | as is when already 16 kHz 16-bit mono, else `symphonia` |
//! | raw PCM, 16 kHz, 16-bit little-endian, mono | the declared content type (`audio/pcm`, `audio/L16`, …) | as is |
//! | MP3 | an `ID3` tag or an MPEG audio frame sync | `symphonia` |
//! | Ogg/Opus | `OggS` whose first packet is `OpusHead` | the demuxer below and [`opus::OpusDecoder`] |
//!
//! Other rates are resampled with `rubato`, several channels are averaged.
//! Decoding is bounded: the duration the container declares is checked
//! before decoding, and decoding stops as soon as the samples pass the limit.
//!
//! The device voice channel's building blocks live in submodules: [`opus`]
//! (packet encoder, decoder and packetizer) and [`vad`] (voice activity).

pub mod opus;
pub mod vad;

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use lty_core::speech::{Pcm16k, parse_wav};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Lowest and highest input sample rates accepted.
const MIN_RATE: u32 = 8_000;
const MAX_RATE: u32 = 192_000;
/// Most channels accepted in one input.
const MAX_CHANNELS: usize = 8;

/// Why an upload could not be turned into [`Pcm16k`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// Nothing was sent.
    #[error("the upload is empty")]
    Empty,
    /// Not one of the accepted formats, or a variant of one that cannot be
    /// decoded (e.g. Ogg Vorbis, ADPCM WAV).
    #[error("{0}")]
    Unsupported(String),
    /// A recognized format whose data is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// Longer than the limit.
    #[error("at most {max_seconds} seconds of audio")]
    TooLong {
        /// The limit in seconds.
        max_seconds: u64,
    },
}

/// The container of an upload, from its first bytes (and, for raw PCM,
/// its declared content type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// RIFF/WAVE.
    Wav,
    /// Raw 16 kHz 16-bit little-endian mono samples.
    Pcm,
    /// MPEG audio (an ID3v2 tag or a frame sync first).
    Mp3,
    /// Ogg whose first packet is an `OpusHead`.
    OggOpus,
    /// Ogg with a Vorbis (or other) stream.
    OggOther,
    /// Anything else.
    Unknown,
}

/// Whether a content type names raw 16-bit PCM.
pub fn is_pcm_type(content_type: &str) -> bool {
    let ct = content_type.trim().to_ascii_lowercase();
    ["audio/pcm", "audio/l16", "audio/x-pcm", "audio/raw"]
        .iter()
        .any(|t| ct.starts_with(t))
}

/// Tells the container of `data`. A RIFF/WAVE header wins over the
/// declared type; otherwise a raw PCM type is trusted, since samples may
/// start with any bytes.
pub fn detect(data: &[u8], content_type: &str) -> Container {
    if data.len() >= 12 && data.starts_with(b"RIFF") && &data[8..12] == b"WAVE" {
        Container::Wav
    } else if is_pcm_type(content_type) {
        Container::Pcm
    } else if data.starts_with(b"ID3") || is_mpeg_sync(data) {
        Container::Mp3
    } else if data.starts_with(b"OggS") {
        let first = OggPages::new(data).next().and_then(Result::ok);
        match first {
            Some(page) if page.body.starts_with(b"OpusHead") => Container::OggOpus,
            _ => Container::OggOther,
        }
    } else {
        Container::Unknown
    }
}

/// An MPEG audio frame header: 11 sync bits, a known version, layer I–III.
fn is_mpeg_sync(data: &[u8]) -> bool {
    match data {
        [0xff, b1, ..] => b1 & 0xe0 == 0xe0 && b1 & 0x18 != 0x08 && b1 & 0x06 != 0,
        _ => false,
    }
}

/// Decodes an upload into 16 kHz 16-bit mono PCM of at most `max_seconds`.
pub fn decode(data: Bytes, content_type: &str, max_seconds: u64) -> Result<Pcm16k, AudioError> {
    if data.is_empty() {
        return Err(AudioError::Empty);
    }
    let container = detect(&data, content_type);
    let too_long = || AudioError::TooLong { max_seconds };
    let pcm = match container {
        Container::Pcm => pcm16(data)?,
        Container::Wav => {
            let info = parse_wav(&data)
                .ok_or_else(|| AudioError::Unsupported("not a readable WAV file".into()))?;
            if info.duration_ms() > max_seconds.saturating_mul(1000) {
                return Err(too_long());
            }
            if info.format_tag == 1
                && info.bits_per_sample == 16
                && info.channels == 1
                && info.sample_rate == Pcm16k::SAMPLE_RATE
            {
                pcm16(data.slice(info.data))?
            } else {
                guarded(|| decode_symphonia(data, "wav", max_seconds))?
            }
        }
        Container::Mp3 => guarded(|| decode_symphonia(data, "mp3", max_seconds))?,
        Container::OggOpus => guarded(|| decode_ogg_opus(&data, max_seconds))?,
        Container::OggOther => {
            return Err(AudioError::Unsupported(
                "this Ogg file does not start with an Opus stream (Ogg Vorbis is not accepted)"
                    .into(),
            ));
        }
        Container::Unknown => return Err(AudioError::Unsupported("unrecognized audio".into())),
    };
    if pcm.duration_ms() > max_seconds.saturating_mul(1000) {
        return Err(too_long());
    }
    Ok(pcm)
}

/// Raw samples as they are.
fn pcm16(samples: Bytes) -> Result<Pcm16k, AudioError> {
    if !samples.len().is_multiple_of(2) {
        return Err(AudioError::Corrupt(
            "16-bit PCM has an even number of bytes".into(),
        ));
    }
    Ok(Pcm16k { samples })
}

/// Runs a decoder, turning a panic inside a third-party decoder on hostile
/// input into a rejection of the upload.
fn guarded(f: impl FnOnce() -> Result<Pcm16k, AudioError>) -> Result<Pcm16k, AudioError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(AudioError::Corrupt("the audio could not be decoded".into())))
}

/// Mono samples at some rate, collected under a frame limit.
struct Mono {
    rate: u32,
    samples: Vec<f32>,
    max_frames: usize,
    max_seconds: u64,
}

impl Mono {
    fn new(rate: u32, max_seconds: u64) -> Result<Self, AudioError> {
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(AudioError::Unsupported(format!(
                "a sample rate of {rate} Hz is not accepted ({MIN_RATE}..{MAX_RATE} Hz)"
            )));
        }
        let max_frames =
            usize::try_from(max_seconds.saturating_mul(u64::from(rate))).unwrap_or(usize::MAX);
        Ok(Self {
            rate,
            samples: Vec::new(),
            max_frames,
            max_seconds,
        })
    }

    /// Appends interleaved frames of `channels`, averaged to mono.
    fn push_interleaved(&mut self, frames: &[f32], channels: usize) -> Result<(), AudioError> {
        let channels = channels.max(1);
        let n = frames.len() / channels;
        if self.samples.len().saturating_add(n) > self.max_frames {
            return Err(AudioError::TooLong {
                max_seconds: self.max_seconds,
            });
        }
        if channels == 1 {
            self.samples.extend_from_slice(frames);
        } else {
            let scale = 1.0 / channels as f32;
            self.samples.extend(
                frames
                    .chunks_exact(channels)
                    .map(|f| f.iter().sum::<f32>() * scale),
            );
        }
        Ok(())
    }

    /// Resampled to 16 kHz and quantized to 16-bit.
    fn into_pcm16k(self) -> Result<Pcm16k, AudioError> {
        let samples = resample(self.samples, self.rate)?;
        let mut out = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            let v = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
            out.extend_from_slice(&v.to_le_bytes());
        }
        Ok(Pcm16k {
            samples: Bytes::from(out),
        })
    }
}

/// Mono samples at `rate` resampled to 16 kHz (FFT-based, fixed ratio).
fn resample(samples: Vec<f32>, rate: u32) -> Result<Vec<f32>, AudioError> {
    if rate == Pcm16k::SAMPLE_RATE || samples.is_empty() {
        return Ok(samples);
    }
    let failed = |e: &dyn std::fmt::Display| AudioError::Unsupported(format!("resampling: {e}"));
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        Pcm16k::SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Input,
    )
    .map_err(|e| failed(&e))?;
    let len = samples.len();
    let input = InterleavedSlice::new(&samples[..], 1, len).map_err(|e| failed(&e))?;
    let output = resampler
        .process_all(&input, len, None)
        .map_err(|e| failed(&e))?;
    Ok(output.take_data())
}

/// Decodes WAV or MP3 with symphonia.
fn decode_symphonia(data: Bytes, extension: &str, max_seconds: u64) -> Result<Pcm16k, AudioError> {
    let name = extension.to_ascii_uppercase();
    let unreadable =
        |e: SymphoniaError| AudioError::Unsupported(format!("not a readable {name} file: {e}"));
    let mss = MediaSourceStream::new(Box::new(Cursor::new(data)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(unreadable)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Unsupported(format!("no audio track in the {name} file")))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported(format!("no audio track in the {name} file")))?
        .clone();
    let rate = params
        .sample_rate
        .ok_or_else(|| AudioError::Unsupported(format!("the {name} file has no sample rate")))?;
    // The declared length, when the container has one, before any decoding.
    if let Some(frames) = track.num_frames
        && frames / u64::from(rate.max(1)) >= max_seconds.saturating_add(1)
    {
        return Err(AudioError::TooLong { max_seconds });
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| {
            AudioError::Unsupported(format!("the {name} encoding is not accepted: {e}"))
        })?;
    let mut mono = Mono::new(rate, max_seconds)?;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut decoded_any = false;
    let mut bad_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A truncated file ends where its data ends.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => {
                return Err(AudioError::Corrupt(format!(
                    "the {name} data is damaged: {e}"
                )));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec_rate = buf.spec().rate();
                if spec_rate != rate {
                    return Err(AudioError::Unsupported(format!(
                        "the sample rate changes within the {name} file"
                    )));
                }
                let channels = buf.spec().channels().count();
                if channels == 0 || channels > MAX_CHANNELS {
                    return Err(AudioError::Unsupported(format!(
                        "{channels} channels are not accepted"
                    )));
                }
                interleaved.clear();
                interleaved.resize(buf.samples_interleaved(), 0.0);
                buf.copy_to_slice_interleaved(&mut interleaved);
                mono.push_interleaved(&interleaved, channels)?;
                decoded_any = true;
            }
            // A damaged frame is skipped, as players do; a file of nothing
            // but damaged frames is refused below.
            Err(SymphoniaError::DecodeError(_)) => bad_packets += 1,
            Err(e) => {
                return Err(AudioError::Corrupt(format!(
                    "the {name} data is damaged: {e}"
                )));
            }
        }
    }
    if !decoded_any {
        return Err(AudioError::Corrupt(format!(
            "no decodable audio in the {name} file ({bad_packets} damaged frames)"
        )));
    }
    mono.into_pcm16k()
}

// ---- Ogg/Opus ----

/// One Ogg page.
#[derive(Debug)]
struct OggPage<'a> {
    /// Bit 0: the first packet continues one from the previous page.
    header_type: u8,
    granule: u64,
    serial: u32,
    lacing: &'a [u8],
    body: &'a [u8],
}

/// The pages of an Ogg stream in order, each checked against its CRC.
struct OggPages<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> OggPages<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }
}

const OGG_CRC: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// The Ogg page checksum (CRC-32, polynomial 0x04c11db7, no reflection),
/// with the stored checksum field taken as zero.
fn ogg_crc(page: &[u8]) -> u32 {
    page.iter().enumerate().fold(0u32, |crc, (i, &b)| {
        let b = if (22..26).contains(&i) { 0 } else { b };
        (crc << 8) ^ OGG_CRC[usize::from((crc >> 24) as u8 ^ b)]
    })
}

impl<'a> Iterator for OggPages<'a> {
    type Item = Result<OggPage<'a>, AudioError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let bad = |what: &str| {
            Some(Err(AudioError::Corrupt(format!(
                "the Ogg data is damaged: {what}"
            ))))
        };
        if rest.len() < 27 || !rest.starts_with(b"OggS") || rest[4] != 0 {
            self.at = self.data.len();
            return bad("no page header where one should be");
        }
        let segments = usize::from(rest[26]);
        let lacing_end = 27 + segments;
        let Some(lacing) = rest.get(27..lacing_end) else {
            self.at = self.data.len();
            return bad("truncated page");
        };
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let Some(page) = rest.get(..lacing_end + body_len) else {
            self.at = self.data.len();
            return bad("truncated page");
        };
        let stored = u32::from_le_bytes([rest[22], rest[23], rest[24], rest[25]]);
        if ogg_crc(page) != stored {
            self.at = self.data.len();
            return bad("page checksum mismatch");
        }
        self.at += page.len();
        let mut granule = [0u8; 8];
        granule.copy_from_slice(&rest[6..14]);
        Some(Ok(OggPage {
            header_type: rest[5],
            granule: u64::from_le_bytes(granule),
            serial: u32::from_le_bytes([rest[14], rest[15], rest[16], rest[17]]),
            lacing,
            body: &page[lacing_end..],
        }))
    }
}

/// The packets of the first logical stream of an Ogg file, and the last
/// granule position seen.
fn ogg_packets(data: &[u8]) -> Result<(Vec<Vec<u8>>, u64), AudioError> {
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut serial = None;
    let mut last_granule = 0;
    for page in OggPages::new(data) {
        let page = page?;
        if *serial.get_or_insert(page.serial) != page.serial {
            // Another multiplexed stream: not ours.
            continue;
        }
        if page.header_type & 1 == 0 && !partial.is_empty() {
            // The previous packet never got its end.
            partial.clear();
        }
        let mut at = 0;
        for &l in page.lacing {
            let l = usize::from(l);
            partial.extend_from_slice(&page.body[at..at + l]);
            at += l;
            if l < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        if page.granule != u64::MAX {
            last_granule = page.granule;
        }
    }
    Ok((packets, last_granule))
}

/// Decodes an Ogg/Opus file straight to 16 kHz mono (Opus decodes to any
/// of its rates, so no resampling is needed).
fn decode_ogg_opus(data: &[u8], max_seconds: u64) -> Result<Pcm16k, AudioError> {
    let (packets, last_granule) = ogg_packets(data)?;
    let mut packets = packets.into_iter();
    let head = packets
        .next()
        .filter(|p| p.len() >= 19 && p.starts_with(b"OpusHead"))
        .ok_or_else(|| AudioError::Corrupt("the Ogg/Opus data has no OpusHead".into()))?;
    if head[8] >> 4 != 0 {
        return Err(AudioError::Unsupported(format!(
            "Ogg/Opus version {} is not accepted",
            head[8]
        )));
    }
    let channels = head[9];
    let pre_skip = u64::from(u16::from_le_bytes([head[10], head[11]]));
    let mapping_family = head[18];
    if mapping_family != 0 || !(1..=2).contains(&channels) {
        return Err(AudioError::Unsupported(
            "only mono or stereo Opus is accepted".into(),
        ));
    }
    // OpusTags: present but unused.
    packets.next();
    // Granule positions count 48 kHz samples, the pre-skip included.
    let declared_48k = last_granule.saturating_sub(pre_skip);
    if declared_48k / 48_000 >= max_seconds.saturating_add(1) {
        return Err(AudioError::TooLong { max_seconds });
    }
    let rate = Pcm16k::SAMPLE_RATE;
    let mut decoder = opus::OpusDecoder::new(rate)?;
    let mut mono = Mono::new(rate, max_seconds)?;
    let mut floats = Vec::new();
    for packet in packets {
        if packet.is_empty() {
            continue;
        }
        let frame = decoder.decode(&packet)?;
        floats.clear();
        floats.extend(frame.iter().map(|&s| f32::from(s) / 32768.0));
        mono.push_interleaved(&floats, 1)?;
    }
    // Drop the encoder's pre-skip and the padding after the last granule.
    let skip = usize::try_from(pre_skip / 3).unwrap_or(usize::MAX);
    let keep = usize::try_from(declared_48k / 3).unwrap_or(usize::MAX);
    let samples: Vec<f32> = mono.samples.iter().copied().skip(skip).take(keep).collect();
    if samples.is_empty() {
        return Err(AudioError::Corrupt("no audio in the Ogg/Opus file".into()));
    }
    mono.samples = samples;
    mono.into_pcm16k()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of a 440 Hz tone at `rate`, interleaved over `channels`,
    /// as 16-bit WAV.
    fn tone_wav(rate: u32, channels: u16, seconds: f32) -> Bytes {
        let frames = (rate as f32 * seconds) as usize;
        let mut pcm = Vec::with_capacity(frames * 2 * usize::from(channels));
        for i in 0..frames {
            let t = i as f32 / rate as f32;
            let v = ((t * 440.0 * std::f32::consts::TAU).sin() * 12_000.0) as i16;
            for _ in 0..channels {
                pcm.extend_from_slice(&v.to_le_bytes());
            }
        }
        lty_core::speech::wav_from_pcm16(&pcm, rate, channels)
    }

    #[test]
    fn containers_are_told_apart_by_their_first_bytes() {
        assert_eq!(detect(&tone_wav(16_000, 1, 0.01), ""), Container::Wav);
        assert_eq!(detect(b"ID3\x04\0\0\0\0\0\0", ""), Container::Mp3);
        assert_eq!(detect(&[0xff, 0xfb, 0x90, 0x64], ""), Container::Mp3);
        // ADTS AAC shares the sync bits but has layer 0.
        assert_eq!(detect(&[0xff, 0xf1, 0x50, 0x80], ""), Container::Unknown);
        assert_eq!(detect(b"OggS\0\x02", "audio/ogg"), Container::OggOther);
        assert_eq!(detect(&[0xff, 0xfb, 1, 2], "audio/L16"), Container::Pcm);
        assert_eq!(detect(b"fLaC\0\0\0\x22", "audio/flac"), Container::Unknown);
    }

    #[test]
    fn the_ogg_checksum_matches_a_known_page() {
        // An empty page: a header with zero segments.
        let mut page = b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        let crc = ogg_crc(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        let parsed: Vec<_> = OggPages::new(&page).collect();
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].is_ok());
        page[10] ^= 1;
        assert!(OggPages::new(&page).next().unwrap().is_err());
    }

    #[test]
    fn wav_at_other_rates_and_channel_counts_is_resampled_to_16k_mono() {
        for (rate, channels) in [(44_100, 2), (8_000, 1), (48_000, 1), (22_050, 2)] {
            let pcm = decode(tone_wav(rate, channels, 1.0), "audio/wav", 5).unwrap();
            let ms = pcm.duration_ms();
            assert!((990..=1010).contains(&ms), "{rate} Hz x{channels}: {ms} ms");
        }
    }

    #[test]
    fn float_and_8_bit_wav_are_decoded() {
        // 8-bit unsigned PCM, 0.5 s at 8 kHz, mono.
        let frames = 4_000u32;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + frames).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&8_000u32.to_le_bytes());
        wav.extend_from_slice(&8_000u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&8u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&frames.to_le_bytes());
        wav.extend((0..frames).map(|i| (128 + ((i % 16) as i32 - 8) * 8) as u8));
        let pcm = decode(Bytes::from(wav), "", 5).unwrap();
        assert!((490..=510).contains(&pcm.duration_ms()));

        // 32-bit float (format 3), 0.25 s at 32 kHz, mono.
        let frames = 8_000u32;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + frames * 4).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&3u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.extend_from_slice(&(32_000u32 * 4).to_le_bytes());
        wav.extend_from_slice(&4u16.to_le_bytes());
        wav.extend_from_slice(&32u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(frames * 4).to_le_bytes());
        for i in 0..frames {
            wav.extend_from_slice(&((i as f32 * 0.05).sin() * 0.5).to_le_bytes());
        }
        let pcm = decode(Bytes::from(wav), "", 5).unwrap();
        assert!((240..=260).contains(&pcm.duration_ms()));
        // The tone survives: not silence.
        assert!(
            pcm.samples
                .chunks(2)
                .any(|s| i16::from_le_bytes([s[0], s[1]]).abs() > 5_000)
        );
    }

    #[test]
    fn too_long_audio_is_refused_before_and_during_decoding() {
        let err = decode(tone_wav(44_100, 1, 2.5), "audio/wav", 2).unwrap_err();
        assert_eq!(err, AudioError::TooLong { max_seconds: 2 });
        let err = decode(Bytes::from(vec![0u8; 96_000]), "audio/pcm", 2).unwrap_err();
        assert_eq!(err, AudioError::TooLong { max_seconds: 2 });
        let mut mono = Mono::new(8_000, 1).unwrap();
        mono.push_interleaved(&[0.0; 8_000], 1).unwrap();
        assert!(mono.push_interleaved(&[0.0; 2], 1).is_err());
    }

    /// Recomputes the checksum of every whole page.
    fn fix_ogg_checksums(data: &mut [u8]) {
        let mut at = 0;
        while at + 27 <= data.len() && data[at..].starts_with(b"OggS") {
            let segments = usize::from(data[at + 26]);
            let Some(lacing) = data.get(at + 27..at + 27 + segments) else {
                return;
            };
            let len = 27 + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
            let Some(page) = data.get(at..at + len) else {
                return;
            };
            let crc = ogg_crc(page);
            data[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
            at += len;
        }
    }

    /// The decoder `decode` would run on `data`, without its panic guard.
    fn decode_unguarded(data: Bytes, max_seconds: u64) -> Result<Pcm16k, AudioError> {
        match detect(&data, "") {
            Container::Mp3 => decode_symphonia(data, "mp3", max_seconds),
            Container::OggOpus => decode_ogg_opus(&data, max_seconds),
            other => Err(AudioError::Unsupported(format!("{other:?}"))),
        }
    }

    #[test]
    fn damaged_real_files_never_escape_as_panics() {
        let mp3: &[u8] = include_bytes!("../../tests/api/fixtures/tone-1500ms-44k-stereo.mp3");
        let opus: &[u8] = include_bytes!("../../tests/api/fixtures/tone-1500ms-mono.opus");
        // A fixed linear congruential sequence: the same damage every run.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % bound
        };
        for original in [mp3, opus] {
            for round in 0..12 {
                let mut data = original.to_vec();
                for _ in 0..=round {
                    let at = next(data.len());
                    data[at] = next(256) as u8;
                }
                data.truncate(data.len() - next(data.len() / 2));
                if data.starts_with(b"OggS") {
                    // Valid checksums, so the damage reaches the decoder.
                    fix_ogg_checksums(&mut data);
                }
                // Ok (a damaged frame skipped) or a refusal; never a panic.
                // `decode` would turn a panic into a refusal, so the decoders
                // are called without that guard.
                let outcome =
                    std::panic::catch_unwind(|| decode_unguarded(Bytes::from(data.clone()), 5));
                assert!(
                    outcome.is_ok(),
                    "round {round}: a decoder panicked on {} damaged bytes",
                    data.len()
                );
            }
        }
    }

    #[test]
    fn junk_with_a_known_signature_is_refused_without_panicking() {
        for junk in [
            &b"ID3\x03\0\0\0\0\0\0rest"[..],
            &[0xff, 0xfb, 0x90, 0x64, 0, 0, 0, 0][..],
            b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\x01\x08OpusHead",
            b"RIFF\x10\0\0\0WAVEjunkjunk",
        ] {
            let err = decode(Bytes::copy_from_slice(junk), "", 5).unwrap_err();
            assert!(
                matches!(err, AudioError::Unsupported(_) | AudioError::Corrupt(_)),
                "{err:?}"
            );
        }
        assert_eq!(decode(Bytes::new(), "", 5), Err(AudioError::Empty));
    }
}
