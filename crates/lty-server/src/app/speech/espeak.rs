//! The `local` TTS provider: espeak-ng run as a child process, text on its
//! standard input (never on the command line), WAV on its standard output,
//! killed when it overruns its time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use lty_core::speech::{AudioFormat, Synthesis, Tts, TtsRequest, parse_wav, wav_from_pcm16};
use lty_core::{Error, Result};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

const PROVIDER: &str = "local";
/// espeak-ng processes allowed at once; each one keeps a core busy.
const MAX_CONCURRENT: usize = 4;

/// espeak-ng as a [`Tts`].
#[derive(Debug, Clone)]
pub struct EspeakTts {
    program: PathBuf,
    default_voice: String,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

/// Where `program` is: itself when it names a path, else the first match
/// in `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Whether `voice` is an espeak-ng voice name (`cmn`, `en-us`, `en+f3`).
pub fn valid_voice(voice: &str) -> bool {
    !voice.is_empty()
        && voice.len() <= 40
        && !voice.starts_with('-')
        && voice
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+".contains(&b))
}

impl EspeakTts {
    /// The provider when `program` is installed, else `None`.
    pub fn detect(program: &str, default_voice: &str, timeout: Duration) -> Option<Self> {
        Some(Self {
            program: find_program(program)?,
            default_voice: default_voice.to_owned(),
            timeout,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        })
    }

    async fn run(&self, text: &str, voice: &str) -> Result<Bytes> {
        let failed = |message: String| Error::Upstream {
            provider: PROVIDER,
            message,
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| failed(e.to_string()))?;
        // `-b 1`: the input is UTF-8. No `-m`: markup is read as text.
        let mut child = Command::new(&self.program)
            .args(["--stdout", "--stdin", "-b", "1", "-v", voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start espeak-ng: {e}")))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("no stdin".into()))?;
        let input = text.to_owned();
        let write = async move {
            stdin.write_all(input.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.shutdown().await
        };
        let run = async {
            let (written, output) = tokio::join!(write, child.wait_with_output());
            written?;
            output
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| failed(format!("espeak-ng ran over {:?}", self.timeout)))?
            .map_err(|e| failed(format!("espeak-ng failed: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(failed(format!(
                "espeak-ng exited with {}: {}",
                output.status,
                stderr.trim()
            )));
        }
        Ok(Bytes::from(output.stdout))
    }
}

#[async_trait]
impl Tts for EspeakTts {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn synthesize(&self, req: &TtsRequest) -> Result<Synthesis> {
        let voice = req.voice.as_deref().unwrap_or(&self.default_voice);
        if !valid_voice(voice) {
            return Err(Error::validation("voice", "not an espeak-ng voice name"));
        }
        let raw = self.run(&req.text, voice).await?;
        let info = parse_wav(&raw).ok_or_else(|| Error::Upstream {
            provider: PROVIDER,
            message: "espeak-ng did not write a WAV file".into(),
        })?;
        if info.format_tag != 1 || info.bits_per_sample != 16 || info.channels == 0 {
            return Err(Error::Upstream {
                provider: PROVIDER,
                message: "espeak-ng wrote WAV that is not 16-bit PCM".into(),
            });
        }
        let samples = &raw[info.data.clone()];
        let duration_ms = info.duration_ms();
        // espeak-ng streams with placeholder sizes; write a correct header.
        // It only speaks WAV/PCM: an MP3 request gets WAV, and says so.
        let (audio, format) = match req.format {
            AudioFormat::Pcm => (Bytes::copy_from_slice(samples), AudioFormat::Pcm),
            AudioFormat::Wav | AudioFormat::Mp3 => (
                wav_from_pcm16(samples, info.sample_rate, info.channels),
                AudioFormat::Wav,
            ),
        };
        Ok(Synthesis {
            audio,
            format,
            duration_ms,
        })
    }
}
