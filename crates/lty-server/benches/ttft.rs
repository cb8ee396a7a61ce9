//! Time-to-first-token overhead of lty's streamed chat: a fake
//! OpenAI-compatible upstream and lty run in-process on 127.0.0.1, and
//! each stream is timed from request start to the first content byte, once
//! straight against the fake and once through `POST /api/ai/chat/`
//! (`"stream": true`); the percentiles are compared. Not a pass/fail test:
//! it prints numbers for docs/benchmarks.md.
//!
//! Two load shapes, both with `TTFT_CONCURRENCY` (default 100) streams:
//!
//! - `steady` (default): that many streams are open at every moment. Each
//!   worker opens a stream, reads it to the end (`TTFT_TOKENS` tokens,
//!   `TTFT_TOKEN_MS` apart: a 1 s answer by default) and opens the next;
//!   the workers start spread over one stream's length. Runs
//!   `TTFT_SECS` (default 10) per side after a warm-up stream per worker.
//! - `burst`: rounds of that many streams started at the same instant
//!   (`TTFT_ROUNDS`, default 10; the first round is a warm-up). On 2 vCPUs
//!   this mostly measures how long the last of 100 simultaneous arrivals
//!   queues for a core.
//!
//! `cargo bench -p lty-server --bench ttft` (`TTFT_MODE=steady|burst`).

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
const KEY: &str = "sk-bench";

/// The shape of the fake's answers.
#[derive(Debug, Clone, Copy)]
struct Answer {
    /// Tokens after the first one.
    tokens: usize,
    /// Pause before each of them.
    gap: Duration,
}

