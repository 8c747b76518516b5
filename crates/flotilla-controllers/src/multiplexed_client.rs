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
//! The hub keeps ONE connection per member for all of its work there, as client-go does with
//! one transport per TLS configuration: health probes, metrics scrapes, dispatch fan-outs and
//! drift watches are separate streams on it. A probe cannot queue behind a dispatch: each
//! pool bounds its requests in flight to a member (the dispatch's 32 by default) far below a
//! server's stream limit (hyper's 200, kube-apiserver's 1,000), and the responses read
//! meanwhile are consumed as they arrive, well inside the connection's 5 MB receive window.
//! A second connection per member cost the hub ~0.35 KiB of RSS per placement at 100
//! Applications per member (docs/benchmarks.md, "One connection per member").
//!
//! Everything else is kube's own: the same rustls configuration (CA, client certificate), the
//! base URI, auth (bearer token, refreshable tokens), extra and impersonation headers, and the
//! retry policy when the config asks for it ([`kube::client::ConfigExt`]). Timeouts keep their
//! meaning: `connect_timeout` bounds the TCP connect, `read_timeout` bounds the wait for each
//! response's headers (TLS handshake included), and HTTP/2 PINGs on a connection with open
//! streams close a connection whose peer stopped answering, which fails its requests and
//! watches at once (a watcher then reconnects on a fresh connection). `write_timeout` has no
//! HTTP/2 counterpart beyond flow control and is not applied.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt as _};
use tokio::sync::Semaphore;
use tower::{BoxError, ServiceBuilder};

use crate::api_connector::{self, Protocol};
use crate::cluster::registry::one_line;

/// How often a connection with open streams is pinged.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a PING may go unanswered before the connection (and its streams) is closed.
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// TLS sessions a client keeps for resumption.
const TLS_SESSIONS: usize = 4;

/// Whether `uri` asks for a watch (a stream held open for minutes, never counted as in flight).
fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// The HTTP/2 client (its pool holds the one connection) that [`kube::Client`]s share.
type Http = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Body>;

/// What makes two configs' connections interchangeable: the server, how it is verified and
/// the TLS client identity. Bearer tokens, impersonation and response timeouts are applied
/// per request, so clients that differ only in those share a connection.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConnectionKey {
    url: String,
    roots: Option<Vec<Vec<u8>>>,
    root_file: Option<std::path::PathBuf>,
    insecure: bool,
    certificate: Option<String>,
    certificate_data: Option<String>,
    key: Option<String>,
    key_data: Option<String>,
}

impl ConnectionKey {
    fn of(config: &kube::Config) -> ConnectionKey {
        use secrecy::ExposeSecret as _;
        let auth = &config.auth_info;
        ConnectionKey {
            url: config.cluster_url.to_string(),
            roots: config.root_cert.clone(),
            root_file: config.root_cert_file.clone(),
            insecure: config.accept_invalid_certs,
            certificate: auth.client_certificate.clone(),
            certificate_data: auth.client_certificate_data.clone(),
            key: auth.client_key.clone(),
            key_data: auth
                .client_key_data
                .as_ref()
                .map(|k| k.expose_secret().to_string()),
        }
    }
}

/// Live shared connections; an entry lapses when the last client using it is dropped.
static SHARED: LazyLock<Mutex<HashMap<ConnectionKey, Weak<Http>>>> =
    LazyLock::new(Default::default);

fn shared() -> std::sync::MutexGuard<'static, HashMap<ConnectionKey, Weak<Http>>> {
    SHARED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`kube::Client`] for `config` over the one HTTP/2 connection that every client of the
/// same server and TLS identity in this process shares (see the module docs): the hub's
/// probes, scrapes, dispatch and other readers of a member hold one connection to it
/// instead of one each. Each client keeps its own auth, headers and `read_timeout`; the
/// connection's `connect_timeout` is that of the client that opened it (each request is
/// bounded by its own client's `read_timeout` anyway, connecting included). A config with
/// a proxy or a TLS server name override gets kube's own client, unshared.
///
/// With `in_flight`, a request other than a watch waits for one of its permits, held until
/// the response's headers arrive (a bound shared by every client given the same semaphore).
/// Impersonation is best set in `config.auth_info` (`impersonate`, `impersonate_groups`):
/// its headers are added inside this client, with no second client wrapped around it.
pub(crate) fn shared_client(
    config: kube::Config,
    in_flight: Option<Arc<Semaphore>>,
) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return kube::Client::try_from(config);
    }
    let http = shared_connection(&config)?;
    over(http, config, in_flight)
}

