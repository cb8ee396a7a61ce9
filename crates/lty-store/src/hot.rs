//! PostgreSQL connections of their own for the reads on the device hot
//! paths (a login's binding, a token's user): one round trip per query.
//!
//! SeaORM's pool (sqlx's) checks every connection with a round trip when
//! it comes back, in a task spawned for it, whatever the connection just
//! did; sqlx has no setting for it. On a request that makes one query
//! that is a second round trip and a task, about a sixth of a hot-path
//! request's CPU (docs/scaling.md). These connections come back as they
//! are: sqlx finishes whatever a dropped query left unread before the
//! connection's next statement, so a request cancelled mid-query costs
//! nothing. A connection idle for longer than `check_idle_after` is
//! checked before it is handed out, one that failed is closed, one older
//! than [`MAX_LIFETIME`] is replaced.

use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use lty_core::Result;
use sea_orm::sea_query::Values;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, AssertSqlSafe, Connection};
use sea_orm::{FromQueryResult, QueryResult, Statement};
use sea_query_sqlx::SqlxValues;

use crate::db::db_err;

/// A connection this old is closed and replaced when it comes up for use
/// (sqlx's pool uses the same figure), so that connections spread again
/// over the servers behind a pooler or a failover address.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Opens and checks the hot-path connections.
#[derive(Debug)]
struct Manager {
    options: PgConnectOptions,
    check_idle_after: Duration,
}

impl managed::Manager for Manager {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> std::result::Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.options).await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.age() > MAX_LIFETIME {
            return Err(RecycleError::message("past its lifetime"));
        }
        if metrics.last_used() > self.check_idle_after {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// The hot-path connections of one [`crate::Database`] on PostgreSQL.
#[derive(Clone)]
pub(crate) struct HotReads {
    pool: managed::Pool<Manager>,
}

impl std::fmt::Debug for HotReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("HotReads")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .finish()
    }
}

impl HotReads {
    /// At most `size` connections, opened when first needed; a query waits
    /// at most `acquire_timeout` for one.
    pub(crate) fn new(
        options: PgConnectOptions,
        size: usize,
        acquire_timeout: Duration,
        check_idle_after: Duration,
    ) -> Result<Self> {
        let pool = managed::Pool::builder(Manager {
            options,
            check_idle_after,
        })
        .max_size(size.max(1))
        // The most recently used connection first: under a light load the
        // others stay idle and are checked before their next use.
        .queue_mode(managed::QueueMode::Lifo)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(acquire_timeout))
        .recycle_timeout(Some(acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(db_err)?;
        Ok(Self { pool })
    }

    /// The first row of `stmt` (a PostgreSQL statement) as a `T`, if any.
    pub(crate) async fn one<T: FromQueryResult>(&self, stmt: Statement) -> Result<Option<T>> {
        let values = stmt.values.unwrap_or(Values(Vec::new()));
        let query = sqlx::query_with(AssertSqlSafe(stmt.sql), SqlxValues(values));
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = match query.fetch_optional(&mut *conn).await {
            Ok(row) => row,
            Err(err) => {
                // These reads fail only when the connection does (a server
                // that closed it sends a FATAL error first): it is not
                // handed out again.
                drop(Object::take(conn));
                return Err(db_err(err));
            }
        };
        drop(conn);
        row.map(|row| T::from_query_result(&QueryResult::from(row), ""))
            .transpose()
            .map_err(db_err)
    }

    /// Closes the idle connections and every one in use as it comes back.
    pub(crate) fn close(&self) {
        self.pool.close();
    }
}
