//! WeChat login against a configurable base URL: Open Platform OAuth2
//! (exchanging a client's `code` at `/sns/oauth2/access_token`, reading
//! `/sns/userinfo`) and mini-program login (`/sns/jscode2session`).
//!
//! WeChat reports errors as HTTP 200 with `{"errcode", "errmsg"}`; an
//! `errcode` that is missing or `0` is success. Bodies are parsed as JSON
//! whatever their `Content-Type`. Secrets, tokens and codes never reach a
//! log line or a `Debug` output.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::ClientOptions;

/// The public API host.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// `errcode` of "system busy", the one answer worth one retry.
pub const ERRCODE_BUSY: i64 = -1;

/// Why a WeChat call failed.
#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    /// WeChat answered with an error code.
    #[error("wechat errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    /// No complete answer within the timeout.
    #[error("wechat did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("wechat request failed: {0}")]
    Transport(String),
    /// A non-200 status (a proxy or an outage, not the API).
    #[error("wechat answered HTTP {0}")]
    Http(u16),
    /// A body that is not the documented JSON.
    #[error("wechat answered unexpectedly: {0}")]
    Malformed(String),
}

impl WechatError {
    /// The `errcode`, when WeChat gave one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Api { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// Whether the client's `code` is unusable (wrong, used, expired): the
    /// user must authorise again.
    pub fn is_invalid_code(&self) -> bool {
        matches!(self.errcode(), Some(40029 | 40163 | 42003))
    }
}

/// Answer of `/sns/oauth2/access_token`.
#[derive(Clone, Deserialize)]
pub struct OAuthToken {
    /// User-scoped call credential.
    pub access_token: String,
    /// Seconds, 7200.
    #[serde(default)]
    pub expires_in: u64,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The user within this AppID.
    pub openid: String,
    /// Granted scopes, comma-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// Present when the app is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
}

impl OAuthToken {
    /// Whether `/sns/userinfo` may be called with this token.
    pub fn allows_userinfo(&self) -> bool {
        self.scope.as_deref().is_some_and(|s| {
            s.split(',')
                .any(|x| matches!(x.trim(), "snsapi_userinfo" | "snsapi_login"))
        })
    }
}

impl std::fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthToken")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Answer of `/sns/jscode2session` (mini-program login).
///
/// The answer's `session_key` is deliberately not read: lty decrypts no
/// mini-program data, so the key is neither kept nor able to reach a log or a
/// client.
#[derive(Debug, Clone, Deserialize)]
pub struct MiniSession {
    /// The user within the mini program's AppID.
    pub openid: String,
    /// Present when the mini program is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
}

/// Answer of `/sns/userinfo` (fields lty uses; the rest stays in `raw`).
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    /// Avatar URL; it stops working when the user changes the avatar.
    pub headimgurl: Option<String>,
    /// The whole answer as received.
    pub raw: String,
}

#[derive(Deserialize)]
struct UserInfoFields {
    openid: String,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    headimgurl: Option<String>,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

/// Parses a WeChat answer: an `errcode` other than 0 is an error whatever
/// else the body holds; otherwise the body must be a `T`.
pub fn parse_answer<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, WechatError> {
    if status != 200 {
        return Err(WechatError::Http(status));
    }
    let err: ErrorFields = serde_json::from_slice(body)
        .map_err(|e| WechatError::Malformed(format!("not a JSON object: {e}")))?;
    match err.errcode {
        Some(0) | None => {}
        Some(errcode) => {
            return Err(WechatError::Api {
                errcode,
                errmsg: err.errmsg.unwrap_or_default(),
            });
        }
    }
    serde_json::from_slice(body).map_err(|e| WechatError::Malformed(e.to_string()))
}

/// Settings of a [`WechatClient`].
#[derive(Clone)]
pub struct WechatConfig {
    /// Base URL, e.g. [`DEFAULT_BASE_URL`] or `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub app_id: String,
    pub app_secret: String,
    pub connect_timeout: Duration,
    /// Bound on each call.
    pub timeout: Duration,
    /// Pause before the one retry of a "system busy" answer.
    pub busy_retry_delay: Duration,
}

impl std::fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatConfig")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A WeChat client for one AppID (an Open Platform app or a mini program).
#[derive(Debug, Clone)]
pub struct WechatClient {
    config: WechatConfig,
    base: String,
    http: reqwest::Client,
}

impl WechatClient {
    /// A client for `config`.
    pub fn new(config: WechatConfig) -> Result<Self, WechatError> {
        let http = crate::http::client(ClientOptions::timeouts(
            config.connect_timeout,
            config.timeout,
        ))
        .map_err(|e| WechatError::Transport(e.to_string()))?;
        let base = config.base_url.trim_end_matches('/').to_owned();
        Ok(Self { config, base, http })
    }

    /// The AppID whose codes this client exchanges.
    pub fn app_id(&self) -> &str {
        &self.config.app_id
    }

