//! Huoshan speech (`openspeech.bytedance.com`): HTTP TTS and ASR over
//! WebSocket, as lty's [`Tts`], [`Asr`] (a finished clip) and
//! [`StreamingAsr`] (audio sent while it is spoken) ports.
//!
//! - [`codec`]: the binary frame of the speech WebSockets.
//! - [`tts`]: `POST /api/v1/tts` bodies and codes.
//! - [`asr`]: `/api/v3/sauc/bigmodel_nostream` and `bigmodel_async`
//!   parameters, packets and codes.
//!
//! Credentials are the speech console's APP ID and access token. The
//! `X-Tt-Logid` of every answer is logged and put in error messages; the
//! token never is.

pub mod asr;
pub mod codec;
pub mod tts;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use lty_core::speech::{
    Asr, AsrSession, AudioFormat, Pcm16k, StreamingAsr, Synthesis, Transcript, Tts, TtsRequest,
    split_sentences,
};
use lty_core::{Error, Result};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use self::codec::{Frame, MessageType};
use crate::asr_stream::{self, ConnectError};
use crate::http::ClientOptions;

const PROVIDER: &str = "huoshan";
/// Largest TTS answer read (Base64 of several MB of audio).
const MAX_TTS_ANSWER: usize = 32 * 1024 * 1024;
/// `user.uid` sent with every request.
const UID: &str = "lty";

/// Settings of a [`HuoshanSpeech`] client.
///
/// `Debug` leaves the access token out.
#[derive(Clone)]
pub struct HuoshanSpeechConfig {
    /// `AUDIO_SERVICE_HUOSHAN_APPID`.
    pub appid: String,
    /// `AUDIO_SERVICE_HUOSHAN_ACCESS_TOKEN`.
    pub access_token: String,
    /// TTS cluster, `volcano_tts` by default.
    pub cluster: String,
    /// Default TTS voice; a request without one fails as not configured.
    pub voice_type: Option<String>,
    /// HTTP origin, e.g. `https://openspeech.bytedance.com` or `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// WebSocket origin, e.g. `wss://openspeech.bytedance.com` or `ws://127.0.0.1:PORT`.
    pub ws_url: String,
    /// `X-Api-Resource-Id` of streaming ASR.
    pub asr_resource_id: String,
    /// Bound on a TCP (and TLS, WebSocket) connection.
    pub connect_timeout: Duration,
    /// Bound on one TTS attempt, and on the wait for each ASR frame once
    /// all audio is sent.
    pub timeout: Duration,
    /// Time allowed for one recognition beyond the audio's own duration.
    pub asr_grace: Duration,
}

impl fmt::Debug for HuoshanSpeechConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HuoshanSpeechConfig")
            .field("appid", &self.appid)
            .field("cluster", &self.cluster)
            .field("voice_type", &self.voice_type)
            .field("base_url", &self.base_url)
            .field("ws_url", &self.ws_url)
            .field("asr_resource_id", &self.asr_resource_id)
            .finish_non_exhaustive()
    }
}

/// A huoshan speech client; cheap to clone.
#[derive(Debug, Clone)]
pub struct HuoshanSpeech {
    config: HuoshanSpeechConfig,
    http: reqwest::Client,
}

fn upstream(message: impl Into<String>) -> Error {
    Error::Upstream {
        provider: PROVIDER,
        message: message.into(),
    }
}

