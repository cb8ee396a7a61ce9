//! Domain types, validation newtypes, errors and the port traits that the
//! storage and vendor adapters implement. Nothing here knows about HTTP, SQL
//! or Redis: the server wires adapters in at start-up.
#![forbid(unsafe_code)]

pub mod account;
pub mod achievement;
pub mod admin;
pub mod card;
pub mod chat;
pub mod credential;
pub mod error;
pub mod mac;
pub mod phone;
pub mod ports;
pub mod secret;
pub mod sms;
pub mod speech;
pub mod subscription;
pub mod token;
pub mod user;
pub mod voice_chat;
pub mod xiaozhi;

pub use error::{BackendError, Coded, Error, ErrorKind, Result};
pub use mac::MacAddress;
pub use phone::PhoneNumber;
