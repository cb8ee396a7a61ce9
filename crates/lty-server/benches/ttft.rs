//! Time-to-first-token overhead of lty's streamed chat: a fake
//! OpenAI-compatible upstream and lty run in-process on 127.0.0.1; rounds of
//! `TTFT_CONCURRENCY` (default 100) simultaneous streams are timed from
//! request start to the first content byte, once straight against the fake
//! and once through `POST /api/ai/chat/` (`"stream": true`), and the
//! percentiles are compared. Not a pass/fail test: it prints numbers for
//! docs/benchmarks.md.
//!
//! `cargo bench -p lty-server --bench ttft` (`TTFT_ROUNDS`, default 10, the
//! first round of each side is a warm-up and not counted).

// A benchmark, like a test, stops at the first broken assumption.
#![allow(clippy::expect_used)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::IntoResponse;
use lty_server::config::{Config, Secret};
use lty_server::state::AppState;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

/// The first token; both paths look for its bytes.
const FIRST: &str = "你好";
/// How long the fake keeps a stream open after the first token, so the
/// streams of a round overlap.
const TAIL: Duration = Duration::from_millis(50);
const KEY: &str = "sk-bench";

fn chunk(delta: serde_json::Value, finish: serde_json::Value) -> String {
    let c = json!({
        "id": "cmpl-bench", "object": "chat.completion.chunk", "created": 0,
        "model": "bench", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {c}\n\n")
}

/// The fake upstream: the role chunk and the first token at once, the rest
/// after [`TAIL`].
async fn completions() -> impl IntoResponse {
    let head = format!(
        "{}{}",
        chunk(json!({ "role": "assistant", "content": "" }), json!(null)),
        chunk(json!({ "content": FIRST }), json!(null)),
    );
    let tail = format!(
        "{}{}data: [DONE]\n\n",
        chunk(json!({ "content": "小朋友！" }), json!(null)),
        chunk(json!({}), json!("stop")),
    );
    let body = futures_util::stream::unfold(0u8, move |step| {
        let (head, tail) = (head.clone(), tail.clone());
        async move {
            match step {
                0 => Some((Ok::<_, Infallible>(Bytes::from(head)), 1)),
                1 => {
                    tokio::time::sleep(TAIL).await;
                    Some((Ok(Bytes::from(tail)), 2))
                }
                _ => None,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
}

/// Sends `req`, returns the time until [`FIRST`] arrived, drains the rest.
async fn ttft(req: reqwest::RequestBuilder) -> Duration {
    let start = Instant::now();
    let mut res = req.send().await.expect("send");
    assert!(res.status().is_success(), "HTTP {}", res.status());
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(bytes) = res.chunk().await.expect("body") {
        if first.is_none() {
            seen.extend_from_slice(&bytes);
            if seen.windows(FIRST.len()).any(|w| w == FIRST.as_bytes()) {
                first = Some(start.elapsed());
            }
        }
    }
    first.expect("the first token never arrived")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Runs `rounds` rounds of `n` simultaneous calls of `make(i)`; the first
/// round is a warm-up. Sorted TTFTs.
async fn measure<F>(n: usize, rounds: usize, make: F) -> Vec<Duration>
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut all = Vec::new();
    for round in 0..rounds {
        let barrier = Arc::new(Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, make) = (barrier.clone(), make.clone());
                tokio::spawn(async move {
                    let req = make(i);
                    barrier.wait().await;
                    ttft(req).await
                })
            })
            .collect();
        for t in tasks {
            let d = t.await.expect("task");
            if round > 0 {
                all.push(d);
            }
        }
    }
    all.sort();
    all
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("TTFT_CONCURRENCY", 100);
    let rounds = env_usize("TTFT_ROUNDS", 10).max(2);

    let fake = TcpListener::bind("127.0.0.1:0").await?;
    let fake_addr = fake.local_addr()?;
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions));
    tokio::spawn(async move { axum::serve(fake, app).await });

    let dir = tempfile::tempdir()?;
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.llm.base_url = format!("http://{fake_addr}/v1");
    config.llm.api_key = Some(Secret::new(KEY));
    let state = AppState::build(config).await?;
    let lty = TcpListener::bind("127.0.0.1:0").await?;
    let lty_addr = lty.local_addr()?;
    let server_state = state.clone();
    tokio::spawn(async move { lty_server::server::serve(server_state, lty).await });

    // One user per stream: a user's daily quota (free plan: 20) covers the
    // rounds.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let user = state
            .users
            .create(lty_core::user::NewUser {
                username: format!("bench{i}"),
                nickname: None,
                phone: None,
            })
            .await?;
        let mac_text = format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
        let mac = lty_core::MacAddress::parse(&mac_text)?;
        state.devices.bind(user.id, &mac, None).await?;
        let res: serde_json::Value = client
            .post(format!("http://{lty_addr}/api/user/mac-login/"))
            .json(&json!({ "mac_address": mac_text }))
            .send()
            .await?
            .json()
            .await?;
        let token = res["token"].as_str().expect("token").to_owned();
        tokens.push(token);
    }
    let tokens = Arc::new(tokens);

    let direct_client = client.clone();
    let direct = measure(n, rounds, move |_| {
        direct_client
            .post(format!("http://{fake_addr}/v1/chat/completions"))
            .bearer_auth(KEY)
            .header(header::ACCEPT, "text/event-stream")
            .json(&json!({
                "model": "moonshot-v1-8k", "stream": true,
                "messages": [{ "role": "user", "content": "讲个故事" }],
            }))
    })
    .await;
    let lty_client = client.clone();
    let through = measure(n, rounds, move |i| {
        lty_client
            .post(format!("http://{lty_addr}/api/ai/chat/"))
            .bearer_auth(&tokens[i])
            .json(&json!({ "message": "讲个故事", "stream": true }))
    })
    .await;

    println!(
        "ttft: {n} concurrent streams, {} measured rounds, {} samples per side, {:?} database",
        rounds - 1,
        direct.len(),
        state.db.kind()
    );
    println!(
        "{:<8} {:>10} {:>10} {:>10}",
        "", "p50 ms", "p99 ms", "max ms"
    );
    for (name, v) in [("direct", &direct), ("via lty", &through)] {
        println!(
            "{name:<8} {:>10.3} {:>10.3} {:>10.3}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().expect("samples"))
        );
    }
    println!(
        "overhead p50 {:.3} ms, p99 {:.3} ms (target: < 2 ms at p99)",
        ms(percentile(&through, 0.5)) - ms(percentile(&direct, 0.5)),
        ms(percentile(&through, 0.99)) - ms(percentile(&direct, 0.99)),
    );
    state.shutdown.cancel();
    Ok(())
}