/// The connection every client of `config`'s server and TLS identity shares.
fn shared_connection(config: &kube::Config) -> Result<Arc<Http>, kube::Error> {
    let key = ConnectionKey::of(config);
    let mut connections = shared();
    if let Some(http) = connections.get(&key).and_then(Weak::upgrade) {
        return Ok(http);
    }
    let http = Arc::new(connection(config)?);
    connections.retain(|_, c| c.strong_count() > 0);
    connections.insert(key, Arc::downgrade(&http));
    Ok(http)
}

/// Makes the next [`shared_client`] for the server at `cluster_url` (as in its
/// [`kube::Config`]) open a new connection (after the server did not answer: its
/// connection may be dead). Clients already built keep theirs until they are dropped.
pub(crate) fn forget_shared(cluster_url: &http::Uri) {
    let url = cluster_url.to_string();
    shared().retain(|key, _| key.url != url);
}

/// A [`kube::Client`] for `config` over one multiplexed HTTP/2 connection of its own (see the
/// module docs). A config with a proxy or a TLS server name override gets kube's own HTTP/1.1
/// client, which handles those.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return kube::Client::try_from(config);
    }
    let http = Arc::new(connection(&config)?);
    over(http, config, None)
}

/// The HTTP/2 client (one connection, opened on first use) for `config`'s server.
fn connection(config: &kube::Config) -> Result<Http, kube::Error> {
    let mut tls = config.rustls_client_config()?;
    // rustls's default cache of 256 sessions is ~13 KiB per client; one client reaches one
    // server over one connection at a time, so a few sessions are plenty.
    tls.resumption = rustls::client::Resumption::in_memory_sessions(TLS_SESSIONS);
    let https = api_connector::https_connector(config, tls, Protocol::Http2);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_only(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .build::<_, Body>(https),
    )
}

/// kube's layers (base URI, retry, auth, extra headers) and `read_timeout` over `http`;
/// requests other than watches wait for a permit of `in_flight` when given.
fn over(
    http: Arc<Http>,
    config: kube::Config,
    in_flight: Option<Arc<Semaphore>>,
) -> Result<kube::Client, kube::Error> {
    let namespace = config.default_namespace.clone();
    Ok(kube::Client::new(
        stack(http, &config, in_flight)?,
        namespace,
    ))
}

