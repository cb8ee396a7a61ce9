//! `login_tokens`: user and admin login tokens of the embedded mode, kept
//! in the database so sessions survive a restart. Only a SHA-256 of each
//! token is stored. Production keeps tokens in Redis and leaves this table
//! empty.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LoginTokens {
    Table,
    TokenHash,
    Kind,
    Subject,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginTokens::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(LoginTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(LoginTokens::Kind).string_len(16).not_null())
                    .col(
                        ColumnDef::new(LoginTokens::Subject)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LoginTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_tokens_expires_at")
                    .table(LoginTokens::Table)
                    .col(LoginTokens::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginTokens::Table).to_owned())
            .await
    }
}
