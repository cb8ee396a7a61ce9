//! Ways into a family account other than a device MAC: phone numbers (SMS
//! login) and WeChat identities, and the repository that finds or creates
//! users by them.

use rand::RngCore;

/// The `social_accounts.provider` value of WeChat identities.
pub const WECHAT_PROVIDER: &str = "wechat";

/// One WeChat login identity: an `openid` within one AppID, and the
/// `unionid` shared by every app of the same Open Platform account, when
/// WeChat disclosed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatIdentity {
    /// The AppID the `openid` belongs to.
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
    /// Profile copy from `/sns/userinfo`, when it was fetched.
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// The `userinfo` answer as received (JSON text), kept as the legacy
    /// system did.
    pub raw_profile: Option<String>,
}

/// What linking a WeChat identity to a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WechatLink {
    /// The identity is now linked to the user.
    Linked,
    /// It already was.
    AlreadyLinked,
}

/// A fresh username for an account created by SMS or WeChat login:
/// `prefix` and 12 random hex digits (`u_3f9a0c1d2e4b`). Phone numbers
/// never appear in usernames.
pub fn generated_username(prefix: &str) -> String {
    let mut raw = [0u8; 6];
    rand::rng().fill_bytes(&mut raw);
    format!("{prefix}{}", hex::encode(raw))
}