/// A random UUIDv4 in its hyphenated form.
fn uuid_v4() -> String {
    let raw = (rand::random::<u128>() & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{raw:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Pieces of `text` each within the per-request limits: at most
/// [`tts::TARGET_CHARS`] characters and [`tts::MAX_TEXT_BYTES`] bytes.
fn tts_pieces(text: &str) -> Vec<String> {
    // Four bytes per character at most: this bound always fits.
    const SAFE_CHARS: usize = tts::MAX_TEXT_BYTES / 4;
    split_sentences(text, tts::TARGET_CHARS)
        .into_iter()
        .flat_map(|piece| {
            if piece.len() <= tts::MAX_TEXT_BYTES {
                vec![piece]
            } else {
                split_sentences(&piece, SAFE_CHARS)
            }
        })
        .collect()
}

/// One attempt's failure and how many more attempts it allows.
struct Failed {
    retries: u32,
    error: Error,
}

impl Failed {
    fn fatal(error: Error) -> Self {
        Self { retries: 0, error }
    }

    fn once(error: Error) -> Self {
        Self { retries: 1, error }
    }
}

/// Runs `attempt` until it succeeds or its failure allows no more tries,
/// with jittered backoff between tries.
async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failed>>,
{
    let mut done = 0u32;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(f) if done < f.retries => {
                done += 1;
                let backoff = 100 * u64::from(done * done) + u64::from(rand::random::<u8>());
                tracing::warn!(err = %f.error, attempt = done, "huoshan {what} failed; retrying");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            Err(f) => return Err(f.error),
        }
    }
}

impl HuoshanSpeech {
    /// A client for `config`; fails only when the HTTP client cannot be built.
    pub fn new(config: HuoshanSpeechConfig) -> Result<Self> {
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| upstream(e.to_string()))?;
        Ok(Self { config, http })
    }

    fn tts_body(&self, voice_type: &str, encoding: &str, text: String) -> tts::TtsBody {
        tts::TtsBody {
            app: tts::App {
                appid: self.config.appid.clone(),
                token: self.config.access_token.clone(),
                cluster: self.config.cluster.clone(),
            },
            user: tts::User { uid: UID.into() },
            audio: tts::Audio {
                voice_type: voice_type.into(),
                encoding: encoding.into(),
                rate: tts::SAMPLE_RATE,
                speed_ratio: 1.0,
                volume_ratio: 1.0,
                pitch_ratio: 1.0,
            },
            request: tts::Request {
                reqid: uuid_v4(),
                text,
                text_type: "plain".into(),
                operation: "query".into(),
            },
        }
    }

    /// One TTS call (a fresh `reqid` per attempt): the audio and its
    /// duration when the answer gives one.
    async fn synthesize_piece(
        &self,
        voice_type: &str,
        encoding: &str,
        text: &str,
    ) -> Result<(Vec<u8>, Option<u64>)> {
        let url = format!(
            "{}{}",
            self.config.base_url.trim_end_matches('/'),
            tts::PATH
        );
        with_retries("tts", || {
            let body = self.tts_body(voice_type, encoding, text.to_owned());
            self.tts_attempt(&url, body)
        })
        .await
    }

    async fn tts_attempt(
        &self,
        url: &str,
        body: tts::TtsBody,
    ) -> std::result::Result<(Vec<u8>, Option<u64>), Failed> {
        let transport = |e: reqwest::Error| Failed::once(upstream(e.without_url().to_string()));
        let mut res = self
            .http
            .post(url)
            .header(
                reqwest::header::AUTHORIZATION,
                tts::authorization(&self.config.access_token),
            )
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        let logid = res
            .headers()
            .get(asr::HEADER_LOGID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if res
            .content_length()
            .is_some_and(|n| n > MAX_TTS_ANSWER as u64)
        {
            return Err(Failed::fatal(upstream(format!(
                "answer larger than {MAX_TTS_ANSWER} bytes (logid {logid})"
            ))));
        }
        let mut raw = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(transport)? {
            if raw.len() + chunk.len() > MAX_TTS_ANSWER {
                return Err(Failed::fatal(upstream(format!(
                    "answer larger than {MAX_TTS_ANSWER} bytes (logid {logid})"
                ))));
            }
            raw.extend_from_slice(&chunk);
        }
        // The body decides, whatever the status (errors come with 200 too).
        let answer: tts::TtsAnswer = serde_json::from_slice(&raw).map_err(|e| {
            let error = upstream(format!(
                "HTTP {status}, answer is not JSON: {e} (logid {logid})"
            ));
            if status.is_server_error() {
                Failed::once(error)
            } else {
                Failed::fatal(error)
            }
        })?;
        if answer.code != tts::SUCCESS {
            let failure = tts::Failure::of(answer.code);
            let message = format!(
                "HTTP {status}, code {}: {} (logid {logid})",
                answer.code, answer.message
            );
            let error = if failure == tts::Failure::InvalidText {
                tracing::info!(code = answer.code, %logid, "huoshan refused the text");
                Error::validation(
                    "text",
                    "cannot be spoken (empty, punctuation only or an unsupported language)",
                )
            } else {
                upstream(message)
            };
            return Err(Failed {
                retries: failure.retries(),
                error,
            });
        }
        let audio = STANDARD
            .decode(answer.data.as_deref().unwrap_or("").as_bytes())
            .map_err(|e| {
                Failed::fatal(upstream(format!(
                    "audio is not Base64: {e} (logid {logid})"
                )))
            })?;
        if audio.is_empty() {
            return Err(Failed::fatal(upstream(format!(
                "answer without audio (logid {logid})"
            ))));
        }
        tracing::debug!(%logid, bytes = audio.len(), "huoshan tts ok");
        Ok((audio, answer.duration_ms()))
    }

    /// Opens the ASR WebSocket with the handshake headers.
    async fn asr_connect(
        &self,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let url = format!("{}{}", self.config.ws_url.trim_end_matches('/'), asr::PATH);
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| upstream(format!("bad WebSocket URL: {e}")))?;
        let header = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| upstream("a credential is not a valid header value"))
        };
        let headers = req.headers_mut();
        for (name, value) in [
            (asr::HEADER_APP_KEY, self.config.appid.as_str()),
            (asr::HEADER_ACCESS_KEY, self.config.access_token.as_str()),
            (
                asr::HEADER_RESOURCE_ID,
                self.config.asr_resource_id.as_str(),
            ),
            (asr::HEADER_CONNECT_ID, uuid_v4().as_str()),
        ] {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| upstream("bad handshake header name"))?;
            headers.insert(name, header(value)?);
        }
        let connect = tokio_tungstenite::connect_async_with_config(req, None, true);
        let (ws, res) = tokio::time::timeout(self.config.connect_timeout, connect)
            .await
            .map_err(|_| {
                upstream(format!(
                    "no WebSocket connection within {} s",
                    self.config.connect_timeout.as_secs()
                ))
            })?
            .map_err(|e| match e {
                WsError::Http(res) => {
                    let logid = res
                        .headers()
                        .get(asr::HEADER_LOGID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let body = res
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned())
                        .unwrap_or_default();
                    upstream(format!(
                        "WebSocket handshake refused with HTTP {} (logid {logid}): {body}",
                        res.status()
                    ))
                }
                other => upstream(format!("WebSocket connection failed: {other}")),
            })?;
        let logid = res
            .headers()
            .get(asr::HEADER_LOGID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug!(%logid, "huoshan asr connected");
        Ok(ws)
    }

    /// One recognition on a fresh connection.
    async fn asr_attempt(
        &self,
        frames: &[Vec<u8>],
        total: Duration,
    ) -> std::result::Result<String, Failed> {
        let deadline = Instant::now() + total;
        let ws = tokio::time::timeout_at(deadline, self.asr_connect())
            .await
            .map_err(|_| Failed::fatal(upstream("no WebSocket connection in time")))?
            .map_err(Failed::fatal)?;
        let (mut sink, mut stream) = ws.split();
        let outcome = {
            let send = async {
                for frame in frames {
                    sink.send(Message::Binary(Bytes::copy_from_slice(frame)))
                        .await?;
                }
                Ok::<(), WsError>(())
            };
            tokio::pin!(send);
            let mut sent = false;
            let mut last_text = String::new();
            loop {
                // Until every packet is out, only the overall deadline
                // bounds the wait; then each frame must come in time.
                let wait_until = if sent {
                    deadline.min(Instant::now() + self.config.timeout)
                } else {
                    deadline
                };
                tokio::select! {
                    r = &mut send, if !sent => {
                        sent = true;
                        if let Err(e) = r {
                            // The server's last frames may still say why.
                            tracing::debug!(error = %e, "huoshan asr send failed");
                        }
                    }
                    next = tokio::time::timeout_at(wait_until, stream.next()) => {
                        match next {
                            Err(_) if Instant::now() >= deadline => break Err(Failed::fatal(upstream(format!(
                                "no final result within {} s", total.as_secs()
                            )))),
                            Err(_) => break Err(Failed::fatal(upstream(format!(
                                "no answer within {} s of the last packet", self.config.timeout.as_secs()
                            )))),
                            Ok(None) => break Err(Failed::fatal(upstream(
                                "connection closed before the final result",
                            ))),
                            Ok(Some(Err(e))) => break Err(Failed::fatal(upstream(format!(
                                "connection failed before the final result: {e}"
                            )))),
                            Ok(Some(Ok(Message::Binary(bytes)))) => {
                                match asr_frame(&bytes, &mut last_text) {
                                    Ok(Some(text)) => break Ok(text),
                                    Ok(None) => {}
                                    Err(f) => break Err(f),
                                }
                            }
                            Ok(Some(Ok(Message::Close(frame)))) => break Err(Failed::fatal(upstream(format!(
                                "connection closed before the final result ({})",
                                frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default()
                            )))),
                            Ok(Some(Ok(Message::Text(_)))) => break Err(Failed::fatal(upstream(
                                "a text message where binary frames were expected",
                            ))),
                            // Pings are answered by the library.
                            Ok(Some(Ok(_))) => {}
                        }
                    }
                }
            }
        };
        // A polite close; the outcome is already known.
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
        outcome
    }
}

