//! Device sockets under load: the release `lty` binary holds `SOCKETS_N`
//! device WebSockets (one family each, `lty seed` bench users) opened from
//! several loopback source addresses (127.0.0.2, 127.0.0.3, …: one address
//! has about 28 000 ephemeral ports). Not a pass/fail test: it prints
//! numbers for docs/benchmarks.md.
//!
//! `cargo bench -p lty-server --bench sockets`, configured by environment:
//!
//! - `SOCKETS_N` (10000, at most 200 000): sockets to open;
//! - `SOCKETS_SOURCES` (N / 10 000 + 1, at most 250): source addresses;
//! - `SOCKETS_CONCURRENCY` (256): handshakes (and logins) in flight;
//! - `SOCKETS_PROBE_CONCURRENCY` (64, the connections of the harness's
//!   `wrk`) and `SOCKETS_PROBE_REQUESTS` (10 000): the profile requests in
//!   flight, and in all, while every socket is open;
//! - `SOCKETS_HOLD_SECS` (20): how long all sockets stay open and idle
//!   (client pings every `SOCKETS_PING_SECS`, 10) while server CPU is read;
//! - `SOCKETS_PUSH_RATE` (0 = off) and `SOCKETS_PUSH_SECS` (10): a push
//!   throughput phase at that many pushes/s to random sockets;
//! - `SOCKETS_DEADLINE_SECS` (900): the whole run is aborted after this;
//! - `SOCKETS_DATABASE_URL` / `SOCKETS_REDIS_URL`: production mode (a fresh
//!   database `lty_sockets_bench` is created on that server, Redis keys get
//!   a fresh prefix); embedded mode without them.
//!
//! Phases: seed and log in N users (`POST /api/user/mac-login/`: login
//! rate), open N sockets (handshake rate and latency), hold them (server
//! RSS per socket from /proc/<pid>/status VmRSS, CPU of the pings), push
//! once to a random 1 % of them (delivery latency, lost pushes), time the
//! profile hot path while they are all open, and optionally the push
//! throughput phase. Only 127.0.0.0/8 is ever connected to.

#![allow(clippy::expect_used, clippy::unwrap_used)]
#![forbid(unsafe_code)]

mod support;

use support::{env_u64, free_port, proc_stats};

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// Hard bounds, whatever the environment says.
const MAX_SOCKETS: u64 = 200_000;
const MAX_SOURCES: u64 = 250;

