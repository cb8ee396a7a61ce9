//! Queries of the admin API: user and device search, account state, the
//! catalog (personas, plans, achievements) with inactive rows included, and
//! the counts behind the stats page. Every listing takes one of its
//! whitelisted orders ([`crate::sort`]) and breaks ties by id, so pages
//! are stable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lty_core::achievement::Achievement;
use lty_core::chat::Page;
use lty_core::subscription::Plan;
use lty_core::user::{DeviceBinding, User};
use lty_core::{MacAddress, Result};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::achievements::achievement_from;
use crate::db::{binding_from, db_err, map_unique};
use crate::entity::{
    achievement_definition as def, achievement_progress as progress, ai_message, ai_persona, card,
    card_scan as scan, device_credential, plan, user, user_device, xiaozhi_device,
};
use crate::sort::{AchievementSort, DeviceSort, PersonaSort, PlanSort, Sort, UserSort, ordered};
use crate::subscriptions::plan_from;
use crate::{Database, DatabaseKind};

/// Sets an active-model field to `value` when a patch carries one.
fn set_some<T: Into<sea_orm::Value>>(field: &mut sea_orm::ActiveValue<T>, value: Option<T>) {
    if let Some(v) = value {
        *field = Set(v);
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn contains<C: ColumnTrait>(col: C, fragment: &str) -> Expr {
    // Qualified with its table: some callers join.
    col.into_expr()
        .like(LikeExpr::new(format!("%{}%", like_escape(fragment))).escape('\\'))
}

/// Which devices to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct DeviceSearch {
    /// Part of the MAC, in the stored form (lower case, `:`).
    pub fragment: Option<String>,
    /// Devices ever bound to this user.
    pub user_id: Option<i64>,
    /// The firmware version a xiaozhi device last reported, exactly.
    pub firmware: Option<String>,
    /// Only the MACs in (or only those outside) a set, such as the devices
    /// online now.
    pub macs: Option<MacSet>,
}

/// A set of MACs (stored form) a device search keeps or leaves out.
#[derive(Debug, Clone)]
pub enum MacSet {
    /// Only these MACs.
    Within(Vec<String>),
    /// Every MAC but these.
    Outside(Vec<String>),
}

impl MacSet {
    /// `mac` is in the set (or not): the whole set goes as one JSON-array
    /// parameter, so its size meets no limit on bound parameters.
    pub(crate) fn condition(&self, kind: DatabaseKind, mac: Expr) -> Expr {
        let (macs, op) = match self {
            Self::Within(m) => (m, "IN"),
            Self::Outside(m) => (m, "NOT IN"),
        };
        // sea-query's placeholders: `?` in order on SQLite, `$n` on
        // PostgreSQL.
        let sql = match kind {
            DatabaseKind::Sqlite => format!("? {op} (SELECT value FROM json_each(?))"),
            DatabaseKind::Postgres => {
                format!("$1 {op} (SELECT jsonb_array_elements_text(CAST($2 AS jsonb)))")
            }
        };
        // A list of strings always serializes.
        let json = serde_json::to_string(macs).unwrap_or_default();
        Expr::cust_with_exprs(sql, [mac, Expr::val(json)])
    }
}

/// Which users to list; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    /// Free text: the user id (when numeric), or part of the username,
    /// nickname or phone number.
    pub q: Option<String>,
    /// Exact stored phone number (`13812345678` or E.164).
    pub phone: Option<String>,
    /// Exact username.
    pub username: Option<String>,
    /// Exact user id.
    pub id: Option<i64>,
    pub is_active: Option<bool>,
}

/// A persona with its catalog state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminPersona {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub system_prompt: String,
    pub greeting: String,
    pub voice_id: Option<String>,
    pub age_min: i32,
    pub age_max: i32,
    pub is_default: bool,
    pub is_active: bool,
}

impl From<ai_persona::Model> for AdminPersona {
    fn from(m: ai_persona::Model) -> Self {
        Self {
            id: m.id,
            slug: m.slug,
            name: m.name,
            system_prompt: m.system_prompt,
            greeting: m.greeting,
            voice_id: m.voice_id,
            age_min: m.age_min,
            age_max: m.age_max,
            is_default: m.is_default,
            is_active: m.is_active,
        }
    }
}

/// A persona to create (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewPersona {
    pub slug: String,
    pub name: String,
    pub system_prompt: String,
    pub greeting: String,
    pub voice_id: Option<String>,
    pub age_min: i32,
    pub age_max: i32,
}

