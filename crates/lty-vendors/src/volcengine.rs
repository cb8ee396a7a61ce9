//! Volcengine (火山引擎): RTC AccessToken, OpenAPI request signing and
//! client, the voice agent's actions and the callbacks it sends.

pub mod callback;
pub mod openapi;
pub mod rtc_token;
pub mod speech;
pub mod voice_chat;

pub(crate) use crate::sha256mac::{hmac_sha256, keyed_mac};
