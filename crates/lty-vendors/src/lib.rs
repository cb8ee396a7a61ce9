//! Wire protocols of every outside service lty talks to, one module per
//! vendor: pure signing, encoding and parsing functions first, HTTP clients
//! with configurable base URLs beside them. No web framework, no database.
#![forbid(unsafe_code)]

pub mod aliyun;
mod asr_stream;
pub mod aws;
pub mod http;
pub mod openai;
mod sha256mac;
pub mod tencent;
pub mod volcengine;
pub mod wechat;
