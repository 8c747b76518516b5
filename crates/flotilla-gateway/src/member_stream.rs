//! One member's API server as the hand-written relay reaches it: persistent TLS connections
//! (kube's rustls configuration, TCP_NODELAY, the config's connect timeout, through the same
//! connector Flotilla's kube clients use), kept in a short idle list, and the request-head
//! lines every relayed request carries (Host, then the `Authorization` and `Impersonate-*`
//! headers), taken from kube's own layers (base URI, auth, extra headers) run over a probe
//! request, so they are exactly what a `kube::Client` with the same config would send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_controllers::api_connector::{self, Protocol};
use futures::FutureExt as _;
use http::{Request, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use kube::client::ConfigExt as _;
use parking_lot::{Mutex, RwLock};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

use crate::http1_framing::ReadBuf;
use crate::http1_head::put_header;

/// Idle connections kept per member; more in flight at once are closed when done.
const MAX_IDLE: usize = 64;
/// An idle connection older than this is not reused (the member's server may be closing it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The path of the probe request run through kube's layers.
const PROBE_PATH: &str = "/flotilla-gateway-probe";

/// A connection to a member: TLS (or plain TCP for an `http://` member) and its read buffer.
pub(crate) struct MemberConn {
    pub io: TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>,
    pub buf: ReadBuf,
}

impl MemberConn {
    /// Whether the connection is still open and quiet: the member has neither closed it nor
    /// sent anything unasked (a read that would block).
    fn is_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        self.buf.filled().is_empty() && self.io.read(&mut probe).now_or_never().is_none()
    }
}

/// What every relayed request's head carries for this member.
pub(crate) struct Preamble {
    /// The member URL's path, which the service proxy path is appended to ("" for "/").
    pub base_path: String,
    /// `Host`, then the credential and impersonation header lines.
    pub headers: Vec<u8>,
}

/// kube's layers over a service that answers with the request as they left it.
type Credentials =
    BoxCloneSyncService<Request<Full<Bytes>>, http::Response<Request<Full<Bytes>>>, BoxError>;

/// Connecting to the member failed: the request was not sent.
#[derive(Debug, thiserror::Error)]
#[error("connecting: {0}")]
pub(crate) struct ConnectError(#[source] pub(crate) BoxError);

/// One member's connections and request preamble.
pub(crate) struct MemberStreams {
    connector: HttpsConnector<HttpConnector>,
    target: Uri,
    credentials: Credentials,
    preamble: RwLock<Arc<Preamble>>,
    idle: Mutex<Vec<(MemberConn, Instant)>>,
    /// Longest wait for an answer's head.
    pub read_timeout: Option<Duration>,
}

impl MemberStreams {
    /// The connections and preamble of the member `config` reaches (URL, TLS, credentials,
    /// impersonation).
    pub(crate) async fn new(config: &kube::Config) -> Result<Self, BoxError> {
        let tls = config.rustls_client_config()?;
        let credentials = ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer()?)
            .layer(config.extra_headers_layer()?)
            .service(tower::service_fn(|r: Request<Full<Bytes>>| async move {
                Ok::<_, BoxError>(http::Response::new(r))
            }));
        let streams = MemberStreams {
            connector: api_connector::https_connector(config, tls, Protocol::Http1),
            target: config.cluster_url.clone(),
            credentials: BoxCloneSyncService::new(credentials),
            preamble: RwLock::new(Arc::new(Preamble {
                base_path: String::new(),
                headers: Vec::new(),
            })),
            idle: Mutex::new(Vec::new()),
            read_timeout: config.read_timeout,
        };
        streams.refresh_preamble().await?;
        Ok(streams)
    }

    /// Runs kube's layers again (a refreshable token may have been renewed).
    pub(crate) async fn refresh_preamble(&self) -> Result<(), BoxError> {
        let probe = Request::builder()
            .uri(PROBE_PATH)
            .body(Full::new(Bytes::new()))?;
        let sent = self.credentials.clone().oneshot(probe).await?.into_body();
        let path = sent.uri().path_and_query().map_or("", |p| p.as_str());
        let base_path = path
            .strip_suffix(PROBE_PATH)
            .ok_or("kube's base URI layer changed the probe path")?
            .to_string();
        let mut headers = Vec::with_capacity(256);
        let authority = sent
            .uri()
            .authority()
            .ok_or("the member URL has no authority")?;
        put_header(&mut headers, "host", authority.as_str().as_bytes());
        for (name, value) in sent.headers() {
            put_header(&mut headers, name.as_str(), value.as_bytes());
        }
        *self.preamble.write() = Arc::new(Preamble { base_path, headers });
        Ok(())
    }

    /// The current preamble.
    pub(crate) fn preamble(&self) -> Arc<Preamble> {
        self.preamble.read().clone()
    }

    /// An idle connection that is still open; closed and stale ones are dropped.
    pub(crate) fn take_idle(&self) -> Option<MemberConn> {
        let now = Instant::now();
        loop {
            let (mut conn, since) = self.idle.lock().pop()?;
            if now.duration_since(since) < IDLE_TIMEOUT && conn.is_open() {
                return Some(conn);
            }
        }
    }

    /// A new connection.
    pub(crate) async fn connect(&self) -> Result<MemberConn, ConnectError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.target.clone())
            .await
            .map_err(ConnectError)?;
        Ok(MemberConn {
            io: TokioIo::new(io),
            buf: ReadBuf::default(),
        })
    }

    /// Keeps `conn` for the next request (its last answer read to the end).
    pub(crate) fn put_back(&self, conn: MemberConn) {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        idle.retain(|(_, since)| now.duration_since(*since) < IDLE_TIMEOUT);
        if idle.len() < MAX_IDLE && conn.buf.filled().is_empty() {
            idle.push((conn, now));
        }
    }
}