/// Handles one server frame: `Some(text)` at the final result, `None` to
/// wait for more, an error for an error frame or a malformed one.
fn asr_frame(bytes: &[u8], last_text: &mut String) -> std::result::Result<Option<String>, Failed> {
    let frame: Frame = codec::decode(bytes)
        .map_err(|e| Failed::fatal(upstream(format!("malformed frame: {e}"))))?;
    match frame.message_type {
        MessageType::FullServerResponse => {
            let res: asr::ServerResponse = serde_json::from_slice(&frame.payload)
                .map_err(|e| Failed::fatal(upstream(format!("result is not JSON: {e}"))))?;
            res.text().clone_into(last_text);
            Ok(frame.is_last().then(|| last_text.clone()))
        }
        MessageType::Error => {
            let code = frame.error_code.unwrap_or(0);
            if code == asr::SUCCESS {
                return Ok(Some(last_text.clone()));
            }
            let failure = asr::Failure::of(code);
            let message = format!("error {code}: {}", frame.text());
            let error = if failure == asr::Failure::EmptyAudio {
                Error::validation("audio", "contains no speech to recognize")
            } else {
                upstream(message)
            };
            Err(Failed {
                retries: failure.retries(),
                error,
            })
        }
        _ => Ok(None),
    }
}

#[async_trait]
impl Tts for HuoshanSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn synthesize(&self, req: &TtsRequest) -> Result<Synthesis> {
        let Some(voice_type) = req.voice.as_deref().or(self.config.voice_type.as_deref()) else {
            // Without a default voice only callers naming one can be served.
            return Err(Error::ProviderNotConfigured { provider: PROVIDER });
        };
        // PCM and MP3 join byte-wise; WAV is PCM with one header of ours.
        let encoding = match req.format {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Wav | AudioFormat::Pcm => "pcm",
        };
        let pcm_ms = |bytes: usize| (bytes as u64 / 2) * 1000 / u64::from(tts::SAMPLE_RATE);
        let mut audio = Vec::new();
        let mut duration_ms = 0;
        for piece in tts_pieces(&req.text) {
            let (bytes, duration) = self.synthesize_piece(voice_type, encoding, &piece).await?;
            duration_ms += match (encoding, duration) {
                ("pcm", _) => pcm_ms(bytes.len()),
                (_, Some(ms)) => ms,
                (_, None) => 0,
            };
            audio.extend_from_slice(&bytes);
        }
        Ok(Synthesis::joined(
            audio,
            req.format,
            tts::SAMPLE_RATE,
            duration_ms,
        ))
    }
}

