//! `users`: family accounts.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub username: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    #[sea_orm(unique)]
    pub phone: Option<String>,
    pub is_active: bool,
    pub date_joined: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::user_device::Entity")]
    UserDevice,
}

impl Related<super::user_device::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserDevice.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for lty_core::user::User {
    fn from(m: Model) -> Self {
        Self {
            id: m.id,
            username: m.username,
            nickname: m.nickname,
            avatar_url: m.avatar_url,
            phone: m.phone,
            is_active: m.is_active,
            date_joined: m.date_joined,
        }
    }
}
