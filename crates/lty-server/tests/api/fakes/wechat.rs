//! A fake WeChat Open Platform API (`/sns/oauth2/access_token`,
//! `/sns/userinfo`): checks AppID and secret, keeps a table of issued
//! single-use codes and access tokens, and answers every error the vendor's
//! way, as HTTP 200 with `{"errcode","errmsg"}` and a `rid:` suffix. It can
//! be told to answer busy (-1), rate-limited (45011), blocked (40226) or
//! slowly, and to label successes `text/plain`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use serde_json::{Value, json};

/// The fake app's credentials (fictional).
pub const APP_ID: &str = "wx00000000fake0001";
pub const APP_SECRET: &str = "fake-wechat-app-secret-0001";

/// How long an issued code stays usable.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// A scripted answer for the next call.
#[derive(Debug, Clone, Copy)]
pub enum Script {
    /// `errcode` in HTTP 200.
    Errcode(i64),
    /// Answer normally after this long.
    Delay(Duration),
}

#[derive(Clone)]
struct Grant {
    openid: String,
    unionid: Option<String>,
    nickname: String,
    scope: &'static str,
    issued: Instant,
    used: bool,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Grant>,
    script: VecDeque<Script>,
    plain_text: bool,
    calls: Vec<String>,
}

/// A running fake; stopped when dropped.
pub struct FakeWechat {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWechat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeWechat {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task }
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        config.wechat.api_base_url = format!("http://{}", self.addr);
        config.wechat.app_id = Some(APP_ID.into());
        config.wechat.app_secret = Some(Secret::new(APP_SECRET));
    }

    /// Issues a code for `openid` (scope `snsapi_userinfo`), as the WeChat
    /// app would after the user agrees.
    pub fn issue_code(&self, openid: &str, unionid: Option<&str>, nickname: &str) -> String {
        self.issue(openid, unionid, nickname, "snsapi_userinfo")
    }

    /// Issues a code with scope `snsapi_base`: no userinfo, openid only.
    pub fn issue_base_code(&self, openid: &str) -> String {
        self.issue(openid, None, "", "snsapi_base")
    }

    fn issue(
        &self,
        openid: &str,
        unionid: Option<&str>,
        nickname: &str,
        scope: &'static str,
    ) -> String {
        let code = format!("code-{:016x}", rand::random::<u64>());
        self.inner.lock().unwrap().codes.insert(
            code.clone(),
            Grant {
                openid: openid.into(),
                unionid: unionid.map(Into::into),
                nickname: nickname.into(),
                scope,
                issued: Instant::now(),
                used: false,
            },
        );
        code
    }

    /// Scripts the answer to the next call.
    pub fn script(&self, s: Script) {
        self.inner.lock().unwrap().script.push_back(s);
    }

    /// Label successful answers `text/plain` as WeChat sometimes does.
    pub fn plain_text(&self) {
        self.inner.lock().unwrap().plain_text = true;
    }

    /// Paths called, oldest first.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }
}

fn errcode(code: i64, msg: &str) -> Response {
    let rid = format!(
        "{:08x}-{:08x}",
        rand::random::<u32>(),
        rand::random::<u32>()
    );
    axum::Json(json!({"errcode": code, "errmsg": format!("{msg}, rid: {rid}")})).into_response()
}

fn ok(inner: &Arc<Mutex<Inner>>, body: Value) -> Response {
    let content_type = if inner.lock().unwrap().plain_text {
        "text/plain"
    } else {
        "application/json; encoding=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], body.to_string()).into_response()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    inner.lock().unwrap().calls.push(uri.path().to_owned());
    if method != Method::GET {
        return errcode(41002, "appid missing");
    }
    let next = inner.lock().unwrap().script.pop_front();
    match next {
        Some(Script::Errcode(code)) => return errcode(code, "scripted"),
        Some(Script::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    match uri.path() {
        "/sns/oauth2/access_token" => access_token(&inner, &q),
        "/sns/userinfo" => userinfo(&inner, &q),
        _ => errcode(40066, "invalid url"),
    }
}

fn access_token(inner: &Arc<Mutex<Inner>>, q: &HashMap<String, String>) -> Response {
    let Some(appid) = q.get("appid") else {
        return errcode(41002, "appid missing");
    };
    if appid != APP_ID {
        return errcode(40013, "invalid appid");
    }
    let Some(secret) = q.get("secret") else {
        return errcode(41004, "appsecret missing");
    };
    if secret != APP_SECRET {
        return errcode(40125, "invalid appsecret");
    }
    let Some(code) = q.get("code") else {
        return errcode(41008, "missing code");
    };
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return errcode(40002, "invalid grant_type");
    }
    let grant = {
        let mut guard = inner.lock().unwrap();
        let Some(grant) = guard.codes.get_mut(code) else {
            return errcode(40029, "invalid code");
        };
        if grant.used {
            return errcode(40163, "code been used");
        }
        if grant.issued.elapsed() > CODE_LIFETIME {
            return errcode(42003, "code expired");
        }
        grant.used = true;
        grant.clone()
    };
    let token = format!("at-{:016x}", rand::random::<u64>());
    inner
        .lock()
        .unwrap()
        .tokens
        .insert(token.clone(), grant.clone());
    let mut body = json!({
        "access_token": token,
        "expires_in": 7200,
        "refresh_token": format!("rt-{:016x}", rand::random::<u64>()),
        "openid": grant.openid,
        "scope": grant.scope,
        "is_snapshotuser": 0,
    });
    if let Some(u) = &grant.unionid {
        body["unionid"] = json!(u);
    }
    ok(inner, body)
}

fn userinfo(inner: &Arc<Mutex<Inner>>, q: &HashMap<String, String>) -> Response {
    let grant = {
        let guard = inner.lock().unwrap();
        match q.get("access_token").and_then(|t| guard.tokens.get(t)) {
            Some(g) => g.clone(),
            None => {
                return errcode(
                    40001,
                    "invalid credential, access_token is invalid or not latest",
                );
            }
        }
    };
    if grant.scope != "snsapi_userinfo" {
        return errcode(48001, "api unauthorized");
    }
    if q.get("openid") != Some(&grant.openid) {
        return errcode(40003, "invalid openid");
    }
    let mut body = json!({
        "openid": grant.openid,
        "nickname": grant.nickname,
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": "https://thirdwx.qlogo.cn/mmopen/fake/132",
        "privilege": [],
    });
    if let Some(u) = &grant.unionid {
        body["unionid"] = json!(u);
    }
    ok(inner, body)
}
