//! How Flotilla's own HTTP clients of an API server (the multiplexed kube clients, the
//! gateway's relay) connect and wait, from a [`kube::Config`] as kube's client would: TCP with
//! TCP_NODELAY and the config's `connect_timeout`, kube's rustls configuration, and
//! `read_timeout` as the longest wait for a response's headers.

use std::future::Future;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::BoxError;

/// The HTTP version a connector offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
}

/// A TLS connector over TCP (TCP_NODELAY, the config's connect timeout) with `tls` (usually
/// [`kube::client::ConfigExt::rustls_client_config`]), offering `protocol`.
pub fn https_connector(
    config: &kube::Config,
    tls: rustls::ClientConfig,
    protocol: Protocol,
) -> HttpsConnector<HttpConnector> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(config.connect_timeout);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    match protocol {
        Protocol::Http1 => builder.enable_http1().wrap_connector(tcp),
        Protocol::Http2 => builder.enable_http2().wrap_connector(tcp),
    }
}

/// Waits for `response` at most `limit` (no limit when `None`); past it, an `io` error of
/// kind `TimedOut`.
pub async fn within<T, E: Into<BoxError>>(
    limit: Option<Duration>,
    response: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    let Some(limit) = limit else {
        return response.await.map_err(Into::into);
    };
    match tokio::time::timeout(limit, response).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no response within {limit:?}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_response_later_than_the_limit_times_out() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::io::Error>(1)
        };
        let e = within(Some(Duration::from_secs(1)), slow)
            .await
            .unwrap_err();
        let io = e.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(io.to_string(), "no response within 1s");
        let fast = async { Ok::<_, std::io::Error>(2) };
        assert_eq!(within(Some(Duration::from_secs(1)), fast).await.unwrap(), 2);
        let unbounded = async { Ok::<_, std::io::Error>(3) };
        assert_eq!(within(None, unbounded).await.unwrap(), 3);
    }
}
