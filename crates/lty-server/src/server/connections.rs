//! What keeps one client from exhausting the server: the open-file limit
//! raised at start, the global connection ceiling with its reserve for
//! `/healthz`, `/readyz` and `/metrics`, and the per-family and per-IP caps
//! on device sockets. See docs/security.md.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force afterwards (`None` when it cannot be read, or is
/// unlimited). Logs what it did.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (before.current, before.maximum) else {
        tracing::info!("open-file limit: unlimited");
        return None;
    };
    let target = hard.unwrap_or(soft);
    if target <= soft {
        tracing::info!(limit = soft, "open-file limit already at the hard limit");
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(
                from = soft,
                to = target,
                "open-file limit raised to the hard limit"
            );
            Some(target)
        }
        Err(err) => {
            tracing::warn!(%err, limit = soft, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

/// The connection ceiling derived from an open-file limit: what is left
/// after a tenth (at least 64) for the database, Redis, files and vendor
/// calls, and after the reserve.
pub fn ceiling_for(open_files: Option<u64>, reserve: usize) -> usize {
    let Some(limit) = open_files.and_then(|l| usize::try_from(l).ok()) else {
        return 1_000_000;
    };
    let headroom = (limit / 10).max(64);
    limit
        .saturating_sub(headroom)
        .saturating_sub(reserve)
        .max(1)
}

/// Open connections against the ceiling.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    max: usize,
    reserve: usize,
}

/// A connection let in, and whether it came in on the reserve.
#[derive(Debug)]
pub struct Admitted {
    pub guard: ConnectionGuard,
    /// Past the ceiling: this connection may only reach the health routes.
    pub reserve_only: bool,
}

impl Connections {
    pub fn new(max: usize, reserve: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
            reserve,
        })
    }

    /// The ceiling in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Counts a new connection, or `None` when even the reserve is full
    /// (the caller closes it).
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = ConnectionGuard(self.clone());
        if n > self.max.saturating_add(self.reserve) {
            metrics::counter!("lty_http_connections_refused_total").increment(1);
            return None;
        }
        let reserve_only = n > self.max;
        Some(Admitted {
            guard,
            reserve_only,
        })
    }
}

/// Holds one place under the ceiling until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Connections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that holds its place under the ceiling for as long as it is
/// open, through an HTTP connection and any WebSocket it is upgraded to.
#[derive(Debug)]
pub struct CountedIo<T> {
    // Declared first so it is dropped first: the place is free before the
    // peer sees the close.
    _guard: ConnectionGuard,
    _gauge: GaugeGuard,
    inner: T,
}

/// Lowers the open-connections gauge when the socket goes.
#[derive(Debug)]
struct GaugeGuard;

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!("lty_http_open_connections").decrement(1.0);
    }
}

impl<T> CountedIo<T> {
    pub fn new(inner: T, guard: ConnectionGuard) -> Self {
        metrics::gauge!("lty_http_open_connections").increment(1.0);
        Self {
            inner,
            _guard: guard,
            _gauge: GaugeGuard,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether a path is one of the routes the reserve keeps answering.
pub fn is_health_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Open sockets per family and per client IP on this instance: device
/// sockets and xiaozhi channels together.
#[derive(Debug, Default)]
pub struct SocketCaps {
    per_user: Counts<i64>,
    per_ip: Counts<IpAddr>,
}

/// Which cap refused a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapExceeded {
    User,
    Ip,
}

/// Holds a socket's places under both caps until dropped.
#[derive(Debug)]
pub struct SocketSlot {
    caps: Arc<SocketCaps>,
    user_id: Option<i64>,
    ip: Option<IpAddr>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        if let Some(user_id) = &self.user_id {
            self.caps.per_user.release(user_id);
        }
        if let Some(ip) = &self.ip {
            self.caps.per_ip.release(ip);
        }
    }
}

impl SocketCaps {
    /// Takes a place for a socket of family `user_id` (`None`: a device
    /// bound to no family, not counted per family) from `ip` (`None`: not
    /// counted per IP), or says which cap is full. A cap of 0 is no cap.
    pub fn take(
        self: &Arc<Self>,
        user_id: Option<i64>,
        ip: Option<IpAddr>,
        max_per_user: usize,
        max_per_ip: usize,
    ) -> Result<SocketSlot, CapExceeded> {
        if let Some(user_id) = user_id
            && !self.per_user.take(user_id, max_per_user)
        {
            return Err(CapExceeded::User);
        }
        if let Some(ip) = ip
            && !self.per_ip.take(ip, max_per_ip)
        {
            if let Some(user_id) = &user_id {
                self.per_user.release(user_id);
            }
            return Err(CapExceeded::Ip);
        }
        Ok(SocketSlot {
            caps: self.clone(),
            user_id,
            ip,
        })
    }
}

/// Counts by key; keys at zero are removed so the map stays small.
#[derive(Debug)]
struct Counts<K>(Mutex<HashMap<K, usize>>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq + Copy> Counts<K> {
    fn take(&self, key: K, max: usize) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        if max > 0 && *n >= max {
            if *n == 0 {
                map.remove(&key);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, key: &K) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_leaves_room_for_other_files_and_the_reserve() {
        assert_eq!(ceiling_for(Some(1024), 32), 1024 - 102 - 32);
        assert_eq!(ceiling_for(Some(256), 32), 256 - 64 - 32);
        assert_eq!(ceiling_for(Some(10), 32), 1);
        assert_eq!(ceiling_for(None, 32), 1_000_000);
    }

    #[test]
    fn connections_past_the_ceiling_use_the_reserve_then_are_refused() {
        let c = Connections::new(2, 1);
        let a = c.admit().unwrap();
        let b = c.admit().unwrap();
        assert!(!a.reserve_only && !b.reserve_only);
        let r = c.admit().unwrap();
        assert!(r.reserve_only);
        assert!(c.admit().is_none());
        drop(a);
        assert!(c.admit().unwrap().reserve_only);
        drop(r);
        drop(b);
        assert!(!c.admit().unwrap().reserve_only);
    }

    #[test]
    fn socket_caps_count_per_user_and_per_ip_and_free_on_drop() {
        let caps = Arc::new(SocketCaps::default());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = caps.take(Some(1), Some(ip), 2, 3).unwrap();
        let _b = caps.take(Some(1), Some(ip), 2, 3).unwrap();
        assert_eq!(
            caps.take(Some(1), Some(ip), 2, 3).unwrap_err(),
            CapExceeded::User
        );
        let _c = caps.take(Some(2), Some(ip), 2, 3).unwrap();
        assert_eq!(
            caps.take(Some(3), Some(ip), 2, 3).unwrap_err(),
            CapExceeded::Ip
        );
        // A refused per-IP place gives back its per-user place.
        drop(a);
        assert!(caps.take(Some(3), None, 2, 3).is_ok());
        let _d = caps.take(Some(1), Some(ip), 2, 3).unwrap();
        // A socket of no family counts per IP only: the address is full.
        assert_eq!(
            caps.take(None, Some(ip), 2, 3).unwrap_err(),
            CapExceeded::Ip
        );
        assert!(caps.take(None, None, 2, 3).is_ok());
    }
}
