//! The `lty` binary for accounts: `lty admin create`, the first-start admin
//! hint, and signing up by SMS in embedded mode with the code from the log.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{random_hex, test_database_url};

const LTY: &str = env!("CARGO_BIN_EXE_lty");

/// A fresh database for CLI runs: SQLite in a temp dir, or a new
/// PostgreSQL database when `TEST_DATABASE_URL` is set.
struct Db {
    vars: Vec<(String, String)>,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![
            (
                "LTY_DATA_DIR".to_owned(),
                dir.path().to_str().unwrap().to_owned(),
            ),
            ("LTY_LOG__FORMAT".to_owned(), "json".to_owned()),
        ];
        let mut pg = None;
        if let Some(admin) = test_database_url() {
            let name = format!("lty_test_{}", random_hex(8));
            // Runs on a thread of its own: tests here may be inside a runtime.
            let (a, n) = (admin.clone(), name.clone());
            std::thread::spawn(move || {
                block_on(lty_store::provision::create_postgres_database(&a, &n)).unwrap();
            })
            .join()
            .unwrap();
            let url = lty_store::provision::with_database(&admin, &name).unwrap();
            vars.push(("DATABASE_URL".to_owned(), url));
            pg = Some((admin, name));
        }
        Self {
            vars,
            pg,
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(LTY);
        cmd.args(args)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// `lty serve` on a free port; returns the child, its address and the
    /// log lines printed before "listening".
    fn serve(&self) -> Server {
        let mut child = self
            .command(&["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut before = Vec::new();
        let addr = loop {
            let line = lines.next().expect("server exited early").unwrap();
            if line.contains(r#""message":"listening""#) {
                let v: Value = serde_json::from_str(&line).unwrap();
                break v["addr"].as_str().unwrap().to_owned();
            }
            before.push(line);
        };
        Server {
            child,
            addr,
            lines,
            before,
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                block_on(lty_store::provision::drop_postgres_database(&admin, &name))
            })
            .join();
        }
    }
}

struct Server {
    child: Child,
    addr: String,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    before: Vec<String>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The next log line containing `needle`, within 10 s.
    fn wait_for(&mut self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no log line with {needle}"
            );
            let line = self.lines.next().expect("server exited").unwrap();
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn a_new_user_signs_up_by_sms_in_embedded_mode_with_the_code_from_the_log() {
    let db = Db::new();
    let mut server = db.serve();
    // First start, no admin yet: the log says how to make one.
    assert!(
        server
            .before
            .iter()
            .any(|l| l.contains("lty admin create --username")),
        "{:?}",
        server.before
    );
    let client = reqwest::Client::new();
    let res = client
        .post(server.url("/api/user/sms/send/"))
        .json(&json!({"phone": "13812345678"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let line = server.wait_for("SMS login code");
    let log: Value = serde_json::from_str(&line).unwrap();
    let code = log["code"].as_str().unwrap().to_owned();
    assert_eq!(log["phone"], "138****5678");
    assert!(!line.contains("13812345678"), "{line}");

    let res = client
        .post(server.url("/api/user/sms-login/"))
        .json(&json!({"phone": "13812345678", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["created"], true);
    let token = body["token"].as_str().unwrap().to_owned();

    let res = client
        .patch(server.url("/api/user/profile/"))
        .bearer_auth(&token)
        .json(&json!({"nickname": "小明"}))
        .send()
        .await
        .unwrap();
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["nickname"], "小明");
    assert_eq!(profile["phone"], "138****5678");

    let res = client
        .post(server.url("/api/user/logout/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(server.url("/api/user/profile/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn admin_create_makes_an_admin_who_can_log_in() {
    let db = Db::new();
    let out = db.run(
        &[
            "admin",
            "create",
            "--username",
            "ops",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("created admin ops (role operator, id 1)")
    );

    let out = db.run(
        &["admin", "create", "--username", "ops", "--password-stdin"],
        Some("another long password\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let mut server = db.serve();
    assert!(!server.before.iter().any(|l| l.contains("lty admin create")));
    let res = reqwest::Client::new()
        .post(server.url("/api/v1/admin/login/"))
        .json(&json!({"username": "ops", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["role"], "operator");
    server.wait_for("admin logged in");
}

#[test]
fn admin_create_refuses_bad_input_without_creating_anything() {
    let db = Db::new();
    for (args, stdin, needle) in [
        (
            vec!["--username", "ops", "--password-stdin"],
            "short\n",
            "password",
        ),
        (
            vec!["--username", "a b", "--password-stdin"],
            "a long enough password\n",
            "username",
        ),
        (
            vec!["--username", "ops", "--role", "root", "--password-stdin"],
            "a long enough password\n",
            "--role",
        ),
        // No terminal and no --password-stdin: nothing to prompt on.
        (vec!["--username", "ops"], "", "--password-stdin"),
    ] {
        let mut full = vec!["admin", "create"];
        full.extend(args.iter().copied());
        let out = db.run(&full, Some(stdin));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn partly_configured_sms_and_bad_limits_fail_at_start_naming_the_variable() {
    let db = Db::new();
    let mut cmd = db.command(&["serve", "--bind", "127.0.0.1:0"]);
    let out = cmd
        .env("ALIYUN_SMS_ACCESS_KEY_ID", "LTAIexample")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ALIYUN_SMS_ACCESS_KEY_SECRET"), "{err}");

    for (var, value) in [
        ("LTY_LIMITS__TRUSTED_PROXIES", "10.0.0.0/99"),
        ("LTY_LIMITS__MAC_LOGIN_PER_MAC__MAX", "lots"),
        ("LTY_AUTH__SMS_CODE_TTL_SECS", "0"),
    ] {
        let out = db
            .command(&["config", "print"])
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value} was accepted");
        assert!(stderr(&out).contains(var), "{var}: {}", stderr(&out));
    }

    let out = db
        .command(&["config", "print"])
        .env("LTY_LIMITS__MAC_LOGIN_PER_MAC__MAX", "500")
        .env("LTY_LIMITS__TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max = 500"), "{text}");
    assert!(text.contains(r#""10.0.0.0/8","#), "{text}");
    assert!(text.contains(r#""192.0.2.1/32","#), "{text}");
}
