//! WeChat login for the user routes: the clients built from configuration
//! (the Open Platform app and the mini program, each its own AppID), turning
//! a client's `code` into a [`WechatIdentity`], and WeChat's error codes into
//! clear answers (wechat.md §4).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lty_core::account::WechatIdentity;
use lty_core::{Error, ErrorKind, Result};
use lty_vendors::wechat::{WechatClient, WechatConfig, WechatError};
use serde_json::json;

use crate::app::ratelimit::{self, ClientIp};
use crate::config::{Config, Secret};
use crate::state::AppState;

const PROVIDER: &str = "wechat";
/// The provider named by `503 provider_not_configured` for the mini program.
const MINI_PROVIDER: &str = "wechat_mini";

/// The Open Platform client, when `WECHAT_APP_ID` and `WECHAT_APP_SECRET`
/// are set.
pub fn client(config: &Config) -> anyhow::Result<Option<Arc<WechatClient>>> {
    let w = &config.wechat;
    build(
        config,
        w.app_id.as_ref(),
        w.app_secret.as_ref(),
        "WeChat login needs both WECHAT_APP_ID and WECHAT_APP_SECRET",
    )
}

/// The mini-program client, when `WECHAT_MINI_APP_ID` and
/// `WECHAT_MINI_APP_SECRET` are set.
pub fn mini_client(config: &Config) -> anyhow::Result<Option<Arc<WechatClient>>> {
    let w = &config.wechat;
    build(
        config,
        w.mini_app_id.as_ref(),
        w.mini_app_secret.as_ref(),
        "WeChat mini-program login needs both WECHAT_MINI_APP_ID and WECHAT_MINI_APP_SECRET",
    )
}

fn build(
    config: &Config,
    app_id: Option<&String>,
    secret: Option<&Secret>,
    half_configured: &'static str,
) -> anyhow::Result<Option<Arc<WechatClient>>> {
    let w = &config.wechat;
    let (Some(app_id), Some(secret)) = (app_id, secret) else {
        if app_id.is_some() || secret.is_some() {
            anyhow::bail!(half_configured);
        }
        return Ok(None);
    };
    let client = WechatClient::new(WechatConfig {
        base_url: w.api_base_url.clone(),
        app_id: app_id.clone(),
        app_secret: secret.expose().to_owned(),
        connect_timeout: Duration::from_secs(w.timeout_secs.min(3)),
        timeout: Duration::from_secs(w.timeout_secs),
        busy_retry_delay: Duration::from_millis(200),
    })
    .context("cannot build the WeChat client")?;
    Ok(Some(Arc::new(client)))
}

/// The configured client, or `503 provider_not_configured`.
fn require(client: Option<&Arc<WechatClient>>) -> Result<&WechatClient> {
    client
        .map(AsRef::as_ref)
        .ok_or(Error::ProviderNotConfigured { provider: PROVIDER })
}

/// The configured mini-program client, or `503 provider_not_configured`.
fn require_mini(client: Option<&Arc<WechatClient>>) -> Result<&WechatClient> {
    client
        .map(AsRef::as_ref)
        .ok_or(Error::ProviderNotConfigured {
            provider: MINI_PROVIDER,
        })
}

/// Which WeChat app a login or bind `code` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// The Open Platform app (mobile app or website): `WECHAT_APP_ID`.
    Open,
    /// The mini program: `WECHAT_MINI_APP_ID`.
    Mini,
}

/// The identity behind the `code` of a login or bind request from `app`:
/// the per-IP limit (`wechat_login_ip`), the code's shape, the configured
/// client (else `503 provider_not_configured`), then the exchange.
pub async fn identity_of_code(
    state: &AppState,
    ip: &ClientIp,
    code: Option<&str>,
    app: App,
) -> Result<WechatIdentity> {
    ratelimit::check_ip(
        state,
        "wechat_login_ip",
        ip,
        state.config.limits.wechat_login_per_ip,
    )
    .await?;
    let code = parse_code(code)?;
    match app {
        App::Open => identify(require(state.wechat.as_ref())?, code).await,
        App::Mini => identify_mini(require_mini(state.wechat_mini.as_ref())?, code).await,
    }
}

/// Validates the `code` field of a login or bind request.
fn parse_code(code: Option<&str>) -> Result<&str> {
    let code = code.map(str::trim).unwrap_or("");
    if code.is_empty() {
        return Err(Error::validation("code", "is required"));
    }
    if code.len() > 256 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::validation(
            "code",
            "is not a WeChat authorization code",
        ));
    }
    Ok(code)
}

/// Exchanges `code` and, when the granted scope allows, reads the profile
/// (nickname, avatar, `unionid`). A failed profile read after a good
/// exchange is logged and the login goes on with the `openid` alone.
async fn identify(client: &WechatClient, code: &str) -> Result<WechatIdentity> {
    let token = client.exchange_code(code).await.map_err(map_error)?;
    let mut identity = WechatIdentity {
        app_id: client.app_id().to_owned(),
        openid: token.openid.clone(),
        unionid: token.unionid.clone().filter(|u| !u.is_empty()),
        nickname: None,
        avatar_url: None,
        raw_profile: None,
    };
    if token.allows_userinfo() {
        match client.userinfo(&token.access_token, &token.openid).await {
            Ok(info) => {
                if identity.unionid.is_none() {
                    identity.unionid = info.unionid;
                }
                identity.nickname = info.nickname.map(|n| n.chars().take(64).collect());
                identity.avatar_url = info.headimgurl.filter(|u| u.len() <= 1024);
                identity.raw_profile = Some(info.raw);
            }
            Err(e) => {
                tracing::warn!(error = %e, "WeChat userinfo failed; continuing with the openid")
            }
        }
    }
    Ok(identity)
}

/// Exchanges a mini program's `js_code`. The identity carries the openid
/// of the mini program's AppID and the `unionid` when the mini program is
/// bound to the Open Platform account, which is what links it to the same
/// person's app login. There is no profile in this flow.
async fn identify_mini(client: &WechatClient, js_code: &str) -> Result<WechatIdentity> {
    let session = client.jscode2session(js_code).await.map_err(map_error)?;
    Ok(WechatIdentity {
        app_id: client.app_id().to_owned(),
        openid: session.openid,
        unionid: session.unionid,
        nickname: None,
        avatar_url: None,
        raw_profile: None,
    })
}

/// WeChat's answer as an API error.
pub fn map_error(err: WechatError) -> Error {
    if err.is_invalid_code() {
        return Error::coded(
            ErrorKind::Invalid,
            "invalid_wechat_code",
            "the WeChat code is invalid, used or expired; authorize again",
        )
        .with_details(json!({ "errcode": err.errcode() }));
    }
    match err.errcode() {
        Some(45011) => Error::RateLimited {
            retry_after_secs: 60,
        },
        Some(40226) => Error::coded(
            ErrorKind::Forbidden,
            "wechat_user_blocked",
            "WeChat refused this user",
        ),
        _ => Error::Upstream {
            provider: PROVIDER,
            message: err.to_string(),
        },
    }
}
