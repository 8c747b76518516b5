//! kube clients that send every request to a server over ONE multiplexed HTTP/2 connection.
//!
//! `kube::Client::try_from` speaks HTTP/1.1: each concurrent request (and each watch, for its
//! whole life) holds a TCP connection of its own, with TLS and HTTP buffers on both ends, and
//! the pool keeps them afterwards. A simulated member's ~17 watches were ~35 descriptors; the
//! hub's dispatch held ~40 connections per member. Flotilla's API servers negotiate `h2`, so
//! the clients built here open one connection per server and multiplex every request and watch
//! over it as HTTP/2 streams (bounded by the server's `SETTINGS_MAX_CONCURRENT_STREAMS`;
//! further requests wait for a stream).
//!
//! Everything else is kube's own: the same rustls configuration (CA, client certificate), the
//! base URI, auth (bearer token, refreshable tokens), extra and impersonation headers, and the
//! retry policy when the config asks for it ([`kube::client::ConfigExt`]). Timeouts keep their
//! meaning: `connect_timeout` bounds the TCP connect, `read_timeout` bounds the wait for each
//! response's headers (TLS handshake included), and HTTP/2 PINGs on a connection with open
//! streams close a connection whose peer stopped answering, which fails its requests and
//! watches at once (a watcher then reconnects on a fresh connection). `write_timeout` has no
//! HTTP/2 counterpart beyond flow control and is not applied.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt as _};
use tower::{BoxError, ServiceBuilder};

use crate::api_connector::{self, Protocol};

/// How often a connection with open streams is pinged.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a PING may go unanswered before the connection (and its streams) is closed.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// TLS sessions a client keeps for resumption.
const TLS_SESSIONS: usize = 4;

/// A [`kube::Client`] for `config` over one multiplexed HTTP/2 connection (see the module
/// docs). A config with a proxy or a TLS server name override gets kube's own HTTP/1.1 client,
/// which handles those.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return kube::Client::try_from(config);
    }
    let mut tls = config.rustls_client_config()?;
    // rustls's default cache of 256 sessions is ~13 KiB per client; one client reaches one
    // server over one connection at a time, so a few sessions are plenty.
    tls.resumption = rustls::client::Resumption::in_memory_sessions(TLS_SESSIONS);
    let https = api_connector::https_connector(&config, tls, Protocol::Http2);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .build::<_, Body>(https);
    let response_timeout = config.read_timeout;
    let send = tower::service_fn(move |request: http::Request<Body>| {
        api_connector::within(response_timeout, http.request(request))
    });
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(send);
    Ok(kube::Client::new(service, config.default_namespace))
}
