//! `spawn_app()` and friends: the app under test, reading `/metrics`,
//! waiting for sockets, and the services a test needs from the environment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lty_server::config::Config;
use lty_server::state::AppState;
use rand::RngCore;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// A running application and what it needs to be torn down.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub config: Config,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The PostgreSQL server to test against, if any.
pub fn test_database_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The Redis server to test against, if any.
pub fn test_redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The PostgreSQL server of a test that needs one (`#[ignore]`d, run by the
/// PostgreSQL + Redis leg): fails the test when `TEST_DATABASE_URL` is unset
/// rather than letting it pass without testing anything.
pub fn required_database_url() -> String {
    test_database_url().expect(
        "this test needs PostgreSQL: set TEST_DATABASE_URL \
         (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
    )
}

/// The Redis server of a test that needs one; see [`required_database_url`].
pub fn required_redis_url() -> String {
    test_redis_url()
        .expect("this test needs Redis: set TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)")
}

/// How long a wait for something asynchronous may take before the test
/// fails. It only turns a hang into a failure: on an idle machine the wait
/// takes milliseconds.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `check` until it holds, failing the test after [`WAIT_TIMEOUT`]
/// with "timed out waiting until {what}".
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT_TIMEOUT:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of one series in a Prometheus text exposition: the sample
/// named `name` whose label set is exactly `labels` (in any order), or 0.0
/// when there is none, as for a counter never incremented.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(mut sample) = Sample::parse(line) else {
            assert!(!line.starts_with(name), "unreadable sample {line:?}");
            continue;
        };
        sample.labels.sort();
        if sample.name == name && sample.labels == wanted {
            assert!(found.is_none(), "{name}{labels:?} appears twice:\n{text}");
            found = Some(sample.value);
        }
    }
    found.unwrap_or(0.0)
}

/// One line of the Prometheus text format.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

impl<'a> Sample<'a> {
    /// `name{label="value",...} value [timestamp]`, label values unescaped.
    fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        let end = line.find(['{', ' '])?;
        let name = &line[..end];
        let mut rest = &line[end..];
        let mut labels = Vec::new();
        if let Some(mut body) = rest.strip_prefix('{') {
            loop {
                body = body.trim_start_matches([',', ' ']);
                if let Some(after) = body.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after_key) = body.split_once("=\"")?;
                let mut value = String::new();
                let mut chars = after_key.char_indices();
                let close = loop {
                    match chars.next()? {
                        (_, '\\') => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        (at, '"') => break at,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.trim().to_owned(), value));
                body = &after_key[close + 1..];
            }
        }
        let value = rest.split_whitespace().next()?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        Some(Self {
            name,
            labels,
            value,
        })
    }
}

/// A configuration for one test: a temp data dir, and PostgreSQL/Redis
/// when the environment names them (a fresh database is created).
pub async fn test_config() -> (Config, tempfile::TempDir, Option<(String, String)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.database.max_connections = 4;
    config.http.shutdown_grace_secs = 5;
    let mut pg = None;
    if let Some(admin) = test_database_url() {
        let name = format!("lty_test_{}", random_hex(8));
        lty_store::provision::create_postgres_database(&admin, &name)
            .await
            .expect("create test database");
        let url = lty_store::provision::with_database(&admin, &name).expect("db url");
        config.database.url = Some(lty_server::config::Secret::new(url));
        pg = Some((admin, name));
    }
    if let Some(redis) = test_redis_url() {
        config.redis.location = Some(redis);
        config.redis.key_prefix = format!("test:{}:", random_hex(8));
    }
    (config, dir, pg)
}

/// Starts the app with the test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after letting `tweak` change the configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(|config, _| tweak(config)).await
}

/// Starts the app after letting `tweak` change the configuration, knowing
/// the address the app will listen on (for URLs handed to clients).
pub async fn spawn_app_on(tweak: impl FnOnce(&mut Config, std::net::SocketAddr)) -> TestApp {
    let (mut config, dir, pg) = test_config().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tweak(&mut config, addr);
    let state = AppState::build(config.clone()).await.expect("build state");
    let server_state = state.clone();
    let task = tokio::spawn(async move {
        lty_server::server::serve(server_state, listener)
            .await
            .expect("server");
    });
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state,
        config,
        _dir: dir,
        pg,
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Creates a user bound to `mac` and returns its id.
    pub async fn user_with_device(&self, username: &str, mac: &str) -> i64 {
        let user = self
            .state
            .db
            .create_user(lty_core::user::NewUser {
                username: username.into(),
                nickname: None,
                phone: None,
            })
            .await
            .expect("create user");
        let mac = lty_core::MacAddress::parse(mac).expect("mac");
        self.state.db.bind(user.id, &mac, None).await.expect("bind");
        user.id
    }

    /// The value of one series in this process's `/metrics` (see
    /// [`metric_value`]). Every test of the binary shares the recorder:
    /// compare the value before and after an action, and expect other tests
    /// running at the same time to add to it.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let res = self.get("/metrics").await;
        assert_eq!(res.status(), 200, "GET /metrics");
        metric_value(&res.text().await.expect("metrics text"), name, labels)
    }

    /// Logs in by MAC and returns the token.
    pub async fn mac_login(&self, mac: &str) -> String {
        let res = self
            .post_json(
                "/api/user/mac-login/",
                &serde_json::json!({ "mac_address": mac }),
            )
            .await;
        assert_eq!(res.status(), 200, "mac-login failed");
        let body: Value = res.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let pg = self.pg.take();
        let redis = self
            .config
            .redis
            .location
            .clone()
            .map(|url| (url, self.config.redis.key_prefix.clone()));
        // Async clean-up cannot run in Drop on the test's runtime: use a
        // short-lived runtime on another thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Some((admin, name)) = pg {
                    let _ = lty_store::provision::drop_postgres_database(&admin, &name).await;
                }
                if let Some((url, prefix)) = redis {
                    delete_prefix(&url, &prefix).await;
                }
            });
        })
        .join();
    }
}