/// The request path of a client for `config` over `http`, without the `Buffer` that
/// [`kube::Client::new`] puts in front of it.
fn stack(
    http: Arc<Http>,
    config: &kube::Config,
    in_flight: Option<Arc<Semaphore>>,
) -> Result<PlainService, kube::Error> {
    let response_timeout = config.read_timeout;
    let send = tower::service_fn(move |request: http::Request<Body>| {
        let gate = in_flight.clone().filter(|_| !is_watch(request.uri()));
        let response = http.request(request);
        async move {
            let _permit = match gate {
                Some(gate) => Some(gate.acquire_owned().await?),
                None => None,
            };
            api_connector::within(response_timeout, response).await
        }
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
    Ok(PlainService::new(service))
}

/// A client's request path, cloned per request.
type PlainService = tower::util::BoxCloneSyncService<
    http::Request<Body>,
    http::Response<hyper::body::Incoming>,
    BoxError,
>;

/// A client for one-off requests whose answer is read whole (a probe's `/readyz`, a scrape's
/// `/metrics`) over the shared connection of [`shared_client`], with kube's auth, header and
/// timeout layers but no [`kube::Client`]: kube puts every client behind a tower `Buffer`, a
/// task and a channel whose first block (~8 KiB) is allocated up front, which the hub paid
/// per member and client (docs/benchmarks.md, "The hub's memory with 1,000 idle members").
/// A clone shares the connection; each request clones the layers (a few pointers).
#[derive(Clone)]
pub(crate) struct PlainClient {
    service: PlainService,
    namespace: String,
}

/// Why a [`PlainClient`] request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlainError {
    /// The server answered with an error status; `message` is the body's Status message or
    /// its text.
    #[error("HTTP {code} {message}")]
    Status {
        /// The HTTP status code.
        code: u16,
        /// What the server said.
        message: String,
    },
    /// No answer: the connection, TLS, a timeout or the body failed.
    #[error("{0}")]
    Transport(String),
}

impl PlainClient {
    /// Sends `request` and returns the response, whatever its status (a watch's body streams).
    pub(crate) async fn send(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, PlainError> {
        use tower::ServiceExt as _;
        (self.service.clone().oneshot(request).await)
            .map_err(|e| PlainError::Transport(one_line(&*e)))
    }

    /// A [`kube::Client`] over the same layers and connection, for typed requests; it puts a
    /// tower `Buffer` and a task in front (see the type's docs), so build it only while needed.
    pub(crate) fn kube_client(&self) -> kube::Client {
        kube::Client::new(self.service.clone(), self.namespace.clone())
    }

    /// GETs `path` and returns the body as text.
    pub(crate) async fn get_text(&self, path: &str) -> Result<String, PlainError> {
        let body = self.read(get(path)?).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends `request` and returns the whole body of a successful answer.
    pub(crate) async fn read(
        &self,
        request: http::Request<Body>,
    ) -> Result<bytes::Bytes, PlainError> {
        let response = self.send(request).await?;
        let status = response.status();
        let body = whole_body(response).await?;
        if status.is_success() {
            return Ok(body);
        }
        Err(status_error(status, &body))
    }

    /// GETs `path` and hands each line of a successful answer (without its line end) to
    /// `line` as the body arrives: the client holds one frame and a partial line, never the
    /// whole body (a member's `/metrics` is mostly families the caller skips).
    pub(crate) async fn get_lines(
        &self,
        path: &str,
        mut line: impl FnMut(&str),
    ) -> Result<(), PlainError> {
        use http_body_util::BodyExt as _;
        let response = self.send(get(path)?).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status, &whole_body(response).await?));
        }
        let mut body = response.into_body();
        let mut lines = Lines::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| PlainError::Transport(one_line(&e)))?;
            if let Ok(data) = frame.into_data() {
                lines.push(&data, &mut line);
            }
        }
        lines.finish(&mut line);
        Ok(())
    }
}

/// Splits a body that arrives in chunks into lines, keeping only the unfinished one.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Hands every line that `data` completes to `line`.
    fn push(&mut self, data: &[u8], line: &mut impl FnMut(&str)) {
        self.partial.extend_from_slice(data);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            String::from_utf8_lossy(&self.partial[..=end])
                .lines()
                .for_each(&mut *line);
            self.partial.drain(..=end);
        }
    }

    /// Hands the last line, if the body did not end with a line end.
    fn finish(self, line: &mut impl FnMut(&str)) {
        String::from_utf8_lossy(&self.partial)
            .lines()
            .for_each(line);
    }
}

/// A GET of `path` with an empty body.
fn get(path: &str) -> Result<http::Request<Body>, PlainError> {
    http::Request::get(path)
        .body(Body::empty())
        .map_err(|e| PlainError::Transport(one_line(&e)))
}

/// The whole body of `response`.
async fn whole_body(
    response: http::Response<hyper::body::Incoming>,
) -> Result<bytes::Bytes, PlainError> {
    use http_body_util::BodyExt as _;
    let body = response.into_body().collect().await;
    Ok(body
        .map_err(|e| PlainError::Transport(one_line(&e)))?
        .to_bytes())
}

/// The error of an answer with an unsuccessful `status`: the body's Status message, or its
/// text.
fn status_error(status: http::StatusCode, body: &[u8]) -> PlainError {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    PlainError::Status {
        code: status.as_u16(),
        message,
    }
}

