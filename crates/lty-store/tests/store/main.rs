//! Integration tests of `lty-store`: every adapter against the embedded
//! backends, and against PostgreSQL and Redis when `TEST_DATABASE_URL` and
//! `TEST_REDIS_URL` are set (see `helpers`). Redis-only tests are
//! `#[ignore]`d and run with `--include-ignored` by the PostgreSQL + Redis leg.

// clippy.toml allows these in `#[test]` functions only; the helpers are
// test code too, where a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod blob;
mod cache;
mod database;
mod helpers;
mod pubsub;
mod seed;
mod tokens;
