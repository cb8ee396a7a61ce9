//! Unbinding keeps history: a binding ends with `unbound_at` instead of
//! being deleted, so an older binding of the MAC never comes back into force.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserDevices {
    Table,
    UnboundAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserDevices::Table)
                    .add_column(
                        ColumnDef::new(UserDevices::UnboundAt)
                            .timestamp_with_time_zone()
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
                    .table(UserDevices::Table)
                    .drop_column(UserDevices::UnboundAt)
                    .to_owned(),
            )
            .await
    }
}
