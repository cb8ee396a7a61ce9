//! Integration tests of `lty-store`: every adapter against the embedded
//! backends, and against PostgreSQL and Redis when `TEST_DATABASE_URL` and
//! `TEST_REDIS_URL` are set (see `helpers`).

mod blob;
mod cache;
mod database;
mod helpers;
mod pubsub;
mod seed;
mod tokens;
