//! Achievements on the database. Totals grow with one upsert
//! (`INSERT ... ON CONFLICT DO UPDATE SET total = total + excluded.total`),
//! and an unlock is an insert that the unique (user, achievement) index
//! turns into a no-op the second time, so concurrent events unlock once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lty_core::Result;
use lty_core::achievement::{Achievement, AchievementRule, Unlock, next_streak};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use crate::Database;
use crate::db::{db_err, map_unique};
use crate::entity::{
    achievement_definition as def, achievement_progress as progress, event_day, event_hour,
    user_achievement as unlock,
};

/// The `strftime` form of an hour's key in `event_hours` and the hourly
/// statistics: `YYYY-MM-DD HH` (UTC).
pub const HOUR_KEY: &str = "%Y-%m-%d %H";

pub(crate) fn achievement_from(m: def::Model) -> Achievement {
    Achievement {
        id: m.id,
        code: m.code,
        name: m.name,
        description: m.description,
        icon: m.icon,
        event_kind: m.event_kind,
        threshold: m.threshold,
        // The column only ever holds what `AchievementRule::as_str` wrote.
        rule: AchievementRule::parse(&m.rule).unwrap_or(AchievementRule::Total),
        is_active: m.is_active,
    }
}

/// An achievement definition to create.
#[derive(Debug, Clone)]
pub struct NewAchievement {
    pub code: String,
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
    pub event_kind: String,
    pub threshold: i64,
    pub rule: AchievementRule,
}

