//! Schema migrations, one module per step, run in order on SQLite and
//! PostgreSQL alike. A later feature adds its tables with a new module here.

use sea_orm_migration::prelude::*;

mod m20261125_000001_users_and_devices;
mod m20261125_000002_binding_unbound_at;
mod m20261126_000001_accounts_and_auth;
mod m20261127_000001_voice_chat_sessions;
mod m20261128_000001_ai_chat;
mod m20261130_000001_cards_and_subscriptions;
mod m20261130_000002_achievements;
mod m20261201_000001_achievement_rules;
mod m20261202_000001_admin_audit;
mod m20261203_000001_event_days;
mod m20261206_000001_voice_chat_conversation;
mod m20261207_000001_xiaozhi;
mod m20261208_000001_login_tokens;
mod m20261208_000002_audit_outcome;
mod m20261209_000001_event_hours;

/// All of lty's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_users_and_devices::Migration),
            Box::new(m20261125_000002_binding_unbound_at::Migration),
            Box::new(m20261126_000001_accounts_and_auth::Migration),
            Box::new(m20261127_000001_voice_chat_sessions::Migration),
            Box::new(m20261128_000001_ai_chat::Migration),
            Box::new(m20261130_000001_cards_and_subscriptions::Migration),
            Box::new(m20261130_000002_achievements::Migration),
            Box::new(m20261201_000001_achievement_rules::Migration),
            Box::new(m20261202_000001_admin_audit::Migration),
            Box::new(m20261203_000001_event_days::Migration),
            Box::new(m20261206_000001_voice_chat_conversation::Migration),
            Box::new(m20261207_000001_xiaozhi::Migration),
            Box::new(m20261208_000001_login_tokens::Migration),
            Box::new(m20261208_000002_audit_outcome::Migration),
            Box::new(m20261209_000001_event_hours::Migration),
        ]
    }
}
