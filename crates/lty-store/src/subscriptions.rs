//! Plans and subscription periods on the database.
//!
//! A card's period is inserted with its `card_id`, which is unique: a
//! concurrent second redemption of the same card fails on the constraint
//! and is reported as `card_already_redeemed`.

use chrono::{DateTime, Duration, Utc};
use lty_core::Result;
use lty_core::subscription::{Plan, PlanLimits, Subscription};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use crate::Database;
use crate::db::{db_err, map_unique};
use crate::entity::{plan, user_subscription as sub};

pub(crate) fn plan_from(m: plan::Model) -> Plan {
    let personas = serde_json::from_str(&m.personas).unwrap_or_default();
    Plan {
        id: m.id,
        limits: PlanLimits {
            plan: m.code.clone(),
            daily_ai_messages: u32::try_from(m.daily_ai_messages).unwrap_or(0),
            daily_voice_minutes: u32::try_from(m.daily_voice_minutes).unwrap_or(0),
            personas,
        },
        code: m.code,
        name: m.name,
        price_cents: m.price_cents,
        currency: m.currency,
        is_active: m.is_active,
    }
}

fn sub_from(m: sub::Model) -> Subscription {
    Subscription {
        id: m.id,
        user_id: m.user_id,
        plan_id: m.plan_id,
        starts_at: m.starts_at,
        ends_at: m.ends_at,
        source: m.source,
        card_id: m.card_id,
        created_at: m.created_at,
    }
}

/// A plan to create.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub code: String,
    pub name: String,
    pub daily_ai_messages: u32,
    pub daily_voice_minutes: u32,
    pub personas: Vec<String>,
    pub price_cents: i64,
    pub currency: String,
}

/// Where a subscription period comes from.
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    /// A membership card (redeemed exactly once).
    Card(i64),
    /// An operator.
    Admin,
}

impl Database {
    /// Every plan, cheapest first; only active ones unless `all`.
    pub async fn plans(&self, all: bool) -> Result<Vec<Plan>> {
        let mut q = plan::Entity::find();
        if !all {
            q = q.filter(plan::Column::IsActive.eq(true));
        }
        Ok(q.order_by_asc(plan::Column::PriceCents)
            .order_by_asc(plan::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(plan_from)
            .collect())
    }

    /// The plan with `id`.
    pub async fn plan(&self, id: i64) -> Result<Option<Plan>> {
        let start = match self.memos().plan_by_id.get(&id) {
            Ok(hit) => return Ok(hit),
            Err(start) => start,
        };
        let found = plan::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(plan_from);
        self.memos().plan_by_id.put(id, found.clone(), start);
        Ok(found)
    }

    /// The plan with `code`.
    /// Memoized for a few seconds (see `memo`): every chat turn of a user
    /// without a subscription reads the `free` plan.
    pub async fn plan_by_code(&self, code: &str) -> Result<Option<Plan>> {
        let key = code.to_owned();
        let start = match self.memos().plan_by_code.get(&key) {
            Ok(hit) => return Ok(hit),
            Err(start) => start,
        };
        let found = plan::Entity::find()
            .filter(plan::Column::Code.eq(code))
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(plan_from);
        self.memos().plan_by_code.put(key, found.clone(), start);
        Ok(found)
    }

    /// Creates a plan; a taken code is `plan_exists`.
    pub async fn create_plan(&self, new: NewPlan) -> Result<Plan> {
        let model = plan::ActiveModel {
            code: Set(new.code),
            name: Set(new.name),
            daily_ai_messages: Set(i32::try_from(new.daily_ai_messages).unwrap_or(i32::MAX)),
            daily_voice_minutes: Set(i32::try_from(new.daily_voice_minutes).unwrap_or(i32::MAX)),
            personas: Set(serde_json::to_string(&new.personas).map_err(db_err)?),
            price_cents: Set(new.price_cents),
            currency: Set(new.currency),
            is_active: Set(true),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(|e| map_unique(e, "plan_exists", "a plan with this code exists"))?;
        self.forget_catalog();
        Ok(plan_from(model))
    }

    /// Every subscription period of `user_id`, newest first.
    pub async fn subscriptions_of_user(&self, user_id: i64) -> Result<Vec<Subscription>> {
        let start = match self.memos().subscriptions.get(&user_id) {
            Ok(hit) => return Ok(hit),
            Err(start) => start,
        };
        let found: Vec<Subscription> = sub::Entity::find()
            .filter(sub::Column::UserId.eq(user_id))
            .order_by_desc(sub::Column::EndsAt)
            .order_by_desc(sub::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(sub_from)
            .collect();
        self.memos()
            .subscriptions
            .put(user_id, found.clone(), start);
        Ok(found)
    }

    /// Gives `user_id` `days` of plan `plan_id`. A period of the same plan
    /// that is running (or queued) is extended: the new one starts at its
    /// end. A card grant fails with `card_already_redeemed` when the card
    /// bought a period before, whoever redeemed it.
    pub async fn grant_subscription(
        &self,
        user_id: i64,
        plan_id: i64,
        days: u32,
        grant: Grant,
        now: DateTime<Utc>,
    ) -> Result<Subscription> {
        let latest_end = sub::Entity::find()
            .filter(sub::Column::UserId.eq(user_id))
            .filter(sub::Column::PlanId.eq(plan_id))
            .filter(sub::Column::EndsAt.gt(now))
            .order_by_desc(sub::Column::EndsAt)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(|m| m.ends_at);
        let starts_at = latest_end.unwrap_or(now).max(now);
        let (source, card_id) = match grant {
            Grant::Card(id) => ("card", Some(id)),
            Grant::Admin => ("admin", None),
        };
        let model = sub::ActiveModel {
            user_id: Set(user_id),
            plan_id: Set(plan_id),
            starts_at: Set(starts_at),
            ends_at: Set(starts_at + Duration::days(i64::from(days))),
            source: Set(source.to_owned()),
            card_id: Set(card_id),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(|e| {
            map_unique(
                e,
                "card_already_redeemed",
                "this card has already been redeemed",
            )
        })?;
        self.forget_subscriptions();
        Ok(sub_from(model))
    }
}
