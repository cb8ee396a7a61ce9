//! Ways into a family account other than a device MAC: phone numbers (SMS
//! login) and WeChat identities, and the repository that finds or creates
//! users by them.

use async_trait::async_trait;
use rand::RngCore;

use crate::Result;
use crate::phone::PhoneNumber;
use crate::user::{NewUser, User};

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

/// Finding and creating users by phone or WeChat identity.
#[async_trait]
pub trait AccountRepo: Send + Sync {
    /// The user whose phone is `phone`.
    async fn user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>>;
    /// The user whose phone is `phone`, created from `new` when there is
    /// none; `true` when it was created. Two concurrent calls for one phone
    /// give the same user.
    async fn find_or_create_phone_user(
        &self,
        phone: &PhoneNumber,
        new: NewUser,
    ) -> Result<(User, bool)>;
    /// The user of a WeChat identity: by (AppID, openid), else by unionid
    /// (then the new identity is linked to that user), else a user created
    /// from `new`; `true` when it was created. Two concurrent first logins
    /// give one user.
    async fn find_or_create_wechat_user(
        &self,
        identity: &WechatIdentity,
        new: NewUser,
    ) -> Result<(User, bool)>;
    /// Links `identity` to `user_id`. A `Conflict` with code
    /// `wechat_already_linked` when the identity or its unionid belongs to
    /// another user, `wechat_link_conflict` when the user already has a
    /// different identity in the same app.
    async fn link_wechat(&self, user_id: i64, identity: &WechatIdentity) -> Result<WechatLink>;
    /// User `id` and whether a WeChat identity is linked to it, in one query.
    async fn user_with_links(&self, id: i64) -> Result<Option<(User, bool)>>;
}

/// A fresh username for an account created by SMS or WeChat login:
/// `prefix` and 12 random hex digits (`u_3f9a0c1d2e4b`). Phone numbers
/// never appear in usernames.
pub fn generated_username(prefix: &str) -> String {
    let mut raw = [0u8; 6];
    rand::rng().fill_bytes(&mut raw);
    format!("{prefix}{}", hex::encode(raw))
}