/// Persona changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PersonaPatch {
    pub name: Option<String>,
    pub system_prompt: Option<String>,
    pub greeting: Option<String>,
    pub voice_id: Option<Option<String>>,
    pub age_min: Option<i32>,
    pub age_max: Option<i32>,
    pub is_active: Option<bool>,
}

/// Plan changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PlanPatch {
    pub name: Option<String>,
    pub daily_ai_messages: Option<u32>,
    pub daily_voice_minutes: Option<u32>,
    pub personas: Option<Vec<String>>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
    pub is_active: Option<bool>,
}

/// Achievement changes; `None` leaves a field as it is. The code, event
/// kind and rule are fixed once defined (progress is counted by them).
#[derive(Debug, Clone, Default)]
pub struct AchievementPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<Option<String>>,
    pub threshold: Option<i64>,
    pub is_active: Option<bool>,
}

/// Scans of one card batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchScans {
    pub batch_id: i64,
    pub scans: u64,
    pub unique_users: u64,
}

impl Database {
    /// A page of users matching `search`, in `sort` order.
    pub async fn search_users(
        &self,
        search: &UserSearch,
        sort: Sort<UserSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<User>> {
        let mut q = user::Entity::find();
        if let Some(text) = search.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let mut any = Condition::any()
                .add(contains(user::Column::Username, text))
                .add(contains(user::Column::Nickname, text))
                .add(contains(user::Column::Phone, text));
            if let Ok(id) = text.parse::<i64>() {
                any = any.add(user::Column::Id.eq(id));
            }
            q = q.filter(any);
        }
        if let Some(phone) = &search.phone {
            q = q.filter(user::Column::Phone.eq(phone.as_str()));
        }
        if let Some(username) = &search.username {
            q = q.filter(user::Column::Username.eq(username.as_str()));
        }
        if let Some(id) = search.id {
            q = q.filter(user::Column::Id.eq(id));
        }
        if let Some(active) = search.is_active {
            q = q.filter(user::Column::IsActive.eq(active));
        }
        let by = match sort.key {
            UserSort::Id => user::Column::Id,
            UserSort::Username => user::Column::Username,
            UserSort::Nickname => user::Column::Nickname,
            UserSort::Phone => user::Column::Phone,
            UserSort::Joined => user::Column::DateJoined,
            UserSort::Active => user::Column::IsActive,
        };
        self.fetch_page(
            q,
            |q| ordered(q, by, user::Column::Id, sort.dir),
            User::from,
            offset,
            limit,
        )
        .await
    }

    /// Enables or disables a user; `None` when there is no such user.
    pub async fn set_user_active(&self, id: i64, active: bool) -> Result<Option<User>> {
        let Some(m) = user::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut am: user::ActiveModel = m.into();
        am.is_active = Set(active);
        am.updated_at = Set(Utc::now());
        let m = am.update(self.conn()).await.map_err(db_err)?;
        Ok(Some(m.into()))
    }

