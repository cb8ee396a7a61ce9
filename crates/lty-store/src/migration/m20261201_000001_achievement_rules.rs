//! Achievement rules: `rule` on definitions (`total`, the default, or
//! `streak`), and starter achievements for days active in a row.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AchievementDefinitions {
    Table,
    Code,
    Name,
    Description,
    EventKind,
    Threshold,
    Rule,
    IsActive,
    CreatedAt,
}

const STARTERS: &[(&str, &str, &str, i64)] = &[
    (
        "three_days",
        "Three in a row",
        "Play on three days in a row",
        3,
    ),
    ("week_streak", "A whole week", "Play seven days in a row", 7),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AchievementDefinitions::Table)
                    .add_column(
                        ColumnDef::new(AchievementDefinitions::Rule)
                            .string_len(16)
                            .not_null()
                            .default("total"),
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
            AchievementDefinitions::Rule,
            AchievementDefinitions::IsActive,
            AchievementDefinitions::CreatedAt,
        ]);
        let now = chrono::Utc::now();
        for &(code, name, description, threshold) in STARTERS {
            insert.values_panic([
                code.into(),
                name.into(),
                description.into(),
                "active_day".into(),
                threshold.into(),
                "streak".into(),
                true.into(),
                now.into(),
            ]);
        }
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let codes: Vec<&str> = STARTERS.iter().map(|s| s.0).collect();
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(AchievementDefinitions::Table)
                    .and_where(Expr::col(AchievementDefinitions::Code).is_in(codes))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AchievementDefinitions::Table)
                    .drop_column(AchievementDefinitions::Rule)
                    .to_owned(),
            )
            .await
    }
}