#[async_trait]
impl Asr for HuoshanSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn recognize(&self, audio: &Pcm16k) -> Result<Transcript> {
        let params = asr::FullRequest::pcm16k(UID);
        let frames = asr::request_frames(&params, &audio.samples)
            .map_err(|e| upstream(e.to_string()))?
            .iter()
            .map(codec::encode)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| upstream(e.to_string()))?;
        let total = Duration::from_millis(audio.duration_ms()) + self.config.asr_grace;
        let text = with_retries("asr", || self.asr_attempt(&frames, total)).await?;
        Ok(Transcript {
            text,
            confidence: None,
        })
    }
}

/// The huoshan side of a streaming session: numbered gzip packets after
/// the full client request, results read as they come.
struct HuoshanStream {
    /// The number of the next audio packet (the full request was 1).
    sequence: i32,
    /// `result.text` of the latest result.
    last_text: String,
}

impl HuoshanStream {
    fn packet(&mut self, pcm: Bytes, last: bool) -> Result<Message> {
        let frame = Frame::audio(self.sequence, last, pcm, codec::Compression::Gzip);
        self.sequence = self.sequence.saturating_add(1);
        let bytes = codec::encode(&frame).map_err(|e| upstream(e.to_string()))?;
        Ok(Message::Binary(Bytes::from(bytes)))
    }
}

