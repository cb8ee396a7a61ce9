//! [`ChatRepo`] on the database: personas, conversations, messages.

use chrono::Utc;
use lty_core::Result;
use lty_core::chat::{Conversation, NewMessage, Page, Persona, Role, StoredMessage};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use crate::Database;
use crate::db::db_err;
use crate::entity::{ai_conversation, ai_message, ai_persona};

impl From<ai_persona::Model> for Persona {
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
        }
    }
}

impl From<ai_conversation::Model> for Conversation {
    fn from(m: ai_conversation::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            persona_id: m.persona_id,
            title: m.title,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl From<ai_message::Model> for StoredMessage {
    fn from(m: ai_message::Model) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            role: Role::parse(&m.role),
            content: m.content,
            incomplete: m.incomplete,
            moderated: m.moderated,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            created_at: m.created_at,
        }
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Database {
    /// Active personas, the default first.
    pub async fn personas(&self) -> Result<Vec<Persona>> {
        Ok(ai_persona::Entity::find()
            .filter(ai_persona::Column::IsActive.eq(true))
            .order_by_desc(ai_persona::Column::IsDefault)
            .order_by_asc(ai_persona::Column::Id)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The active persona `id`.
    pub async fn persona(&self, id: i64) -> Result<Option<Persona>> {
        Ok(ai_persona::Entity::find_by_id(id)
            .filter(ai_persona::Column::IsActive.eq(true))
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(Into::into))
    }

    /// The default persona.
    pub async fn default_persona(&self) -> Result<Option<Persona>> {
        let start = match self.memos().default_persona.get(&()) {
            Ok(hit) => return Ok(hit),
            Err(start) => start,
        };
        let persona: Option<Persona> = ai_persona::Entity::find()
            .filter(ai_persona::Column::IsActive.eq(true))
            .order_by_desc(ai_persona::Column::IsDefault)
            .order_by_asc(ai_persona::Column::Id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(Into::into);
        self.memos().default_persona.put((), persona.clone(), start);
        Ok(persona)
    }

    /// Starts a conversation.
    pub async fn create_conversation(
        &self,
        user_id: i64,
        persona_id: Option<i64>,
        title: &str,
    ) -> Result<Conversation> {
        let now = Utc::now();
        let model = ai_conversation::ActiveModel {
            user_id: Set(user_id),
            persona_id: Set(persona_id),
            title: Set(title.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(self.conn())
        .await
        .map_err(db_err)?;
        Ok(model.into())
    }

    /// The conversation `id`, whoever owns it.
    pub async fn conversation(&self, id: i64) -> Result<Option<Conversation>> {
        Ok(ai_conversation::Entity::find_by_id(id)
            .one(self.conn())
            .await
            .map_err(db_err)?
            .map(Into::into))
    }

    /// The conversations of `user_id`, most recently active first.
    pub async fn conversations_of_user(
        &self,
        user_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Conversation>> {
        let query =
            ai_conversation::Entity::find().filter(ai_conversation::Column::UserId.eq(user_id));
        self.fetch_page(
            query,
            |q| {
                q.order_by_desc(ai_conversation::Column::UpdatedAt)
                    .order_by_desc(ai_conversation::Column::Id)
            },
            Into::into,
            offset,
            limit,
        )
        .await
    }

    /// Messages of a conversation, oldest first.
    pub async fn messages(
        &self,
        conversation_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<StoredMessage>> {
        let query = ai_message::Entity::find()
            .filter(ai_message::Column::ConversationId.eq(conversation_id));
        self.fetch_page(
            query,
            |q| q.order_by_asc(ai_message::Column::Id),
            Into::into,
            offset,
            limit,
        )
        .await
    }

    /// The newest `limit` messages of a conversation, oldest first.
    pub async fn recent_messages(
        &self,
        conversation_id: i64,
        limit: u64,
    ) -> Result<Vec<StoredMessage>> {
        let mut rows: Vec<StoredMessage> = ai_message::Entity::find()
            .filter(ai_message::Column::ConversationId.eq(conversation_id))
            .order_by_desc(ai_message::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Into::into)
            .collect();
        rows.reverse();
        Ok(rows)
    }

    /// Stores a message and marks its conversation active.
    pub async fn add_message(&self, m: NewMessage) -> Result<StoredMessage> {
        let now = Utc::now();
        let txn = self.conn().begin().await.map_err(db_err)?;
        let model = ai_message::ActiveModel {
            conversation_id: Set(m.conversation_id),
            role: Set(m.role.as_str().to_owned()),
            content: Set(m.content),
            incomplete: Set(m.incomplete),
            moderated: Set(m.moderated),
            prompt_tokens: Set(m.usage.map(|u| to_i32(u.prompt_tokens))),
            completion_tokens: Set(m.usage.map(|u| to_i32(u.completion_tokens))),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(db_err)?;
        ai_conversation::Entity::update_many()
            .col_expr(ai_conversation::Column::UpdatedAt, Expr::value(now))
            .filter(ai_conversation::Column::Id.eq(m.conversation_id))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(model.into())
    }

    /// Deletes a conversation and its messages; `true` when it existed.
    pub async fn delete_conversation(&self, id: i64) -> Result<bool> {
        // Messages go with it (ON DELETE CASCADE).
        let res = ai_conversation::Entity::delete_by_id(id)
            .exec(self.conn())
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected > 0)
    }
}
