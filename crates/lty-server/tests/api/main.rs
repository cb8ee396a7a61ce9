//! The one integration-test binary of `lty-server`: the real application on
//! `127.0.0.1:0`, driven over HTTP, WebSocket and the `lty` CLI. Each test
//! gets a fresh SQLite database, or a fresh PostgreSQL database and a unique
//! Redis key prefix when `TEST_DATABASE_URL` / `TEST_REDIS_URL` are set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod devices;
mod docs;
mod errors;
mod health;
mod helpers;
mod users;
mod ws;
