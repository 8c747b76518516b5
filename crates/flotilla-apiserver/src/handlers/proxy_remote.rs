//! Reaching a Pod of another member (an endpoint of a multi-cluster Service): the request
//! goes to that member's pod proxy, `/api/v1/namespaces/NS/pods/POD/proxy/PATH`, over HTTPS.
//!
//! Where and as whom: the hub's multi-cluster Services controller stores, in this member,
//! Secret `kube-system/flotilla-mcs-peer-<cluster>` (data `endpoint`, `ca.crt`, `token`): the
//! exporting member's URL and CA, and a token of its ServiceAccount
//! `kube-system/flotilla-mcs-peer`, which may only use `pods/proxy` there. So a member never
//! holds the hub's credentials for another member, and the exporting member's RBAC and audit
//! log see every cross-cluster request.

use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use flotilla_core::status::ApiError;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Req;
use crate::state::SharedState;

/// Namespace of the peer Secrets.
pub(crate) const PEER_SECRET_NAMESPACE: &str = "kube-system";
/// Prefix of a peer Secret's name; the cluster name follows.
pub(crate) const PEER_SECRET_PREFIX: &str = "flotilla-mcs-peer-";

/// How to reach one peer member.
struct Peer {
    endpoint: http::Uri,
    ca_pem: Vec<u8>,
    token: String,
}

fn unavailable(cluster: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::service_unavailable(format!(
        "error trying to reach cluster {cluster:?} (multi-cluster endpoint): {why}"
    ))
}

/// Forwards the request to `pod` in `cluster` and relays its answer.
pub(crate) async fn forward(
    state: &SharedState,
    cluster: &str,
    pod: &str,
    path: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    let peer = read_peer(state, cluster).await?;
    let query = super::proxy::query_string(&req.query);
    let target = format!(
        "/api/v1/namespaces/{}/pods/{pod}/proxy{path}{}",
        req.info.namespace,
        if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        }
    );
    let response = send(&peer, &target, req)
        .await
        .map_err(|e| unavailable(cluster, e))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| unavailable(cluster, e))?
        .to_bytes();
    Ok(Response::from_parts(parts, axum::body::Body::from(body)))
}

/// Reads the peer Secret of `cluster` from this server's own store.
async fn read_peer(state: &SharedState, cluster: &str) -> Result<Peer, ApiError> {
    let snapshot = state.registry.snapshot();
    let secrets = snapshot
        .lookup("", "v1", "secrets")
        .ok_or_else(|| unavailable(cluster, "secrets are not served"))?;
    let name = format!("{PEER_SECRET_PREFIX}{cluster}");
    let (secret, _) = state
        .store
        .get(&secrets, PEER_SECRET_NAMESPACE, &name)
        .await?
        .ok_or_else(|| {
            unavailable(
                cluster,
                format!("no peer secret {PEER_SECRET_NAMESPACE}/{name}"),
            )
        })?;
    let field = |k: &str| -> Result<Vec<u8>, ApiError> {
        let text = secret
            .get("data")
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .ok_or_else(|| unavailable(cluster, format!("peer secret {name} lacks {k}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| unavailable(cluster, format!("peer secret {name}: {k} is not base64")))
    };
    let endpoint = String::from_utf8_lossy(&field("endpoint")?).to_string();
    Ok(Peer {
        endpoint: endpoint
            .parse()
            .map_err(|_| unavailable(cluster, format!("bad endpoint {endpoint:?}")))?,
        ca_pem: field("ca.crt")?,
        token: String::from_utf8_lossy(&field("token")?).trim().to_string(),
    })
}

/// Errors of one forward (shown inside the 503 Status).
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("bad CA bundle: {0}")]
    Ca(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] http::Error),
}

fn tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, ForwardError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let cert = cert.map_err(|e| ForwardError::Ca(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| ForwardError::Ca(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One HTTPS/1.1 exchange with the peer.
async fn send(
    peer: &Peer,
    target: &str,
    req: &Req,
) -> Result<http::Response<hyper::body::Incoming>, ForwardError> {
    let host = peer.endpoint.host().unwrap_or("127.0.0.1").to_string();
    let port = peer.endpoint.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| ForwardError::Connect(format!("{host}:{port}"), e))?;
    let _ = tcp.set_nodelay(true);
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| ForwardError::Ca(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(&peer.ca_pem)?);
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(ForwardError::Tls)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(target)
        .header(header::HOST, format!("{host}:{port}"));
    for (k, v) in req.headers.iter() {
        if !matches!(
            k.as_str(),
            "host" | "authorization" | "connection" | "content-length" | "transfer-encoding"
        ) && !k.as_str().starts_with("impersonate-")
        {
            builder = builder.header(k, v);
        }
    }
    let bearer = HeaderValue::from_str(&format!("Bearer {}", peer.token))
        .map_err(|e| ForwardError::Ca(format!("token: {e}")))?;
    let request = builder
        .header(header::AUTHORIZATION, bearer)
        .body(Full::new(Bytes::clone(&req.body)))?;
    Ok(sender.send_request(request).await?)
}