    /// The ids of every disabled user, by id.
    pub async fn disabled_user_ids(&self) -> Result<Vec<i64>> {
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::IsActive.eq(false))
            .order_by_asc(user::Column::Id)
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(db_err)
    }

    /// Every binding a user ever had (ended ones included), newest first.
    pub async fn binding_rows_of_user(&self, user_id: i64) -> Result<Vec<DeviceBinding>> {
        user_device::Entity::find()
            .filter(user_device::Column::UserId.eq(user_id))
            .order_by_desc(user_device::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(binding_from)
            .collect()
    }

    /// A page of the MACs ever bound matching `search`, in `sort` order
    /// (board, firmware and last check are what the xiaozhi device of that
    /// MAC reported, if any).
    pub async fn search_device_macs(
        &self,
        search: &DeviceSearch,
        sort: Sort<DeviceSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<String>> {
        let mac = Expr::col((user_device::Entity, user_device::Column::MacAddress));
        let mut q = user_device::Entity::find().join(
            JoinType::LeftJoin,
            user_device::Entity::belongs_to(xiaozhi_device::Entity)
                .from(user_device::Column::MacAddress)
                .to(xiaozhi_device::Column::MacAddress)
                .into(),
        );
        if let Some(f) = search.fragment.as_deref().filter(|f| !f.is_empty()) {
            q = q.filter(contains(user_device::Column::MacAddress, f));
        }
        if let Some(id) = search.user_id {
            q = q.filter(user_device::Column::UserId.eq(id));
        }
        if let Some(v) = &search.firmware {
            q = q.filter(xiaozhi_device::Column::FirmwareVersion.eq(v.as_str()));
        }
        if let Some(set) = &search.macs {
            q = q.filter(set.condition(self.kind(), mac.clone()));
        }
        let total: Option<i64> = q
            .clone()
            .select_only()
            .column_as(Expr::expr(Func::count_distinct(mac.clone())), "n")
            .into_tuple()
            .one(self.conn())
            .await
            .map_err(db_err)?;
        let x = |c| Expr::col((xiaozhi_device::Entity, c));
        // One row per MAC: the reported values are those of its one
        // xiaozhi row (MAX only makes them aggregates).
        let by: Expr = match sort.key {
            DeviceSort::Mac => mac.clone(),
            DeviceSort::Board => Func::max(Func::coalesce([
                x(xiaozhi_device::Column::BoardName),
                x(xiaozhi_device::Column::BoardType),
            ]))
            .into(),
            DeviceSort::Firmware => Func::max(x(xiaozhi_device::Column::FirmwareVersion)).into(),
            DeviceSort::LastCheck => Func::max(x(xiaozhi_device::Column::LastSeenAt)).into(),
        };
        let q = q
            .select_only()
            .column(user_device::Column::MacAddress)
            .group_by(mac.clone())
            .offset(offset)
            .limit(limit);
        let items: Vec<String> = ordered(q, by, mac, sort.dir)
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(db_err)?;
        Ok(Page {
            items,
            total: count(total.unwrap_or(0)),
        })
    }

    /// The firmware versions xiaozhi devices reported, at most 100, in
    /// order.
    pub async fn firmware_versions(&self) -> Result<Vec<String>> {
        xiaozhi_device::Entity::find()
            .select_only()
            .column(xiaozhi_device::Column::FirmwareVersion)
            .filter(xiaozhi_device::Column::FirmwareVersion.is_not_null())
            .distinct()
            .order_by_asc(xiaozhi_device::Column::FirmwareVersion)
            .limit(100)
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(db_err)
    }

    /// When the device's secret was provisioned, if it has one (the secret
    /// itself is not read).
    pub async fn device_secret_created_at(
        &self,
        mac: &MacAddress,
    ) -> Result<Option<DateTime<Utc>>> {
        device_credential::Entity::find()
            .select_only()
            .column(device_credential::Column::CreatedAt)
            .filter(device_credential::Column::MacAddress.eq(mac.to_string()))
            .into_tuple()
            .one(self.conn())
            .await
            .map_err(db_err)
    }

    /// Deletes a device's secret; `true` when it had one. The device is then
    /// back to the configured default (`device_auth`).
    pub async fn delete_device_secret(&self, mac: &MacAddress) -> Result<bool> {
        let res = device_credential::Entity::delete_many()
            .filter(device_credential::Column::MacAddress.eq(mac.to_string()))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected > 0)
    }

    /// A page of every persona, inactive ones included, in `sort` order.
    pub async fn admin_personas(
        &self,
        sort: Sort<PersonaSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<AdminPersona>> {
        let q = ai_persona::Entity::find();
        let by = match sort.key {
            PersonaSort::Id => ai_persona::Column::Id,
            PersonaSort::Slug => ai_persona::Column::Slug,
            PersonaSort::Name => ai_persona::Column::Name,
            PersonaSort::Ages => ai_persona::Column::AgeMin,
            PersonaSort::Active => ai_persona::Column::IsActive,
        };
        self.fetch_page(
            q,
            |q| ordered(q, by, ai_persona::Column::Id, sort.dir),
            AdminPersona::from,
            offset,
            limit,
        )
        .await
    }

    /// One persona, active or not.
    pub async fn admin_persona(&self, id: i64) -> Result<Option<AdminPersona>> {
        Ok(ai_persona::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(AdminPersona::from))
    }

    /// Creates an active, non-default persona; a taken slug is
    /// `persona_exists`.
    pub async fn create_persona(&self, new: NewPersona) -> Result<AdminPersona> {
        let m = ai_persona::ActiveModel {
            slug: Set(new.slug),
            name: Set(new.name),
            system_prompt: Set(new.system_prompt),
            greeting: Set(new.greeting),
            voice_id: Set(new.voice_id),
            age_min: Set(new.age_min),
            age_max: Set(new.age_max),
            is_default: Set(false),
            is_active: Set(true),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(|e| map_unique(e, "persona_exists", "a persona with this slug exists"))?;
        self.forget_catalog();
        Ok(m.into())
    }

    /// Changes a persona; `None` when there is no such persona.
    pub async fn update_persona(
        &self,
        id: i64,
        patch: PersonaPatch,
    ) -> Result<Option<AdminPersona>> {
        let Some(m) = ai_persona::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut am: ai_persona::ActiveModel = m.into();
        set_some(&mut am.name, patch.name);
        set_some(&mut am.system_prompt, patch.system_prompt);
        set_some(&mut am.greeting, patch.greeting);
        set_some(&mut am.voice_id, patch.voice_id);
        set_some(&mut am.age_min, patch.age_min);
        set_some(&mut am.age_max, patch.age_max);
        set_some(&mut am.is_active, patch.is_active);
        let m = am.update(self.conn()).await.map_err(db_err)?;
        self.forget_catalog();
        Ok(Some(m.into()))
    }

    /// Changes a plan; `None` when there is no such plan.
    pub async fn update_plan(&self, id: i64, patch: PlanPatch) -> Result<Option<Plan>> {
        let Some(m) = plan::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut am: plan::ActiveModel = m.into();
        set_some(&mut am.name, patch.name);
        if let Some(v) = patch.daily_ai_messages {
            am.daily_ai_messages = Set(i32::try_from(v).unwrap_or(i32::MAX));
        }
        if let Some(v) = patch.daily_voice_minutes {
            am.daily_voice_minutes = Set(i32::try_from(v).unwrap_or(i32::MAX));
        }
        if let Some(v) = patch.personas {
            am.personas = Set(serde_json::to_string(&v).map_err(db_err)?);
        }
        set_some(&mut am.price_cents, patch.price_cents);
        set_some(&mut am.currency, patch.currency);
        set_some(&mut am.is_active, patch.is_active);
        let m = am.update(self.conn()).await.map_err(db_err)?;
        self.forget_catalog();
        Ok(Some(plan_from(m)))
    }

    /// A page of every plan, inactive ones included, in `sort` order.
    pub async fn admin_plans(
        &self,
        sort: Sort<PlanSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Plan>> {
        let by = match sort.key {
            PlanSort::Id => plan::Column::Id,
            PlanSort::Code => plan::Column::Code,
            PlanSort::Name => plan::Column::Name,
            PlanSort::Messages => plan::Column::DailyAiMessages,
            PlanSort::Minutes => plan::Column::DailyVoiceMinutes,
            PlanSort::Price => plan::Column::PriceCents,
            PlanSort::Active => plan::Column::IsActive,
        };
        self.fetch_page(
            plan::Entity::find(),
            |q| ordered(q, by, plan::Column::Id, sort.dir),
            plan_from,
            offset,
            limit,
        )
        .await
    }

    /// A page of every achievement definition, inactive ones included, in
    /// `sort` order.
    pub async fn admin_achievements(
        &self,
        sort: Sort<AchievementSort>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Achievement>> {
        let q = def::Entity::find();
        let by = match sort.key {
            AchievementSort::Id => def::Column::Id,
            AchievementSort::Code => def::Column::Code,
            AchievementSort::Name => def::Column::Name,
            AchievementSort::Event => def::Column::EventKind,
            AchievementSort::Threshold => def::Column::Threshold,
            AchievementSort::Active => def::Column::IsActive,
        };
        self.fetch_page(
            q,
            |q| ordered(q, by, def::Column::Id, sort.dir),
            achievement_from,
            offset,
            limit,
        )
        .await
    }

    /// One achievement definition, active or not.
    pub async fn admin_achievement(&self, id: i64) -> Result<Option<Achievement>> {
        Ok(def::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(achievement_from))
    }

    /// Changes an achievement definition; `None` when there is none.
    pub async fn update_achievement(
        &self,
        id: i64,
        patch: AchievementPatch,
    ) -> Result<Option<Achievement>> {
        let Some(m) = def::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut am: def::ActiveModel = m.into();
        set_some(&mut am.name, patch.name);
        set_some(&mut am.description, patch.description);
        set_some(&mut am.icon, patch.icon);
        set_some(&mut am.threshold, patch.threshold);
        set_some(&mut am.is_active, patch.is_active);
        let m = am.update(self.conn()).await.map_err(db_err)?;
        Ok(Some(achievement_from(m)))
    }

    /// The sum over all users of the running totals of `kind`.
    pub async fn event_total(&self, kind: &str) -> Result<i64> {
        let n: Option<i64> = progress::Entity::find()
            .select_only()
            .column_as(Expr::cust("CAST(COALESCE(SUM(total), 0) AS BIGINT)"), "n")
            .filter(progress::Column::EventKind.eq(kind))
            .into_tuple()
            .one(self.conn())
            .await
            .map_err(db_err)?;
        Ok(n.unwrap_or(0))
    }

    /// Users in total and active ones.
    pub async fn user_counts(&self) -> Result<(u64, u64)> {
        let total = user::Entity::find()
            .count(self.conn())
            .await
            .map_err(db_err)?;
        let active = user::Entity::find()
            .filter(user::Column::IsActive.eq(true))
            .count(self.conn())
            .await
            .map_err(db_err)?;
        Ok((total, active))
    }

    /// Distinct MACs with a binding that has not been ended.
    pub async fn bound_device_count(&self) -> Result<u64> {
        let n: Option<i64> = user_device::Entity::find()
            .select_only()
            .column_as(
                Expr::expr(Func::count_distinct(Expr::col(
                    user_device::Column::MacAddress,
                ))),
                "n",
            )
            .filter(user_device::Column::UnboundAt.is_null())
            .into_tuple()
            .one(self.conn())
            .await
            .map_err(db_err)?;
        Ok(count(n.unwrap_or(0)))
    }

    /// Chat messages per UTC day since `since` (`YYYY-MM-DD` → count), by
    /// role (`user` messages are what children sent).
    pub async fn messages_per_day(
        &self,
        role: &str,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, u64>> {
        let day = match self.kind() {
            DatabaseKind::Sqlite => "substr(created_at, 1, 10)",
            DatabaseKind::Postgres => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        };
        let rows: Vec<(String, i64)> = ai_message::Entity::find()
            .select_only()
            .column_as(Expr::cust(day), "day")
            .column_as(ai_message::Column::Id.count(), "n")
            .filter(ai_message::Column::Role.eq(role))
            .filter(ai_message::Column::CreatedAt.gte(since))
            .group_by(Expr::cust(day))
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(|(d, n)| (d, count(n))).collect())
    }

    /// Chat messages per UTC hour since `since` (`YYYY-MM-DD HH` → count,
    /// [`crate::achievements::HOUR_KEY`]), by role.
    pub async fn messages_per_hour(
        &self,
        role: &str,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, u64>> {
        let hour = match self.kind() {
            // Stored as `YYYY-MM-DD HH:MM:SS...` in UTC.
            DatabaseKind::Sqlite => "substr(created_at, 1, 10) || ' ' || substr(created_at, 12, 2)",
            DatabaseKind::Postgres => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')",
        };
        let rows: Vec<(String, i64)> = ai_message::Entity::find()
            .select_only()
            .column_as(Expr::cust(hour), "hour")
            .column_as(ai_message::Column::Id.count(), "n")
            .filter(ai_message::Column::Role.eq(role))
            .filter(ai_message::Column::CreatedAt.gte(since))
            .group_by(Expr::cust(hour))
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(|(h, n)| (h, count(n))).collect())
    }

    /// Scans and distinct scanning users per card batch, by batch id.
    pub async fn scans_per_batch(&self) -> Result<Vec<BatchScans>> {
        let rows: Vec<(i64, i64, i64)> = scan::Entity::find()
            .select_only()
            .column(card::Column::BatchId)
            .column_as(scan::Column::Id.count(), "scans")
            .column_as(
                Expr::expr(Func::count_distinct(Expr::col((
                    scan::Entity,
                    scan::Column::UserId,
                )))),
                "users",
            )
            .join(
                JoinType::InnerJoin,
                scan::Entity::belongs_to(card::Entity)
                    .from(scan::Column::CardId)
                    .to(card::Column::Id)
                    .into(),
            )
            .group_by(card::Column::BatchId)
            .order_by_asc(card::Column::BatchId)
            .into_tuple()
            .all(self.conn())
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(batch_id, scans, users)| BatchScans {
                batch_id,
                scans: count(scans),
                unique_users: count(users),
            })
            .collect())
    }
}
