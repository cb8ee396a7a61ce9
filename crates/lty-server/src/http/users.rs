//! `/api/user/`: device MAC login (signed when the device holds a secret,
//! rate limited), SMS login, WeChat login and binding (Open Platform app
//! and mini program), profile, logout.

use axum::extract::State;
use chrono::{DateTime, Utc};
use lty_core::PhoneNumber;
use lty_core::account::{WechatIdentity, generated_username};
use lty_core::token::TokenKind;
use lty_core::user::{NewUser, ProfilePatch, User, mask_phone};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::device_auth::{self, DeviceRouteLimits};
use crate::app::ratelimit::{self, ClientIp};
use crate::app::wechat;
use crate::auth::{AuthUser, AuthUserId};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{DeviceSignature, Json, JsonOrForm};
use crate::state::AppState;

/// User routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mac_login))
        .routes(routes!(sms_send))
        .routes(routes!(sms_login))
        .routes(routes!(wechat_login))
        .routes(routes!(wechat_bind))
        .routes(routes!(wechat_mini_login))
        .routes(routes!(wechat_mini_bind))
        .routes(routes!(profile, update_profile))
        .routes(routes!(logout))
}

/// MAC login request (JSON or form-encoded, as the legacy API accepted).
#[derive(Debug, Deserialize, ToSchema)]
pub struct MacLoginIn {
    /// The device's MAC address; `:` or `-` separated, any case.
    #[schema(value_type = String, required = true, example = "02:00:00:00:00:05")]
    pub mac_address: Option<String>,
}

/// A login token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    /// Bearer token, valid 30 days.
    pub token: String,
    /// The user the token acts as.
    pub user_id: i64,
}

/// Logs a device in as the user of its latest binding. Each call issues a
/// new token. A device holding a secret must sign the request with the
/// `X-Device-*` headers (docs/device-auth.md); with `device_auth = signed`
/// every device must.
#[utoipa::path(post, path = "/api/user/mac-login/", tag = "user",
    request_body = MacLoginIn,
    params(DeviceSignature),
    responses(
        (status = 200, body = LoginOut),
        (status = 400, description = "missing or malformed MAC", body = ErrorBody),
        (status = 401, description = "signature required, invalid, stale or replayed", body = ErrorBody),
        (status = 403, description = "the account is disabled", body = ErrorBody),
        (status = 404, description = "the MAC is not bound", body = ErrorBody),
        (status = 429, description = "rate limited per IP or per MAC", body = ErrorBody),
    ))]
pub async fn mac_login(
    State(state): State<AppState>,
    ip: ClientIp,
    signed: DeviceSignature,
    JsonOrForm(body): JsonOrForm<MacLoginIn>,
) -> ApiResult<Json<LoginOut>> {
    let limits = &state.config.limits;
    let binding = device_auth::authenticate_device(
        &state,
        &ip,
        &signed,
        body.mac_address.as_deref(),
        DeviceRouteLimits {
            ip_rule: "mac_login_ip",
            per_ip: limits.mac_login_per_ip,
            mac_rule: "mac_login_mac",
            per_mac: limits.mac_login_per_mac,
        },
    )
    .await?;
    let token = state.tokens.issue(TokenKind::User, binding.user_id).await?;
    Ok(Json(LoginOut {
        token,
        user_id: binding.user_id,
    }))
}

/// Asks for an SMS login code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SmsSendIn {
    /// Mobile number: mainland China 11 digits (optionally `+86`), or E.164.
    #[schema(value_type = String, required = true, example = "13812345678")]
    pub phone: Option<String>,
}

/// A code is on its way.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmsSendOut {
    /// Always true. The answer does not say whether the number has an
    /// account.
    pub sent: bool,
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Seconds before another code may be asked for this number.
    pub resend_after: u64,
}

