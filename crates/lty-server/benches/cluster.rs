//! Pushes through a balancer to resuming device sockets, counting every
//! push and every delivery: the load generator of `scripts/bench-cluster.sh`
//! (several `lty serve` instances behind HAProxy, restarted one after
//! another while this runs). Not a pass/fail test: it prints what it saw
//! for docs/benchmarks.md, and exits non-zero when a push acknowledged
//! with 200 was lost or delivered twice, or when an HTTP request failed.
//!
//! `cargo bench -p lty-server --bench cluster`, configured by environment:
//!
//! - `CLUSTER_ADDR` (required): the balancer, `127.0.0.1:PORT` (only
//!   127.0.0.0/8 is accepted);
//! - `CLUSTER_FAMILIES` (1000): bench users `bench_0..` (already seeded
//!   with `lty seed`), one family each;
//! - `CLUSTER_GROUP` (1, at most 50): sockets per family;
//! - `CLUSTER_RATE` (1000) pushes/s for `CLUSTER_SECS` (60) seconds, each
//!   to a random family;
//! - `CLUSTER_STARTED_FILE`: created when the pushes start (the script
//!   starts its restarts then);
//! - `CLUSTER_SETTLE_SECS` (20): how long to wait, after the last push,
//!   for every socket to be back and every delivery to arrive;
//! - `CLUSTER_DEADLINE_SECS` (600): the whole run is aborted after this.
//!
//! Every socket opens with `?since=now` and, whenever it closes (1012 from
//! an instance that drains, or anything else), reconnects through the
//! balancer with `?since=` the id of the last frame it got. A push's body
//! is `{"k": <push number>, "t": <µs since start>}`; each socket records
//! the `k` of every message, so losses and duplicates are counted per
//! socket against the pushes answered 200 for its family. The balancer is
//! expected to name the instance that answered in an `X-Lty-Backend`
//! header (`lty1`, `lty2`, …), which tells how many deliveries crossed
//! from the instance that took the push to another one.

#![allow(clippy::expect_used, clippy::unwrap_used)]
#![forbid(unsafe_code)]

mod support;

use support::env_u64;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const MAX_FAMILIES: u64 = 20_000;
const MAX_GROUP: u64 = 50;
const MAX_PUSHES: u64 = 1_000_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "n={} p50={:.2} ms p99={:.2} ms p99.9={:.2} ms max={:.2} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        percentile(&ms, 99.9),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// The instance number in the balancer's `X-Lty-Backend` header (`lty2`
/// → 2); 0 when there is none.
fn backend_of(headers: &tokio_tungstenite::tungstenite::http::HeaderMap) -> u8 {
    headers
        .get("x-lty-backend")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start_matches("lty").parse().ok())
        .unwrap_or(0)
}

/// A replay-log id `{ms}-{seq}` as a comparable pair.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// What one socket (across its reconnections) saw.
#[derive(Default)]
struct SocketLog {
    /// (push number, instance the socket was on when it got it).
    got: Vec<(u32, u8)>,
    /// Messages whose id was not above the previous one.
    out_of_order: u64,
    resyncs: u64,
    errors: u64,
    connects: u64,
    /// Close codes received from the server (0: closed without a code).
    closes: BTreeMap<u16, u64>,
    handshake_failures: u64,
    /// Instance of each successful handshake.
    instances: BTreeMap<u8, u64>,
}

struct Shared {
    epoch: Instant,
    delivered: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
    /// Sockets connected right now.
    connected: AtomicU64,
}

