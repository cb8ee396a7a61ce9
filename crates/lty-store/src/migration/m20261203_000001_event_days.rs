//! `event_days`: the total of each countable event kind (`chat_message`,
//! `voice_minutes`, `card_scanned`, ...) per UTC day, over all users, for
//! the operators' per-day statistics.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EventDays {
    Table,
    Day,
    EventKind,
    Total,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventDays::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(EventDays::Day).string_len(10).not_null())
                    .col(
                        ColumnDef::new(EventDays::EventKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EventDays::Total).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(EventDays::Day)
                            .col(EventDays::EventKind),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventDays::Table).to_owned())
            .await
    }
}
