//! Voice-chat sessions (the sweeper's registry of running agents).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VoiceChatSessions {
    Table,
    TaskId,
    UserId,
    RoomId,
    AgentUserId,
    Status,
    StartedAt,
    OfflineSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VoiceChatSessions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(VoiceChatSessions::TaskId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    // No foreign key: a session must stay recorded (and be
                    // stopped) even if its user is deleted meanwhile.
                    .col(
                        ColumnDef::new(VoiceChatSessions::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VoiceChatSessions::RoomId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VoiceChatSessions::AgentUserId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VoiceChatSessions::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VoiceChatSessions::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VoiceChatSessions::OfflineSince)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_voice_chat_sessions_user")
                    .table(VoiceChatSessions::Table)
                    .col(VoiceChatSessions::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VoiceChatSessions::Table).to_owned())
            .await
    }
}