/// Sends a 6-digit login code by SMS (in embedded mode, to the server
/// log). Limited per number (1 a minute, 10 a day by default) and per
/// client IP. A new code replaces the previous one.
#[utoipa::path(post, path = "/api/user/sms/send/", tag = "user",
    request_body = SmsSendIn,
    responses(
        (status = 200, body = SmsSendOut),
        (status = 400, description = "missing or malformed phone, or refused by the SMS provider", body = ErrorBody),
        (status = 429, description = "rate limited (ours or the SMS provider's)", body = ErrorBody),
        (status = 502, description = "the SMS provider failed", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn sms_send(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<SmsSendIn>,
) -> ApiResult<Json<SmsSendOut>> {
    let limits = &state.config.limits;
    ratelimit::check_ip(&state, "sms_send_ip", &ip, limits.sms_send_per_ip).await?;
    let phone = PhoneNumber::parse(body.phone.as_deref().unwrap_or(""))?;
    ratelimit::check(
        &state,
        "sms_send_phone",
        phone.as_str(),
        limits.sms_send_per_phone,
    )
    .await?;
    ratelimit::check(
        &state,
        "sms_send_phone_daily",
        phone.as_str(),
        limits.sms_send_per_phone_daily,
    )
    .await?;
    let sent = state.sms.send(&phone).await?;
    Ok(Json(SmsSendOut {
        sent: true,
        expires_in: sent.expires_in,
        resend_after: if limits.sms_send_per_phone.enabled() {
            limits.sms_send_per_phone.window_secs
        } else {
            0
        },
    }))
}

/// SMS login request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SmsLoginIn {
    /// The number the code was sent to, in any accepted spelling.
    #[schema(value_type = String, required = true, example = "13812345678")]
    pub phone: Option<String>,
    /// The 6-digit code from the SMS.
    #[schema(value_type = String, required = true, example = "482913")]
    pub code: Option<String>,
}

/// A login token for an account that may have just been created.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountLoginOut {
    /// Bearer token, valid 30 days.
    pub token: String,
    /// The user the token acts as.
    pub user_id: i64,
    /// Whether this login created the account.
    pub created: bool,
}

fn refuse_inactive(user: &User) -> Result<(), ApiError> {
    if user.is_active {
        Ok(())
    } else {
        Err(lty_core::Error::Forbidden {
            message: "this account is disabled",
        }
        .into())
    }
}

/// Logs in with a phone number and the code sent to it, creating the
/// account on first login. A code works once; after 5 wrong codes it is
/// locked and a new one must be sent.
#[utoipa::path(post, path = "/api/user/sms-login/", tag = "user",
    request_body = SmsLoginIn,
    responses(
        (status = 200, body = AccountLoginOut),
        (status = 400, description = "malformed input (`validation_error`), wrong code (`sms_code_invalid`, details.attempts_left) or no valid code (`sms_code_expired`)", body = ErrorBody),
        (status = 403, description = "the account is disabled", body = ErrorBody),
        (status = 429, description = "`sms_code_locked` after too many wrong codes, or `rate_limited`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn sms_login(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<SmsLoginIn>,
) -> ApiResult<Json<AccountLoginOut>> {
    let limits = &state.config.limits;
    ratelimit::check_ip(&state, "sms_login_ip", &ip, limits.sms_login_per_ip).await?;
    let phone = PhoneNumber::parse(body.phone.as_deref().unwrap_or(""))?;
    let code = body.code.as_deref().map(str::trim).unwrap_or("");
    if code.is_empty() {
        return Err(lty_core::Error::validation("code", "is required").into());
    }
    state.sms.verify(&phone, code).await?;
    let new = NewUser {
        username: generated_username("u_"),
        nickname: None,
        phone: Some(phone.as_str().to_owned()),
    };
    let (user, created) = state.db.find_or_create_phone_user(&phone, new).await?;
    refuse_inactive(&user)?;
    let token = state.tokens.issue(TokenKind::User, user.id).await?;
    if created {
        tracing::info!(user_id = user.id, "account created by SMS login");
    }
    Ok(Json(AccountLoginOut {
        token,
        user_id: user.id,
        created,
    }))
}

/// A WeChat authorization code.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WechatCodeIn {
    /// The `code` the WeChat SDK or OAuth redirect gave the app, or
    /// `wx.login()` gave the mini program; single-use.
    #[schema(value_type = String, required = true, min_length = 1)]
    pub code: Option<String>,
}

