//! Aliyun (Alibaba Cloud): the four request-signing schemes lty needs, as
//! pure functions, plus the POP response envelope.
//!
//! - [`pop`]: POP percent-encoding, RPC signature V1 (HMAC-SHA1), ACS3-HMAC-SHA256
//!   (signature V3) and the `Code`/`Message`/`RequestId` error envelope, shared
//!   by SMS, NLS `CreateToken` and Visual Intelligence.
//! - [`nls`]: NLS speech: the `CreateToken` cache, RESTful TTS and
//!   one-sentence ASR behind lty's `Tts` and `Asr` ports.
//! - [`oss`]: OSS V1 `Authorization` header and V1 presigned URLs.
//! - [`sls`]: Log Service `PutLogs` signing and the `LogGroup` protobuf body.
//! - [`sms`]: the SMS `SendSms` call and its client.
//! - [`vi`]: Visual Intelligence image tagging (`TaggingImage`), the
//!   temporary upload for images off OSS in its region, and the client.
//!
//! Every signer takes the clock reading and the nonce as arguments, so the
//! same functions serve the real clients and the in-process fakes that
//! recompute signatures from requests as received.

use std::fmt;

pub mod nls;
pub mod oss;
pub mod pop;
pub mod sls;
pub mod sms;
pub mod vi;

mod digest;
mod time;

/// An Aliyun AccessKey pair, optionally with an STS security token.
///
/// `Debug` prints the id only: secrets must never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// `AccessKeyId`, sent in the clear.
    pub id: String,
    /// `AccessKeySecret`, only ever used as an HMAC key.
    pub secret: String,
    /// STS token, when the pair is temporary (`SecurityToken`,
    /// `x-oss-security-token`, `x-acs-security-token` depending on the product).
    pub security_token: Option<String>,
}

impl AccessKey {
    /// A long-lived AccessKey pair without STS token.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            security_token: None,
        }
    }

    /// The same pair with an STS security token attached.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// HTTP method of a signed request; every Aliyun scheme puts it verbatim
/// (upper case) at the start of the string to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `HEAD`
    Head,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method as it appears on the wire and in strings to sign.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Head => "HEAD",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A caller-supplied parameter collides with one the signer sets itself
    /// (`Signature`, `SignatureNonce`, `OSSAccessKeyId`, ...).
    #[error("parameter `{0}` is set by the signer and must not be passed in")]
    ReservedParameter(String),
    /// The same parameter or header name was given twice; the vendors'
    /// handling of repeats is undocumented, so lty never sends them.
    #[error("`{0}` appears more than once")]
    Duplicate(String),
    /// A header name is empty or a name/value contains CR, LF or another
    /// control character, which would forge extra lines in the string to sign.
    #[error("header `{0}` has an empty name or a control character")]
    InvalidHeader(String),
    /// The HMAC implementation refused the key (it accepts every length, so
    /// this is not expected to happen).
    #[error("HMAC key rejected")]
    HmacKey,
}
