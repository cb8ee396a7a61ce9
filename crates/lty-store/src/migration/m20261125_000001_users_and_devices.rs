//! Users and device bindings.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    Nickname,
    AvatarUrl,
    Phone,
    IsActive,
    DateJoined,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserDevices {
    Table,
    Id,
    UserId,
    MacAddress,
    Name,
    BoundAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Users::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Users::Username)
                            .string_len(150)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Users::Nickname).string_len(64).null())
                    .col(ColumnDef::new(Users::AvatarUrl).string_len(1024).null())
                    .col(
                        ColumnDef::new(Users::Phone)
                            .string_len(20)
                            .null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Users::IsActive)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(Users::DateJoined)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserDevices::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(UserDevices::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(UserDevices::UserId).big_integer().not_null())
                    .col(
                        ColumnDef::new(UserDevices::MacAddress)
                            .string_len(17)
                            .not_null(),
                    )
                    .col(ColumnDef::new(UserDevices::Name).string_len(64).null())
                    .col(
                        ColumnDef::new(UserDevices::BoundAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_devices_user")
                            .from(UserDevices::Table, UserDevices::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "Latest binding for a MAC" is the hottest query: one index serves it.
        manager
            .create_index(
                Index::create()
                    .name("idx_user_devices_mac_bound_at")
                    .table(UserDevices::Table)
                    .col(UserDevices::MacAddress)
                    .col(UserDevices::BoundAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_devices_user")
                    .table(UserDevices::Table)
                    .col(UserDevices::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserDevices::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
