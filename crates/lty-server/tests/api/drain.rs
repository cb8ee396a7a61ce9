//! Draining on SIGTERM, through the `lty` binary: sockets are closed with
//! 1012 (service restart) at once, while a request in flight still gets its
//! answer before the process exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::next_close;

const LTY: &str = env!("CARGO_BIN_EXE_lty");

/// A `lty serve` process on an ephemeral port with its own data dir, and
/// the log lines it printed so far.
struct Server {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Seeds `users` bench users (bench_0 bound to 02:00:00:00:00:00, ...)
    /// and starts serving.
    fn start(users: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let seeded = Command::new(LTY)
            .args(["seed", "--users", &users.to_string()])
            .env_clear()
            .env("LTY_DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(seeded.status.success(), "{seeded:?}");
        let mut child = Command::new(LTY)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_clear()
            .env("LTY_DATA_DIR", dir.path())
            .env("LTY_LOG__FORMAT", "json")
            .env("LTY_HTTP__SHUTDOWN_GRACE_SECS", "10")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = out.next().expect("server exited early").unwrap();
            if line.contains(r#""message":"listening""#) {
                let v: Value = serde_json::from_str(&line).unwrap();
                break v["addr"].as_str().unwrap().to_owned();
            }
        };
        // Keep reading so the pipe never fills up.
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            addr,
            lines,
            _dir: dir,
        }
    }

    fn logged(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (at most 15 s) and returns whether it
    /// exited with 0.
    fn wait_exit(&mut self) -> bool {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "server did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the head and the first 10 bytes of a `mac-login` request with
/// `Expect: 100-continue`, and returns once the server said it reads the
/// body: from then on the request is in flight.
fn start_slow_mac_login(addr: &str, body: &str) -> std::net::TcpStream {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /api/user/mac-login/ HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte)
            .expect("no 100 Continue within 10 s");
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100 "));
    conn
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1012_and_finishes_the_request_in_flight() {
    let mut server = Server::start(2);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://{}/api/user/mac-login/", server.addr))
        .json(&json!({"mac_address": "02:00:00:00:00:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!(
        "ws://{}/ws/device/token/{token}/?mac=02:00:00:00:00:00",
        server.addr
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    let body = r#"{"mac_address": "02:00:00:00:00:01"}"#;
    let mut conn = start_slow_mac_login(&server.addr, body);

    server.terminate();
    // The socket is closed while the request is still waiting for its
    // body: sockets do not wait for HTTP to drain.
    assert_eq!(next_close(&mut socket).await, 1012);

    // The request in flight still gets its answer.
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""token""#), "{response}");

    // Nothing new is accepted meanwhile, and the process exits cleanly.
    assert!(server.wait_exit(), "non-zero exit");
    assert!(server.logged("requests drained; closing sockets"));
    assert!(server.logged("shutdown complete"));
    assert!(
        std::net::TcpStream::connect(&server.addr).is_err(),
        "still accepting after exit"
    );
}
