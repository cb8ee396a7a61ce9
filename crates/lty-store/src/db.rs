//! The relational database: connecting (SQLite file or PostgreSQL), running
//! migrations, and the repositories of `lty-core` implemented with SeaORM.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lty_core::chat::Page;
use lty_core::user::{DeviceBinding, NewUser, ProfilePatch, User};
use lty_core::{BackendError, Error, MacAddress, Result};
use sea_orm::sqlx::pool::PoolConnectionMetadata;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
    SqlErr, SqlxPostgresConnector, SqlxSqliteConnector, Statement,
};
use sea_orm_migration::MigratorTrait;

use crate::entity::{user, user_device};
use crate::hot::HotReads;
use crate::memo::{MEMO_TTL, Memos};
use crate::migration::Migrator;

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections held open (PostgreSQL; SQLite uses a small fixed pool).
    /// On PostgreSQL half of them (when there are two or more) serve the
    /// device hot-path reads (`hot.rs`), the rest everything else.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// A pooled connection idle for longer than this is checked with a
    /// round trip before it is handed out (a database or pooler restarted
    /// meanwhile would have closed it); one used more recently is handed
    /// out as it is. The pool already checks every connection when it comes
    /// back, so a busy pool saves a round trip per query.
    pub check_idle_after: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            check_idle_after: Duration::from_secs(10),
        }
    }
}

/// A connection pool to lty's database, with the repositories on top.
#[derive(Debug, Clone)]
pub struct Database {
    conn: DatabaseConnection,
    kind: DatabaseKind,
    memos: Arc<Memos>,
    /// PostgreSQL's hot-path connections; `None` on SQLite, and with one
    /// connection in all.
    hot: Option<HotReads>,
}

/// The pool's check before handing out a connection: a round trip when it
/// has been idle for longer than `after`; `false` (closed and replaced by
/// the pool) when that fails.
async fn check_if_idle<C: sea_orm::sqlx::Connection>(
    conn: &mut C,
    meta: PoolConnectionMetadata,
    after: Duration,
) -> std::result::Result<bool, sea_orm::sqlx::Error> {
    Ok(meta.idle_for <= after || conn.ping().await.is_ok())
}

/// A database failure as the store's error (`backend_error`, "database").
pub(crate) fn db_err(err: impl std::fmt::Display) -> Error {
    Error::Backend(BackendError::new("database", err))
}

