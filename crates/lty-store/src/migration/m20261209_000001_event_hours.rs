//! `event_hours`: the total of each countable event kind per UTC hour
//! (`YYYY-MM-DD HH`), over all users, for the operators' rolling 24-hour
//! statistics (`event_days` keeps the per-day totals).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EventHours {
    Table,
    Hour,
    EventKind,
    Total,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventHours::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(EventHours::Hour).string_len(13).not_null())
                    .col(
                        ColumnDef::new(EventHours::EventKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EventHours::Total).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(EventHours::Hour)
                            .col(EventHours::EventKind),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventHours::Table).to_owned())
            .await
    }
}
