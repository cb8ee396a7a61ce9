//! AI chat: personas (seeded with the default children's companion),
//! conversations and their messages with per-message token usage.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AiPersonas {
    Table,
    Id,
    Slug,
    Name,
    SystemPrompt,
    Greeting,
    VoiceId,
    AgeMin,
    AgeMax,
    IsDefault,
    IsActive,
}

#[derive(DeriveIden)]
enum AiConversations {
    Table,
    Id,
    UserId,
    PersonaId,
    Title,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiMessages {
    Table,
    Id,
    ConversationId,
    Role,
    Content,
    Incomplete,
    Moderated,
    PromptTokens,
    CompletionTokens,
    CreatedAt,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

fn timestamp<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

const DEFAULT_PROMPT: &str = "你是「小贝」，一个温暖、耐心、爱讲故事的小伙伴，陪伴 3 到 10 岁的小朋友聊天。\
用简单、积极的短句回答，多鼓励，多提问，适合朗读出来。\
不知道的事情就说不知道；遇到危险或让人难过的事情，请小朋友去找爸爸妈妈或老师。";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AiPersonas::Table)
                    .if_not_exists()
                    .col(id_col(AiPersonas::Id))
                    .col(
                        ColumnDef::new(AiPersonas::Slug)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(AiPersonas::Name).string_len(64).not_null())
                    .col(ColumnDef::new(AiPersonas::SystemPrompt).text().not_null())
                    .col(ColumnDef::new(AiPersonas::Greeting).text().not_null())
                    .col(ColumnDef::new(AiPersonas::VoiceId).string_len(128).null())
                    .col(ColumnDef::new(AiPersonas::AgeMin).integer().not_null())
                    .col(ColumnDef::new(AiPersonas::AgeMax).integer().not_null())
                    .col(ColumnDef::new(AiPersonas::IsDefault).boolean().not_null())
                    .col(ColumnDef::new(AiPersonas::IsActive).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AiPersonas::Table)
                    .columns([
                        AiPersonas::Slug,
                        AiPersonas::Name,
                        AiPersonas::SystemPrompt,
                        AiPersonas::Greeting,
                        AiPersonas::AgeMin,
                        AiPersonas::AgeMax,
                        AiPersonas::IsDefault,
                        AiPersonas::IsActive,
                    ])
                    .values_panic([
                        "xiaobei".into(),
                        "小贝".into(),
                        DEFAULT_PROMPT.into(),
                        "你好呀，我是小贝！今天想聊点什么呢？".into(),
                        3.into(),
                        10.into(),
                        true.into(),
                        true.into(),
                    ])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AiConversations::Table)
                    .if_not_exists()
                    .col(id_col(AiConversations::Id))
                    .col(
                        ColumnDef::new(AiConversations::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AiConversations::PersonaId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AiConversations::Title)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(timestamp(AiConversations::CreatedAt))
                    .col(timestamp(AiConversations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AiConversations::Table, AiConversations::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AiConversations::Table, AiConversations::PersonaId)
                            .to(AiPersonas::Table, AiPersonas::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ai_conversations_user_updated")
                    .table(AiConversations::Table)
                    .col(AiConversations::UserId)
                    .col(AiConversations::UpdatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AiMessages::Table)
                    .if_not_exists()
                    .col(id_col(AiMessages::Id))
                    .col(
                        ColumnDef::new(AiMessages::ConversationId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AiMessages::Role).string_len(16).not_null())
                    .col(ColumnDef::new(AiMessages::Content).text().not_null())
                    .col(ColumnDef::new(AiMessages::Incomplete).boolean().not_null())
                    .col(ColumnDef::new(AiMessages::Moderated).boolean().not_null())
                    .col(ColumnDef::new(AiMessages::PromptTokens).integer().null())
                    .col(
                        ColumnDef::new(AiMessages::CompletionTokens)
                            .integer()
                            .null(),
                    )
                    .col(timestamp(AiMessages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AiMessages::Table, AiMessages::ConversationId)
                            .to(AiConversations::Table, AiConversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ai_messages_conversation")
                    .table(AiMessages::Table)
                    .col(AiMessages::ConversationId)
                    .col(AiMessages::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AiMessages::Table.into_iden(),
            AiConversations::Table.into_iden(),
            AiPersonas::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
