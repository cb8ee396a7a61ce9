//! xiaozhi-esp32 devices: what lty knows of each device (board, firmware,
//! channel token, conversation), the HMAC keys of activation version 2 by
//! serial number, and firmware releases per board.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum XiaozhiDevices {
    Table,
    MacAddress,
    ClientId,
    BoardType,
    BoardName,
    FirmwareVersion,
    SerialNumber,
    ProtocolVersion,
    TokenHash,
    PrevTokenHash,
    ConversationId,
    ConversationAt,
    FirstSeenAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum XiaozhiDeviceKeys {
    Table,
    SerialNumber,
    KeyHex,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum FirmwareReleases {
    Table,
    Id,
    Board,
    Version,
    BlobKey,
    Size,
    Sha256,
    Notes,
    IsActive,
    CreatedBy,
    CreatedAt,
}

fn text<T: IntoIden>(name: T, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).null().to_owned()
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
                    .table(XiaozhiDevices::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(XiaozhiDevices::MacAddress)
                            .string_len(17)
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(XiaozhiDevices::ClientId, 64))
                    .col(text(XiaozhiDevices::BoardType, 64))
                    .col(text(XiaozhiDevices::BoardName, 64))
                    .col(text(XiaozhiDevices::FirmwareVersion, 64))
                    .col(text(XiaozhiDevices::SerialNumber, 64))
                    .col(
                        ColumnDef::new(XiaozhiDevices::ProtocolVersion)
                            .small_integer()
                            .null(),
                    )
                    .col(text(XiaozhiDevices::TokenHash, 64))
                    .col(text(XiaozhiDevices::PrevTokenHash, 64))
                    .col(
                        ColumnDef::new(XiaozhiDevices::ConversationId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(XiaozhiDevices::ConversationAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(timestamp(XiaozhiDevices::FirstSeenAt))
                    .col(timestamp(XiaozhiDevices::LastSeenAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(XiaozhiDeviceKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(XiaozhiDeviceKeys::SerialNumber)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(XiaozhiDeviceKeys::KeyHex)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(XiaozhiDeviceKeys::CreatedBy)
                            .big_integer()
                            .null(),
                    )
                    .col(timestamp(XiaozhiDeviceKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FirmwareReleases::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(FirmwareReleases::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(FirmwareReleases::Board)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FirmwareReleases::Version)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FirmwareReleases::BlobKey)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FirmwareReleases::Size)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FirmwareReleases::Sha256)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(text(FirmwareReleases::Notes, 1000))
                    .col(
                        ColumnDef::new(FirmwareReleases::IsActive)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(FirmwareReleases::CreatedBy)
                            .big_integer()
                            .null(),
                    )
                    .col(timestamp(FirmwareReleases::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("firmware_releases_board_version")
                    .table(FirmwareReleases::Table)
                    .col(FirmwareReleases::Board)
                    .col(FirmwareReleases::Version)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FirmwareReleases::Table.into_iden(),
            XiaozhiDeviceKeys::Table.into_iden(),
            XiaozhiDevices::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
