//! Domain types, validation newtypes, errors and the port traits that the
//! storage and vendor adapters implement. Nothing here knows about HTTP, SQL
//! or Redis: the server wires adapters in at start-up.
#![forbid(unsafe_code)]

pub mod error;
pub mod mac;
pub mod ports;
pub mod token;
pub mod user;

pub use error::{BackendError, Error, Result};
pub use mac::MacAddress;