impl asr_stream::Protocol for HuoshanStream {
    fn audio(&mut self, pcm: Bytes) -> Result<Message> {
        self.packet(pcm, false)
    }

    fn finish(&mut self, tail: Bytes) -> Result<Vec<Message>> {
        // The last packet is flagged (its sequence negated), empty or not.
        Ok(vec![self.packet(tail, true)?])
    }

    fn on_message(&mut self, msg: Message) -> Result<asr_stream::Step> {
        let Message::Binary(bytes) = msg else {
            return Err(upstream("a text message where binary frames were expected"));
        };
        let frame = codec::decode(&bytes).map_err(|e| upstream(format!("malformed frame: {e}")))?;
        let done = |text: &str| {
            asr_stream::Step::Done(Transcript {
                text: text.to_owned(),
                confidence: None,
            })
        };
        match frame.message_type {
            MessageType::FullServerResponse => {
                let res: asr::ServerResponse = serde_json::from_slice(&frame.payload)
                    .map_err(|e| upstream(format!("result is not JSON: {e}")))?;
                res.text().clone_into(&mut self.last_text);
                Ok(if frame.is_last() {
                    done(&self.last_text)
                } else {
                    asr_stream::Step::Continue
                })
            }
            MessageType::Error => {
                let code = frame.error_code.unwrap_or(0);
                if code == asr::SUCCESS {
                    return Ok(done(&self.last_text));
                }
                let message = format!("error {code}: {}", frame.text());
                Err(match asr::Failure::of(code) {
                    asr::Failure::EmptyAudio => {
                        Error::validation("audio", "contains no speech to recognize")
                    }
                    asr::Failure::Busy => asr_stream::busy(PROVIDER, &code.to_string(), &message),
                    _ => upstream(message),
                })
            }
            _ => Ok(asr_stream::Step::Continue),
        }
    }
}

