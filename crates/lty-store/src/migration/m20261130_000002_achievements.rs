//! Achievements: definitions (seeded with a starter set), per-user running
//! totals of each event kind, and unlocks (unique per user and
//! achievement, so unlocking is idempotent).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AchievementDefinitions {
    Table,
    Id,
    Code,
    Name,
    Description,
    Icon,
    EventKind,
    Threshold,
    IsActive,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AchievementProgress {
    Table,
    UserId,
    EventKind,
    Total,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserAchievements {
    Table,
    Id,
    UserId,
    AchievementId,
    UnlockedAt,
}

const STARTERS: &[(&str, &str, &str, &str, i64)] = &[
    (
        "first_card",
        "First card",
        "Scan your first card",
        "card_scanned",
        1,
    ),
    (
        "card_collector",
        "Card collector",
        "Scan 10 cards",
        "card_scanned",
        10,
    ),
    (
        "first_chat",
        "Hello!",
        "Send your first message",
        "chat_message",
        1,
    ),
    (
        "chatterbox",
        "Chatterbox",
        "Send 100 messages",
        "chat_message",
        100,
    ),
    (
        "voice_explorer",
        "Voice explorer",
        "Talk for 60 minutes",
        "voice_minutes",
        60,
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AchievementDefinitions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AchievementDefinitions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::Code)
                            .string_len(32)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::Name)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::Description)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::Icon)
                            .string_len(256)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::EventKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::Threshold)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::IsActive)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementDefinitions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        let mut insert = Query::insert();
        insert.into_table(AchievementDefinitions::Table).columns([
            AchievementDefinitions::Code,
            AchievementDefinitions::Name,
            AchievementDefinitions::Description,
            AchievementDefinitions::EventKind,
            AchievementDefinitions::Threshold,
            AchievementDefinitions::IsActive,
            AchievementDefinitions::CreatedAt,
        ]);
        let now = chrono::Utc::now();
        for &(code, name, description, kind, threshold) in STARTERS {
            insert.values_panic([
                code.into(),
                name.into(),
                description.into(),
                kind.into(),
                threshold.into(),
                true.into(),
                now.into(),
            ]);
        }
        manager.exec_stmt(insert).await?;

        manager
            .create_table(
                Table::create()
                    .table(AchievementProgress::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AchievementProgress::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementProgress::EventKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementProgress::Total)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AchievementProgress::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AchievementProgress::UserId)
                            .col(AchievementProgress::EventKind),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserAchievements::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(UserAchievements::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UserAchievements::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserAchievements::AchievementId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserAchievements::UnlockedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserAchievements::Table, UserAchievements::AchievementId)
                            .to(AchievementDefinitions::Table, AchievementDefinitions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_user_achievements_user_achievement")
                    .table(UserAchievements::Table)
                    .col(UserAchievements::UserId)
                    .col(UserAchievements::AchievementId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserAchievements::Table.into_iden(),
            AchievementProgress::Table.into_iden(),
            AchievementDefinitions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
