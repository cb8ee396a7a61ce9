//! The lty server: configuration, the axum HTTP and WebSocket application,
//! telemetry and the `lty` command line. `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

// Bootstrap: configuration, start-up and the command line.
pub mod cli;
pub mod config;
pub mod logship;
pub mod server;
pub mod state;
pub mod telemetry;

// Services.
pub mod app;

// Protocol adapters over the services, and their shared plumbing (the one
// error response, extractors, authentication).
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod http;
pub mod ws;
pub mod xiaozhi;
