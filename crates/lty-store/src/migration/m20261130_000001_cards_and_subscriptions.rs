//! Plans (with the seeded `free` plan), users' subscription periods, card
//! batches, cards and card scans.
//!
//! Exactly-once redemption is `user_subscriptions.card_id UNIQUE`: the
//! period a card buys and the card's redemption are one row.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Plans {
    Table,
    Id,
    Code,
    Name,
    DailyAiMessages,
    DailyVoiceMinutes,
    Personas,
    PriceCents,
    Currency,
    IsActive,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserSubscriptions {
    Table,
    Id,
    UserId,
    PlanId,
    StartsAt,
    EndsAt,
    Source,
    CardId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CardBatches {
    Table,
    Id,
    Kind,
    Count,
    ContentRef,
    Payload,
    PlanId,
    Days,
    ExpiresAt,
    Notes,
    Disabled,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Cards {
    Table,
    Id,
    BatchId,
    Code,
    Disabled,
}

#[derive(DeriveIden)]
enum CardScans {
    Table,
    Id,
    CardId,
    UserId,
    MacAddress,
    ScannedAt,
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

fn index<const N: usize>(
    name: &str,
    table: impl IntoIden,
    cols: [DynIden; N],
) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table).if_not_exists();
    for col in cols {
        idx.col(col);
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .if_not_exists()
                    .col(id_col(Plans::Id))
                    .col(
                        ColumnDef::new(Plans::Code)
                            .string_len(32)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Plans::Name).string_len(64).not_null())
                    .col(ColumnDef::new(Plans::DailyAiMessages).integer().not_null())
                    .col(
                        ColumnDef::new(Plans::DailyVoiceMinutes)
                            .integer()
                            .not_null(),
                    )
                    // A JSON array of persona names.
                    .col(ColumnDef::new(Plans::Personas).text().not_null())
                    .col(ColumnDef::new(Plans::PriceCents).big_integer().not_null())
                    .col(ColumnDef::new(Plans::Currency).string_len(8).not_null())
                    .col(ColumnDef::new(Plans::IsActive).boolean().not_null())
                    .col(timestamp(Plans::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Plans::Table)
                    .columns([
                        Plans::Code,
                        Plans::Name,
                        Plans::DailyAiMessages,
                        Plans::DailyVoiceMinutes,
                        Plans::Personas,
                        Plans::PriceCents,
                        Plans::Currency,
                        Plans::IsActive,
                        Plans::CreatedAt,
                    ])
                    .values_panic([
                        "free".into(),
                        "Free".into(),
                        20.into(),
                        10.into(),
                        "[]".into(),
                        0i64.into(),
                        "CNY".into(),
                        true.into(),
                        chrono::Utc::now().into(),
                    ])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserSubscriptions::Table)
                    .if_not_exists()
                    .col(id_col(UserSubscriptions::Id))
                    .col(
                        ColumnDef::new(UserSubscriptions::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserSubscriptions::PlanId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(timestamp(UserSubscriptions::StartsAt))
                    .col(timestamp(UserSubscriptions::EndsAt))
                    .col(
                        ColumnDef::new(UserSubscriptions::Source)
                            .string_len(16)
                            .not_null(),
                    )
                    // The exactly-once rule of card redemption.
                    .col(
                        ColumnDef::new(UserSubscriptions::CardId)
                            .big_integer()
                            .null()
                            .unique_key(),
                    )
                    .col(timestamp(UserSubscriptions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserSubscriptions::Table, UserSubscriptions::PlanId)
                            .to(Plans::Table, Plans::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_user_subscriptions_user",
                UserSubscriptions::Table,
                [UserSubscriptions::UserId.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CardBatches::Table)
                    .if_not_exists()
                    .col(id_col(CardBatches::Id))
                    .col(ColumnDef::new(CardBatches::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(CardBatches::Count).integer().not_null())
                    .col(
                        ColumnDef::new(CardBatches::ContentRef)
                            .string_len(256)
                            .null(),
                    )
                    .col(ColumnDef::new(CardBatches::Payload).text().null())
                    .col(ColumnDef::new(CardBatches::PlanId).big_integer().null())
                    .col(ColumnDef::new(CardBatches::Days).integer().null())
                    .col(
                        ColumnDef::new(CardBatches::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(CardBatches::Notes).text().null())
                    .col(ColumnDef::new(CardBatches::Disabled).boolean().not_null())
                    .col(ColumnDef::new(CardBatches::CreatedBy).big_integer().null())
                    .col(timestamp(CardBatches::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CardBatches::Table, CardBatches::PlanId)
                            .to(Plans::Table, Plans::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Cards::Table)
                    .if_not_exists()
                    .col(id_col(Cards::Id))
                    .col(ColumnDef::new(Cards::BatchId).big_integer().not_null())
                    .col(
                        ColumnDef::new(Cards::Code)
                            .string_len(16)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Cards::Disabled).boolean().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Cards::Table, Cards::BatchId)
                            .to(CardBatches::Table, CardBatches::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_cards_batch",
                Cards::Table,
                [Cards::BatchId.into_iden(), Cards::Id.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CardScans::Table)
                    .if_not_exists()
                    .col(id_col(CardScans::Id))
                    .col(ColumnDef::new(CardScans::CardId).big_integer().not_null())
                    .col(ColumnDef::new(CardScans::UserId).big_integer().not_null())
                    .col(ColumnDef::new(CardScans::MacAddress).string_len(17).null())
                    .col(timestamp(CardScans::ScannedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CardScans::Table, CardScans::CardId)
                            .to(Cards::Table, Cards::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_card_scans_card",
                CardScans::Table,
                [CardScans::CardId.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_card_scans_user",
                CardScans::Table,
                [
                    CardScans::UserId.into_iden(),
                    CardScans::ScannedAt.into_iden(),
                ],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CardScans::Table.into_iden(),
            Cards::Table.into_iden(),
            CardBatches::Table.into_iden(),
            UserSubscriptions::Table.into_iden(),
            Plans::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
