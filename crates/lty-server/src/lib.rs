//! The lty server: configuration, the axum HTTP and WebSocket application,
//! telemetry and the `lty` command line. `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

pub mod achievements;
pub mod admin;
pub mod audio;
pub mod auth;
pub mod card_export;
pub mod chat;
pub mod cli;
pub mod config;
pub mod device_auth;
pub mod error;
pub mod extract;
pub mod http;
pub mod logship;
pub mod qr;
pub mod ratelimit;
pub mod rounds;
pub mod server;
pub mod sms;
pub mod speech;
pub mod state;
pub mod subscriptions;
pub mod telemetry;
pub mod wechat;
pub mod ws;