#[async_trait]
impl StreamingAsr for HuoshanSpeech {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// Connects to `{ws}/api/v3/sauc/bigmodel_async` and sends the full
    /// client request; audio follows in 200 ms packets.
    #[tracing::instrument(skip_all, err, fields(provider = PROVIDER))]
    async fn open(&self) -> Result<Box<dyn AsrSession>> {
        let url = format!(
            "{}{}",
            self.config.ws_url.trim_end_matches('/'),
            asr::STREAM_PATH
        );
        let connect_id = uuid_v4();
        let req = asr_stream::request(
            &url,
            &[
                (asr::HEADER_APP_KEY, self.config.appid.as_str()),
                (asr::HEADER_ACCESS_KEY, self.config.access_token.as_str()),
                (asr::HEADER_RESOURCE_ID, &self.config.asr_resource_id),
                (asr::HEADER_CONNECT_ID, &connect_id),
            ],
        )
        .map_err(upstream)?;
        let mut ws = match asr_stream::connect(req, self.config.connect_timeout).await {
            Ok(ws) => ws,
            Err(ConnectError::Refused {
                status,
                headers,
                body,
            }) => {
                let logid = headers
                    .get(asr::HEADER_LOGID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let message =
                    format!("handshake refused with HTTP {status} (logid {logid}): {body}");
                let code = format!("HTTP {status}");
                return Err(match status {
                    401 | 403 => asr_stream::unavailable(PROVIDER, &code, &message),
                    429 => asr_stream::busy(PROVIDER, &code, &message),
                    _ => upstream(message),
                });
            }
            Err(ConnectError::Failed(message)) => return Err(upstream(message)),
        };
        let params = serde_json::to_vec(&asr::FullRequest::pcm16k(UID))
            .map_err(|e| upstream(e.to_string()))?;
        let request = codec::encode(&Frame::full_client_request(
            1,
            Bytes::from(params),
            codec::Compression::Gzip,
        ))
        .map_err(|e| upstream(e.to_string()))?;
        ws.send(Message::Binary(Bytes::from(request)))
            .await
            .map_err(|e| upstream(format!("connection failed: {e}")))?;
        tracing::debug!(%connect_id, "huoshan streaming recognition open");
        Ok(asr_stream::spawn(
            PROVIDER,
            ws,
            HuoshanStream {
                sequence: 2,
                last_text: String::new(),
            },
            asr_stream::SessionLimits {
                chunk_bytes: asr::CHUNK_BYTES,
                timeout: self.config.timeout,
                pace: None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str, ws: &str) -> HuoshanSpeechConfig {
        HuoshanSpeechConfig {
            appid: "1234567890".into(),
            access_token: "secret-token".into(),
            cluster: "volcano_tts".into(),
            voice_type: Some("BV700_streaming".into()),
            base_url: base.into(),
            ws_url: ws.into(),
            asr_resource_id: "volc.bigasr.sauc.duration".into(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            asr_grace: Duration::from_secs(2),
        }
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn long_text_is_cut_under_the_byte_and_character_limits() {
        let text = format!("{}。", "好".repeat(299)).repeat(3);
        let pieces = tts_pieces(&text);
        assert_eq!(pieces.len(), 3);
        assert!(
            pieces
                .iter()
                .all(|p| p.chars().count() <= 300 && p.len() <= 900)
        );
        // 300 four-byte characters exceed 1024 bytes and are cut again.
        let emoji = "😀".repeat(600);
        let pieces = tts_pieces(&emoji);
        assert!(
            pieces.iter().all(|p| p.len() <= tts::MAX_TEXT_BYTES),
            "{pieces:?}"
        );
        assert_eq!(pieces.concat(), emoji);
    }

    #[test]
    fn debug_output_leaves_the_token_out() {
        let shown = format!("{:?}", config("http://a", "ws://a"));
        assert!(shown.contains("1234567890"));
        assert!(!shown.contains("secret-token"));
    }

    #[tokio::test]
    async fn wss_urls_are_spoken_with_tls() {
        // A listener that accepts TCP and never answers the TLS hello: the
        // client must attempt TLS (not refuse the scheme) and time out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            use tokio::io::AsyncReadExt;
            sock.read_exact(&mut buf).await.unwrap();
            buf
        });
        let mut cfg = config(
            "http://127.0.0.1:1",
            &format!("wss://127.0.0.1:{}", addr.port()),
        );
        cfg.connect_timeout = Duration::from_millis(500);
        let client = HuoshanSpeech::new(cfg).unwrap();
        let err = client
            .recognize(&Pcm16k {
                samples: Bytes::from(vec![0u8; 320]),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Upstream {
                    provider: "huoshan",
                    ..
                }
            ),
            "{err}"
        );
        // 0x16 0x03: a TLS handshake record.
        let hello = accept.await.unwrap();
        assert_eq!(hello[..2], [0x16, 0x03]);
    }
}
