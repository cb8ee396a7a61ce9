//! [`AdminRepo`] on the database. Attempt counting is one conditional
//! `UPDATE`, so concurrent password guesses cannot slip past the limit.

use chrono::{DateTime, Utc};
use lty_core::Result;
use lty_core::admin::{Admin, AdminRole};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect,
};

use crate::Database;
use crate::db::{db_err, map_unique};
use crate::entity::admin;

fn admin_from(m: admin::Model) -> Result<(Admin, String)> {
    let role: AdminRole = m
        .role
        .parse()
        .map_err(|_| db_err(format!("admin {} has unknown role {:?}", m.id, m.role)))?;
    Ok((
        Admin {
            id: m.id,
            username: m.username,
            role,
            is_active: m.is_active,
            failed_attempts: m.failed_attempts,
            locked_until: m.locked_until,
            last_login_at: m.last_login_at,
            created_at: m.created_at,
        },
        m.password_hash,
    ))
}

impl Database {
    /// Admin `id`.
    pub async fn admin(&self, id: i64) -> Result<Option<Admin>> {
        admin::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(|m| admin_from(m).map(|(a, _)| a))
            .transpose()
    }

    /// The admin named `username`, with its password hash (PHC string).
    pub async fn admin_by_username(&self, username: &str) -> Result<Option<(Admin, String)>> {
        admin::Entity::find()
            .filter(admin::Column::Username.eq(username))
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(admin_from)
            .transpose()
    }

    /// Creates an admin; a taken username is a `Conflict` with code
    /// `admin_exists`.
    pub async fn create_admin(
        &self,
        username: &str,
        password_hash: &str,
        role: AdminRole,
    ) -> Result<Admin> {
        let now = Utc::now();
        let model = admin::ActiveModel {
            username: Set(username.to_owned()),
            password_hash: Set(password_hash.to_owned()),
            role: Set(role.as_str().to_owned()),
            is_active: Set(true),
            failed_attempts: Set(0),
            locked_until: Set(None),
            last_login_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(|e| map_unique(e, "admin_exists", "an admin with this username exists"))?;
        admin_from(model).map(|(a, _)| a)
    }

    /// Number of admins.
    pub async fn count_admins(&self) -> Result<u64> {
        admin::Entity::find()
            .count(self.conn())
            .await
            .map_err(db_err)
    }

    /// Records one login attempt before the password is checked, atomically:
    /// the new failed-attempt count, or `None` when the account is locked at
    /// `now`. Charging first means concurrent guesses cannot exceed the
    /// limit.
    pub async fn charge_admin_attempt(&self, id: i64, now: DateTime<Utc>) -> Result<Option<i32>> {
        let res = admin::Entity::update_many()
            .col_expr(
                admin::Column::FailedAttempts,
                Expr::col(admin::Column::FailedAttempts).add(1),
            )
            .col_expr(admin::Column::UpdatedAt, Expr::value(now))
            .filter(admin::Column::Id.eq(id))
            .filter(
                Condition::any()
                    .add(admin::Column::LockedUntil.is_null())
                    .add(admin::Column::LockedUntil.lte(now)),
            )
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        // Read after the increment: a concurrent increment can only make the
        // count read higher, which errs on the side of locking.
        admin::Entity::find_by_id(id)
            .select_only()
            .column(admin::Column::FailedAttempts)
            .into_tuple::<i32>()
            .one(self.conn())
            .await
            .map_err(db_err)
    }

    /// Locks the account until `until` and resets the attempt count.
    pub async fn lock_admin(&self, id: i64, until: DateTime<Utc>) -> Result<()> {
        admin::Entity::update_many()
            .col_expr(admin::Column::LockedUntil, Expr::value(until))
            .col_expr(admin::Column::FailedAttempts, Expr::value(0))
            .col_expr(admin::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(admin::Column::Id.eq(id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Records a successful login at `now`: attempts reset, lock cleared.
    pub async fn admin_login_succeeded(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        admin::Entity::update_many()
            .col_expr(
                admin::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(admin::Column::FailedAttempts, Expr::value(0))
            .col_expr(admin::Column::LastLoginAt, Expr::value(now))
            .col_expr(admin::Column::UpdatedAt, Expr::value(now))
            .filter(admin::Column::Id.eq(id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
