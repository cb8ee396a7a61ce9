//! The `lty` binary: configuration, migrations, seeding, shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{random_hex, test_database_url};

const LTY: &str = env!("CARGO_BIN_EXE_lty");

/// `lty` with a clean environment plus `vars`.
fn lty(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(LTY)
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run lty")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_prints_the_package_version() {
    let out = lty(&["--version"], &[]);
    assert!(out.status.success());
    assert!(stdout(&out).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn config_print_reads_legacy_names_and_redacts_secrets() {
    let out = lty(
        &["config", "print"],
        &[
            ("POSTGRESQL_DATABASE_NAME", "family"),
            ("POSTGRESQL_DATABASE_USER", "lty"),
            ("POSTGRESQL_DATABASE_PASSWORD", "pg-pass-123"),
            ("POSTGRESQL_DATABASE_HOST", "db.internal"),
            ("POSTGRESQL_DATABASE_PORT", "6543"),
            ("REDIS_LOCATION", "redis://cache.internal:6379/1"),
            ("REDIS_PASSWORD", "redis-pass-456"),
            ("KIMI_API_KEY", "sk-kimi-789"),
            ("VOLCENGINE_APP_ID", "123456789012345678901234"),
            ("ALIYUN_SMS_ACCESS_KEY_SECRET", "sms-secret-000"),
            ("ALIYUN_LOG_PROJECT", "lty-logs"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("# database in effect: postgres://lty:***@db.internal:6543/family"),
        "{text}"
    );
    assert!(text.contains(r#"location = "redis://cache.internal:6379/1""#));
    assert!(text.contains("# mode: production"));
    // A numeric-looking id stays a string.
    assert!(text.contains(r#"app_id = "123456789012345678901234""#));
    for secret in [
        "pg-pass-123",
        "redis-pass-456",
        "sk-kimi-789",
        "sms-secret-000",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("#   KIMI_API_KEY -> llm.api_key (in use)"));
    assert!(text.contains("#   ALIYUN_LOG_PROJECT -> aliyun.log.project (in use)"));
    assert!(text.contains("#   REDIS_LOCATION -> redis.location (in use)"));
}

#[test]
fn defaults_are_the_embedded_mode() {
    let out = lty(&["config", "print"], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("# database in effect: sqlite://./data/lty.db"),
        "{text}"
    );
    assert!(text.contains("# mode: embedded"));
    assert!(text.contains(r#"bind = "0.0.0.0:8000""#));
    assert!(text.contains("body_limit = 1048576"));
}

#[test]
fn file_then_legacy_env_then_lty_env_take_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lty.toml");
    std::fs::write(
        &file,
        "bind = \"127.0.0.1:1111\"\n[redis]\nlocation = \"redis://from-file:6379\"\n\
         [http]\nbody_limit = 4096\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let out = lty(&["--config", file, "config", "print"], &[]);
    let text = stdout(&out);
    assert!(text.contains(r#"bind = "127.0.0.1:1111""#), "{text}");
    assert!(text.contains("redis://from-file:6379"));
    assert!(text.contains("body_limit = 4096"));

    let out = lty(
        &["--config", file, "config", "print"],
        &[
            ("REDIS_LOCATION", "redis://from-legacy-env:6379"),
            ("LTY_BIND", "127.0.0.1:2222"),
            ("DATABASE_URL", "postgres://legacy@h/db"),
            ("LTY_DATABASE__URL", "postgres://lty@h/db"),
        ],
    );
    let text = stdout(&out);
    assert!(text.contains(r#"bind = "127.0.0.1:2222""#), "{text}");
    assert!(text.contains("redis://from-legacy-env:6379"));
    assert!(text.contains("# database in effect: postgres://lty@h/db"));
    assert!(text.contains("body_limit = 4096"));

    // LTY_CONFIG names the file too.
    let out = lty(&["config", "print"], &[("LTY_CONFIG", file)]);
    assert!(stdout(&out).contains(r#"bind = "127.0.0.1:1111""#));
}

#[test]
fn a_bad_value_fails_at_start_naming_the_variable() {
    for (var, value) in [
        ("POSTGRESQL_DATABASE_PORT", "five-four-three-two"),
        ("LTY_HTTP__BODY_LIMIT", "lots"),
        ("REDIS_LOCATION", "not a url"),
        ("KIMI_BASE_URL", "ftp://example.com"),
        ("LTY_DEVICE_AUTH", "sometimes"),
        ("LTY_BIND", "nowhere"),
    ] {
        let out = lty(&["config", "print"], &[(var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}={value} was accepted");
        let err = stderr(&out);
        assert!(err.contains(var), "{var}: error does not name it: {err}");
    }
    let out = lty(&["--config", "/no/such/lty.toml", "config", "print"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such/lty.toml"));
}

/// Environment for a CLI run against a fresh database: SQLite in `dir`, or
/// a new PostgreSQL database when `TEST_DATABASE_URL` is set.
struct CliDb {
    vars: Vec<(String, String)>,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl CliDb {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![(
            "LTY_DATA_DIR".to_owned(),
            dir.path().to_str().unwrap().to_owned(),
        )];
        let mut pg = None;
        if let Some(admin) = test_database_url() {
            let name = format!("lty_test_{}", random_hex(8));
            block_on(lty_store::provision::create_postgres_database(
                &admin, &name,
            ))
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

    fn run(&self, args: &[&str]) -> Output {
        let vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        lty(args, &vars)
    }
}

impl Drop for CliDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            let _ = block_on(lty_store::provision::drop_postgres_database(&admin, &name));
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn migrate_applies_every_migration_and_is_idempotent() {
    let db = CliDb::new();
    let out = db.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("applied m20261125_000001_users_and_devices"));
    let again = db.run(&["migrate"]);
    assert!(again.status.success());
    assert_eq!(stdout(&out), stdout(&again));
}

#[test]
fn seed_twice_leaves_exactly_the_requested_bench_users() {
    let db = CliDb::new();
    let out = db.run(&["seed", "--users", "5000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("5000 users and 5000 bindings created, 5000 bench users in total"),
        "{text}"
    );
    let out = db.run(&["seed", "--users", "5000"]);
    let text = stdout(&out);
    assert!(
        text.contains("0 users and 0 bindings created, 5000 bench users in total"),
        "{text}"
    );
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(LTY)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("LTY_DATA_DIR", dir.path())
        .env("LTY_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited early").unwrap();
        if line.contains(r#""message":"listening""#) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["addr"].as_str().unwrap().to_owned();
        }
    };

    // Start a request and stop half-way through its body. With `Expect:
    // 100-continue` the server says when the handler starts reading the
    // body: from then on the request is in flight.
    let body = r#"{"mac_address": "02:ff:ff:ff:ff:ff"}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
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
    assert!(
        interim.starts_with(b"HTTP/1.1 100 "),
        "{}",
        String::from_utf8_lossy(&interim)
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Draining has begun once the server says so.
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("shutdown signal received")),
        "the server never logged the signal"
    );

    // The request in flight still gets its answer.
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(response.contains("device_not_bound"));

    // New connections are refused once it stops, and it exits with 0.
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "server did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown complete")),
        "{rest:?}"
    );
}

#[test]
fn cards_generate_writes_a_zip_of_qr_images_or_a_csv() {
    let db = CliDb::new();
    let out_dir = tempfile::tempdir().unwrap();
    let zip_path = out_dir.path().join("batch.zip");
    let out = db.run(&[
        "cards",
        "generate",
        "--kind",
        "content",
        "--count",
        "3",
        "--content-ref",
        "story:7",
        "--out",
        zip_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("3/3"), "{}", stderr(&out));
    let entries = crate::cards::unzip(&std::fs::read(&zip_path).unwrap());
    let csv = String::from_utf8(entries[0].1.clone()).unwrap();
    let codes: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 3);
    let batch: i64 = entries[0]
        .0
        .trim_start_matches("batch-")
        .trim_end_matches(".csv")
        .parse()
        .unwrap();
    crate::cards::check_batch_zip(&entries, batch, &codes);

    let csv_path = out_dir.path().join("batch.csv");
    let out = db.run(&[
        "cards",
        "generate",
        "--kind",
        "membership",
        "--count",
        "2",
        "--plan",
        "1",
        "--days",
        "30",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().next(), Some("code,card_id,disabled"));
    assert_eq!(csv.lines().count(), 3);

    // Invalid input is refused before anything is generated.
    let out = db.run(&[
        "cards",
        "generate",
        "--kind",
        "membership",
        "--count",
        "2",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("plan_id"), "{}", stderr(&out));
}
