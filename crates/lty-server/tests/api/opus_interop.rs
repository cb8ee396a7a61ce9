//! Our Opus packets against the reference decoder: a tone encoded the way
//! the xiaozhi downlink sends it (24 kHz mono, 60 ms packets) is muxed into
//! an Ogg Opus file and decoded by `opusdec` from opus-tools, which uses
//! the reference libopus, as a device's decoder does. `scripts/ci-deps.sh`
//! installs opus-tools; without it this test fails rather than skips.

use std::process::Command;

use lty_server::app::audio::opus::{OpusDecoder, OpusEncoder, Packetizer};
use opus_pure::{OggOpusWriter, OpusHead};

const RATE: u32 = 24_000;

/// `ms` of a 440 Hz sine at `rate`, peak 10 000.
fn tone(rate: u32, ms: u32) -> Vec<i16> {
    (0..rate * ms / 1000)
        .map(|i| {
            let t = i as f32 / rate as f32;
            ((t * 440.0 * std::f32::consts::TAU).sin() * 10_000.0) as i16
        })
        .collect()
}

/// Zero crossings per second of `pcm` at `rate`, halved: the frequency of
/// a pure tone.
fn tone_hz(pcm: &[i16], rate: u32) -> f32 {
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f32 / 2.0 / (pcm.len() as f32 / rate as f32)
}

fn rms(pcm: &[i16]) -> f32 {
    let sum: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / pcm.len() as f64).sqrt() as f32
}

/// Runs `opusdec` on `opus`, at `RATE`, and returns the samples it wrote.
fn opusdec(opus: &[u8]) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.opus"), dir.path().join("out.wav"));
    std::fs::write(&input, opus).unwrap();
    let run = Command::new("opusdec")
        .args(["--quiet", "--rate", &RATE.to_string()])
        .arg(&input)
        .arg(&output)
        .output();
    let run = match run {
        Ok(run) => run,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "opusdec is not installed: it comes with the Debian package opus-tools, \
             which scripts/ci-deps.sh installs"
        ),
        Err(e) => panic!("opusdec could not be started: {e}"),
    };
    assert!(
        run.status.success(),
        "opusdec refused our stream: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let wav = std::fs::read(&output).unwrap();
    let info = lty_core::speech::parse_wav(&wav).expect("opusdec writes a WAV file");
    assert_eq!((info.sample_rate, info.channels), (RATE, 1));
    assert_eq!(info.bits_per_sample, 16);
    wav[info.data]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn the_reference_decoder_plays_our_60_ms_packets_as_the_tone_they_carry() {
    let mut encoder = OpusEncoder::new(RATE, 60).unwrap();
    let frame = encoder.frame_samples();
    let audio = tone(RATE, 2_000);
    // Opus at 24 kHz counts 2 granule ticks (48 kHz) per sample; the
    // pre-skip is the encoder's delay, and the last page's granule marks
    // where the audio ends inside the padded last packet (RFC 7845 §4).
    let mut head = OpusHead::new(1, RATE).unwrap();
    head.pre_skip = u16::try_from(encoder.lookahead() * 2).unwrap();
    let final_granule = u64::from(head.pre_skip) + audio.len() as u64 * 2;
    let frames = (audio.len() + encoder.lookahead()).div_ceil(frame);
    let mut writer = OggOpusWriter::new(Vec::new(), head).unwrap();
    for i in 0..frames {
        let mut block =
            audio[(i * frame).min(audio.len())..((i + 1) * frame).min(audio.len())].to_vec();
        block.resize(frame, 0);
        let packet = encoder.encode(&block).unwrap();
        if i + 1 == frames {
            let duration = final_granule - writer.granule() as u64;
            writer
                .write_packet_with_duration(&packet, u32::try_from(duration).unwrap())
                .unwrap();
        } else {
            writer.write_packet(&packet).unwrap();
        }
    }
    let opus = writer.finish().unwrap();

    let decoded = opusdec(&opus);
    // Exactly the 2 s that went in: every packet was decoded, pre-skip and
    // end trimming were honoured.
    assert_eq!(decoded.len(), audio.len());
    let middle = &decoded[2_400..45_600];
    let hz = tone_hz(middle, RATE);
    assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
    let (level_in, level_out) = (rms(&audio[2_400..45_600]), rms(middle));
    assert!(
        (level_out / level_in - 1.0).abs() < 0.25,
        "level {level_out} against {level_in}"
    );
}

#[test]
fn the_reference_decoder_plays_packetized_16k_tts_audio_at_24k() {
    // The downlink path end to end: 16 kHz TTS audio, resampled and cut
    // into 60 ms packets, each of which decodes to exactly 1440 samples.
    let mut packetizer = Packetizer::new(RATE, 60).unwrap();
    let tts = tone(16_000, 1_500);
    let mut packets = Vec::new();
    for piece in tts.chunks(1_000) {
        packets.extend(packetizer.push(piece, 16_000).unwrap());
    }
    packets.extend(packetizer.flush().unwrap());
    let mut ours = OpusDecoder::new(RATE).unwrap();
    for p in &packets {
        assert_eq!(ours.decode(p).unwrap().len(), 1_440);
    }
    let mut head = OpusHead::new(1, RATE).unwrap();
    head.pre_skip = 0;
    let mut writer = OggOpusWriter::new(Vec::new(), head).unwrap();
    for p in &packets {
        writer.write_packet(p).unwrap();
    }
    let decoded = opusdec(&writer.finish().unwrap());
    assert_eq!(decoded.len(), packets.len() * 1_440);
    let hz = tone_hz(&decoded[2_400..33_600], RATE);
    assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
}
