//! Accounts and authentication: WeChat identities (`social_accounts`),
//! operator accounts (`admins`) and per-device secrets
//! (`device_credentials`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SocialAccounts {
    Table,
    Id,
    UserId,
    Provider,
    AppId,
    Openid,
    Unionid,
    Nickname,
    AvatarUrl,
    RawProfile,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Admins {
    Table,
    Id,
    Username,
    PasswordHash,
    Role,
    IsActive,
    FailedAttempts,
    LockedUntil,
    LastLoginAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeviceCredentials {
    Table,
    Id,
    MacAddress,
    Secret,
    CreatedBy,
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SocialAccounts::Table)
                    .if_not_exists()
                    .col(id_col(SocialAccounts::Id))
                    .col(
                        ColumnDef::new(SocialAccounts::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SocialAccounts::Provider)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SocialAccounts::AppId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SocialAccounts::Openid)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SocialAccounts::Unionid)
                            .string_len(128)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SocialAccounts::Nickname)
                            .string_len(128)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SocialAccounts::AvatarUrl)
                            .string_len(1024)
                            .null(),
                    )
                    .col(ColumnDef::new(SocialAccounts::RawProfile).text().null())
                    .col(timestamp(SocialAccounts::CreatedAt))
                    .col(timestamp(SocialAccounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_social_accounts_user")
                            .from(SocialAccounts::Table, SocialAccounts::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One identity per (provider, AppID, openid): two concurrent first
        // logins cannot both insert it.
        manager
            .create_index(
                Index::create()
                    .name("uq_social_accounts_identity")
                    .table(SocialAccounts::Table)
                    .col(SocialAccounts::Provider)
                    .col(SocialAccounts::AppId)
                    .col(SocialAccounts::Openid)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_social_accounts_unionid")
                    .table(SocialAccounts::Table)
                    .col(SocialAccounts::Provider)
                    .col(SocialAccounts::Unionid)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_social_accounts_user")
                    .table(SocialAccounts::Table)
                    .col(SocialAccounts::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Admins::Table)
                    .if_not_exists()
                    .col(id_col(Admins::Id))
                    .col(
                        ColumnDef::new(Admins::Username)
                            .string_len(150)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Admins::PasswordHash)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Admins::Role).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Admins::IsActive)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(Admins::FailedAttempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Admins::LockedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Admins::LastLoginAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(timestamp(Admins::CreatedAt))
                    .col(timestamp(Admins::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceCredentials::Table)
                    .if_not_exists()
                    .col(id_col(DeviceCredentials::Id))
                    .col(
                        ColumnDef::new(DeviceCredentials::MacAddress)
                            .string_len(17)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(DeviceCredentials::Secret)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeviceCredentials::CreatedBy)
                            .big_integer()
                            .not_null(),
                    )
                    .col(timestamp(DeviceCredentials::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DeviceCredentials::Table.into_iden(),
            Admins::Table.into_iden(),
            SocialAccounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
