//! What the object-store fakes ([`super::aliyun_oss`], [`super::s3`])
//! share: an in-memory bucket with a movable clock, the log of what it
//! answered, and the running fake's accessors. Each fake adds its own
//! protocol (signatures, error XML) and `start`/`configure`.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::handler::Handler;

use super::FakeServer;

/// A stored object.
#[derive(Debug, Clone)]
pub struct Object {
    pub data: Bytes,
    pub content_type: String,
}

/// A bucket's state, shared by the fake's handler and the test.
#[derive(Default)]
pub struct Bucket {
    pub objects: BTreeMap<String, Object>,
    /// Error codes answered, oldest first.
    pub errors: Vec<String>,
    /// Accepted requests, e.g. `PUT key`, `GET key (presigned)`.
    pub requests: Vec<String>,
    /// Seconds added to the real clock.
    pub offset: i64,
    /// Anonymous GETs allowed (a public-read bucket).
    pub public_read: bool,
}

impl Bucket {
    /// Unix seconds on the fake's (movable) clock.
    pub fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        i64::try_from(real).unwrap() + self.offset
    }
}

/// A running object-store fake speaking protocol `P`; stopped when dropped.
pub struct FakeBucket<P> {
    server: FakeServer,
    pub(super) inner: Arc<Mutex<Bucket>>,
    protocol: PhantomData<P>,
}

impl<P> FakeBucket<P> {
    /// Serves an empty bucket with `handler` answering every request.
    pub(super) async fn serve<H, T>(handler: H) -> Self
    where
        H: Handler<T, Arc<Mutex<Bucket>>>,
        T: 'static,
    {
        let inner: Arc<Mutex<Bucket>> = Arc::default();
        Self {
            server: FakeServer::start_handler(handler, inner.clone()).await,
            inner,
            protocol: PhantomData,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Lets anonymous GETs through, as a public-read bucket does.
    pub fn set_public_read(&self, public: bool) {
        self.inner.lock().unwrap().public_read = public;
    }

    /// Moves the fake's clock by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.inner.lock().unwrap().offset += seconds;
    }

    /// The keys stored, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.inner.lock().unwrap().objects.keys().cloned().collect()
    }

    pub fn object(&self, key: &str) -> Option<Object> {
        self.inner.lock().unwrap().objects.get(key).cloned()
    }

    /// Error codes answered, oldest first.
    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().unwrap().errors.clone()
    }

    /// Accepted requests, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }
}

/// `%XX`-decodes `s`; `None` when an escape is bad or the result is not
/// UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `name=value` pairs of a query string, `%XX`-decoded; `None` when one
/// does not decode.
pub fn decode_query(query: Option<&str>) -> Option<Vec<(String, String)>> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (n, v) = part.split_once('=').unwrap_or((part, ""));
            Some((percent_decode(n)?, percent_decode(v)?))
        })
        .collect()
}
