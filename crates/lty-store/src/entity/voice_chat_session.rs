//! `voice_chat_sessions`: voice agents lty started and has not stopped yet.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "voice_chat_sessions")]
pub struct Model {
    /// The vendor `TaskId`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: String,
    pub user_id: i64,
    pub room_id: String,
    pub agent_user_id: String,
    /// `starting` or `running`.
    pub status: String,
    pub started_at: DateTimeUtc,
    pub offline_since: Option<DateTimeUtc>,
    /// The conversation the agent's turns are stored in, once it has one.
    pub conversation_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