    /// Exchanges a client's authorization `code` for an access token and
    /// the user's `openid` (and `unionid` when the app is bound).
    #[tracing::instrument(skip_all, err, fields(provider = "wechat"))]
    pub async fn exchange_code(&self, code: &str) -> Result<OAuthToken, WechatError> {
        self.get(
            "/sns/oauth2/access_token",
            &[
                ("appid", &self.config.app_id),
                ("secret", &self.config.app_secret),
                ("code", code),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
    }

    /// Exchanges a mini program's `js_code` (from `wx.login()`) for the
    /// user's `openid` (and `unionid` when the mini program is bound).
    #[tracing::instrument(skip_all, err, fields(provider = "wechat"))]
    pub async fn jscode2session(&self, js_code: &str) -> Result<MiniSession, WechatError> {
        let session: MiniSession = self
            .get(
                "/sns/jscode2session",
                &[
                    ("appid", &self.config.app_id),
                    ("secret", &self.config.app_secret),
                    ("js_code", js_code),
                    ("grant_type", "authorization_code"),
                ],
            )
            .await?;
        Ok(MiniSession {
            unionid: session.unionid.filter(|u| !u.is_empty()),
            ..session
        })
    }

    /// The user's profile, for the nickname, avatar and `unionid`.
    #[tracing::instrument(skip_all, err, fields(provider = "wechat"))]
    pub async fn userinfo(
        &self,
        access_token: &str,
        openid: &str,
    ) -> Result<UserInfo, WechatError> {
        let raw: serde_json::Value = self
            .get(
                "/sns/userinfo",
                &[("access_token", access_token), ("openid", openid)],
            )
            .await?;
        let fields: UserInfoFields = serde_json::from_value(raw.clone())
            .map_err(|e| WechatError::Malformed(e.to_string()))?;
        Ok(UserInfo {
            openid: fields.openid,
            unionid: fields.unionid.filter(|u| !u.is_empty()),
            nickname: fields.nickname.filter(|n| !n.is_empty()),
            headimgurl: fields.headimgurl.filter(|h| !h.is_empty()),
            raw: raw.to_string(),
        })
    }

    // One GET, retried once after a "system busy" answer (the call was not
    // processed, so even a single-use code is still unused).
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, WechatError> {
        match self.get_once(path, query).await {
            Err(e) if e.errcode() == Some(ERRCODE_BUSY) => {
                tracing::debug!(path, "wechat busy; retrying once");
                tokio::time::sleep(self.config.busy_retry_delay).await;
                self.get_once(path, query).await
            }
            other => other,
        }
    }

    async fn get_once<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, WechatError> {
        let url = format!("{}{path}", self.base);
        let res = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| self.transport(e))?;
        parse_answer(status, &body)
    }

    fn transport(&self, err: reqwest::Error) -> WechatError {
        if err.is_timeout() {
            WechatError::Timeout(self.config.timeout)
        } else {
            // The URL carries the secret and the code: never print it.
            WechatError::Transport(err.without_url().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_in_http_200_is_an_error_keyed_on_the_code_alone() {
        let body = br#"{"errcode":40029,"errmsg":"invalid code, rid: 6560-1a2b"}"#;
        let err = parse_answer::<OAuthToken>(200, body).unwrap_err();
        assert_eq!(err.errcode(), Some(40029));
        assert!(err.is_invalid_code());
        let busy = br#"{"errcode":-1,"errmsg":"system error"}"#;
        assert_eq!(
            parse_answer::<OAuthToken>(200, busy).unwrap_err().errcode(),
            Some(-1)
        );
    }

    #[test]
    fn success_with_or_without_errcode_zero_parses() {
        let body = br#"{"access_token":"AT","expires_in":7200,"refresh_token":"RT","openid":"o1","scope":"snsapi_userinfo","unionid":"u1","is_snapshotuser":0}"#;
        let token: OAuthToken = parse_answer(200, body).unwrap();
        assert_eq!(token.openid, "o1");
        assert_eq!(token.unionid.as_deref(), Some("u1"));
        assert!(token.allows_userinfo());
        let debug = format!("{token:?}");
        assert!(!debug.contains("AT") && !debug.contains("RT"), "{debug}");

        let body = br#"{"errcode":0,"errmsg":"ok","access_token":"AT","openid":"o2","scope":"snsapi_base"}"#;
        let token: OAuthToken = parse_answer(200, body).unwrap();
        assert!(!token.allows_userinfo());
    }

    #[test]
    fn a_mini_session_keeps_the_openid_and_unionid_but_never_the_session_key() {
        let body = br#"{"openid":"o-mini","session_key":"SK-secret==","unionid":"u1","errcode":0,"errmsg":"ok"}"#;
        let session: MiniSession = parse_answer(200, body).unwrap();
        assert_eq!(session.openid, "o-mini");
        assert_eq!(session.unionid.as_deref(), Some("u1"));
        let debug = format!("{session:?}");
        assert!(!debug.contains("SK-secret"), "{debug}");

        let body = br#"{"openid":"o-mini","session_key":"SK"}"#;
        let session: MiniSession = parse_answer(200, body).unwrap();
        assert_eq!(session.unionid, None);
        let err = parse_answer::<MiniSession>(
            200,
            br#"{"errcode":40163,"errmsg":"code been used, rid: 1-2"}"#,
        )
        .unwrap_err();
        assert!(err.is_invalid_code());
    }

    #[test]
    fn non_200_and_non_json_answers_are_transport_level_errors() {
        assert!(matches!(
            parse_answer::<OAuthToken>(502, b"{}"),
            Err(WechatError::Http(502))
        ));
        assert!(matches!(
            parse_answer::<OAuthToken>(200, b"<html>"),
            Err(WechatError::Malformed(_))
        ));
        assert!(matches!(
            parse_answer::<OAuthToken>(200, br#"{"errmsg":"no openid"}"#),
            Err(WechatError::Malformed(_))
        ));
    }
}
