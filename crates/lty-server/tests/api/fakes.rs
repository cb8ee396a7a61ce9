//! In-process fakes of outside services, speaking their real wire
//! protocols (signatures recomputed, vendor error shapes).

pub mod aliyun_sms;
pub mod openai;
pub mod tencent;
pub mod volcengine;
pub mod wechat;
