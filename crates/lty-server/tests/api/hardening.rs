//! What an attacker, a fuzzer and an outage found (issue 18): bounded
//! paging input, secrets kept out of the logs, connection caps and the
//! other hardening of the public surface.

use lty_core::admin::AdminRole;

use crate::helpers::{TestApp, assert_error, next_close, spawn_app, spawn_app_with};
use crate::subscriptions::admin_token;

async fn get_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn page_and_offset_numbers_that_would_overflow_are_refused_with_a_400() {
    let app = spawn_app().await;
    app.user_with_device("overflow", "02:00:00:00:18:06").await;
    let token = app.mac_login("02:00:00:00:18:06").await;
    let admin = admin_token(&app, AdminRole::Superadmin).await;
    for path in [
        "/api/ai/conversations/?page=9223372036854775807",
        "/api/ai/conversations/?page=18446744073709551615&page_size=100",
        "/api/ai/conversations/1/?page=9223372036854775807",
    ] {
        assert_error(get_as(&app, &token, path).await, 400, "validation_error").await;
    }
    for path in [
        "/api/v1/admin/card-batches/?offset=9223372036854775808",
        "/api/v1/admin/card-batches/?offset=18446744073709551615",
        "/api/v1/admin/users/?page=18446744073709551615",
    ] {
        assert_error(get_as(&app, &admin, path).await, 400, "validation_error").await;
    }
    // Numbers past u64 and ids past i64 fail to parse: 400 as well.
    for path in [
        "/api/v1/admin/card-batches/?offset=99999999999999999999999",
        "/api/v1/admin/card-batches/9223372036854775808/",
    ] {
        let res = get_as(&app, &admin, path).await;
        assert_eq!(res.status(), 400, "{path}");
    }
    // The largest accepted values still answer (an empty page).
    let res = get_as(
        &app,
        &token,
        "/api/ai/conversations/?page=1000000&page_size=100",
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = get_as(&app, &admin, "/api/v1/admin/card-batches/?offset=100000000").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_card_list_limit_out_of_range_is_refused_not_clamped() {
    let app = spawn_app().await;
    let admin = admin_token(&app, AdminRole::Operator).await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/card-batches/"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "kind": "content", "count": 1, "content_ref": "story:1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let batch = res.json::<serde_json::Value>().await.unwrap()["id"].clone();
    for path in [
        "/api/v1/admin/card-batches/?limit=0".to_owned(),
        "/api/v1/admin/card-batches/?limit=201".to_owned(),
        format!("/api/v1/admin/card-batches/{batch}/cards/?limit=0"),
        format!("/api/v1/admin/card-batches/{batch}/cards/?limit=5001"),
    ] {
        let res = get_as(&app, &admin, &path).await;
        let body = assert_error(res, 400, "validation_error").await;
        assert_eq!(body["details"]["field"], "limit", "{path}");
    }
    for path in [
        "/api/v1/admin/card-batches/?limit=1".to_owned(),
        "/api/v1/admin/card-batches/?limit=200".to_owned(),
        format!("/api/v1/admin/card-batches/{batch}/cards/?limit=5000"),
    ] {
        assert_eq!(get_as(&app, &admin, &path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_frame_far_past_the_limit_closes_the_socket_with_1009_as_documented() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(|c| c.ws.max_frame_bytes = 1024).await;
    app.user_with_device("big", "02:00:00:00:18:08").await;
    let token = app.mac_login("02:00:00:00:18:08").await;
    let mut socket = app.ws_connect(&token, None).await;
    // Ten times the limit: refused by the WebSocket layer before it is read.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(10 * 1024));
    socket.send(Message::text(big)).await.unwrap();
    assert_eq!(next_close(&mut socket).await, 1009);
}

/// The `lty` binary serving on an ephemeral port, every line of its output
/// (stdout and stderr) collected.
pub struct Served {
    pub addr: String,
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// `lty serve` with a clean environment plus `vars`, JSON logs; waits
    /// for the "listening" line.
    pub fn start(vars: &[(&str, &str)]) -> Self {
        Self::start_with_soft_file_limit(None, vars)
    }

    /// [`Served::start`] with the soft open-file limit lowered to `limit`
    /// first (through the shell's `ulimit`).
    pub fn start_with_soft_file_limit(limit: Option<u32>, vars: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let lty = env!("CARGO_BIN_EXE_lty");
        let mut command = match limit {
            None => {
                let mut c = Command::new(lty);
                c.args(["serve", "--bind", "127.0.0.1:0"]);
                c
            }
            Some(n) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -Sn {n} && exec \"$0\" serve --bind 127.0.0.1:0"),
                    lty,
                ]);
                c
            }
        };
        let mut child = command
            .env_clear()
            .env("LTY_LOG__FORMAT", "json")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lty");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (reader, tx) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(reader)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(tx) = &tx
                        && line.contains(r#""message":"listening""#)
                    {
                        let _ = tx.send(line.clone());
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("lty did not start listening");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let addr = v["addr"].as_str().expect("addr").to_owned();
        Self { addr, child, lines }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Logs in by MAC and returns the token.
    pub async fn mac_login(&self, mac: &str) -> String {
        let res = reqwest::Client::new()
            .post(self.url("/api/user/mac-login/"))
            .json(&serde_json::json!({ "mac_address": mac }))
            .send()
            .await
            .expect("mac-login");
        assert_eq!(res.status(), 200, "mac-login failed");
        let body: serde_json::Value = res.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Everything logged so far.
    pub fn output(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        // The reader threads finish once the pipes close.
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.output()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lty seed --users n` on the data directory `dir`.
fn seed(dir: &std::path::Path, n: u32) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lty"))
        .args(["seed", "--users", &n.to_string()])
        .env_clear()
        .env("LTY_DATA_DIR", dir)
        .output()
        .expect("run lty seed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn no_token_reaches_the_log_even_at_trace_level() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 2);
    let data_dir = dir.path().to_str().unwrap();
    let served = Served::start(&[("LTY_DATA_DIR", data_dir), ("RUST_LOG", "trace")]);
    let client = reqwest::Client::new();
    let mac = lty_store::seed::bench_mac(1).to_string();
    let token = served.mac_login(&mac).await;
    // The token in the path, then in the header, then a profile read.
    let url = format!("ws://{}/ws/device/token/{token}/?mac={mac}", served.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket.send(Message::text(r#"{"hello":1}"#)).await.unwrap();
    let _ = crate::helpers::next_json(&mut socket).await;
    socket.close(None).await.unwrap();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ws/device/", served.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    socket.close(None).await.unwrap();
    let res = client
        .get(served.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A wrong token in the path is refused, and not logged either.
    let wrong = "f".repeat(40);
    let res = client
        .get(served.url(&format!("/ws/device/token/{wrong}/")))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 101);
    let res = client
        .post(served.url("/api/user/logout/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let log = served.stop();
    assert!(
        log.contains("/ws/device/token/***/"),
        "the requests were not traced:\n{log}"
    );
    for secret in [&token, &wrong] {
        let leaks: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "token logged:\n{}", leaks.join("\n"));
    }
}

#[tokio::test]
async fn per_ip_limits_apply_to_loopback_clients_by_default() {
    let app = spawn_app_with(|c| {
        c.limits.mac_login_per_ip = lty_server::config::RateLimit {
            max: 3,
            window_secs: 60,
        };
    })
    .await;
    assert!(!app.config.limits.exempt_loopback, "exempt by default");
    for i in 0..3 {
        let res = app
            .post_json(
                "/api/user/mac-login/",
                &serde_json::json!({ "mac_address": format!("02:00:00:00:18:{i:02x}") }),
            )
            .await;
        assert_error(res, 404, "device_not_bound").await;
    }
    let res = app
        .post_json(
            "/api/user/mac-login/",
            &serde_json::json!({ "mac_address": "02:00:00:00:18:ff" }),
        )
        .await;
    assert_error(res, 429, "rate_limited").await;
}

#[test]
fn the_start_up_log_says_how_client_addresses_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mode = |log: &str| {
        log.lines()
            .filter(|l| l.contains("client addresses for per-IP limits"))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .next()
            .unwrap_or_else(|| panic!("no client-address line in:\n{log}"))
    };
    let log = Served::start(&[("LTY_DATA_DIR", data_dir)]).stop();
    let line = mode(&log);
    assert_eq!(
        line["mode"],
        "peer address; per-IP limits apply to every client"
    );
    assert_eq!(line["exempt_loopback"], false);
    let log = Served::start(&[
        ("LTY_DATA_DIR", data_dir),
        ("LTY_LIMITS__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .stop();
    let line = mode(&log);
    assert_eq!(
        line["mode"],
        "X-Forwarded-For from trusted proxies; per-IP limits apply to every client"
    );
    assert_eq!(line["trusted_proxies"], "127.0.0.1/32");
    let log = Served::start(&[
        ("LTY_DATA_DIR", data_dir),
        ("LTY_LIMITS__EXEMPT_LOOPBACK", "true"),
    ])
    .stop();
    assert_eq!(mode(&log)["exempt_loopback"], true);
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let log = Served::start_with_soft_file_limit(Some(256), &[("LTY_DATA_DIR", data_dir)]).stop();
    let line = log
        .lines()
        .find(|l| l.contains("open-file limit"))
        .unwrap_or_else(|| panic!("no open-file limit line in:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    if v["message"] == "open-file limit raised to the hard limit" {
        assert_eq!(v["from"], 256);
        assert!(v["to"].as_u64().unwrap() > 256, "{line}");
    } else {
        // Only when the hard limit is 256 itself.
        assert_eq!(
            v["message"], "open-file limit already at the hard limit",
            "{line}"
        );
    }
}

/// Opens a device socket, or answers the refused handshake's status and
/// error code.
async fn try_ws(app: &TestApp, token: &str) -> Result<crate::helpers::Socket, (u16, String)> {
    use tokio_tungstenite::tungstenite::Error;
    let url = format!("ws://{}/ws/device/token/{token}/", app.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(Error::Http(res)) => {
            let body = res.body().clone().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Err((
                res.status().as_u16(),
                v["code"].as_str().unwrap_or("").to_owned(),
            ))
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

#[tokio::test]
async fn device_sockets_past_the_per_family_cap_are_refused_with_429() {
    let app = spawn_app_with(|c| c.ws.max_sockets_per_user = 2).await;
    let user = app.user_with_device("many", "02:00:00:00:18:31").await;
    let token = app.mac_login("02:00:00:00:18:31").await;
    let refused = app.metric("lty_ws_refused_total", &[("cap", "user")]).await;
    let mut first = try_ws(&app, &token).await.unwrap();
    let _second = try_ws(&app, &token).await.unwrap();
    app.wait_for_sockets(user, 2).await;
    let err = try_ws(&app, &token)
        .await
        .expect_err("a third socket is refused");
    assert_eq!(err, (429, "too_many_connections".to_owned()));
    assert!(app.metric("lty_ws_refused_total", &[("cap", "user")]).await > refused);
    // A closed socket frees its place.
    first.close(None).await.unwrap();
    drop(first);
    crate::helpers::wait_until("a place is free again", async || {
        try_ws(&app, &token).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn device_sockets_past_the_per_ip_cap_are_refused_even_from_loopback() {
    let app = spawn_app_with(|c| c.ws.max_sockets_per_ip = 2).await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        let mac = format!("02:00:00:00:18:4{i}");
        app.user_with_device(&format!("ip{i}"), &mac).await;
        tokens.push(app.mac_login(&mac).await);
    }
    let _a = try_ws(&app, &tokens[0]).await.unwrap();
    let _b = try_ws(&app, &tokens[1]).await.unwrap();
    let err = try_ws(&app, &tokens[2]).await.expect_err("refused");
    assert_eq!(err, (429, "too_many_connections".to_owned()));
}

/// Sends a raw HTTP/1.1 GET on `conn` and reads the status line and body.
async fn raw_get(conn: &mut tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: lty\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if n == 0 {
            return text;
        }
        // Complete once the head and `Content-Length` bytes of body are in.
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// Whether the server closes `conn` within 10 s (reads EOF or a reset).
async fn closed_by_server(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn past_the_connection_ceiling_the_health_routes_still_answer() {
    use tokio::net::TcpStream;
    let app = spawn_app_with(|c| {
        c.http.max_connections = 3;
        c.http.reserved_connections = 2;
    })
    .await;
    // Three idle connections fill the ceiling.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The reserve answers the health routes, and nothing else.
    let mut health = TcpStream::connect(app.addr).await.unwrap();
    let answer = raw_get(&mut health, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut other = TcpStream::connect(app.addr).await.unwrap();
    let answer = raw_get(&mut other, "/api/plans/").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("server_busy"), "{answer}");
    assert!(closed_by_server(&mut other).await);
    // With the reserve full too, a new connection is closed at once.
    let _fifth = TcpStream::connect(app.addr).await.unwrap();
    let mut sixth = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_by_server(&mut sixth).await);
    // Once the idle ones go, everything answers again.
    drop(idle);
    drop(health);
    crate::helpers::wait_until("the ceiling has room again", async || {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        raw_get(&mut conn, "/api/plans/")
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test]
async fn a_slow_request_head_and_an_idle_connection_are_closed() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let app = spawn_app_with(|c| c.http.header_read_timeout_secs = 1).await;
    // A header byte every 200 ms never completes the head.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: lty\r\n")
        .await
        .unwrap();
    let drip = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = drip => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            panic!("a dripping request head was not cut off within 10 s");
        }
    }
    // A keep-alive connection left idle after its answer is closed too.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    let answer = raw_get(&mut idle, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed_by_server(&mut idle).await);
}

/// A request from the device `mac` signed with `secret` (or unsigned).
fn device_request(
    app: &TestApp,
    method: reqwest::Method,
    target: &str,
    mac: &str,
    secret: Option<&str>,
) -> reqwest::RequestBuilder {
    use lty_server::app::device_auth::{canonical_string, sign};
    let req = app.client.request(method.clone(), app.url(target));
    let Some(secret) = secret else {
        return req;
    };
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let nonce = crate::helpers::random_hex(8);
    let signature = sign(
        secret,
        &canonical_string(method.as_str(), target, &ts, &nonce),
    );
    req.header("X-Device-Mac", mac)
        .header("X-Device-Timestamp", ts)
        .header("X-Device-Nonce", nonce)
        .header("X-Device-Signature", signature)
}

async fn device_login(app: &TestApp, mac: &str, secret: Option<&str>) -> reqwest::Response {
    device_request(
        app,
        reqwest::Method::POST,
        "/api/user/mac-login/",
        mac,
        secret,
    )
    .json(&serde_json::json!({ "mac_address": mac }))
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn anonymous_binding_status_is_rate_limited_per_ip_and_per_mac() {
    let app = spawn_app_with(|c| {
        c.limits.binding_status_per_ip = lty_server::config::RateLimit {
            max: 4,
            window_secs: 60,
        };
        c.limits.binding_status_per_mac = lty_server::config::RateLimit {
            max: 2,
            window_secs: 60,
        };
    })
    .await;
    app.user_with_device("enum", "02:00:00:00:18:11").await;
    let status = |mac: &str| {
        let path = format!("/api/device/binding-status/?mac_address={mac}");
        let app = &app;
        async move { app.get(&path).await }
    };
    for _ in 0..2 {
        let res = status("02:00:00:00:18:11").await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["bound"], true);
        assert_eq!(body["user_id"], serde_json::Value::Null);
    }
    // One MAC asked too often...
    assert_error(status("02:00:00:00:18:11").await, 429, "rate_limited").await;
    // ...and one address asking about many MACs.
    assert_eq!(status("02:00:00:00:18:12").await.status(), 200);
    assert_error(status("02:00:00:00:18:13").await, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_provisioned_device_proves_itself_to_read_its_binding_status() {
    let app = spawn_app().await;
    let mac = "02:00:00:00:18:21";
    app.user_with_device("owner", mac).await;
    let token = app.mac_login(mac).await;
    let res = app
        .client
        .post(app.url("/api/device/credentials/"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "mac_address": mac }))
        .send()
        .await
        .unwrap();
    let secret = res.json::<serde_json::Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = format!("/api/device/binding-status/?mac_address={mac}");
    let res = device_request(&app, reqwest::Method::GET, &target, mac, None)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "device_signature_required").await;
    let res = device_request(&app, reqwest::Method::GET, &target, mac, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["bound"],
        true
    );
    // The family's token still gets the full answer.
    let res = get_as(&app, &token, &target).await;
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["bound_to_you"],
        true
    );
}

#[tokio::test]
async fn in_signed_mode_an_unsigned_binding_status_is_refused() {
    let app = spawn_app_with(|c| c.device_auth = lty_server::config::DeviceAuthMode::Signed).await;
    app.user_with_device("legacy", "02:00:00:00:18:22").await;
    let res = app
        .get("/api/device/binding-status/?mac_address=02:00:00:00:18:22")
        .await;
    assert_error(res, 401, "device_not_provisioned").await;
}

/// The fleet migration of docs/device-auth.md: a secret provisioned at
/// bind time, a grace period in which unsigned requests are still taken
/// and counted, then signatures only.
#[tokio::test]
async fn a_fleet_moves_from_mac_only_to_signed_logins_through_a_counted_grace_period() {
    let grace_until = chrono::Utc::now() + chrono::Duration::hours(1);
    let app = spawn_app_with(|c| c.auth.unsigned_grace_until = Some(grace_until)).await;
    let mac = "02:00:00:00:18:51";
    // The app binds the device and gets its secret in the same call.
    app.user_with_device("parent", "02:00:00:00:18:50").await;
    let parent = app.mac_login("02:00:00:00:18:50").await;
    let res = app
        .client
        .post(app.url("/api/device/bind/"))
        .bearer_auth(&parent)
        .json(&serde_json::json!({ "mac_address": mac, "provision_secret": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let bound: serde_json::Value = res.json().await.unwrap();
    let secret = bound["secret"].as_str().expect("a secret").to_owned();
    // A plain bind shows no secret.
    let res = get_as(&app, &parent, "/api/device/list/").await;
    let list: serde_json::Value = res.json().await.unwrap();
    assert!(list["devices"][0].get("secret").is_none(), "{list}");

    // Grace: the device's old firmware still logs in unsigned, counted.
    let app_ref = &app;
    let unsigned = |p: &'static str| async move {
        app_ref
            .metric("lty_device_unsigned_requests_total", &[("provisioned", p)])
            .await
    };
    let before = unsigned("true").await;
    assert_eq!(device_login(&app, mac, None).await.status(), 200);
    assert!(unsigned("true").await > before);
    assert_eq!(device_login(&app, mac, Some(&secret)).await.status(), 200);
    // Devices without a secret are counted as what is left to provision.
    let before = unsigned("false").await;
    assert_eq!(
        device_login(&app, "02:00:00:00:18:50", None).await.status(),
        200
    );
    assert!(unsigned("false").await > before);
    drop(app);

    // After the grace period: signed only for provisioned devices.
    let app = spawn_app_with(|c| {
        c.auth.unsigned_grace_until = Some(chrono::Utc::now() - chrono::Duration::hours(1));
    })
    .await;
    app.user_with_device("kid", mac).await;
    let owner = app.mac_login(mac).await;
    let res = app
        .client
        .post(app.url("/api/device/bind/"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({ "mac_address": mac, "provision_secret": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "already bound to the caller");
    let secret = res.json::<serde_json::Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        device_login(&app, mac, None).await,
        401,
        "device_signature_required",
    )
    .await;
    assert_eq!(device_login(&app, mac, Some(&secret)).await.status(), 200);
}

#[tokio::test]
async fn logging_out_closes_the_sockets_that_token_opened_and_only_those() {
    let app = spawn_app().await;
    let user = app.user_with_device("family", "02:00:00:00:18:55").await;
    let leaving = app.mac_login("02:00:00:00:18:55").await;
    let staying = app.mac_login("02:00:00:00:18:55").await;
    let mut closed = app.ws_connect(&leaving, None).await;
    let mut open = app.ws_connect(&staying, None).await;
    app.wait_for_sockets(user, 2).await;
    let res = app
        .client
        .post(app.url("/api/user/logout/"))
        .bearer_auth(&leaving)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(next_close(&mut closed).await, 4002);
    // The family's other token and its socket are untouched.
    app.push(&staying, &serde_json::json!({"still": "here"}))
        .await;
    assert_eq!(
        crate::helpers::next_json(&mut open).await,
        serde_json::json!({"still": "here"})
    );
}

#[tokio::test]
async fn embedded_mode_keeps_sessions_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 2);
    let data_dir = dir.path().to_str().unwrap();
    let client = reqwest::Client::new();
    let mac = lty_store::seed::bench_mac(1).to_string();
    let served = Served::start(&[("LTY_DATA_DIR", data_dir)]);
    let token = served.mac_login(&mac).await;
    let profile = |served: &Served| {
        client
            .get(served.url("/api/user/profile/"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(profile(&served).await.unwrap().status(), 200);
    served.stop();

    // Same data directory, a new process: the token still works...
    let served = Served::start(&[("LTY_DATA_DIR", data_dir)]);
    assert_eq!(profile(&served).await.unwrap().status(), 200);
    let res = client
        .post(served.url("/api/user/logout/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    served.stop();

    // ...and a logout is as durable.
    let served = Served::start(&[("LTY_DATA_DIR", data_dir)]);
    assert_eq!(profile(&served).await.unwrap().status(), 401);
    // Only a hash of the token is stored.
    let db = std::fs::read(dir.path().join("lty.db")).unwrap();
    let text = String::from_utf8_lossy(&db);
    assert!(!text.contains(&token));
    served.stop();
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (PostgreSQL + Redis leg)"]
async fn no_push_is_acknowledged_while_the_redis_subscription_is_down() {
    use crate::helpers::{CuttableProxy, required_redis_url, socket_of};
    let redis = required_redis_url();
    let proxy = CuttableProxy::start(socket_of(&redis)).await;
    let app = spawn_app_with(|c| {
        c.redis.location = Some(format!("redis://{}/0", proxy.addr));
        c.redis.timeout_secs = 1;
    })
    .await;
    let user = app.user_with_device("outage", "02:00:00:00:18:91").await;
    let token = app.mac_login("02:00:00:00:18:91").await;
    let mut socket = app.ws_connect(&token, None).await;
    app.wait_for_sockets(user, 1).await;
    let refused_before = app
        .metric(
            "lty_pubsub_unavailable_total",
            &[("reason", "subscriber_down")],
        )
        .await
        + app
            .metric("lty_pubsub_unavailable_total", &[("reason", "no_receiver")])
            .await;
    proxy.cut();
    crate::helpers::wait_until("readyz reports the outage", async || {
        app.get("/readyz").await.status() == 503
    })
    .await;
    // A real outage lasts: the subscriber's reconnect back-off grows
    // meanwhile, so after Redis returns the publisher is back well before
    // the subscriber (the window in which pushes went missing).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    proxy.restore();
    // From the moment Redis is back, every push is either refused or
    // delivered: none is acknowledged and lost while the subscriber
    // reconnects.
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..40_i64 {
        let res = app
            .client
            .post(app.url("/api/device/send/"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "i": i }))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => acknowledged.push(i),
            503 => refused += 1,
            other => panic!("push {i}: unexpected status {other}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // A refused push may still have reached Redis (an error mid-command),
    // so extra messages are fine; a missing acknowledged one is not.
    let mut pending: std::collections::BTreeSet<i64> = acknowledged.into_iter().collect();
    while let Some(first) = pending.first().copied() {
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::helpers::next_json(&mut socket),
        )
        .await
        .unwrap_or_else(|_| {
            panic!("acknowledged pushes {pending:?} never arrived (first {first})")
        });
        if let Some(i) = got["i"].as_i64() {
            pending.remove(&i);
        }
    }
    let refused_after = app
        .metric(
            "lty_pubsub_unavailable_total",
            &[("reason", "subscriber_down")],
        )
        .await
        + app
            .metric("lty_pubsub_unavailable_total", &[("reason", "no_receiver")])
            .await;
    // Refusals for want of a subscription are counted (other 503s, such as
    // a PUBLISH on a connection still broken, are not).
    assert!(
        refused_after - refused_before <= f64::from(refused),
        "{refused_before} -> {refused_after}, {refused} refused"
    );
}

#[tokio::test]
async fn backup_copies_a_live_embedded_database_that_restores_with_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), 3);
    let data_dir = dir.path().to_str().unwrap();
    let served = Served::start(&[("LTY_DATA_DIR", data_dir)]);
    let client = reqwest::Client::new();
    let mac = lty_store::seed::bench_mac(2).to_string();
    let token = served.mac_login(&mac).await;

    // Online: the server keeps running while the copy is made.
    let out_dir = tempfile::tempdir().unwrap();
    let copy = out_dir.path().join("lty-backup.db");
    let backup = |copy: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lty"))
            .args(["backup", "--out", copy.to_str().unwrap()])
            .env_clear()
            .env("LTY_DATA_DIR", data_dir)
            .output()
            .expect("run lty backup")
    };
    let out = backup(&copy);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backup written to"), "{stdout}");
    assert!(stdout.contains("restore:"), "{stdout}");
    // An existing file is never overwritten.
    let again = backup(&copy);
    assert!(!again.status.success());
    let res = client
        .get(served.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the server kept serving");
    served.stop();

    // Restored into a fresh data directory: the families and their
    // sessions are there.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("lty.db")).unwrap();
    let served = Served::start(&[("LTY_DATA_DIR", restored.path().to_str().unwrap())]);
    let res = client
        .get(served.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .post(served.url("/api/user/mac-login/"))
        .json(&serde_json::json!({ "mac_address": mac }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    served.stop();
}

/// Audit entries of `action`, newest first.
async fn audit_entries(app: &TestApp, admin: &str, action: &str) -> Vec<serde_json::Value> {
    let res = get_as(
        app,
        admin,
        &format!("/api/v1/admin/audit/?page_size=100&action={action}"),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["entries"].as_array().unwrap().clone()
}

async fn admin_send(
    app: &TestApp,
    method: reqwest::Method,
    admin: &str,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn audit_entries_carry_the_outcome_the_created_id_and_what_changed() {
    use reqwest::Method;
    let app = spawn_app().await;
    let root = admin_token(&app, AdminRole::Superadmin).await;
    // A refused and a successful create are told apart.
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        "/api/v1/admin/plans/",
        &serde_json::json!({
            "code": "", "name": "Broken", "daily_ai_messages": 1,
            "daily_voice_minutes": 1, "price_cents": 1
        }),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        "/api/v1/admin/plans/",
        &serde_json::json!({
            "code": "gold", "name": "Gold", "daily_ai_messages": 100,
            "daily_voice_minutes": 30, "price_cents": 1900
        }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let plan_id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let entries = audit_entries(&app, &root, "plan.create").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (ok, refused) = (&entries[0], &entries[1]);
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["target_id"], plan_id.to_string());
    assert_eq!(ok["details"]["result"]["status"], 201);
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["target_id"], serde_json::Value::Null);
    assert_eq!(refused["details"]["result"]["status"], 400);
    assert_eq!(refused["details"]["result"]["code"], "validation_error");

    // A change names its target and shows the fields before and after.
    let res = admin_send(
        &app,
        Method::PATCH,
        &root,
        &format!("/api/v1/admin/plans/{plan_id}/"),
        &serde_json::json!({ "price_cents": 2900 }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let entries = audit_entries(&app, &root, "plan.update").await;
    let update = &entries[0];
    assert_eq!(update["outcome"], "ok");
    assert_eq!(update["target_id"], plan_id.to_string());
    assert_eq!(update["details"]["before"]["price_cents"], 1900);
    assert_eq!(update["details"]["after"]["price_cents"], 2900);
    assert_eq!(update["details"]["changes"]["price_cents"], 2900);

    // Two batches made, two entries, each naming its batch.
    let mut made = Vec::new();
    for _ in 0..2 {
        let res = admin_send(
            &app,
            Method::POST,
            &root,
            "/api/v1/admin/card-batches/",
            &serde_json::json!({
                "kind": "content", "count": 2, "content_ref": "story:1"
            }),
        )
        .await;
        assert_eq!(res.status(), 201);
        made.push(res.json::<serde_json::Value>().await.unwrap()["id"].to_string());
    }
    let entries = audit_entries(&app, &root, "card_batch.create").await;
    let mut named: Vec<String> = entries
        .iter()
        .map(|e| e["target_id"].as_str().unwrap_or("").to_owned())
        .collect();
    named.sort();
    made.sort();
    assert_eq!(named, made);
    assert!(entries.iter().all(|e| e["outcome"] == "ok"));

    // Account changes too.
    let uid = app.user_with_device("audited", "02:00:00:00:18:a1").await;
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        &format!("/api/v1/admin/users/{uid}/disable/"),
        &serde_json::json!({ "reason": "abuse" }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let disabled = &audit_entries(&app, &root, "user.disable").await[0];
    assert_eq!(disabled["outcome"], "ok");
    assert_eq!(disabled["target_id"], uid.to_string());
    assert_eq!(disabled["details"]["before"]["is_active"], true);
    assert_eq!(disabled["details"]["after"]["is_active"], false);
}

#[tokio::test]
async fn xiaozhi_channels_share_the_per_family_socket_cap_with_device_sockets() {
    use crate::xiaozhi_sim::SimDevice;
    let app = crate::xiaozhi::xiaozhi_app(|c| c.ws.max_sockets_per_user = 2).await;
    let speaker = SimDevice::new();
    app.user_with_device("xz_many", &speaker.mac).await;
    let ota = speaker.ota(&app, "/xiaozhi/ota/").await;
    let url = &ota.websocket_url;
    // The family's app socket and one channel fill the cap.
    let token = app.mac_login(&speaker.mac).await;
    let _app_socket = try_ws(&app, &token).await.unwrap();
    let mut first = speaker.connect(url, &ota.token, 1).await.unwrap();
    first.hello(false).await;
    let refused = app.metric("lty_ws_refused_total", &[("cap", "user")]).await;
    assert_eq!(speaker.connect(url, &ota.token, 1).await.err(), Some(429));
    assert!(app.metric("lty_ws_refused_total", &[("cap", "user")]).await > refused);
    assert_eq!(
        try_ws(&app, &token).await.err(),
        Some((429, "too_many_connections".to_owned()))
    );
    // A closed channel frees its place.
    first.drop_tcp();
    crate::helpers::wait_until("a place is free again", async || {
        match speaker.connect(url, &ota.token, 1).await {
            Ok(mut ch) => {
                ch.hello(false).await;
                true
            }
            Err(status) => {
                assert_eq!(status, 429);
                false
            }
        }
    })
    .await;
}

#[tokio::test]
async fn xiaozhi_channels_past_the_per_ip_cap_are_refused_bound_or_not() {
    use crate::xiaozhi_sim::SimDevice;
    let app = crate::xiaozhi::xiaozhi_app(|c| c.ws.max_sockets_per_ip = 2).await;
    // Devices no family has yet count per address too.
    let devices = [SimDevice::new(), SimDevice::new(), SimDevice::new()];
    app.user_with_device("xz_ip", &devices[0].mac).await;
    let mut otas = Vec::new();
    for d in &devices {
        otas.push(d.ota(&app, "/xiaozhi/ota/").await);
    }
    let mut open = Vec::new();
    for (d, ota) in devices.iter().zip(&otas).take(2) {
        let mut ch = d.connect(&ota.websocket_url, &ota.token, 1).await.unwrap();
        ch.hello(false).await;
        open.push(ch);
    }
    let refused = app.metric("lty_ws_refused_total", &[("cap", "ip")]).await;
    assert_eq!(
        devices[2]
            .connect(&otas[2].websocket_url, &otas[2].token, 1)
            .await
            .err(),
        Some(429)
    );
    assert!(app.metric("lty_ws_refused_total", &[("cap", "ip")]).await > refused);
}

#[tokio::test]
async fn unbinding_disabling_cards_and_firmware_changes_are_audited_before_and_after() {
    use reqwest::Method;
    use serde_json::json;
    let app = spawn_app().await;
    let root = admin_token(&app, AdminRole::Superadmin).await;

    // A device unbind names the family it left.
    let mac = "02:00:00:00:18:b1";
    let uid = app.user_with_device("unbound", mac).await;
    let path = format!("/api/v1/admin/devices/{mac}/unbind/");
    let res = admin_send(&app, Method::POST, &root, &path, &json!({})).await;
    assert_eq!(res.status(), 200);
    let unbind = &audit_entries(&app, &root, "device.unbind").await[0];
    assert_eq!(unbind["outcome"], "ok");
    assert_eq!(unbind["target_id"], mac);
    assert_eq!(unbind["details"]["before"]["bound"], true);
    assert_eq!(unbind["details"]["before"]["user_id"], uid);
    assert_eq!(unbind["details"]["after"]["bound"], false);

    // A batch and one of its cards disabled; the card is named by its id,
    // never by its code.
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        "/api/v1/admin/card-batches/",
        &json!({ "kind": "content", "count": 2, "content_ref": "story:7" }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let batch = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/admin/card-batches/{batch}/disable/");
    let res = admin_send(&app, Method::POST, &root, &path, &json!({})).await;
    assert_eq!(res.status(), 200);
    let entries = audit_entries(&app, &root, "card_batch.disable").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let disabled = &entries[0];
    assert_eq!(disabled["outcome"], "ok");
    assert_eq!(disabled["target_type"], "card_batch");
    assert_eq!(disabled["target_id"], batch.to_string());
    assert_eq!(disabled["details"]["before"]["disabled"], false);
    assert_eq!(disabled["details"]["after"]["disabled"], true);

    let cards: serde_json::Value = get_as(
        &app,
        &root,
        &format!("/api/v1/admin/card-batches/{batch}/cards/"),
    )
    .await
    .json()
    .await
    .unwrap();
    let card = &cards["cards"][0];
    let code = card["code"].as_str().unwrap();
    let path = format!("/api/v1/admin/cards/{code}/disable/");
    let res = admin_send(&app, Method::POST, &root, &path, &json!({})).await;
    assert_eq!(res.status(), 200);
    let entries = audit_entries(&app, &root, "card.disable").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let disabled = &entries[0];
    assert_eq!(disabled["outcome"], "ok");
    assert_eq!(disabled["target_id"], card["id"].to_string());
    assert_eq!(disabled["details"]["batch_id"], batch);
    assert_eq!(disabled["details"]["before"]["disabled"], false);
    assert_eq!(disabled["details"]["after"]["disabled"], true);
    let compact = code.replace('-', "");
    let text = disabled.to_string();
    assert!(!text.contains(code) && !text.contains(&compact), "{text}");

    // A firmware release made, then retired.
    let mut image = vec![0x5a_u8; 4096];
    image[0] = 0xE9;
    let form = reqwest::multipart::Form::new()
        .text("board", "audit-board")
        .text("version", "1.2.3")
        .part(
            "file",
            reqwest::multipart::Part::bytes(image).file_name("xiaozhi.bin"),
        );
    let res = app
        .client
        .post(app.url("/api/v1/admin/firmware/"))
        .bearer_auth(&root)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let release: serde_json::Value = res.json().await.unwrap();
    let created = &audit_entries(&app, &root, "firmware.create").await[0];
    assert_eq!(created["outcome"], "ok");
    assert_eq!(created["target_id"], release["id"].to_string());
    assert_eq!(created["details"]["after"]["version"], "1.2.3");
    assert_eq!(created["details"]["after"]["sha256"], release["sha256"]);
    assert_eq!(created["details"]["after"]["is_active"], true);

    let path = format!("/api/v1/admin/firmware/{}/", release["id"]);
    let res = admin_send(
        &app,
        Method::PATCH,
        &root,
        &path,
        &json!({ "is_active": false }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let retired = &audit_entries(&app, &root, "firmware.update").await[0];
    assert_eq!(retired["outcome"], "ok");
    assert_eq!(retired["target_id"], release["id"].to_string());
    assert_eq!(retired["details"]["before"]["is_active"], true);
    assert_eq!(retired["details"]["after"]["is_active"], false);
    assert_eq!(retired["details"]["after"]["version"], "1.2.3");
}

/// What the API description states about a field is what the server
/// checks: found by fuzzing the description (scripts/schemathesis.sh).
#[tokio::test]
async fn numbers_written_with_a_zero_fraction_are_read_as_the_integers_they_are() {
    use reqwest::Method;
    use serde_json::json;
    let app = spawn_app().await;
    let root = admin_token(&app, AdminRole::Superadmin).await;
    let plan = |minutes: serde_json::Value| {
        json!({
            "code": format!("p{}", crate::helpers::random_hex(4)), "name": "Plan",
            "daily_ai_messages": 10, "daily_voice_minutes": minutes, "price_cents": 1e3
        })
    };
    let path = "/api/v1/admin/plans/";
    let res = admin_send(&app, Method::POST, &root, path, &plan(json!(30.0))).await;
    assert_eq!(res.status(), 201);
    let made: serde_json::Value = res.json().await.unwrap();
    assert_eq!(made["daily_voice_minutes"], 30);
    assert_eq!(made["price_cents"], 1000);
    // A fraction is still refused, and so is a negative count.
    for bad in [json!(30.5), json!(-1.0)] {
        let res = admin_send(&app, Method::POST, &root, path, &plan(bad)).await;
        assert_error(res, 400, "invalid_body").await;
    }
}

#[tokio::test]
async fn creating_a_plan_or_an_achievement_checks_fields_as_changing_one_does() {
    use reqwest::Method;
    use serde_json::json;
    let app = spawn_app().await;
    let root = admin_token(&app, AdminRole::Superadmin).await;
    let plan = |extra: serde_json::Value| {
        let mut body = json!({
            "code": format!("p{}", crate::helpers::random_hex(4)), "name": "Plan",
            "daily_ai_messages": 10, "daily_voice_minutes": 5, "price_cents": 100
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let path = "/api/v1/admin/plans/";
    for (extra, field) in [
        (json!({ "currency": "usd" }), "currency"),
        (json!({ "name": "Gold\u{7}" }), "name"),
        (json!({ "personas": ["x".repeat(33)] }), "personas"),
    ] {
        let res = admin_send(&app, Method::POST, &root, path, &plan(extra)).await;
        let body = assert_error(res, 400, "validation_error").await;
        assert_eq!(body["details"]["field"], field);
    }
    // 32 characters are a slug of 32, however many bytes they take.
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        path,
        &plan(json!({ "personas": ["熊".repeat(32)] })),
    )
    .await;
    assert_eq!(res.status(), 201);

    let achievement = |name: &str, icon: &str| {
        json!({
            "code": format!("a{}", crate::helpers::random_hex(4)), "name": name,
            "icon": icon, "event_kind": "card_scanned", "threshold": 1
        })
    };
    let path = "/api/v1/admin/achievements/";
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        path,
        &achievement("Bell\u{7}", ""),
    )
    .await;
    let body = assert_error(res, 400, "validation_error").await;
    assert_eq!(body["details"]["field"], "name");
    let res = admin_send(
        &app,
        Method::POST,
        &root,
        path,
        &achievement("  Reader ", " "),
    )
    .await;
    assert_eq!(res.status(), 201);
    let made: serde_json::Value = res.json().await.unwrap();
    assert_eq!(made["name"], "Reader");
    assert!(made["icon"].is_null(), "{made}");
}

#[tokio::test]
async fn deactivating_the_default_persona_is_a_conflict_not_a_bad_request() {
    use reqwest::Method;
    let app = spawn_app().await;
    let root = admin_token(&app, AdminRole::Superadmin).await;
    let list: serde_json::Value = get_as(&app, &root, "/api/v1/admin/personas/")
        .await
        .json()
        .await
        .unwrap();
    let default = list["personas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["is_default"] == true)
        .expect("a default persona");
    let path = format!("/api/v1/admin/personas/{}/", default["id"]);
    let res = admin_send(&app, Method::DELETE, &root, &path, &serde_json::json!({})).await;
    assert_error(res, 409, "persona_is_default").await;
    let res = admin_send(
        &app,
        Method::PATCH,
        &root,
        &path,
        &serde_json::json!({ "is_active": false }),
    )
    .await;
    assert_error(res, 409, "persona_is_default").await;
}

#[tokio::test]
async fn xiaozhi_ota_bodies_are_an_object_or_none() {
    let app = crate::xiaozhi::xiaozhi_app(|_| {}).await;
    let post = |path: &'static str, body: &'static str| {
        app.client
            .post(app.url(path))
            .header("Device-Id", "02:00:00:00:18:c1")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post("/xiaozhi/ota/", "").await.unwrap().status(), 200);
    assert_eq!(post("/xiaozhi/ota/", "null").await.unwrap().status(), 200);
    for body in ["[1]", "7", "\"x\""] {
        let res = post("/xiaozhi/ota/", body).await.unwrap();
        let err = assert_error(res, 400, "validation_error").await;
        assert_eq!(err["details"]["field"], "body", "{body}");
    }
    // Activation polls: no body, `null` or `{}` for version 1.
    for body in ["", "null", "{}"] {
        let res = post("/xiaozhi/ota/activate", body).await.unwrap();
        assert_eq!(res.status(), 202, "{body}");
    }
}
