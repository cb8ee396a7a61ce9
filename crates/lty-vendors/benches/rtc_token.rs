//! Throughput of the Volcengine RTC AccessToken: what `get_by_mac` pays per
//! request (build + serialize with the legacy default privileges) and what a
//! verifier pays (parse + constant-time HMAC check).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lty_vendors::volcengine::rtc_token::{AccessToken, parse};

const APP_ID: &str = "5f3c0e1d2b4a69788796a5b4";
const APP_KEY: &str = "lty-docs-example-app-key-0001";

fn rtc_token(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtc_token");
    group.throughput(Throughput::Elements(1));

    // Fixed fields so the serialize loop measures packing, HMAC and Base64 only.
    let token = AccessToken::builder(APP_ID, "room_42", "42")
        .nonce(20250304)
        .issued_at(1741064767)
        .expire_at(1741151167)
        .build_at(0);
    let Ok(token) = token else {
        panic!("benchmark token must build");
    };
    group.bench_function("serialize_default_privileges", |b| {
        b.iter(|| black_box(&token).serialize(black_box(APP_KEY)))
    });

    // The request path: clock, random nonce, default set, then serialize.
    group.bench_function("build_and_serialize", |b| {
        b.iter(|| {
            AccessToken::builder(black_box(APP_ID), "room_42", "42")
                .build()
                .map(|t| t.serialize(APP_KEY))
        })
    });

    let raw = token.serialize(APP_KEY);
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| parse(black_box(&raw)).and_then(|p| p.verify(black_box(APP_KEY))))
    });
    group.finish();
}

criterion_group!(benches, rtc_token);
criterion_main!(benches);
