//! The services: what lty does, whatever protocol asked. Each returns
//! [`lty_core::Error`] and knows nothing of HTTP; the adapters in
//! [`crate::http`] and [`crate::ws`] parse a request, call a service and
//! map its answer to a response or a frame. Services reach the outside
//! through the ports held in [`AppState`](crate::state::AppState).

pub mod achievements;
pub mod admin;
pub mod audio;
pub mod auth;
pub mod card_export;
pub mod cards;
pub mod chat;
pub mod device_auth;
pub mod devices;
pub mod media;
pub mod qr;
pub mod ratelimit;
pub mod rounds;
pub mod rtc;
pub mod sms;
pub mod speech;
pub mod subscriptions;
pub mod vision;
pub mod voice_chat;
pub mod wechat;
pub mod xiaozhi;
