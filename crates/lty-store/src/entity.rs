//! SeaORM entities, one module per table.

pub mod user;
pub mod user_device;
