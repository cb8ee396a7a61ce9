//! A fake WeChat API: Open Platform OAuth2 (`/sns/oauth2/access_token`,
//! `/sns/userinfo`) for one app and mini-program login
//! (`/sns/jscode2session`) for one mini program. It checks AppID and secret,
//! keeps a table of issued single-use codes (each for one AppID) and access
//! tokens, ages codes on a clock tests can move, returns a mini program's
//! `unionid` only while that app is bound to the Open Platform account, and
//! answers every error the vendor's way, as HTTP 200 with
//! `{"errcode","errmsg"}` and a `rid:` suffix. It can be told to answer busy
//! (-1), rate-limited (45011), blocked (40226) or slowly, and to label
//! successes `text/plain` (`jscode2session` always does).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use lty_server::config::{Config, Secret};
use serde_json::{Value, json};

use super::FakeServer;

/// The fake app's credentials (fictional).
pub const APP_ID: &str = "wx00000000fake0001";
pub const APP_SECRET: &str = "fake-wechat-app-secret-0001";

/// The fake mini program's credentials (fictional).
pub const MINI_APP_ID: &str = "wx00000000fakemini";
pub const MINI_APP_SECRET: &str = "fake-wechat-mini-secret-0001";

/// How long an issued code stays usable.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// How long a mini program's `wx.login()` code stays usable.
const JS_CODE_LIFETIME: Duration = Duration::from_secs(300);

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
    /// The AppID the code was issued for.
    app_id: &'static str,
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
    /// The mini program is not bound to the Open Platform account.
    mini_unbound: bool,
    /// How far the fake's clock is ahead of the real one.
    skew: Duration,
    session_keys: Vec<String>,
}

impl Inner {
    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }
}

/// A running fake; stopped when dropped.
pub struct FakeWechat {
    server: FakeServer,
    inner: Arc<Mutex<Inner>>,
}

impl FakeWechat {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        Self {
            server: FakeServer::start(app).await,
            inner,
        }
    }

    /// Points `config` at this fake with its credentials.
    pub fn configure(&self, config: &mut Config) {
        config.wechat.api_base_url = self.server.url();
        config.wechat.app_id = Some(APP_ID.into());
        config.wechat.app_secret = Some(Secret::new(APP_SECRET));
    }

    /// Points `config` at this fake with the mini program's credentials.
    pub fn configure_mini(&self, config: &mut Config) {
        config.wechat.api_base_url = self.server.url();
        config.wechat.mini_app_id = Some(MINI_APP_ID.into());
        config.wechat.mini_app_secret = Some(Secret::new(MINI_APP_SECRET));
    }

    /// Issues a mini-program `wx.login()` code for `openid`; `unionid` is
    /// the person's Open Platform unionid, answered while the mini program
    /// is bound.
    pub fn issue_js_code(&self, openid: &str, unionid: Option<&str>) -> String {
        self.issue_for(MINI_APP_ID, openid, unionid, "", "")
    }

    /// Unbinds the mini program from the Open Platform account: its
    /// answers carry no `unionid` from now on.
    pub fn unbind_mini(&self) {
        self.inner.lock().unwrap().mini_unbound = true;
    }

    /// Moves the fake's clock forward (codes age).
    pub fn advance(&self, by: Duration) {
        self.inner.lock().unwrap().skew += by;
    }

    /// Every `session_key` handed out, oldest first.
    pub fn session_keys(&self) -> Vec<String> {
        self.inner.lock().unwrap().session_keys.clone()
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
        self.issue_for(APP_ID, openid, unionid, nickname, scope)
    }

    fn issue_for(
        &self,
        app_id: &'static str,
        openid: &str,
        unionid: Option<&str>,
        nickname: &str,
        scope: &'static str,
    ) -> String {
        let code = format!("code-{:016x}", rand::random::<u64>());
        let mut inner = self.inner.lock().unwrap();
        let issued = inner.now();
        inner.codes.insert(
            code.clone(),
            Grant {
                app_id,
                openid: openid.into(),
                unionid: unionid.map(Into::into),
                nickname: nickname.into(),
                scope,
                issued,
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
        "/sns/jscode2session" => jscode2session(&inner, &q),
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
        let now = guard.now();
        let Some(grant) = guard.codes.get_mut(code).filter(|g| g.app_id == APP_ID) else {
            return errcode(40029, "invalid code");
        };
        if grant.used {
            return errcode(40163, "code been used");
        }
        if now.duration_since(grant.issued) > CODE_LIFETIME {
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

fn jscode2session(inner: &Arc<Mutex<Inner>>, q: &HashMap<String, String>) -> Response {
    let Some(appid) = q.get("appid") else {
        return errcode(41002, "appid missing");
    };
    if appid != MINI_APP_ID {
        return errcode(40013, "invalid appid");
    }
    let Some(secret) = q.get("secret") else {
        return errcode(41004, "appsecret missing");
    };
    if secret != MINI_APP_SECRET {
        return errcode(40125, "invalid appsecret");
    }
    let Some(js_code) = q.get("js_code") else {
        return errcode(41008, "missing code");
    };
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return errcode(40002, "invalid grant_type");
    }
    let mut guard = inner.lock().unwrap();
    let now = guard.now();
    let bound = !guard.mini_unbound;
    // A code of another AppID is as unknown here as a made-up one.
    let Some(grant) = guard
        .codes
        .get_mut(js_code)
        .filter(|g| g.app_id == MINI_APP_ID)
    else {
        return errcode(40029, "invalid code");
    };
    if grant.used {
        return errcode(40163, "code been used");
    }
    if now.duration_since(grant.issued) > JS_CODE_LIFETIME {
        return errcode(40029, "invalid code");
    }
    grant.used = true;
    let mut body = json!({
        "openid": grant.openid,
        "errcode": 0,
        "errmsg": "ok",
    });
    if let Some(u) = grant.unionid.as_ref().filter(|_| bound) {
        body["unionid"] = json!(u);
    }
    let session_key = format!("sk{:022x}==", rand::random::<u64>());
    body["session_key"] = json!(session_key);
    guard.session_keys.push(session_key);
    drop(guard);
    // The vendor labels this answer text/plain.
    ([(header::CONTENT_TYPE, "text/plain")], body.to_string()).into_response()
}