/// A [`PlainClient`] for `config` over the connection [`shared_client`] would use.
/// (A stored member credential names no proxy and no TLS server name, which only kube's own
/// client handles.)
pub(crate) fn plain_client(config: kube::Config) -> Result<PlainClient, kube::Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return Err(kube::Error::Service(
            "a proxy or a TLS server name needs kube's own client".into(),
        ));
    }
    let http = shared_connection(&config)?;
    Ok(PlainClient {
        service: stack(http, &config, None)?,
        namespace: config.default_namespace.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_whole_whatever_the_chunks() {
        let body = "a 1\r\nbb{x=\"é\"} 2\n\nccc 3";
        for cut in 0..body.len() {
            for second in cut..body.len() {
                let bytes = body.as_bytes();
                let mut seen = Vec::new();
                let mut line = |l: &str| seen.push(l.to_string());
                let mut lines = Lines::default();
                lines.push(&bytes[..cut], &mut line);
                lines.push(&bytes[cut..second], &mut line);
                lines.push(&bytes[second..], &mut line);
                lines.finish(&mut line);
                assert_eq!(
                    seen,
                    ["a 1", "bb{x=\"é\"} 2", "", "ccc 3"],
                    "cut at {cut}, {second}"
                );
            }
        }
    }

    #[test]
    fn watches_are_told_apart() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(is_watch(&uri(
            "/api/v1/configmaps?watch=true&resourceVersion=1"
        )));
        assert!(is_watch(&uri("/api/v1/configmaps?labelSelector=a&watch=1")));
        assert!(!is_watch(&uri(
            "/api/v1/configmaps?labelSelector=watch%3Dtrue"
        )));
        assert!(!is_watch(&uri("/api/v1/configmaps")));
    }

    /// A client certificate and key, base64 PEM as a kubeconfig holds them.
    struct Identity {
        certificate: String,
        key: String,
    }

    fn identity(name: &str) -> Identity {
        use base64::Engine as _;
        let key = rcgen::KeyPair::generate().expect("a key");
        let certificate = rcgen::CertificateParams::new(vec![name.to_string()])
            .and_then(|params| params.self_signed(&key))
            .expect("a certificate");
        let b64 = |pem: String| base64::engine::general_purpose::STANDARD.encode(pem);
        Identity {
            certificate: b64(certificate.pem()),
            key: b64(key.serialize_pem()),
        }
    }

    fn config(url: &str, token: &str, identity: &Identity) -> kube::Config {
        let mut config = kube::Config::new(url.parse().expect("a URL"));
        config.accept_invalid_certs = true;
        config.auth_info.token = Some(token.to_string().into());
        config.auth_info.client_certificate_data = Some(identity.certificate.clone());
        config.auth_info.client_key_data = Some(identity.key.clone().into());
        config
    }

    /// How many clients hold each live connection to `url`.
    fn holders(url: &str) -> Vec<usize> {
        shared()
            .iter()
            .filter(|(k, c)| k.url == url && c.strong_count() > 0)
            .map(|(_, c)| c.strong_count())
            .collect()
    }

    #[tokio::test]
    async fn clients_of_one_server_and_identity_share_a_connection() {
        let (url, uri) = (
            "https://127.0.0.1:9/",
            "https://127.0.0.1:9".parse().unwrap(),
        );
        let (cert, other_cert) = (identity("hub"), identity("other"));
        let a = shared_client(config(url, "token-a", &cert), None).unwrap();
        let b = shared_client(config(url, "token-b", &cert), None).unwrap();
        let bounded = Some(Arc::new(Semaphore::new(2)));
        let dispatch = shared_client(config(url, "token-a", &cert), bounded).unwrap();
        let probe = plain_client(config(url, "token-a", &cert)).unwrap();
        assert_eq!(
            holders(url),
            [4],
            "tokens, request bounds and client kinds are per client"
        );
        let other = shared_client(config(url, "token-a", &other_cert), None).unwrap();
        assert_eq!(holders(url).len(), 2, "another identity");

        forget_shared(&uri);
        assert!(holders(url).is_empty());
        let c = shared_client(config(url, "token-a", &cert), None).unwrap();
        assert_eq!(holders(url), [1], "a new connection after forgetting");

        // A kube client's service lives in a spawned buffer task, gone soon after the client.
        drop((a, b, other, c, dispatch, probe));
        for _ in 0..1000 {
            if holders(url).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("connections outlived their clients");
    }
}