/// Logs in with a WeChat authorization code: the user of that WeChat
/// identity (by unionid across apps, else openid), created on first login.
#[utoipa::path(post, path = "/api/user/wechat-login/", tag = "user",
    request_body = WechatCodeIn,
    responses(
        (status = 200, body = AccountLoginOut),
        (status = 400, description = "missing code, or `invalid_wechat_code` (wrong, used or expired)", body = ErrorBody),
        (status = 403, description = "the account is disabled, or WeChat blocked the user", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, description = "WeChat failed", body = ErrorBody),
        (status = 503, description = "WeChat login is not configured", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn wechat_login(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<WechatCodeIn>,
) -> ApiResult<Json<AccountLoginOut>> {
    let identity =
        wechat::identity_of_code(&state, &ip, body.code.as_deref(), wechat::App::Open).await?;
    login_as_wechat_identity(&state, &identity).await
}

/// Logs in from the WeChat mini program with a `wx.login()` code: the user
/// of that identity (by unionid across apps when the mini program is bound
/// to the Open Platform account, else by the mini program's openid),
/// created on first login. Same answer as `/api/user/wechat-login/`.
#[utoipa::path(post, path = "/api/user/wechat-mini-login/", tag = "user",
    request_body = WechatCodeIn,
    responses(
        (status = 200, body = AccountLoginOut),
        (status = 400, description = "missing code, or `invalid_wechat_code` (wrong, used or expired)", body = ErrorBody),
        (status = 403, description = "the account is disabled, or WeChat blocked the user", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, description = "WeChat failed", body = ErrorBody),
        (status = 503, description = "mini-program login is not configured", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn wechat_mini_login(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<WechatCodeIn>,
) -> ApiResult<Json<AccountLoginOut>> {
    let identity =
        wechat::identity_of_code(&state, &ip, body.code.as_deref(), wechat::App::Mini).await?;
    login_as_wechat_identity(&state, &identity).await
}

// The user of `identity`, created on first login, and a new token for it.
async fn login_as_wechat_identity(
    state: &AppState,
    identity: &WechatIdentity,
) -> ApiResult<Json<AccountLoginOut>> {
    let new = NewUser {
        username: generated_username("wx_"),
        nickname: identity.nickname.clone(),
        phone: None,
    };
    let (user, created) = state.db.find_or_create_wechat_user(identity, new).await?;
    refuse_inactive(&user)?;
    let token = state.tokens.issue(TokenKind::User, user.id).await?;
    if created {
        tracing::info!(user_id = user.id, "account created by WeChat login");
    }
    Ok(Json(AccountLoginOut {
        token,
        user_id: user.id,
        created,
    }))
}

/// The result of linking WeChat to an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct WechatBindOut {
    /// Always true: the WeChat identity now logs in as this user.
    pub wechat_linked: bool,
    /// True when it already was before this call.
    pub already_linked: bool,
}

/// Links a WeChat identity to the caller's account (e.g. a phone user), so
/// either way of logging in reaches the same account.
#[utoipa::path(post, path = "/api/user/wechat-bind/", tag = "user",
    security(("bearer" = [])),
    request_body = WechatCodeIn,
    responses(
        (status = 200, body = WechatBindOut),
        (status = 400, description = "missing code, or `invalid_wechat_code`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`wechat_already_linked` to another user, or `wechat_link_conflict`: another WeChat account is linked to this user", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user.id))]
pub async fn wechat_bind(
    State(state): State<AppState>,
    ip: ClientIp,
    auth: AuthUser,
    Json(body): Json<WechatCodeIn>,
) -> ApiResult<Json<WechatBindOut>> {
    let identity =
        wechat::identity_of_code(&state, &ip, body.code.as_deref(), wechat::App::Open).await?;
    link_wechat_identity(&state, auth.user.id, &identity).await
}

/// Links the mini-program identity of a `wx.login()` code to the caller's
/// account, so mini-program login reaches it too.
#[utoipa::path(post, path = "/api/user/wechat-mini-bind/", tag = "user",
    security(("bearer" = [])),
    request_body = WechatCodeIn,
    responses(
        (status = 200, body = WechatBindOut),
        (status = 400, description = "missing code, or `invalid_wechat_code`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`wechat_already_linked` to another user, or `wechat_link_conflict`: another mini-program identity is linked to this user", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user_id = auth.user.id))]
pub async fn wechat_mini_bind(
    State(state): State<AppState>,
    ip: ClientIp,
    auth: AuthUser,
    Json(body): Json<WechatCodeIn>,
) -> ApiResult<Json<WechatBindOut>> {
    let identity =
        wechat::identity_of_code(&state, &ip, body.code.as_deref(), wechat::App::Mini).await?;
    link_wechat_identity(&state, auth.user.id, &identity).await
}

async fn link_wechat_identity(
    state: &AppState,
    user_id: i64,
    identity: &WechatIdentity,
) -> ApiResult<Json<WechatBindOut>> {
    let link = state.db.link_wechat(user_id, identity).await?;
    Ok(Json(WechatBindOut {
        wechat_linked: true,
        already_linked: link == lty_core::account::WechatLink::AlreadyLinked,
    }))
}

/// A user's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    pub id: i64,
    pub username: String,
    /// When the account was created (ISO-8601).
    pub date_joined: DateTime<Utc>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// The phone number, masked (`138****5678`).
    pub phone: Option<String>,
    /// Whether a WeChat account is linked (WeChat login reaches this user).
    pub wechat_linked: bool,
}

