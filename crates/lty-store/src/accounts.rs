//! [`AccountRepo`] on the database: users by phone and WeChat identity
//! (`social_accounts`), with the uniqueness constraints doing the
//! exactly-once work under concurrency.

use chrono::Utc;
use lty_core::account::{WECHAT_PROVIDER, WechatIdentity, WechatLink};
use lty_core::user::{NewUser, User};
use lty_core::{Error, PhoneNumber, Result};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr,
    EntityTrait, FromQueryResult, QueryFilter, QuerySelect, QueryTrait, SqlErr,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::Database;
use crate::db::db_err;
use crate::entity::{social_account, user};

fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

// SQLite refuses a transaction's upgrade to a writer when another writer got
// there first; like a unique violation, that is a lost race worth retrying.
fn is_retryable(err: &DbErr) -> bool {
    if is_unique_violation(err) {
        return true;
    }
    let text = err.to_string();
    text.contains("database is locked") || text.contains("SQLITE_BUSY")
}

/// A lost race inside one attempt: retry from the start.
enum Attempt<T> {
    Done(T),
    Retry,
}

const ATTEMPTS: usize = 3;

async fn insert_user<C: ConnectionTrait>(conn: &C, new: NewUser) -> Result<user::Model, DbErr> {
    let now = Utc::now();
    user::ActiveModel {
        username: Set(new.username),
        nickname: Set(new.nickname),
        avatar_url: Set(None),
        phone: Set(new.phone),
        is_active: Set(true),
        date_joined: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

fn identity_model(user_id: i64, id: &WechatIdentity) -> social_account::ActiveModel {
    let now = Utc::now();
    social_account::ActiveModel {
        user_id: Set(user_id),
        provider: Set(WECHAT_PROVIDER.to_owned()),
        app_id: Set(id.app_id.clone()),
        openid: Set(id.openid.clone()),
        unionid: Set(id.unionid.clone()),
        nickname: Set(id.nickname.clone()),
        avatar_url: Set(id.avatar_url.clone()),
        raw_profile: Set(id.raw_profile.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

async fn find_identity<C: ConnectionTrait>(
    conn: &C,
    app_id: &str,
    openid: &str,
) -> Result<Option<social_account::Model>> {
    social_account::Entity::find()
        .filter(social_account::Column::Provider.eq(WECHAT_PROVIDER))
        .filter(social_account::Column::AppId.eq(app_id))
        .filter(social_account::Column::Openid.eq(openid))
        .one(conn)
        .await
        .map_err(db_err)
}

async fn user_of_unionid<C: ConnectionTrait>(conn: &C, unionid: &str) -> Result<Option<i64>> {
    social_account::Entity::find()
        .select_only()
        .column(social_account::Column::UserId)
        .filter(social_account::Column::Provider.eq(WECHAT_PROVIDER))
        .filter(social_account::Column::Unionid.eq(unionid))
        .into_tuple::<i64>()
        .one(conn)
        .await
        .map_err(db_err)
}

// Refreshes the stored profile copy and backfills a unionid learned later.
async fn refresh_identity<C: ConnectionTrait>(
    conn: &C,
    row: social_account::Model,
    id: &WechatIdentity,
) -> Result<()> {
    let mut active: social_account::ActiveModel = row.clone().into();
    let mut changed = false;
    if row.unionid.is_none() && id.unionid.is_some() {
        active.unionid = Set(id.unionid.clone());
        changed = true;
    }
    if id.raw_profile.is_some() && id.raw_profile != row.raw_profile {
        active.nickname = Set(id.nickname.clone());
        active.avatar_url = Set(id.avatar_url.clone());
        active.raw_profile = Set(id.raw_profile.clone());
        changed = true;
    }
    if changed {
        active.updated_at = Set(Utc::now());
        active.update(conn).await.map_err(db_err)?;
    }
    Ok(())
}

async fn get_user<C: ConnectionTrait>(conn: &C, id: i64) -> Result<User> {
    user::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_err)?
        .map(User::from)
        .ok_or_else(|| db_err(format!("social account points at missing user {id}")))
}

impl Database {
    async fn wechat_attempt(
        &self,
        identity: &WechatIdentity,
        new: &NewUser,
    ) -> Result<Attempt<(User, bool)>> {
        // On SQLite the transaction takes the write lock up front, so a
        // concurrent login waits for it (busy timeout) and then sees the
        // winner's rows, instead of failing its upgrade from reader to
        // writer at once. PostgreSQL ignores the mode; its races end in a
        // unique violation and a retry.
        let txn = self
            .conn()
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .map_err(db_err)?;
        // Identities of one person in two apps (the app and the mini
        // program) share a unionid but no unique key: on PostgreSQL their
        // first logins take a transaction lock on the unionid, so the
        // second waits and then finds the first one's user.
        if let Some(unionid) = &identity.unionid
            && txn.get_database_backend() == DbBackend::Postgres
        {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("lty:wechat-unionid:{unionid}").into()],
            ))
            .await
            .map_err(db_err)?;
        }
        if let Some(row) = find_identity(&txn, &identity.app_id, &identity.openid).await? {
            let user_id = row.user_id;
            refresh_identity(&txn, row, identity).await?;
            let user = get_user(&txn, user_id).await?;
            txn.commit().await.map_err(db_err)?;
            return Ok(Attempt::Done((user, false)));
        }
        let existing = match &identity.unionid {
            Some(unionid) => user_of_unionid(&txn, unionid).await?,
            None => None,
        };
        let (user_id, created) = match existing {
            Some(id) => (id, false),
            None => match insert_user(&txn, new.clone()).await {
                Ok(model) => (model.id, true),
                Err(e) if is_retryable(&e) => return Ok(Attempt::Retry),
                Err(e) => return Err(db_err(e)),
            },
        };
        match identity_model(user_id, identity).insert(&txn).await {
            Ok(_) => {}
            Err(e) if is_retryable(&e) => return Ok(Attempt::Retry),
            Err(e) => return Err(db_err(e)),
        }
        let user = get_user(&txn, user_id).await?;
        match txn.commit().await {
            Ok(()) => Ok(Attempt::Done((user, created))),
            Err(e) if is_retryable(&e) => Ok(Attempt::Retry),
            Err(e) => Err(db_err(e)),
        }
    }
}

/// `users` columns plus whether a WeChat identity is linked.
#[derive(Debug, FromQueryResult)]
struct UserWithLinks {
    id: i64,
    username: String,
    nickname: Option<String>,
    avatar_url: Option<String>,
    phone: Option<String>,
    is_active: bool,
    date_joined: chrono::DateTime<Utc>,
    wechat_linked: bool,
}

impl Database {
    /// The user whose phone is `phone`.
    pub async fn user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>> {
        Ok(user::Entity::find()
            .filter(user::Column::Phone.eq(phone.as_str()))
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(User::from))
    }

    /// The user whose phone is `phone`, created from `new` when there is
    /// none; `true` when it was created. Two concurrent calls for one phone
    /// give the same user.
    pub async fn find_or_create_phone_user(
        &self,
        phone: &PhoneNumber,
        new: NewUser,
    ) -> Result<(User, bool)> {
        if let Some(user) = self.user_by_phone(phone).await? {
            return Ok((user, false));
        }
        let new = NewUser {
            phone: Some(phone.as_str().to_owned()),
            ..new
        };
        match insert_user(self.conn(), new).await {
            Ok(model) => Ok((model.into(), true)),
            // Someone else created the account between our read and write.
            Err(e) if is_unique_violation(&e) => self
                .user_by_phone(phone)
                .await?
                .map(|u| (u, false))
                .ok_or_else(|| db_err(e)),
            Err(e) => Err(db_err(e)),
        }
    }

    /// The user of a WeChat identity: by (AppID, openid), else by unionid
    /// (then the new identity is linked to that user), else a user created
    /// from `new`; `true` when it was created. Two concurrent first logins
    /// give one user.
    pub async fn find_or_create_wechat_user(
        &self,
        identity: &WechatIdentity,
        new: NewUser,
    ) -> Result<(User, bool)> {
        for _ in 0..ATTEMPTS {
            if let Attempt::Done(found) = self.wechat_attempt(identity, &new).await? {
                return Ok(found);
            }
        }
        Err(db_err("WeChat login lost the same race repeatedly"))
    }

    /// Links `identity` to `user_id`. A `Conflict` with code
    /// `wechat_already_linked` when the identity or its unionid belongs to
    /// another user, `wechat_link_conflict` when the user already has a
    /// different identity in the same app.
    pub async fn link_wechat(&self, user_id: i64, identity: &WechatIdentity) -> Result<WechatLink> {
        let taken = || Error::Conflict {
            code: "wechat_already_linked",
            message: "this WeChat account is linked to another user".into(),
        };
        let conn = self.conn();
        if let Some(row) = find_identity(conn, &identity.app_id, &identity.openid).await? {
            if row.user_id != user_id {
                return Err(taken());
            }
            refresh_identity(conn, row, identity).await?;
            return Ok(WechatLink::AlreadyLinked);
        }
        if let Some(unionid) = &identity.unionid
            && let Some(owner) = user_of_unionid(conn, unionid).await?
            && owner != user_id
        {
            return Err(taken());
        }
        let other = social_account::Entity::find()
            .filter(social_account::Column::Provider.eq(WECHAT_PROVIDER))
            .filter(social_account::Column::AppId.eq(&identity.app_id))
            .filter(social_account::Column::UserId.eq(user_id))
            .one(conn)
            .await
            .map_err(db_err)?;
        if other.is_some() {
            return Err(Error::Conflict {
                code: "wechat_link_conflict",
                message: "another WeChat account is already linked to this user".into(),
            });
        }
        match identity_model(user_id, identity).insert(conn).await {
            Ok(_) => Ok(WechatLink::Linked),
            Err(e) if is_unique_violation(&e) => Err(taken()),
            Err(e) => Err(db_err(e)),
        }
    }

    /// User `id` and whether a WeChat identity is linked to it, in one query.
    pub async fn user_with_links(&self, id: i64) -> Result<Option<(User, bool)>> {
        let linked = Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(social_account::Entity)
                .and_where(
                    Expr::col((social_account::Entity, social_account::Column::UserId))
                        .equals((user::Entity, user::Column::Id)),
                )
                .to_owned(),
        );
        let stmt = user::Entity::find_by_id(id)
            .select_only()
            .columns([
                user::Column::Id,
                user::Column::Username,
                user::Column::Nickname,
                user::Column::AvatarUrl,
                user::Column::Phone,
                user::Column::IsActive,
                user::Column::DateJoined,
            ])
            .column_as(linked, "wechat_linked")
            .build(self.conn().get_database_backend());
        // Every profile read: a hot path.
        let row = self.hot_one::<UserWithLinks>(stmt).await?;
        Ok(row.map(|r| {
            (
                User {
                    id: r.id,
                    username: r.username,
                    nickname: r.nickname,
                    avatar_url: r.avatar_url,
                    phone: r.phone,
                    is_active: r.is_active,
                    date_joined: r.date_joined,
                },
                r.wechat_linked,
            )
        }))
    }
}