/// One resuming device socket: connects, reads, and reconnects with the
/// last id it got until `stop`.
async fn device(
    addr: SocketAddrV4,
    token: String,
    mac: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    opened: tokio::sync::oneshot::Sender<bool>,
) -> SocketLog {
    let mut log = SocketLog::default();
    let mut last: Option<String> = None;
    let mut opened = Some(opened);
    let mut last_id: Option<(u64, u64)> = None;
    let mut backoff = Duration::from_millis(20);
    while !*stop.borrow() {
        let since = last.clone().unwrap_or_else(|| "now".into());
        let url = format!("ws://{addr}/ws/device/token/{token}/?mac={mac}&since={since}");
        let request = url.into_client_request().unwrap();
        let connected = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(|e| e.to_string())
        };
        let (mut ws, response) = match tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .unwrap_or_else(|_| Err("timeout".into()))
        {
            Ok(pair) => pair,
            Err(err) => {
                log.handshake_failures += 1;
                if let Some(tx) = opened.take() {
                    eprintln!("socket {mac}: first handshake failed: {err}");
                    let _ = tx.send(false);
                    return log;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        let instance = backend_of(response.headers());
        *log.instances.entry(instance).or_default() += 1;
        log.connects += 1;
        shared.connected.fetch_add(1, Ordering::Relaxed);
        let mut first = opened.is_some();
        let code = loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let now_us = shared.epoch.elapsed().as_micros() as f64;
                        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                            log.errors += 1;
                            continue;
                        };
                        let id = v["id"].as_str().map(str::to_owned);
                        match v["type"].as_str() {
                            Some("cursor") | Some("resync") => {
                                if v["type"] == "resync" {
                                    log.resyncs += 1;
                                }
                                if first {
                                    first = false;
                                    let _ = opened.take().map(|tx| tx.send(true));
                                }
                                if let Some(id) = id {
                                    last_id = parse_id(&id);
                                    last = Some(id);
                                }
                                continue;
                            }
                            Some("error") => {
                                log.errors += 1;
                                continue;
                            }
                            _ => {}
                        }
                        let (Some(id), Some(k)) = (id, v["message"]["k"].as_u64()) else {
                            log.errors += 1;
                            continue;
                        };
                        let parsed = parse_id(&id);
                        if parsed.is_none() || parsed <= last_id {
                            log.out_of_order += 1;
                        }
                        last_id = parsed.or(last_id);
                        last = Some(id);
                        log.got.push((k as u32, instance));
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent) = v["message"]["t"].as_f64() {
                            shared.latencies_ms.lock().await.push((now_us - sent) / 1000.0);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map_or(0, |f| u16::from(f.code));
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break 0,
                },
                _ = stop.changed() => {
                    let _ = ws.close(None).await;
                    shared.connected.fetch_sub(1, Ordering::Relaxed);
                    return log;
                }
            }
        };
        shared.connected.fetch_sub(1, Ordering::Relaxed);
        *log.closes.entry(code).or_default() += 1;
        if let Some(tx) = opened.take() {
            let _ = tx.send(false);
            eprintln!("socket {mac}: closed ({code}) before its cursor");
            return log;
        }
        // Spread the reconnections of a draining instance's sockets a little.
        tokio::time::sleep(Duration::from_millis(rand::random_range(5..50))).await;
    }
    log
}

/// One push: its family, HTTP outcome (status, or 0 for a transport
/// error), the instance that answered and the answer's latency.
#[derive(Clone, Copy, Default)]
struct Push {
    family: u32,
    status: u16,
    instance: u8,
    ms: f32,
}