struct Server {
    child: Child,
    addr: SocketAddrV4,
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seeds `users` bench users and starts `lty serve` on 127.0.0.1.
async fn start_server(data: &std::path::Path, users: u64) -> (Server, &'static str) {
    let bin = env!("CARGO_BIN_EXE_lty");
    let port = free_port();
    let mut envs = vec![
        ("LTY_DATA_DIR", data.display().to_string()),
        ("LTY_LOG__LEVEL", "warn".into()),
        ("LTY_LIMITS__EXEMPT_LOOPBACK", "true".into()),
        ("LTY_DATABASE__MAX_CONNECTIONS", "16".into()),
    ];
    let mut mode = "embedded";
    if let Ok(admin) = std::env::var("SOCKETS_DATABASE_URL") {
        let name = "lty_sockets_bench";
        let _ = lty_store::provision::drop_postgres_database(&admin, name).await;
        lty_store::provision::create_postgres_database(&admin, name)
            .await
            .expect("create the bench database");
        let url = lty_store::provision::with_database(&admin, name).unwrap();
        envs.push(("DATABASE_URL", url));
        mode = "production";
    }
    if let Ok(redis) = std::env::var("SOCKETS_REDIS_URL") {
        envs.push(("REDIS_LOCATION", redis));
        let prefix = format!("bench:sockets:{}:", rand::random::<u32>());
        envs.push(("LTY_REDIS__KEY_PREFIX", prefix));
    }
    let status = Command::new(bin)
        .args(["seed", "--users", &users.to_string()])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .status()
        .expect("lty seed");
    assert!(status.success(), "lty seed failed");
    let child = Command::new(bin)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()
        .expect("lty serve");
    let pid = child.id();
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    // Owned from here on: killed on drop, a failed start included.
    let server = Server { child, addr, pid };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (server, mode);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("lty did not become ready");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// Where pushes' delivery latencies go (microseconds since `epoch`).
#[derive(Default)]
struct Deliveries {
    latencies_ms: Mutex<Vec<f64>>,
    count: AtomicU64,
}

/// One device socket: answers server pings (tungstenite does while
/// reading), pings every `ping` itself, and records pushes' latency.
async fn hold(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ping: Duration,
    epoch: Instant,
    deliveries: Arc<Deliveries>,
    closed: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let now = epoch.elapsed().as_micros() as f64;
                    if let Ok(v) = serde_json::from_str::<Value>(text.as_str())
                        && let Some(sent) = v["t"].as_f64()
                    {
                        deliveries.latencies_ms.lock().await.push((now - sent) / 1000.0);
                        deliveries.count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            _ = tick.tick() => {
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return;
            }
        }
    }
}

/// Opens a device socket for `token` from `source`; returns it and the
/// time from connect to the 101 answer.
async fn open(
    server: SocketAddrV4,
    source: Ipv4Addr,
    token: &str,
    mac: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        Duration,
    ),
    String,
> {
    let started = Instant::now();
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(SocketAddr::V4(server))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{server}/ws/device/token/{token}/?mac={mac}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok((ws, started.elapsed()))
}

/// Pushes `{"t": <µs since epoch>, "k": k}` to the family of `token`.
async fn push(
    http: &reqwest::Client,
    server: SocketAddrV4,
    token: &str,
    k: u64,
    epoch: Instant,
) -> bool {
    let t = epoch.elapsed().as_micros() as u64;
    http.post(format!("http://{server}/api/device/send/"))
        .bearer_auth(token)
        .json(&json!({"t": t, "k": k}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn wait_for(count: &AtomicU64, target: u64, limit: Duration) -> u64 {
    let started = Instant::now();
    while count.load(Ordering::Relaxed) < target && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count.load(Ordering::Relaxed)
}

async fn run() {
    let n = env_u64("SOCKETS_N", 10_000).clamp(1, MAX_SOCKETS);
    let sources = env_u64("SOCKETS_SOURCES", n / 10_000 + 1).clamp(1, MAX_SOURCES);
    let concurrency = env_u64("SOCKETS_CONCURRENCY", 256).max(1) as usize;
    let hold_secs = env_u64("SOCKETS_HOLD_SECS", 20);
    let ping = Duration::from_secs(env_u64("SOCKETS_PING_SECS", 10).max(1));
    let push_rate = env_u64("SOCKETS_PUSH_RATE", 0);
    let push_secs = env_u64("SOCKETS_PUSH_SECS", 10);

    let data = tempfile::tempdir().unwrap();
    let (server, mode) = start_server(data.path(), n).await;
    let addr = server.addr;
    assert!(addr.ip().is_loopback(), "only 127.0.0.0/8");
    println!(
        "sockets bench: {n} sockets from {sources} source addresses, {mode} mode, lty pid {}",
        server.pid
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let limit = Arc::new(Semaphore::new(concurrency));

    // Logins.
    let (_, rss_empty) = proc_stats(server.pid);
    let started = Instant::now();
    let mut logins = Vec::with_capacity(n as usize);
    for i in 0..n {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let http = http.clone();
        logins.push(tokio::spawn(async move {
            let _permit = permit;
            let mac = lty_store::seed::bench_mac(i as u32).to_string();
            let t = Instant::now();
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
            (mac, token, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut users = Vec::with_capacity(n as usize);
    let mut login_ms = Vec::with_capacity(n as usize);
    for task in logins {
        let (mac, token, ms) = task.await.unwrap();
        users.push((mac, token));
        login_ms.push(ms);
    }
    let login_secs = started.elapsed().as_secs_f64();
    println!(
        "logins: {n} in {login_secs:.1} s = {:.0}/s; {}",
        n as f64 / login_secs,
        summary("login latency", login_ms)
    );

    // Handshakes.
    let epoch = Instant::now();
    let deliveries = Arc::new(Deliveries::default());
    let closed = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ticks_before, rss_before) = proc_stats(server.pid);
    let started = Instant::now();
    let handshake_ms = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let failures = Arc::new(AtomicU64::new(0));
    let mut opening = Vec::with_capacity(n as usize);
    let mut holders = Vec::with_capacity(n as usize);
    for (i, (mac, token)) in users.iter().enumerate() {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i as u64 % sources) as u8);
        let (mac, token) = (mac.clone(), token.clone());
        let (deliveries, closed, stop) = (deliveries.clone(), closed.clone(), stop_rx.clone());
        let (handshake_ms, failures) = (handshake_ms.clone(), failures.clone());
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel();
        opening.push(tokio::spawn(async move {
            let opened = open(addr, source, &token, &mac).await;
            drop(permit);
            match opened {
                Ok((ws, took)) => {
                    handshake_ms.lock().await.push(took.as_secs_f64() * 1000.0);
                    let _ = hold_tx.send(tokio::spawn(hold(
                        ws, ping, epoch, deliveries, closed, stop,
                    )));
                }
                Err(err) => {
                    if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("socket {i}: {err}");
                    }
                }
            }
        }));
        holders.push(hold_rx);
    }
    for task in opening {
        task.await.unwrap();
    }
    let open_secs = started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    let opened = n - failed;
    println!(
        "handshakes: {opened} open, {failed} failed, in {open_secs:.1} s = {:.0}/s; {}",
        opened as f64 / open_secs,
        summary(
            "handshake latency",
            std::mem::take(&mut *handshake_ms.lock().await)
        )
    );

    // Idle hold: memory and the CPU of pings.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ticks_open, rss_open) = proc_stats(server.pid);
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let (ticks_held, rss_held) = proc_stats(server.pid);
    let per_socket_kb = (rss_held.saturating_sub(rss_before)) as f64 / opened.max(1) as f64;
    println!(
        "server RSS: {} MiB empty, {} MiB after logins, {} MiB with sockets open ({} MiB after {hold_secs} s): {per_socket_kb:.2} KiB per socket",
        rss_empty / 1024,
        rss_before / 1024,
        rss_open / 1024,
        rss_held / 1024
    );
    println!(
        "server CPU: {:.2} s for the handshakes; {:.3} cores while holding (client pings every {} s, server pings every 30 s)",
        (ticks_open - ticks_before) as f64 / 100.0,
        (ticks_held - ticks_open) as f64 / 100.0 / hold_secs.max(1) as f64,
        ping.as_secs()
    );
    println!(
        "sockets closed by the server meanwhile: {}",
        closed.load(Ordering::Relaxed)
    );

    // A push to a random 1 %.
    let mut order: Vec<usize> = (0..users.len()).collect();
    order.shuffle(&mut rand::rng());
    let targets = (users.len() / 100).max(1);
    let before = deliveries.count.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut pushes = Vec::with_capacity(targets);
    for (k, &i) in order.iter().take(targets).enumerate() {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let http = http.clone();
        let token = users[i].1.clone();
        pushes.push(tokio::spawn(async move {
            let _permit = permit;
            push(&http, addr, &token, k as u64, epoch).await
        }));
    }
    let mut accepted = 0;
    for p in pushes {
        accepted += u64::from(p.await.unwrap());
    }
    let got = wait_for(
        &deliveries.count,
        before + accepted,
        Duration::from_secs(10),
    )
    .await
        - before;
    println!(
        "push to 1 %: {accepted} accepted of {targets} in {:.2} s, {got} delivered, {} lost; {}",
        started.elapsed().as_secs_f64(),
        accepted.saturating_sub(got),
        summary(
            "delivery",
            std::mem::take(&mut *deliveries.latencies_ms.lock().await)
        )
    );

    // The profile hot path while every socket is open.
    let probe_concurrency = env_u64("SOCKETS_PROBE_CONCURRENCY", 64).max(1) as usize;
    let probe_requests = env_u64("SOCKETS_PROBE_REQUESTS", 10_000).max(1) as usize;
    let probe_limit = Arc::new(Semaphore::new(probe_concurrency));
    let mut profile_ms = Vec::new();
    let started = Instant::now();
    let mut calls = Vec::new();
    for k in 0..probe_requests {
        let http = http.clone();
        let token = users[order[k % users.len()]].1.clone();
        let permit = probe_limit.clone().acquire_owned().await.unwrap();
        calls.push(tokio::spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            let ok = http
                .get(format!("http://{addr}/api/user/profile/"))
                .bearer_auth(&token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (ok, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut errors = 0;
    for c in calls {
        let (ok, ms) = c.await.unwrap();
        errors += u64::from(!ok);
        profile_ms.push(ms);
    }
    println!(
        "GET /api/user/profile/ with all sockets open ({probe_concurrency} in flight): {:.0} req/s, {errors} errors; {}",
        probe_requests as f64 / started.elapsed().as_secs_f64(),
        summary("latency", profile_ms)
    );

    if push_rate > 0 {
        push_throughput(
            &http,
            addr,
            &users,
            &deliveries,
            epoch,
            push_rate,
            push_secs,
            server.pid,
        )
        .await;
    }

    let _ = stop_tx.send(true);
    for h in holders {
        if let Ok(task) = h.await {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Pushes at `rate`/s for `secs` to random sockets, then counts what
/// arrived.
#[allow(clippy::too_many_arguments)]
async fn push_throughput(
    http: &reqwest::Client,
    addr: SocketAddrV4,
    users: &[(String, String)],
    deliveries: &Arc<Deliveries>,
    epoch: Instant,
    rate: u64,
    secs: u64,
    pid: u32,
) {
    deliveries.latencies_ms.lock().await.clear();
    let before = deliveries.count.load(Ordering::Relaxed);
    let total = rate * secs;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let in_flight = Arc::new(Semaphore::new(512));
    let accepted = Arc::new(AtomicU64::new(0));
    let (ticks_before, _) = proc_stats(pid);
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for k in 0..total {
        tick.tick().await;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let token = users[rand::random_range(0..users.len())].1.clone();
        let (http, accepted) = (http.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            if push(&http, addr, &token, k, epoch).await {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sent_secs = started.elapsed().as_secs_f64();
    let (ticks_after, _) = proc_stats(pid);
    let accepted = accepted.load(Ordering::Relaxed);
    let got = wait_for(
        &deliveries.count,
        before + accepted,
        Duration::from_secs(15),
    )
    .await
        - before;
    println!(
        "push throughput: asked {rate}/s for {secs} s; {accepted} accepted in {sent_secs:.1} s = {:.0}/s, {got} delivered, {} lost; server CPU {:.3} ms per push; {}",
        accepted as f64 / sent_secs,
        accepted.saturating_sub(got),
        (ticks_after - ticks_before) as f64 * 10.0 / accepted.max(1) as f64,
        summary(
            "delivery",
            std::mem::take(&mut *deliveries.latencies_ms.lock().await)
        )
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let deadline = Duration::from_secs(env_u64("SOCKETS_DEADLINE_SECS", 900));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if tokio::time::timeout(deadline, run()).await.is_err() {
            eprintln!("sockets bench: deadline of {deadline:?} reached; aborting");
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}
