//! In-process fakes of outside services, speaking their real wire
//! protocols (signatures recomputed, vendor error shapes), each served by a
//! [`FakeServer`], and the few helpers several of them use.

use std::net::SocketAddr;

use axum::handler::Handler;
use axum::http::HeaderMap;
use tokio::task::JoinHandle;

pub mod aliyun_nls;
pub mod aliyun_oss;
pub mod aliyun_sms;
pub mod aliyun_vi;
pub mod bucket;
pub mod huoshan;
pub mod openai;
pub mod s3;
pub mod sls;
pub mod tencent;
pub mod volcengine;
pub mod wechat;

/// A fake's HTTP server on `127.0.0.1`, stopped when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Serves `app` on a free port.
    pub async fn start(app: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, task }
    }

    /// Serves `handler`, with `state`, for every method and path.
    pub async fn start_handler<H, T, S>(handler: H, state: S) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        Self::start(axum::Router::new().fallback(handler).with_state(state)).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a fake's WebSocket connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client sent a WebSocket close frame.
    CloseFrame,
    /// The connection broke or was dropped without a close frame.
    Lost,
    /// The fake dropped it (scripted).
    DroppedByFake,
}

/// A request header as text; `""` when it is absent or not visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A 440 Hz sine tone of `ms` milliseconds, 16-bit mono PCM at `rate` Hz.
pub fn tone(ms: usize, rate: usize) -> Vec<u8> {
    (0..ms * rate / 1000)
        .flat_map(|i| {
            let v = ((i as f64) * 440.0 * std::f64::consts::TAU / rate as f64).sin() * 8000.0;
            (v as i16).to_le_bytes()
        })
        .collect()
}
