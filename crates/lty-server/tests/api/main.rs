//! The one integration-test binary of `lty-server`: the real application on
//! `127.0.0.1:0`, driven over HTTP, WebSocket and the `lty` CLI. Each test
//! gets a fresh SQLite database, or a fresh PostgreSQL database and a unique
//! Redis key prefix when `TEST_DATABASE_URL` / `TEST_REDIS_URL` are set.
//! Tests that need PostgreSQL or Redis themselves (an outage, two instances)
//! are `#[ignore]`d and fail without them; the PostgreSQL + Redis leg of
//! `.ci/run` runs them with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod achievements;
mod admin;
mod admin_api;
mod admin_sorting;
mod ai;
mod audio;
mod cards;
mod chat_tools;
mod chat_turn;
mod cli;
mod cli_accounts;
mod console;
mod custom_llm;
mod device_auth;
mod devices;
mod docs;
mod drain;
mod errors;
mod fakes;
mod hardening;
mod health;
mod helpers;
mod image;
mod logship;
mod opus_interop;
mod ratelimit;
mod replay;
mod rtc;
mod sms;
mod speech;
mod speech_aliyun;
mod speech_huoshan;
mod speech_streaming;
mod storage;
mod subscriptions;
mod users;
mod voice;
mod voice_chat;
mod webdriver;
mod wechat;
mod ws;
mod xiaozhi;
mod xiaozhi_sim;
mod xiaozhi_voice;
