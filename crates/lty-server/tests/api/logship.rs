//! Log shipping to Aliyun SLS, end to end: the real `lty serve` process
//! (its global log subscriber is the one under test) against the in-process
//! fake SLS. Request log lines carry request id, route and user id; an
//! unreachable SLS never holds up requests, and the bounded buffer drops
//! the oldest lines and counts them; failures are retried; shutdown flushes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::fakes::sls::{FakeSls, Mode};
use crate::helpers::{metric_value, random_hex, test_database_url, test_redis_url};

const LTY: &str = env!("CARGO_BIN_EXE_lty");

/// A running `lty serve` with its own database, and its stdout lines.
struct Lty {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

/// Environment shared by `lty seed` and `lty serve`: a temp data dir, or
/// a fresh PostgreSQL database and a Redis key prefix when the test
/// environment names them.
async fn base_env() -> (
    Vec<(String, String)>,
    tempfile::TempDir,
    Option<(String, String)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = vec![(
        "LTY_DATA_DIR".to_owned(),
        dir.path().to_str().unwrap().to_owned(),
    )];
    let mut pg = None;
    if let Some(admin) = test_database_url() {
        let name = format!("lty_test_{}", random_hex(8));
        lty_store::provision::create_postgres_database(&admin, &name)
            .await
            .unwrap();
        let url = lty_store::provision::with_database(&admin, &name).unwrap();
        vars.push(("DATABASE_URL".to_owned(), url));
        pg = Some((admin, name));
    }
    if let Some(redis) = test_redis_url() {
        vars.push(("REDIS_LOCATION".to_owned(), redis));
        vars.push((
            "LTY_REDIS__KEY_PREFIX".to_owned(),
            format!("test:{}:", random_hex(8)),
        ));
    }
    (vars, dir, pg)
}

impl Lty {
    /// Seeds one bench user (bound to 02:00:00:00:00:00), then serves with
    /// `vars` on top of the base environment. Access lines
    /// (`tower_http` at debug) are on, so every request logs a line.
    async fn start(vars: &[(String, String)]) -> Self {
        let (mut env, dir, pg) = base_env().await;
        let seeded = Command::new(LTY)
            .args(["seed", "--users", "1"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        assert!(
            seeded.status.success(),
            "{}",
            String::from_utf8_lossy(&seeded.stderr)
        );
        env.push(("LTY_LOG__FORMAT".into(), "json".into()));
        env.push(("LTY_LOG__LEVEL".into(), "info,tower_http=debug".into()));
        env.extend(vars.iter().cloned());
        let mut child = Command::new(LTY)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Keep reading stdout for the whole run: a full pipe would stall
        // the server's log writes.
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = reader.next_line().await {
                if line.contains(r#""message":"listening""#)
                    && let Some(tx) = tx.take()
                {
                    let v: Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(v["addr"].as_str().unwrap().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("lty did not start listening")
            .expect("lty exited before listening");
        Self {
            child,
            addr,
            lines,
            client: reqwest::Client::builder()
                // A request held up by log shipping would hit this.
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _dir: dir,
            pg,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Logs the bench user in by MAC: (token, user id).
    async fn login(&self) -> (String, i64) {
        let res = self
            .client
            .post(self.url("/api/user/mac-login/"))
            .json(&serde_json::json!({ "mac_address": "02:00:00:00:00:00" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let token = res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let profile: Value = self
            .client
            .get(self.url("/api/user/profile/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = profile["id"]
            .as_i64()
            .or_else(|| profile["user"]["id"].as_i64())
            .unwrap_or_else(|| panic!("no user id in {profile}"));
        (token, id)
    }

    /// `GET /api/user/profile/` with a request id of our choosing.
    async fn profile(&self, token: &str, request_id: &str) {
        let res = self
            .client
            .get(self.url("/api/user/profile/"))
            .bearer_auth(token)
            .header("x-request-id", request_id)
            .send()
            .await
            .expect("request not answered in time");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-request-id"], request_id);
    }

    /// The value of an unlabelled counter in `/metrics`. The server is a
    /// process of its own: the value counts this test's lines only.
    async fn counter(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(&text, name, &[])
    }

    /// SIGTERM, then the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("lty did not exit")
            .unwrap()
    }

    fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Lty {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some((admin, name)) = self.pg.take() {
            // The server process must be gone before its database is dropped.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let _ = lty_store::provision::drop_postgres_database(&admin, &name).await;
                });
            })
            .join();
        }
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn request_lines_reach_sls_with_request_id_route_and_user_id() {
    let sls = FakeSls::start().await;
    let mut env = sls.env();
    env.extend(vars(&[("LTY_ALIYUN__LOG__FLUSH_INTERVAL_MS", "100")]));
    let lty = Lty::start(&env).await;
    let (token, user_id) = lty.login().await;
    let request_id = format!("logship-{}", random_hex(8));
    lty.profile(&token, &request_id).await;

    let line = sls
        .wait_for(Duration::from_secs(15), |r| {
            r.get("request_id") == Some(request_id.as_str())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no line of {request_id} reached SLS; got {:?}, rejected {:?}",
                sls.logs(),
                sls.rejected()
            )
        });
    assert_eq!(line.get("route"), Some("/api/user/profile/"));
    assert_eq!(line.get("user_id"), Some(user_id.to_string().as_str()));
    assert_eq!(line.get("method"), Some("GET"));
    assert_eq!(line.get("path"), Some("/api/user/profile/"));
    assert!(
        line.get("target")
            .is_some_and(|t| t.starts_with("tower_http"))
    );
    assert_eq!(line.get("status"), Some("200"));
    assert!(line.get("level").is_some() && line.get("message").is_some());
    assert_eq!(line.topic.as_deref(), Some("lty"));
    assert!(line.source.as_deref().is_some_and(|s| !s.is_empty()));
    assert_eq!(line.compress_type.as_deref(), Some("deflate"));
    let age = chrono::Utc::now().timestamp() - i64::from(line.time);
    assert!((0..120).contains(&age), "time {}", line.time);
    assert!(sls.rejected().is_empty(), "{:?}", sls.rejected());

    // A device authenticated by its MAC is named by its family's user id.
    let login_id = format!("logship-{}", random_hex(8));
    let res = lty
        .client
        .post(lty.url("/api/user/mac-login/"))
        .header("x-request-id", &login_id)
        .json(&serde_json::json!({ "mac_address": "02:00:00:00:00:00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let line = sls
        .wait_for(Duration::from_secs(15), |r| {
            r.get("request_id") == Some(login_id.as_str())
        })
        .await
        .expect("the mac-login line reached SLS");
    assert_eq!(line.get("route"), Some("/api/user/mac-login/"));
    assert_eq!(line.get("user_id"), Some(user_id.to_string().as_str()));

    // The same fields are in the JSON line on stdout.
    let printed = lty
        .stdout()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .find(|v| v["span"]["request_id"] == request_id.as_str())
        .expect("request line on stdout");
    assert_eq!(printed["span"]["route"], "/api/user/profile/");
    assert_eq!(printed["span"]["user_id"], user_id);

    // Lines of the shipper itself are never shipped.
    assert!(sls.logs().iter().all(|r| {
        !r.get("target")
            .unwrap_or("")
            .starts_with("lty_server::logship")
    }));
    assert!(lty.counter("lty_log_shipped_total").await >= 1.0);
    assert_eq!(lty.counter("lty_log_ship_dropped_total").await, 0.0);
}

#[tokio::test]
async fn unreachable_sls_never_delays_requests_and_drops_the_oldest_lines() {
    let sls = FakeSls::start().await;
    sls.set_mode(Mode::Hang);
    let mut env = sls.env();
    env.extend(vars(&[
        ("LTY_ALIYUN__LOG__BUFFER_SIZE", "10"),
        ("LTY_ALIYUN__LOG__BATCH_SIZE", "5"),
        ("LTY_ALIYUN__LOG__FLUSH_INTERVAL_MS", "50"),
        ("LTY_ALIYUN__LOG__TIMEOUT_MS", "1500"),
        ("LTY_ALIYUN__LOG__MAX_BACKOFF_MS", "200"),
        ("LTY_ALIYUN__LOG__MAX_RETRIES", "1000"),
    ]));
    let lty = Lty::start(&env).await;
    let (token, _) = lty.login().await;

    // Each request answers although every PutLogs hangs (the client's
    // 10-second timeout would fail `profile` otherwise).
    let count = 60;
    for i in 0..count {
        lty.profile(&token, &format!("unreachable-{i}")).await;
    }
    assert!(sls.requests() >= 1, "the shipper never tried");
    assert!(sls.logs().is_empty());
    // At least `count` lines were logged; at most 10 buffered plus 5 in
    // the batch being retried are kept.
    let dropped = lty.counter("lty_log_ship_dropped_total").await;
    assert!(
        dropped >= f64::from(count - 15),
        "dropped {dropped}, expected at least {}",
        count - 15
    );

    // Back online: the newest line arrives, the oldest requests' lines
    // were dropped.
    sls.set_mode(Mode::Accept);
    let last = format!("unreachable-{}", count - 1);
    sls.wait_for(Duration::from_secs(20), |r| {
        r.get("request_id") == Some(last.as_str())
    })
    .await
    .unwrap_or_else(|| panic!("newest line not shipped after recovery: {:?}", sls.logs()));
    assert!(
        !sls.logs()
            .iter()
            .any(|r| r.get("request_id") == Some("unreachable-10")),
        "an old line survived a full buffer"
    );
    assert!(lty.counter("lty_log_shipped_total").await >= 1.0);
}

#[tokio::test]
async fn server_errors_are_retried_and_refused_signatures_dropped() {
    // 500 and a write quota error, then success: nothing is lost.
    let sls = FakeSls::start().await;
    sls.script(Mode::Fail(500, "InternalServerError"), 1);
    sls.script(Mode::Fail(403, "WriteQuotaExceed"), 1);
    let mut env = sls.env();
    env.extend(vars(&[
        ("LTY_ALIYUN__LOG__FLUSH_INTERVAL_MS", "100"),
        ("LTY_ALIYUN__LOG__MAX_BACKOFF_MS", "200"),
    ]));
    let lty = Lty::start(&env).await;
    let (token, _) = lty.login().await;
    let request_id = format!("retried-{}", random_hex(8));
    lty.profile(&token, &request_id).await;
    sls.wait_for(Duration::from_secs(15), |r| {
        r.get("request_id") == Some(request_id.as_str())
    })
    .await
    .expect("line not shipped after retries");
    assert_eq!(
        sls.rejected(),
        ["InternalServerError", "WriteQuotaExceed"],
        "both failures were seen by the fake"
    );
    assert_eq!(lty.counter("lty_log_ship_dropped_total").await, 0.0);
    // The first batch held the start-up lines; they survived the failures.
    assert!(
        sls.logs()
            .iter()
            .any(|r| r.get("message") == Some("listening"))
    );
    drop(lty);

    // A wrong secret: the fake refuses the signature, nothing is recorded,
    // the refused lines are counted as dropped and not retried.
    let sls = FakeSls::start().await;
    let mut env = sls.env();
    env.retain(|(k, _)| k != "ALIYUN_LOG_ACCESS_KEY_SECRET");
    env.extend(vars(&[
        ("ALIYUN_LOG_ACCESS_KEY_SECRET", "not-the-secret"),
        ("LTY_ALIYUN__LOG__FLUSH_INTERVAL_MS", "100"),
    ]));
    let lty = Lty::start(&env).await;
    lty.client.get(lty.url("/healthz")).send().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while lty.counter("lty_log_ship_dropped_total").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "no drop counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sls.logs().is_empty());
    let rejected = sls.rejected();
    assert!(!rejected.is_empty());
    assert!(
        rejected.iter().all(|c| c == "SignatureNotMatch"),
        "{rejected:?}"
    );
}

#[tokio::test]
async fn shutdown_flushes_buffered_lines() {
    let sls = FakeSls::start().await;
    let mut env = sls.env();
    // Nothing would be sent for a minute but for the shutdown flush.
    env.extend(vars(&[
        ("LTY_ALIYUN__LOG__FLUSH_INTERVAL_MS", "60000"),
        ("LTY_ALIYUN__LOG__BATCH_SIZE", "4096"),
        ("LTY_ALIYUN__LOG__COMPRESS", "false"),
    ]));
    let mut lty = Lty::start(&env).await;
    let (token, _) = lty.login().await;
    let request_id = format!("flushed-{}", random_hex(8));
    lty.profile(&token, &request_id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sls.requests(), 0, "shipped before the flush");

    let status = lty.terminate().await;
    assert!(status.success(), "{status:?}");
    let logs = sls.logs();
    assert!(
        logs.iter()
            .any(|r| r.get("request_id") == Some(request_id.as_str())),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|r| r.get("message") == Some("shutdown complete"))
    );
    assert!(logs.iter().all(|r| r.compress_type.is_none()));
}
