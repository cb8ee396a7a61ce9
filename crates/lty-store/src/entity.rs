//! SeaORM entities, one module per table.

pub mod achievement_definition;
pub mod achievement_progress;
pub mod admin;
pub mod admin_audit_log;
pub mod ai_conversation;
pub mod ai_message;
pub mod ai_persona;
pub mod card;
pub mod card_batch;
pub mod card_scan;
pub mod device_credential;
pub mod event_day;
pub mod event_hour;
pub mod firmware_release;
pub mod login_token;
pub mod plan;
pub mod social_account;
pub mod user;
pub mod user_achievement;
pub mod user_device;
pub mod user_subscription;
pub mod voice_chat_session;
pub mod xiaozhi_device;
pub mod xiaozhi_device_key;
