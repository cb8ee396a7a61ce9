//! `admin_audit_log.outcome`: `pending` when an entry is written ahead of
//! its action, then `ok`, `refused` or `failed`. Older entries keep `NULL`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdminAuditLog {
    Table,
    Outcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AdminAuditLog::Table)
                    .add_column(ColumnDef::new(AdminAuditLog::Outcome).string_len(16).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AdminAuditLog::Table)
                    .drop_column(AdminAuditLog::Outcome)
                    .to_owned(),
            )
            .await
    }
}