impl Database {
    /// Connects to `url`: `sqlite://path` (the file is created when missing,
    /// in WAL mode) or `postgres://...`.
    pub async fn connect(url: &str, opts: &PoolOptions) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(db_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(db_err)?;
            }
            let idle = opts.check_idle_after;
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.clamp(1, 8))
                .acquire_timeout(opts.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(move |conn, meta| Box::pin(check_if_idle(conn, meta, idle)))
                .connect_with(options)
                .await
                .map_err(db_err)?;
            Ok(Self {
                conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
                kind: DatabaseKind::Sqlite,
                memos: Arc::new(Memos::new(MEMO_TTL)),
                hot: None,
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(db_err)?;
            let idle = opts.check_idle_after;
            let total = opts.max_connections.max(1);
            let hot_size = total / 2;
            let hot = (hot_size > 0)
                .then(|| {
                    HotReads::new(
                        options.clone(),
                        hot_size as usize,
                        opts.acquire_timeout,
                        idle,
                    )
                })
                .transpose()?;
            let pool = PgPoolOptions::new()
                .max_connections(total - hot_size)
                .acquire_timeout(opts.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(move |conn, meta| Box::pin(check_if_idle(conn, meta, idle)))
                .connect_with(options)
                .await
                .map_err(db_err)?;
            Ok(Self {
                conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
                kind: DatabaseKind::Postgres,
                memos: Arc::new(Memos::new(MEMO_TTL)),
                hot,
            })
        } else {
            Err(Error::validation(
                "database_url",
                "must start with sqlite: or postgres:",
            ))
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await.map_err(db_err)
    }

    /// Names of the applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>> {
        let applied = Migrator::get_applied_migrations(&self.conn)
            .await
            .map_err(db_err)?;
        Ok(applied.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        self.conn.ping().await.map_err(db_err)
    }

    /// Writes a consistent copy of a SQLite database to `out` while it is
    /// in use (`VACUUM INTO`: one read transaction, so concurrent writers
    /// neither block nor tear the copy). `out` must not exist. PostgreSQL
    /// is backed up with `pg_dump` instead: an error here.
    pub async fn backup_sqlite(&self, out: &std::path::Path) -> Result<()> {
        use sea_orm::ConnectionTrait;
        if self.kind != DatabaseKind::Sqlite {
            return Err(Error::Backend(BackendError::new(
                "database",
                "lty backup copies the embedded SQLite database; back PostgreSQL up with pg_dump",
            )));
        }
        if out.exists() {
            return Err(Error::Backend(BackendError::new(
                "database",
                format!("{} exists; choose a new file", out.display()),
            )));
        }
        let path = out.to_str().ok_or_else(|| {
            Error::Backend(BackendError::new(
                "database",
                "the backup path is not UTF-8",
            ))
        })?;
        // A string literal: single quotes doubled.
        let sql = format!("VACUUM INTO '{}'", path.replace('\'', "''"));
        self.conn.execute_unprepared(&sql).await.map_err(db_err)?;
        Ok(())
    }

    /// The engine behind this pool.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The SeaORM connection, for repositories in this crate.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The memoized catalog reads (default persona, plans by code).
    pub(crate) fn memos(&self) -> &Memos {
        &self.memos
    }

    /// Forgets the memoized catalog reads (personas, plans): a writer of
    /// those tables calls it so that its change is seen at once.
    pub fn forget_catalog(&self) {
        self.memos.default_persona.clear();
        self.memos.plan_by_code.clear();
        self.memos.plan_by_id.clear();
    }

    /// Forgets the memoized subscription periods: every writer of
    /// `user_subscriptions` calls it.
    pub fn forget_subscriptions(&self) {
        self.memos.subscriptions.clear();
    }

    /// One page of `query`: how many rows it matches, and the rows of
    /// `order(query)` from `offset`, at most `limit`, mapped by `map`.
    pub(crate) async fn fetch_page<E, T>(
        &self,
        query: Select<E>,
        order: impl FnOnce(Select<E>) -> Select<E>,
        map: impl FnMut(E::Model) -> T,
        offset: u64,
        limit: u64,
    ) -> Result<Page<T>>
    where
        E: EntityTrait,
        E::Model: Sync,
    {
        let total = query.clone().count(self.conn()).await.map_err(db_err)?;
        let items = order(query)
            .offset(offset)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(map)
            .collect();
        Ok(Page { items, total })
    }

    /// The first row of `stmt` as a `T`, if any: a read on a device hot
    /// path, so on PostgreSQL on the hot-path connections (`hot.rs`).
    pub(crate) async fn hot_one<T: FromQueryResult>(&self, stmt: Statement) -> Result<Option<T>> {
        match &self.hot {
            Some(hot) => hot.one(stmt).await,
            None => T::find_by_statement(stmt)
                .one(&self.conn)
                .await
                .map_err(db_err),
        }
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        if let Some(hot) = &self.hot {
            hot.close();
        }
        let _ = self.conn.close().await;
    }
}

/// Maps a database error, turning unique-constraint violations into a
/// `Conflict` with the given code and message.
pub(crate) fn map_unique(err: DbErr, code: &'static str, message: &str) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::Conflict {
            code,
            message: message.to_owned(),
        },
        _ => db_err(err),
    }
}

impl Database {
    /// The user with `id`.
    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        // Every request of a login token reads its user: a hot path.
        let stmt = user::Entity::find_by_id(id).build(self.conn.get_database_backend());
        let model = self.hot_one::<user::Model>(stmt).await?;
        Ok(model.map(User::from))
    }

    /// Creates a user; a taken username or phone is a `Conflict`.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let now = Utc::now();
        let model = user::ActiveModel {
            username: Set(new.username),
            nickname: Set(new.nickname),
            avatar_url: Set(None),
            phone: Set(new.phone),
            is_active: Set(true),
            date_joined: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&self.conn)
        .await
        .map_err(|e| map_unique(e, "user_exists", "username or phone already taken"))?;
        Ok(model.into())
    }

    /// Applies `patch` to user `id`; `None` when there is no such user.
    pub async fn update_profile(&self, id: i64, patch: ProfilePatch) -> Result<Option<User>> {
        let Some(model) = user::Entity::find_by_id(id)
            .one(&self.conn)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut active: user::ActiveModel = model.into();
        if let Some(nickname) = patch.nickname {
            active.nickname = Set(nickname);
        }
        if let Some(avatar_url) = patch.avatar_url {
            active.avatar_url = Set(avatar_url);
        }
        active.updated_at = Set(Utc::now());
        let model = active.update(&self.conn).await.map_err(db_err)?;
        Ok(Some(model.into()))
    }
}

