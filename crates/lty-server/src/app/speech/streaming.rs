//! Metrics around every streaming recognizer: how sessions end
//! (`lty_asr_streams_total{provider, outcome}`, outcome `ok`, `error` or
//! `cancelled`) and how long the final transcript takes after the end of
//! speech (`lty_asr_stream_finish_duration_seconds{provider}`), the
//! latency a child hears.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use lty_core::Result;
use lty_core::speech::{AsrSession, StreamingAsr, Transcript};

/// A [`StreamingAsr`] whose sessions are counted and timed.
pub struct Metered {
    inner: Arc<dyn StreamingAsr>,
}

impl Metered {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn StreamingAsr>) -> Self {
        Self { inner }
    }
}

fn count(provider: &'static str, outcome: &'static str) {
    metrics::counter!("lty_asr_streams_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

#[async_trait]
impl StreamingAsr for Metered {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    async fn open(&self) -> Result<Box<dyn AsrSession>> {
        let provider = self.inner.provider();
        match self.inner.open().await {
            Ok(session) => Ok(Box::new(MeteredSession {
                provider,
                inner: Some(session),
                counted: false,
            })),
            Err(e) => {
                count(provider, "error");
                Err(e)
            }
        }
    }
}

/// A session that counts its end exactly once: `ok` or `error` when it
/// finishes or fails, `cancelled` when it is dropped before either.
struct MeteredSession {
    provider: &'static str,
    /// Taken by `finish`.
    inner: Option<Box<dyn AsrSession>>,
    counted: bool,
}

impl MeteredSession {
    fn end(&mut self, outcome: &'static str) {
        if !self.counted {
            self.counted = true;
            count(self.provider, outcome);
        }
    }
}

#[async_trait]
impl AsrSession for MeteredSession {
    async fn push(&mut self, pcm: &[i16]) -> Result<()> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let pushed = inner.push(pcm).await;
        if pushed.is_err() {
            self.end("error");
        }
        pushed
    }

    async fn finish(mut self: Box<Self>) -> Result<Transcript> {
        let Some(inner) = self.inner.take() else {
            return Err(lty_core::Error::Upstream {
                provider: self.provider,
                message: "the session was already finished".into(),
            });
        };
        let started = Instant::now();
        let outcome = inner.finish().await;
        match &outcome {
            Ok(_) => {
                metrics::histogram!(
                    "lty_asr_stream_finish_duration_seconds",
                    "provider" => self.provider
                )
                .record(started.elapsed().as_secs_f64());
                self.end("ok");
            }
            Err(_) => self.end("error"),
        }
        outcome
    }
}

impl Drop for MeteredSession {
    fn drop(&mut self) {
        self.end("cancelled");
    }
}