async fn run() -> bool {
    let addr: SocketAddrV4 = std::env::var("CLUSTER_ADDR")
        .expect("CLUSTER_ADDR=127.0.0.1:PORT (the balancer)")
        .parse()
        .expect("CLUSTER_ADDR is an IPv4 address and port");
    assert!(addr.ip().is_loopback(), "only 127.0.0.0/8");
    let families = env_u64("CLUSTER_FAMILIES", 1000).clamp(1, MAX_FAMILIES);
    let group = env_u64("CLUSTER_GROUP", 1).clamp(1, MAX_GROUP);
    let rate = env_u64("CLUSTER_RATE", 1000).max(1);
    let secs = env_u64("CLUSTER_SECS", 60);
    let settle = Duration::from_secs(env_u64("CLUSTER_SETTLE_SECS", 20));
    let total = (rate * secs).min(MAX_PUSHES);
    println!(
        "cluster bench: {families} families × {group} sockets through {addr}; {rate} pushes/s for {secs} s"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Logins, one per family.
    let limit = Arc::new(Semaphore::new(64));
    let mut logins = Vec::new();
    for i in 0..families {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let http = http.clone();
        logins.push(tokio::spawn(async move {
            let _permit = permit;
            let mac = lty_store::seed::bench_mac(i as u32).to_string();
            let res = http
                .post(format!("http://{addr}/api/user/mac-login/"))
                .json(&json!({"mac_address": mac}))
                .send()
                .await
                .expect("mac-login");
            assert_eq!(res.status(), 200, "mac-login of bench user {i}");
            let token = res.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned();
            (mac, token)
        }));
    }
    let mut users = Vec::new();
    for t in logins {
        users.push(t.await.unwrap());
    }

    // Sockets.
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        delivered: AtomicU64::new(0),
        latencies_ms: Mutex::new(Vec::new()),
        connected: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut sockets = Vec::new();
    let mut openings = Vec::new();
    let handshakes = Arc::new(Semaphore::new(128));
    for (f, (mac, token)) in users.iter().enumerate() {
        for _ in 0..group {
            let permit = handshakes.clone().acquire_owned().await.unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            sockets.push((
                f as u32,
                tokio::spawn(device(
                    addr,
                    token.clone(),
                    mac.clone(),
                    shared.clone(),
                    stop_rx.clone(),
                    tx,
                )),
            ));
            openings.push(tokio::spawn(async move {
                let ok = rx.await.unwrap_or(false);
                drop(permit);
                ok
            }));
        }
    }
    let mut open_ok = 0u64;
    for o in openings {
        open_ok += u64::from(o.await.unwrap());
    }
    let n_sockets = families * group;
    println!(
        "sockets: {open_ok} of {n_sockets} open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if open_ok < n_sockets {
        let _ = stop_tx.send(true);
        return false;
    }

    // Pushes.
    if let Ok(path) = std::env::var("CLUSTER_STARTED_FILE") {
        std::fs::write(path, b"pushing\n").unwrap();
    }
    let pushes: Arc<Mutex<Vec<Push>>> = Arc::new(Mutex::new(vec![Push::default(); total as usize]));
    let in_flight = Arc::new(Semaphore::new(512));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let failures_printed = Arc::new(AtomicU64::new(0));
    for k in 0..total {
        tick.tick().await;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let family = rand::random_range(0..families) as u32;
        let token = users[family as usize].1.clone();
        let (http, pushes, shared) = (http.clone(), pushes.clone(), shared.clone());
        let failures_printed = failures_printed.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let t = shared.epoch.elapsed().as_micros() as u64;
            let res = http
                .post(format!("http://{addr}/api/device/send/"))
                .bearer_auth(&token)
                .json(&json!({"k": k, "t": t}))
                .send()
                .await;
            let (status, instance) = match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let instance = backend_of(r.headers());
                    if status != 200 && failures_printed.fetch_add(1, Ordering::Relaxed) < 10 {
                        let body = r.text().await.unwrap_or_default();
                        eprintln!("push {k}: {status} {body}");
                    }
                    (status, instance)
                }
                Err(err) => {
                    if failures_printed.fetch_add(1, Ordering::Relaxed) < 10 {
                        eprintln!("push {k}: {err}");
                    }
                    (0, 0)
                }
            };
            pushes.lock().await[k as usize] = Push {
                family,
                status,
                instance,
                ms: t0.elapsed().as_secs_f32() * 1000.0,
            };
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let push_secs = started.elapsed().as_secs_f64();
    let pushes = std::mem::take(&mut *pushes.lock().await);
    let accepted = pushes.iter().filter(|p| p.status == 200).count() as u64;
    let expected = accepted * group;

    // Settle: every socket back, every delivery in (or the limit).
    let settle_from = Instant::now();
    while settle_from.elapsed() < settle
        && (shared.delivered.load(Ordering::Relaxed) < expected
            || shared.connected.load(Ordering::Relaxed) < n_sockets)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late duplicates would come now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected_at_end = shared.connected.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);

    // Tally.
    let mut by_family: Vec<Vec<u32>> = vec![Vec::new(); families as usize];
    for (k, p) in pushes.iter().enumerate() {
        if p.status == 200 {
            by_family[p.family as usize].push(k as u32);
        }
    }
    let (mut lost, mut dups, mut unasked, mut cross, mut got_total) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut out_of_order, mut resyncs, mut errors, mut connects, mut hs_fail) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut closes: BTreeMap<u16, u64> = BTreeMap::new();
    let mut instances: BTreeMap<u8, u64> = BTreeMap::new();
    for (family, task) in sockets {
        let log = task.await.unwrap();
        out_of_order += log.out_of_order;
        resyncs += log.resyncs;
        errors += log.errors;
        connects += log.connects;
        hs_fail += log.handshake_failures;
        for (c, n) in log.closes {
            *closes.entry(c).or_default() += n;
        }
        for (i, n) in log.instances {
            *instances.entry(i).or_default() += n;
        }
        let mut got: Vec<u32> = log.got.iter().map(|&(k, _)| k).collect();
        got_total += got.len() as u64;
        for &(k, on) in &log.got {
            let from = pushes.get(k as usize).map_or(0, |p| p.instance);
            if from != 0 && on != 0 && from != on {
                cross += 1;
            }
        }
        got.sort_unstable();
        let before = got.len();
        got.dedup();
        dups += (before - got.len()) as u64;
        let want = &by_family[family as usize];
        let (mut i, mut j) = (0, 0);
        while i < want.len() || j < got.len() {
            match (want.get(i), got.get(j)) {
                (Some(w), Some(g)) if w == g => {
                    i += 1;
                    j += 1;
                }
                (Some(w), Some(g)) if w < g => {
                    lost += 1;
                    i += 1;
                }
                (Some(_), None) => {
                    lost += 1;
                    i += 1;
                }
                _ => {
                    unasked += 1;
                    j += 1;
                }
            }
        }
    }
    let failed = total - accepted;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut push_instances: BTreeMap<u8, u64> = BTreeMap::new();
    for p in &pushes {
        *statuses.entry(p.status).or_default() += 1;
        *push_instances.entry(p.instance).or_default() += 1;
    }
    let push_ms: Vec<f64> = pushes.iter().map(|p| f64::from(p.ms)).collect();
    println!(
        "pushes: {total} sent in {push_secs:.1} s = {:.0}/s; answers by status {statuses:?} (0 = transport error); by instance {push_instances:?}; answer latency {}",
        total as f64 / push_secs,
        summary(push_ms)
    );
    println!(
        "deliveries: expected {expected} ({accepted} accepted × {group}), received {got_total}: lost {lost}, duplicated {dups}, out of order {out_of_order}, from pushes not answered 200 {unasked}; {cross} crossed instances"
    );
    println!(
        "sockets: {connects} connections ({} reconnections), handshake failures {hs_fail}, handshakes by instance {instances:?}; closes by code {closes:?}; resyncs {resyncs}; error frames {errors}; connected at the end {connected_at_end} of {n_sockets}",
        connects.saturating_sub(n_sockets)
    );
    println!(
        "delivery latency (push start to socket, replays included): {}",
        summary(std::mem::take(&mut *shared.latencies_ms.lock().await))
    );
    let ok = lost == 0 && dups == 0 && failed == 0 && out_of_order == 0;
    println!(
        "result: {}",
        if ok {
            "every accepted push delivered exactly once, in order; 0 failed requests"
        } else {
            "FAILED (see above)"
        }
    );
    ok
}

fn main() {
    let deadline = Duration::from_secs(env_u64("CLUSTER_DEADLINE_SECS", 600));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok = runtime.block_on(async {
        match tokio::time::timeout(deadline, run()).await {
            Ok(ok) => ok,
            Err(_) => {
                eprintln!("cluster bench: deadline of {deadline:?} reached; aborting");
                false
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !ok {
        std::process::exit(1);
    }
}
