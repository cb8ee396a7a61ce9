//! A voice agent's turns are stored like any other conversation: the
//! session remembers the conversation its first turn started.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VoiceChatSessions {
    Table,
    ConversationId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(VoiceChatSessions::Table)
                    .add_column(
                        ColumnDef::new(VoiceChatSessions::ConversationId)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(VoiceChatSessions::Table)
                    .drop_column(VoiceChatSessions::ConversationId)
                    .to_owned(),
            )
            .await
    }
}
