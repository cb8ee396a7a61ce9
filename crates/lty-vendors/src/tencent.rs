//! Tencent Cloud: API 3.0 request signing (TC3-HMAC-SHA256) and the
//! `{"Response": ...}` envelope, shared by TTS `TextToVoice` and ASR
//! `SentenceRecognition`.
//!
//! - [`tc3`]: canonical request, string to sign, derived key, `Authorization`,
//!   and the response envelope parser.
//! - [`tts`], [`asr`]: `TextToVoice` and `SentenceRecognition` bodies;
//!   [`speech`]: the client behind lty's `Tts` and `Asr` ports.
//! - [`realtime_asr`]: real-time recognition over WebSocket (API 2.0,
//!   HMAC-SHA1 signed query), lty's `StreamingAsr` port.
//!
//! Signers take the timestamp as an argument so real clients and the
//! in-process fake recompute the same bytes.

use std::fmt;

pub mod asr;
pub mod realtime_asr;
pub mod speech;
pub mod tc3;
pub mod tts;

/// A Tencent Cloud API key (`SecretId`/`SecretKey`), optionally with an STS
/// session token (`X-TC-Token`).
///
/// `Debug` prints the id only: secrets must never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `SecretId` (`AKID…`), sent in the clear inside `Authorization`.
    pub secret_id: String,
    /// `SecretKey`, only ever used to derive the signing key.
    pub secret_key: String,
    /// STS session token, sent as `X-TC-Token`.
    pub token: Option<String>,
}

impl Credential {
    /// A long-lived key pair without session token.
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            secret_id: secret_id.into(),
            secret_key: secret_key.into(),
            token: None,
        }
    }

    /// The same pair with an STS session token attached.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A header name is empty or a name/value contains CR, LF or another
    /// control character, which would forge lines in the canonical request.
    #[error("header `{0}` has an empty name or a control character")]
    InvalidHeader(String),
    /// The same header was given twice.
    #[error("header `{0}` appears more than once")]
    Duplicate(String),
    /// The HMAC implementation refused the key (it accepts every length, so
    /// this is not expected to happen).
    #[error("HMAC key rejected")]
    HmacKey,
}
