//! [`VoiceChatSessionRepo`] on the database.

use chrono::{DateTime, Utc};
use lty_core::voice_chat::{SessionStatus, VoiceChatSession};
use lty_core::{Error, Result};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::Database;
use crate::db::db_err;
use crate::entity::voice_chat_session as row;
use crate::sort::{SessionSort, Sort, ordered};

impl From<row::Model> for VoiceChatSession {
    fn from(m: row::Model) -> Self {
        Self {
            task_id: m.task_id,
            user_id: m.user_id,
            room_id: m.room_id,
            agent_user_id: m.agent_user_id,
            status: SessionStatus::parse(&m.status),
            started_at: m.started_at,
            offline_since: m.offline_since,
            conversation_id: m.conversation_id,
        }
    }
}

impl Database {
    /// Records a new session.
    pub async fn insert_session(&self, s: &VoiceChatSession) -> Result<()> {
        let model = row::ActiveModel {
            task_id: Set(s.task_id.clone()),
            user_id: Set(s.user_id),
            room_id: Set(s.room_id.clone()),
            agent_user_id: Set(s.agent_user_id.clone()),
            status: Set(s.status.as_str().to_owned()),
            started_at: Set(s.started_at),
            offline_since: Set(s.offline_since),
            conversation_id: Set(s.conversation_id),
        };
        row::Entity::insert(model)
            .exec_without_returning(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The session with `task_id`.
    pub async fn session(&self, task_id: &str) -> Result<Option<VoiceChatSession>> {
        Ok(row::Entity::find_by_id(task_id.to_owned())
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(Into::into))
    }

    /// The sessions of `user_id`, oldest first.
    pub async fn sessions_of_user(&self, user_id: i64) -> Result<Vec<VoiceChatSession>> {
        Ok(row::Entity::find()
            .filter(row::Column::UserId.eq(user_id))
            .order_by_asc(row::Column::StartedAt)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Every recorded session, oldest first.
    pub async fn all_sessions(&self) -> Result<Vec<VoiceChatSession>> {
        Ok(row::Entity::find()
            .order_by_asc(row::Column::StartedAt)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The sessions (of `user_id`, or all) in `sort` order, task id
    /// breaking ties.
    pub async fn list_sessions(
        &self,
        user_id: Option<i64>,
        sort: Sort<SessionSort>,
    ) -> Result<Vec<VoiceChatSession>> {
        let mut q = row::Entity::find();
        if let Some(id) = user_id {
            q = q.filter(row::Column::UserId.eq(id));
        }
        let by = match sort.key {
            SessionSort::Started => row::Column::StartedAt,
            SessionSort::Task => row::Column::TaskId,
            SessionSort::User => row::Column::UserId,
            SessionSort::Status => row::Column::Status,
        };
        Ok(ordered(q, by, row::Column::TaskId, sort.dir)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Sets the status of `task_id`.
    pub async fn set_session_status(&self, task_id: &str, status: SessionStatus) -> Result<()> {
        row::Entity::update_many()
            .col_expr(row::Column::Status, Expr::value(status.as_str()))
            .filter(row::Column::TaskId.eq(task_id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Sets or clears the offline mark of `task_id`.
    pub async fn set_session_offline_since(
        &self,
        task_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        row::Entity::update_many()
            .col_expr(row::Column::OfflineSince, Expr::value(since))
            .filter(row::Column::TaskId.eq(task_id))
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Makes `conversation_id` the conversation of `task_id` unless it
    /// already has one; returns the conversation in force.
    pub async fn attach_conversation(&self, task_id: &str, conversation_id: i64) -> Result<i64> {
        // Only the first attach wins; every caller gets the winner.
        row::Entity::update_many()
            .col_expr(row::Column::ConversationId, Expr::value(conversation_id))
            .filter(row::Column::TaskId.eq(task_id))
            .filter(row::Column::ConversationId.is_null())
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        let attached = row::Entity::find_by_id(task_id.to_owned())
            .one(self.conn())
            .await
            .map_err(db_err)?
            .and_then(|m| m.conversation_id);
        attached.ok_or_else(|| Error::not_found("voice-chat session"))
    }

    /// Forgets `task_id`; `true` when it was recorded.
    pub async fn delete_session(&self, task_id: &str) -> Result<bool> {
        let res = row::Entity::delete_by_id(task_id.to_owned())
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected > 0)
    }
}