impl ProfileOut {
    fn new(u: User, wechat_linked: bool) -> Self {
        Self {
            id: u.id,
            username: u.username,
            date_joined: u.date_joined,
            nickname: u.nickname,
            avatar_url: u.avatar_url,
            phone: u.phone.as_deref().map(mask_phone),
            wechat_linked,
        }
    }
}

async fn load_profile(state: &AppState, user_id: i64) -> Result<ProfileOut, ApiError> {
    let (user, linked) = state
        .db
        .user_with_links(user_id)
        .await?
        .ok_or_else(lty_core::token::invalid_token)?;
    refuse_inactive(&user)?;
    Ok(ProfileOut::new(user, linked))
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/user/profile/", tag = "user",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProfileOut),
        (status = 401, body = ErrorBody),
        (status = 403, description = "the account is disabled", body = ErrorBody),
    ))]
pub async fn profile(
    State(state): State<AppState>,
    auth: AuthUserId,
) -> ApiResult<Json<ProfileOut>> {
    // One query for the user and its WeChat link: this is a hot path.
    Ok(Json(load_profile(&state, auth.user_id).await?))
}

/// Profile changes; absent fields stay as they are, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatchIn {
    /// 1–64 characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub nickname: Option<Option<String>>,
    /// An http(s) URL of at most 1024 characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn validate_patch(body: ProfilePatchIn) -> Result<ProfilePatch, lty_core::Error> {
    let nickname = match body.nickname {
        Some(Some(n)) => {
            let n = n.trim().to_owned();
            let len = n.chars().count();
            if !(1..=64).contains(&len) || n.chars().any(char::is_control) {
                return Err(lty_core::Error::validation(
                    "nickname",
                    "must be 1 to 64 printable characters",
                ));
            }
            Some(Some(n))
        }
        other => other,
    };
    let avatar_url = match body.avatar_url {
        Some(Some(u)) => {
            let ok = u.len() <= 1024
                && url::Url::parse(&u)
                    .map(|p| matches!(p.scheme(), "http" | "https") && p.has_host())
                    .unwrap_or(false);
            if !ok {
                return Err(lty_core::Error::validation(
                    "avatar_url",
                    "must be an http(s) URL of at most 1024 characters",
                ));
            }
            Some(Some(u))
        }
        other => other,
    };
    Ok(ProfilePatch {
        nickname,
        avatar_url,
    })
}

/// Changes the caller's nickname or avatar.
#[utoipa::path(patch, path = "/api/user/profile/", tag = "user",
    security(("bearer" = [])),
    request_body = ProfilePatchIn,
    responses(
        (status = 200, body = ProfileOut),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<ProfilePatchIn>,
) -> ApiResult<Json<ProfileOut>> {
    let patch = validate_patch(body)?;
    state
        .db
        .update_profile(auth.user.id, patch)
        .await?
        .ok_or_else(|| ApiError::from(lty_core::token::invalid_token()))?;
    Ok(Json(load_profile(&state, auth.user.id).await?))
}

/// Logout answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutOut {
    /// Always true: the token no longer works.
    pub logged_out: bool,
}

/// Deletes the caller's token and closes the device sockets it opened
/// (close code 4002), on every instance.
#[utoipa::path(post, path = "/api/user/logout/", tag = "user",
    security(("bearer" = [])),
    responses(
        (status = 200, body = LogoutOut),
        (status = 401, body = ErrorBody),
    ))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<LogoutOut>> {
    crate::app::auth::logout(&state, auth.user.id, &auth.token).await?;
    Ok(Json(LogoutOut { logged_out: true }))
}