fn chunk(delta: serde_json::Value, finish: serde_json::Value) -> String {
    let c = json!({
        "id": "cmpl-bench", "object": "chat.completion.chunk", "created": 0,
        "model": "bench", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {c}\n\n")
}

/// The fake upstream: the role chunk and the first token at once, then
/// `answer.tokens` more, `answer.gap` apart, then the end.
async fn completions(answer: Answer) -> impl IntoResponse {
    let head = format!(
        "{}{}",
        chunk(json!({ "role": "assistant", "content": "" }), json!(null)),
        chunk(json!({ "content": FIRST }), json!(null)),
    );
    let token = chunk(json!({ "content": "小朋友" }), json!(null));
    let tail = format!("{}data: [DONE]\n\n", chunk(json!({}), json!("stop")));
    let body = futures_util::stream::unfold(0usize, move |step| {
        let (head, token, tail) = (head.clone(), token.clone(), tail.clone());
        async move {
            if step == 0 {
                return Some((Ok::<_, Infallible>(Bytes::from(head)), 1));
            }
            if step > answer.tokens + 1 {
                return None;
            }
            tokio::time::sleep(answer.gap).await;
            let piece = if step <= answer.tokens { token } else { tail };
            Some((Ok(Bytes::from(piece)), step + 1))
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

type MakeRequest = Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs `rounds` rounds of `n` simultaneous calls of `make(i)`; the first
/// round is a warm-up. Sorted TTFTs.
async fn burst(n: usize, rounds: usize, make: MakeRequest) -> Vec<Duration> {
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

/// Keeps `n` streams open for `run` (after one warm-up stream per worker),
/// workers starting `spread / n` apart. Sorted TTFTs.
async fn steady(n: usize, spread: Duration, run: Duration, make: MakeRequest) -> Vec<Duration> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let make = make.clone();
            tokio::spawn(async move {
                tokio::time::sleep(spread.mul_f64(i as f64 / n as f64)).await;
                ttft(make(i)).await;
                let end = Instant::now() + run;
                let mut samples = Vec::new();
                while Instant::now() < end {
                    samples.push(ttft(make(i)).await);
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
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
    let mode = std::env::var("TTFT_MODE").unwrap_or_else(|_| "steady".into());
    let answer = match mode.as_str() {
        "burst" => Answer {
            tokens: 1,
            gap: Duration::from_millis(50),
        },
        "steady" => Answer {
            tokens: env_usize("TTFT_TOKENS", 20),
            gap: Duration::from_millis(env_usize("TTFT_TOKEN_MS", 50) as u64),
        },
        other => anyhow::bail!("TTFT_MODE must be steady or burst, not {other}"),
    };

    let fake = TcpListener::bind("127.0.0.1:0").await?;
    let fake_addr = fake.local_addr()?;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || completions(answer)),
    );
    tokio::spawn(async move { axum::serve(fake, app).await });

    let dir = tempfile::tempdir()?;
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.llm.base_url = format!("http://{fake_addr}/v1");
    config.llm.api_key = Some(Secret::new(KEY));
    // Every worker connects from loopback: per-IP limits would count them
    // as one client.
    config.limits.exempt_loopback = true;
    // Production mode when both URLs are given.
    if let (Ok(db), Ok(redis)) = (
        std::env::var("TTFT_DATABASE_URL"),
        std::env::var("TTFT_REDIS_URL"),
    ) {
        config.database.url = Some(Secret::new(&db));
        config.redis.location = Some(redis);
    }
    let state = AppState::build(config).await?;
    let lty = TcpListener::bind("127.0.0.1:0").await?;
    let lty_addr = lty.local_addr()?;
    let server_state = state.clone();
    tokio::spawn(async move { lty_server::server::serve(server_state, lty).await });

    // One user per worker, on a plan without a daily message limit.
    let unlimited = state
        .db
        .create_plan(lty_store::subscriptions::NewPlan {
            code: format!("bench-{}", rand::random::<u32>()),
            name: "bench".into(),
            daily_ai_messages: 0,
            daily_voice_minutes: 0,
            personas: Vec::new(),
            price_cents: 1,
            currency: "CNY".into(),
        })
        .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let user = state
            .db
            .create_user(lty_core::user::NewUser {
                username: format!("bench{i}-{}", rand::random::<u32>()),
                nickname: None,
                phone: None,
            })
            .await?;
        state
            .db
            .grant_subscription(
                user.id,
                unlimited.id,
                1,
                lty_store::subscriptions::Grant::Admin,
                chrono::Utc::now(),
            )
            .await?;
        let mac_text = format!(
            "02:{:02x}:{:02x}:00:{:02x}:{:02x}",
            rand::random::<u8>(),
            rand::random::<u8>(),
            i / 256,
            i % 256
        );
        let mac = lty_core::MacAddress::parse(&mac_text)?;
        state.db.bind(user.id, &mac, None).await?;
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
    let direct: MakeRequest = Arc::new(move |_| {
        direct_client
            .post(format!("http://{fake_addr}/v1/chat/completions"))
            .bearer_auth(KEY)
            .header(header::ACCEPT, "text/event-stream")
            .json(&json!({
                "model": "moonshot-v1-8k", "stream": true,
                "messages": [{ "role": "user", "content": "讲个故事" }],
            }))
    });
    let lty_client = client.clone();
    let through: MakeRequest = Arc::new(move |i| {
        lty_client
            .post(format!("http://{lty_addr}/api/ai/chat/"))
            .bearer_auth(&tokens[i])
            .json(&json!({ "message": "讲个故事", "stream": true }))
    });
    let (direct, through) = if mode == "burst" {
        let rounds = env_usize("TTFT_ROUNDS", 10).max(2);
        (
            burst(n, rounds, direct).await,
            burst(n, rounds, through).await,
        )
    } else {
        let spread = answer.gap * u32::try_from(answer.tokens + 1).unwrap_or(1);
        let run = Duration::from_secs(env_usize("TTFT_SECS", 10) as u64);
        (
            steady(n, spread, run, direct).await,
            steady(n, spread, run, through).await,
        )
    };

    println!(
        "ttft: {mode}, {n} concurrent streams, {} / {} samples (direct / via lty), {:?} database",
        direct.len(),
        through.len(),
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
