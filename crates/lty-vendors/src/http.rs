//! The one way lty builds an outbound HTTP client: every vendor client here
//! and the blob adapters in lty-store call [`client`], stating only the
//! timeouts and redirect rule that differ between them.

use std::time::Duration;

/// What differs between lty's HTTP clients; [`Default`] is no timeouts and
/// no redirects.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientOptions {
    /// Cap on opening a connection (TCP and TLS); `None` leaves it to the OS.
    pub connect_timeout: Option<Duration>,
    /// Cap on a whole request, body included; `None` for streamed answers
    /// whose length is not known.
    pub timeout: Option<Duration>,
    /// Follow `3xx` answers (up to 10 hops). Vendor APIs never redirect a
    /// signed call, so their clients leave this off and see the `3xx`.
    pub follow_redirects: bool,
}

impl ClientOptions {
    /// Both timeouts, no redirects: what a vendor API client uses.
    pub fn timeouts(connect_timeout: Duration, timeout: Duration) -> Self {
        Self {
            connect_timeout: Some(connect_timeout),
            timeout: Some(timeout),
            follow_redirects: false,
        }
    }
}

/// A client with rustls (the only TLS backend lty builds), `TCP_NODELAY`
/// and reqwest's connection pool, and `opts`. Fails only when TLS cannot be
/// set up.
pub fn client(opts: ClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    let redirect = if opts.follow_redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tcp_nodelay(true)
        .redirect(redirect);
    if let Some(t) = opts.connect_timeout {
        builder = builder.connect_timeout(t);
    }
    if let Some(t) = opts.timeout {
        builder = builder.timeout(t);
    }
    builder.build()
}
