//! A server that waits for its store at start (etcd not answering yet) already listens:
//! `/livez` answers `ok`, `/readyz` and `/healthz` 500 naming the cause, every other path a
//! 503 `Status`. TLS uses a throwaway self-signed certificate, since the cluster CA is in the
//! store that is missing (probes skip verification, as kubelet's do). Every answer closes its
//! connection, so no client keeps talking to this stand-in once the store answers and the
//! same listener is handed to [`crate::server::start_on`]. The store can also stop answering
//! during the start-up that follows (etcd losing quorum right after it first answered):
//! `start_on` then retries the failed step in-process ([`retry_while_unavailable`]), the
//! listener answering probes the same way meanwhile.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use flotilla_core::status::ApiError;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;

/// Why answering probes while waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitingError {
    /// Generating the listener's certificate.
    #[error("certificate for the listener that answers probes while waiting: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Building its TLS configuration.
    #[error("TLS for the listener that answers probes while waiting: {0}")]
    Tls(#[from] rustls::Error),
    /// The listener stopped.
    #[error("the listener that answers probes while waiting stopped")]
    Stopped,
}

/// Why the server is not ready yet, as `/readyz` and every refused request name it.
#[derive(Debug, Clone)]
pub struct WaitingCause(Arc<Mutex<String>>);

impl WaitingCause {
    /// A cause with this description.
    pub fn new(cause: impl Into<String>) -> Self {
        Self(Arc::new(Mutex::new(cause.into())))
    }

    /// Replaces the description.
    pub fn set(&self, cause: impl Into<String>) {
        if let Ok(mut c) = self.0.lock() {
            *c = cause.into();
        }
    }

    fn get(&self) -> String {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Answers probes on `listener` until `ready` resolves, then returns its output (the
/// listener stays open, so no connection attempt is refused in between).
pub async fn answer_probes_until<T>(
    listener: &TcpListener,
    cause: WaitingCause,
    ready: impl Future<Output = T>,
) -> Result<T, WaitingError> {
    let tls = tokio_rustls::TlsAcceptor::from(self_signed_config()?);
    let router = axum::Router::new().fallback(move |uri: http::Uri| {
        let cause = cause.get();
        async move { waiting_answer(uri.path(), &cause) }
    });
    tokio::select! {
        out = ready => Ok(out),
        () = crate::server::accept_loop(listener, tls, router) => Err(WaitingError::Stopped),
    }
}

/// How long a start-up step the store failed waits before it runs again.
pub const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the start-up step `step` (`what` names it) until it succeeds or fails for another
/// reason than the store being unavailable, which `unavailable` tells. The store can stop
/// answering after it first answered (etcd losing quorum): rather than exit, the server logs
/// each such failure, answers probes on `listener` as [`answer_probes_until`] does meanwhile
/// (`/readyz` naming the step and the error), and runs the step again every [`RETRY_PAUSE`].
/// Steps are written to be run again (they create what is absent, adopt what exists).
pub async fn retry_while_unavailable<T, E, F, Fut>(
    listener: &TcpListener,
    what: &str,
    unavailable: impl Fn(&E) -> bool,
    mut step: F,
) -> Result<T, E>
where
    E: std::fmt::Display + From<WaitingError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut error = match step().await {
        Err(e) if unavailable(&e) => e,
        done => return done,
    };
    let cause = WaitingCause::new(String::new());
    let retried = async {
        loop {
            tracing::warn!(%error, "the store failed the start-up ({what}); retrying it in {RETRY_PAUSE:?} (/readyz fails until the start-up is done)");
            cause.set(format!("{what}: {error}"));
            tokio::time::sleep(RETRY_PAUSE).await;
            error = match step().await {
                Err(e) if unavailable(&e) => e,
                done => return done,
            };
        }
    };
    answer_probes_until(listener, cause.clone(), retried).await?
}

/// `/livez` ok, `/readyz` (and `/healthz`) failing with the cause, anything else 503.
fn waiting_answer(path: &str, cause: &str) -> Response {
    let under = |base: &str| path == base || path.starts_with(&format!("{base}/"));
    let mut response = if under("/livez") {
        (StatusCode::OK, "ok").into_response()
    } else if under("/readyz") || under("/healthz") {
        let body = format!("[-]storage failed: {cause}\nreadyz check failed\n");
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    } else {
        let error = ApiError::service_unavailable(format!("storage is unavailable: {cause}"));
        crate::error::status_response(&error)
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// HTTP/1.1 only (a `Connection: close` ends it), with a fresh self-signed certificate.
fn self_signed_config() -> Result<Arc<rustls::ServerConfig>, WaitingError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_but_not_ready_while_waiting() {
        let live = waiting_answer("/livez", "etcd down");
        assert_eq!(live.status(), StatusCode::OK);
        for path in ["/readyz", "/readyz/etcd", "/healthz"] {
            assert_eq!(
                waiting_answer(path, "etcd down").status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}"
            );
        }
        let api = waiting_answer("/api/v1/namespaces", "etcd down");
        assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.headers()[header::CONNECTION], "close");
    }
}