async fn delete_prefix(url: &str, prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    let settings = lty_store::cache::RedisSettings {
        url: url.to_owned(),
        password: None,
        key_prefix: String::new(),
        timeout: Duration::from_secs(2),
    };
    let Ok(mut conn) = lty_store::cache::RedisConnection::connect(&settings).await else {
        return;
    };
    // KEYS reaches every master of a cluster; DEL goes key by key, as the
    // keys may live on different slots.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for key in keys {
        let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
    }
}

/// A TCP forwarder in front of a real service that a test can cut, to see
/// what lty does when PostgreSQL or Redis goes away.
pub struct CuttableProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (cut2, conns2) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().expect("lock").push(task.abort_handle());
            }
        });
        Self { addr, cut, conns }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    /// Accepts new connections again after [`CuttableProxy::cut`].
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// `host:port` of a URL, resolved.
pub fn socket_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).expect("url");
    let host = u.host_str().expect("host");
    let port = u.port_or_known_default().unwrap_or(match u.scheme() {
        "redis" => 6379,
        _ => 5432,
    });
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
}

/// Asserts the error shape `{"code","message",...}` and returns the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: Value = res.json().await.expect("json body");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].is_string(), "body: {body}");
    body
}

/// `POST /api/ai/tts/` as the holder of `token`.
pub async fn tts(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/ai/tts/"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("POST tts")
}

/// [`tts`], expecting 200: the answer.
pub async fn tts_ok(app: &TestApp, token: &str, body: &Value) -> Value {
    let res = tts(app, token, body).await;
    let status = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("json body")
}

/// `POST path` as the holder of `token`, with a raw body.
pub async fn post_bytes(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST")
}

/// `POST /api/ai/asr/` as the holder of `token`, with a raw body.
pub async fn asr(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    post_bytes(app, token, "/api/ai/asr/", content_type, body).await
}

/// `POST /api/ai/asr/` as the holder of `token`, with the audio as the
/// `file` part of a multipart form.
pub async fn asr_form(
    app: &TestApp,
    token: &str,
    file_name: &str,
    mime: &str,
    audio: Vec<u8>,
) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(audio)
        .file_name(file_name.to_owned())
        .mime_str(mime)
        .expect("mime");
    app.client
        .post(app.url("/api/ai/asr/"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("POST asr")
}

/// The `/media/...` path of a media URL.
pub fn media_path(url: &str) -> String {
    let at = url.find("/media/").expect("a /media/ URL");
    url[at..].to_owned()
}

/// The content type and bytes behind a TTS answer's `audio_url`.
pub async fn fetch_audio(app: &TestApp, answer: &Value) -> (String, Vec<u8>) {
    let url = answer["audio_url"].as_str().expect("an audio_url");
    let res = app.get(&media_path(url)).await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, res.bytes().await.expect("body").to_vec())
}

/// A device socket for tests.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestApp {
    /// Opens `/ws/device/token/{token}/` with an optional `?mac=`.
    pub async fn ws_connect(&self, token: &str, mac: Option<&str>) -> Socket {
        let url = match mac {
            Some(m) => format!("ws://{}/ws/device/token/{token}/?mac={m}", self.addr),
            None => format!("ws://{}/ws/device/token/{token}/", self.addr),
        };
        let (socket, res) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        assert_eq!(res.status(), 101);
        socket
    }

    /// Waits until `n` sockets of the family of `user_id` have joined its
    /// group on this instance, so that a message published from now on
    /// reaches them (a handshake answers before the socket joins).
    pub async fn wait_for_sockets(&self, user_id: i64, n: usize) {
        let group = lty_server::ws::protocol::device_group(user_id);
        wait_until(&format!("{n} socket(s) joined {group}"), async || {
            self.state.pubsub.local_members(&group) >= n
        })
        .await;
    }

    /// Sends a JSON object to the family of `token` through the push API.
    pub async fn push(&self, token: &str, body: &Value) -> Value {
        let res = self
            .client
            .post(self.url("/api/device/send/"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }
}

/// The next text frame as JSON, failing after 5 s.
pub async fn next_json(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .expect("no message within 5 s")
            .expect("socket closed")
            .expect("socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON text"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The close code the server sends next (skipping other frames), failing
/// after 5 s.
pub async fn next_close(socket: &mut Socket) -> u16 {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .expect("no close within 5 s");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close: {e}"),
        }
    }
}

/// Asserts that no text frame arrives within `ms` milliseconds.
pub async fn assert_silent(socket: &mut Socket, ms: u64) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Text(t)))) => panic!("unexpected message {t}"),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}
