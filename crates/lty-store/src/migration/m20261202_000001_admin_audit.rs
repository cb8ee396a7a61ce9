//! The admin audit log (`admin_audit_log`): one row per admin write and per
//! sensitive read. Rows are only ever inserted; nothing updates or deletes
//! them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdminAuditLog {
    Table,
    Id,
    AdminId,
    AdminUsername,
    Action,
    TargetType,
    TargetId,
    Details,
    Ip,
    RequestId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AdminAuditLog::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AdminAuditLog::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AdminAuditLog::AdminId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AdminAuditLog::AdminUsername)
                            .string_len(150)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AdminAuditLog::Action)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AdminAuditLog::TargetType)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AdminAuditLog::TargetId)
                            .string_len(128)
                            .null(),
                    )
                    .col(ColumnDef::new(AdminAuditLog::Details).text().not_null())
                    .col(ColumnDef::new(AdminAuditLog::Ip).string_len(45).null())
                    .col(
                        ColumnDef::new(AdminAuditLog::RequestId)
                            .string_len(128)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AdminAuditLog::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("idx_admin_audit_admin", vec![AdminAuditLog::AdminId]),
            ("idx_admin_audit_action", vec![AdminAuditLog::Action]),
            (
                "idx_admin_audit_target",
                vec![AdminAuditLog::TargetType, AdminAuditLog::TargetId],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(AdminAuditLog::Table).if_not_exists();
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AdminAuditLog::Table).to_owned())
            .await
    }
}
