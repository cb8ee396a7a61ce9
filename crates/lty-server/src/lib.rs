//! The lty server: configuration, the axum HTTP and WebSocket application,
//! telemetry and the `lty` command line. `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod http;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod ws;
