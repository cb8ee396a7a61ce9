//! `user_devices`: bindings of device MACs to users, kept as history. The
//! binding with the latest `bound_at` for a MAC is the one in force.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_devices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// Normalised: lower case with colons.
    pub mac_address: String,
    pub name: Option<String>,
    pub bound_at: DateTimeUtc,
    /// Set when the binding was ended; the MAC is then unbound unless a
    /// newer binding exists.
    pub unbound_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