impl Database {
    /// Every active achievement, by event kind and threshold.
    pub async fn achievements(&self) -> Result<Vec<Achievement>> {
        Ok(def::Entity::find()
            .filter(def::Column::IsActive.eq(true))
            .order_by_asc(def::Column::EventKind)
            .order_by_asc(def::Column::Threshold)
            .order_by_asc(def::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(achievement_from)
            .collect())
    }

    /// Defines an achievement; a taken code is `achievement_exists`.
    pub async fn create_achievement(&self, new: NewAchievement) -> Result<Achievement> {
        let m = def::ActiveModel {
            code: Set(new.code),
            name: Set(new.name),
            description: Set(new.description),
            icon: Set(new.icon),
            event_kind: Set(new.event_kind),
            threshold: Set(new.threshold),
            rule: Set(new.rule.as_str().to_owned()),
            is_active: Set(true),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(|e| {
            map_unique(
                e,
                "achievement_exists",
                "an achievement with this code exists",
            )
        })?;
        Ok(achievement_from(m))
    }

    /// Adds `amount` to the user's total of `kind`, and to the day's and
    /// the hour's totals of `kind` over all users (`event_days`,
    /// `event_hours`, for the operators' statistics), and returns the
    /// user's new total.
    pub async fn add_progress(
        &self,
        user_id: i64,
        kind: &str,
        amount: i64,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        progress::Entity::insert(progress::ActiveModel {
            user_id: Set(user_id),
            event_kind: Set(kind.to_owned()),
            total: Set(amount),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([progress::Column::UserId, progress::Column::EventKind])
                .value(
                    progress::Column::Total,
                    Expr::cust(r#""achievement_progress"."total" + "excluded"."total""#),
                )
                .update_column(progress::Column::UpdatedAt)
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await
        .map_err(db_err)?;
        event_day::Entity::insert(event_day::ActiveModel {
            day: Set(now.format("%Y-%m-%d").to_string()),
            event_kind: Set(kind.to_owned()),
            total: Set(amount),
        })
        .on_conflict(
            OnConflict::columns([event_day::Column::Day, event_day::Column::EventKind])
                .value(
                    event_day::Column::Total,
                    Expr::cust(r#""event_days"."total" + "excluded"."total""#),
                )
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await
        .map_err(db_err)?;
        event_hour::Entity::insert(event_hour::ActiveModel {
            hour: Set(now.format(HOUR_KEY).to_string()),
            event_kind: Set(kind.to_owned()),
            total: Set(amount),
        })
        .on_conflict(
            OnConflict::columns([event_hour::Column::Hour, event_hour::Column::EventKind])
                .value(
                    event_hour::Column::Total,
                    Expr::cust(r#""event_hours"."total" + "excluded"."total""#),
                )
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await
        .map_err(db_err)?;
        progress::Entity::find_by_id((user_id, kind.to_owned()))
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(|m| m.total)
            .ok_or_else(|| db_err("progress row missing after upsert"))
    }

    /// The totals of `kind` per UTC day (`YYYY-MM-DD`) from `first` on;
    /// days without events are absent.
    pub async fn event_days(
        &self,
        kind: &str,
        first: chrono::NaiveDate,
    ) -> Result<HashMap<String, i64>> {
        Ok(event_day::Entity::find()
            .filter(event_day::Column::EventKind.eq(kind))
            .filter(event_day::Column::Day.gte(first.format("%Y-%m-%d").to_string()))
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.day, m.total))
            .collect())
    }

    /// The totals of `kind` per UTC hour (`YYYY-MM-DD HH`, [`HOUR_KEY`])
    /// from the hour of `first` on; hours without events are absent.
    pub async fn event_hours(
        &self,
        kind: &str,
        first: DateTime<Utc>,
    ) -> Result<HashMap<String, i64>> {
        Ok(event_hour::Entity::find()
            .filter(event_hour::Column::EventKind.eq(kind))
            .filter(event_hour::Column::Hour.gte(first.format(HOUR_KEY).to_string()))
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.hour, m.total))
            .collect())
    }

    /// Counts `now`'s UTC day in the user's streak of `kind` (kept in the
    /// progress row `{kind}:streak`, whose `updated_at` is the last day
    /// counted) and returns the new streak, or `None` when the day was
    /// counted already. Each write is conditional on the row read, so of
    /// concurrent events of one day exactly one counts.
    pub async fn count_streak_day(
        &self,
        user_id: i64,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let key = format!("{kind}:streak");
        let today = now.date_naive();
        for _ in 0..3 {
            let row = progress::Entity::find_by_id((user_id, key.clone()))
                .one(self.conn())
                .await
                .map_err(db_err)?;
            let Some(streak) = next_streak(
                row.as_ref().map(|r| (r.total, r.updated_at.date_naive())),
                today,
            ) else {
                return Ok(None);
            };
            let written = match &row {
                None => progress::Entity::insert(progress::ActiveModel {
                    user_id: Set(user_id),
                    event_kind: Set(key.clone()),
                    total: Set(streak),
                    updated_at: Set(now),
                })
                .on_conflict(
                    OnConflict::columns([progress::Column::UserId, progress::Column::EventKind])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(self.conn())
                .await
                .map_err(db_err)?,
                Some(r) => {
                    progress::Entity::update_many()
                        .col_expr(progress::Column::Total, Expr::value(streak))
                        .col_expr(progress::Column::UpdatedAt, Expr::value(now))
                        .filter(progress::Column::UserId.eq(user_id))
                        .filter(progress::Column::EventKind.eq(key.clone()))
                        .filter(progress::Column::UpdatedAt.eq(r.updated_at))
                        .exec(self.conn())
                        .await
                        .map_err(db_err)?
                        .rows_affected
                }
            };
            if written > 0 {
                return Ok(Some(streak));
            }
            // Another event wrote first: read again.
        }
        Ok(None)
    }

    /// The user's streak row of `kind`: (streak, last day counted).
    pub async fn streak_of_user(
        &self,
        user_id: i64,
        kind: &str,
    ) -> Result<Option<(i64, DateTime<Utc>)>> {
        Ok(
            progress::Entity::find_by_id((user_id, format!("{kind}:streak")))
                .one(self.conn())
                .await
                .map_err(db_err)?
                .map(|m| (m.total, m.updated_at)),
        )
    }

    /// The user's totals by event kind.
    pub async fn progress_of_user(&self, user_id: i64) -> Result<HashMap<String, i64>> {
        Ok(progress::Entity::find()
            .filter(progress::Column::UserId.eq(user_id))
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.event_kind, m.total))
            .collect())
    }

    /// Records that `user_id` unlocked `achievement_id`; `true` only the
    /// first time.
    pub async fn unlock_achievement(
        &self,
        user_id: i64,
        achievement_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let res = unlock::Entity::insert(unlock::ActiveModel {
            user_id: Set(user_id),
            achievement_id: Set(achievement_id),
            unlocked_at: Set(now),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([unlock::Column::UserId, unlock::Column::AchievementId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.conn())
        .await
        .map_err(db_err)?;
        Ok(res > 0)
    }

    /// The user's unlocks, oldest first.
    pub async fn unlocks_of_user(&self, user_id: i64) -> Result<Vec<Unlock>> {
        Ok(unlock::Entity::find()
            .filter(unlock::Column::UserId.eq(user_id))
            .order_by_asc(unlock::Column::UnlockedAt)
            .order_by_asc(unlock::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| Unlock {
                achievement_id: m.achievement_id,
                unlocked_at: m.unlocked_at,
            })
            .collect())
    }
}
