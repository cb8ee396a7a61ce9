//! SeaORM entities, one module per table.

pub mod admin;
pub mod device_credential;
pub mod social_account;
pub mod user;
pub mod user_device;
pub mod voice_chat_session;