pub(crate) fn binding_from(m: user_device::Model) -> Result<DeviceBinding> {
    Ok(DeviceBinding {
        id: m.id,
        user_id: m.user_id,
        mac_address: MacAddress::parse(&m.mac_address)?,
        name: m.name,
        bound_at: m.bound_at,
        unbound_at: m.unbound_at,
    })
}

impl Database {
    /// The binding in force for `mac`: the one with the latest `bound_at`,
    /// unless it was unbound.
    pub async fn latest_binding(&self, mac: &MacAddress) -> Result<Option<DeviceBinding>> {
        user_device::Entity::find()
            .filter(user_device::Column::MacAddress.eq(mac.to_string()))
            .order_by_desc(user_device::Column::BoundAt)
            .order_by_desc(user_device::Column::Id)
            .one(&self.conn)
            .await
            .map_err(db_err)?
            .filter(|m| m.unbound_at.is_none())
            .map(binding_from)
            .transpose()
    }

    /// Records a new binding of `mac` to `user_id`, now.
    pub async fn bind(
        &self,
        user_id: i64,
        mac: &MacAddress,
        name: Option<&str>,
    ) -> Result<DeviceBinding> {
        let model = user_device::ActiveModel {
            user_id: Set(user_id),
            mac_address: Set(mac.to_string()),
            name: Set(name.map(str::to_owned)),
            bound_at: Set(Utc::now()),
            unbound_at: Set(None),
            ..Default::default()
        }
        .insert(&self.conn)
        .await
        .map_err(db_err)?;
        binding_from(model)
    }

    /// Ends binding `id`; `false` when it was already ended or is unknown.
    pub async fn unbind(&self, id: i64) -> Result<bool> {
        let res = user_device::Entity::update_many()
            .col_expr(
                user_device::Column::UnboundAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(user_device::Column::Id.eq(id))
            .filter(user_device::Column::UnboundAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected > 0)
    }

    /// The bindings in force of `user_id`, oldest first.
    pub async fn bindings_of_user(&self, user_id: i64) -> Result<Vec<DeviceBinding>> {
        let rows = user_device::Entity::find()
            .filter(user_device::Column::UserId.eq(user_id))
            .filter(user_device::Column::UnboundAt.is_null())
            .order_by_asc(user_device::Column::BoundAt)
            .all(&self.conn)
            .await
            .map_err(db_err)?;
        // A family has a handful of devices: checking each MAC's binding in
        // force is cheaper than a correlated subquery on both engines.
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let binding = binding_from(row)?;
            if self
                .latest_binding(&binding.mac_address)
                .await?
                .is_some_and(|b| b.id == binding.id)
            {
                out.push(binding);
            }
        }
        Ok(out)
    }

    /// Renames binding `id`.
    pub async fn rename_device(
        &self,
        id: i64,
        name: Option<&str>,
    ) -> Result<Option<DeviceBinding>> {
        let Some(model) = user_device::Entity::find_by_id(id)
            .one(&self.conn)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut active: user_device::ActiveModel = model.into();
        active.name = Set(name.map(str::to_owned));
        let model = active.update(&self.conn).await.map_err(db_err)?;
        binding_from(model).map(Some)
    }

    /// Every binding ever made of `mac`, newest first (history).
    pub async fn binding_history(&self, mac: &MacAddress) -> Result<Vec<DeviceBinding>> {
        user_device::Entity::find()
            .filter(user_device::Column::MacAddress.eq(mac.to_string()))
            .order_by_desc(user_device::Column::BoundAt)
            .order_by_desc(user_device::Column::Id)
            .all(&self.conn)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(binding_from)
            .collect()
    }
}
