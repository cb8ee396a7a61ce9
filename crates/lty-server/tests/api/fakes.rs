//! In-process fakes of outside services, speaking their real wire
//! protocols (signatures recomputed, vendor error shapes).

pub mod aliyun_nls;
pub mod aliyun_oss;
pub mod aliyun_sms;
pub mod aliyun_vi;
pub mod huoshan;
pub mod openai;
pub mod s3;
pub mod sls;
pub mod tencent;
pub mod volcengine;
pub mod wechat;
