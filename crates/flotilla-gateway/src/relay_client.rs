//! The client that relays requests to one member's API server (its service proxy).
//!
//! A `kube::Client` puts a `tower::buffer::Buffer` in front of its stack: every request is
//! handed over a channel to a worker task, and the impersonating wrapper adds a second one.
//! On the gateway's request path each hand-off is a task wake-up, so the relay calls kube's
//! own layers (base URI, auth, extra and impersonation headers, from the same
//! [`kube::Config`]) directly over [`MemberConnections`]: the member's HTTP/1.1 keep-alive
//! connections (kube's rustls configuration, TCP_NODELAY), each a hyper
//! `client::conn::http1` connection kept in a short list, instead of `hyper_util`'s pooled
//! legacy client (keyed pool, checkout futures and connect races that cost more per request
//! than this one-authority list; docs/benchmarks.md, "the per-request work").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_controllers::api_connector::{self, Protocol};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use kube::client::ConfigExt as _;
use parking_lot::Mutex;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt as _};

/// The request body the gateway relays (collected, so a retry can send it again).
pub(crate) type RelayBody = Full<Bytes>;

type Stack = BoxCloneSyncService<Request<RelayBody>, Response<Incoming>, BoxError>;

/// What sending one request on a member's connections returns.
type Sending = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

/// Idle connections kept per member; more in flight at once are closed when done.
const MAX_IDLE: usize = 64;
/// An idle connection older than this is not reused (the member's server may be closing it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends requests to one member as `config` says (URL, TLS, credentials, impersonation).
#[derive(Clone)]
pub(crate) struct RelayClient {
    stack: Stack,
    read_timeout: Option<Duration>,
}

impl RelayClient {
    /// A client for `config`, over HTTP/1.1 keep-alive connections (one per request in
    /// flight; measured faster than one multiplexed HTTP/2 connection here).
    pub(crate) fn new(config: &kube::Config) -> Result<Self, kube::Error> {
        let tls = config.rustls_client_config()?;
        let https = api_connector::https_connector(config, tls, Protocol::Http1);
        let stack = ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer()?)
            .layer(config.extra_headers_layer()?)
            .service(MemberConnections::new(https));
        Ok(RelayClient {
            stack: BoxCloneSyncService::new(stack),
            read_timeout: config.read_timeout,
        })
    }

    /// Sends `request` (its URI a path on the member) and waits for the response headers.
    pub(crate) async fn send(
        &self,
        request: Request<RelayBody>,
    ) -> Result<Response<Incoming>, BoxError> {
        api_connector::within(self.read_timeout, self.stack.clone().oneshot(request)).await
    }
}

/// Connecting to the member failed: the request was not sent.
#[derive(Debug, thiserror::Error)]
#[error("connecting: {0}")]
pub(crate) struct ConnectError(#[source] pub(crate) BoxError);

/// The request could not be made for the member (a header it needs cannot be built): the
/// request's own fault, not the member's, and no other member would take it either.
#[derive(Debug, thiserror::Error)]
#[error("building the request")]
pub(crate) struct RequestError(#[source] pub(crate) BoxError);

/// One member's keep-alive connections: a request takes an idle one that is ready (or
/// connects), sends, and puts it back once the response headers are in; it is ready again
/// when that response's body has been read to the end.
#[derive(Clone)]
pub(crate) struct MemberConnections {
    inner: Arc<Connections>,
}

struct Connections {
    connector: HttpsConnector<HttpConnector>,
    idle: Mutex<Vec<(SendRequest<RelayBody>, Instant)>>,
}

impl MemberConnections {
    fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        MemberConnections {
            inner: Arc::new(Connections {
                connector,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl Connections {
    /// An idle connection ready for a request; closed and stale ones are dropped.
    fn take_ready(&self) -> Option<SendRequest<RelayBody>> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        idle.retain(|(c, since)| !c.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT);
        let at = idle.iter().position(|(c, _)| c.is_ready())?;
        Some(idle.swap_remove(at).0)
    }

    fn put_back(&self, connection: SendRequest<RelayBody>) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE && !connection.is_closed() {
            idle.push((connection, Instant::now()));
        }
    }

    /// A new connection to `uri`'s scheme and authority, its task spawned.
    async fn connect(&self, uri: Uri) -> Result<SendRequest<RelayBody>, BoxError> {
        let io = self
            .connector
            .clone()
            .oneshot(uri)
            .await
            .map_err(ConnectError)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| ConnectError(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "member connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `request` (absolute URI) in origin form with its Host, on an idle connection;
    /// if that one turns out closed before the request went out, on a new one.
    async fn send(&self, request: Request<RelayBody>) -> Result<Response<Incoming>, BoxError> {
        let (mut parts, body) = request.into_parts();
        let target = parts.uri.clone();
        if let Some(authority) = target.authority() {
            parts.headers.insert(
                header::HOST,
                HeaderValue::from_str(authority.as_str()).map_err(|e| RequestError(e.into()))?,
            );
        }
        parts.uri = match target.path_and_query() {
            Some(p) => Uri::from(p.clone()),
            None => Uri::from_static("/"),
        };
        let mut request = Request::from_parts(parts, body);
        if let Some(mut connection) = self.take_ready() {
            match connection.try_send_request(request).await {
                Ok(response) => {
                    self.put_back(connection);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    // Never written (the connection was closing): send it on a new one.
                    Some(unsent) => request = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut connection = self.connect(target).await?;
        let response = connection.send_request(request).await?;
        self.put_back(connection);
        Ok(response)
    }
}

impl Service<Request<RelayBody>> for MemberConnections {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Sending;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RelayBody>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(request).await })
    }
}
