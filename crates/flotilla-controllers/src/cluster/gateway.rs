//! The forwarding half of the hub's cluster gateway
//! (`/apis/cluster.core.oam.dev/v1alpha1/clustergateways/{cluster}/proxy/{path}`).
//!
//! The API server authorizes the caller and hands the request here; [`ClusterGateway`] finds
//! the cluster's `ManagedCluster` and credentials Secret (kept in memory by two reflectors on
//! the hub, read directly on a miss), and sends the request to the member with the hub's
//! credential plus `Impersonate-User`, `Impersonate-Uid`, `Impersonate-Group` and
//! `Impersonate-Extra-*` for the caller, so the member's RBAC decides and its audit log names
//! the caller. The hub's credential therefore needs nothing on the member but `impersonate`.
//! Request and response bodies stream through unread (uploads of any size, watches).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Mutex;

use super::credentials::{CREDENTIAL_NAMESPACE, CREDENTIAL_TYPE_LABEL, ClusterCredential};
use super::managed_cluster;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `ManagedCluster` of that name.
    #[error("clustergateways.cluster.core.oam.dev \"{cluster}\" not found")]
    UnknownCluster {
        /// Cluster name.
        cluster: String,
    },
    /// The cluster is registered but cannot be reached with its stored credentials.
    #[error("cluster {cluster:?} is unavailable: {reason}")]
    Unavailable {
        /// Cluster name.
        cluster: String,
        /// What went wrong, on one line.
        reason: String,
    },
    /// The caller's identity cannot be put into headers.
    #[error("the caller's {what} cannot be sent as an HTTP header")]
    BadIdentity {
        /// Which part of the identity.
        what: String,
    },
}

impl Error {
    /// The HTTP status code the gateway answers with.
    pub fn code(&self) -> u16 {
        match self {
            Error::UnknownCluster { .. } => 404,
            Error::Unavailable { .. } => 503,
            Error::BadIdentity { .. } => 400,
        }
    }
}

/// `Result` of forwarding.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Who the member must see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (key → values).
    pub extra: BTreeMap<String, Vec<String>>,
    /// The user's uid (empty: none), sent as `Impersonate-Uid`.
    pub uid: String,
}

/// How long a request waits for the reflectors' first list.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds connecting to a member (responses are not bounded: watches are long).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards requests to members; cheap to share.
pub struct ClusterGateway {
    hub_client: kube::Client,
    clusters: Store<DynamicObject>,
    secrets: Store<Secret>,
    /// Member connections by cluster, with the credentials Secret's resourceVersion they came
    /// from.
    pool: Mutex<HashMap<String, (String, Arc<Member>)>>,
}

/// The body of a request on its way to a member: streamed, never collected.
pub(crate) type RequestBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;
/// Errors of a `RequestBody`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    RequestBody,
>;

/// How the gateway reaches one member: a plain HTTP client (kube's client cannot stream a
/// request body) with the member's TLS settings and client certificate, plus the bearer token
/// when the stored credential is one.
struct Member {
    endpoint: String,
    authorization: Option<HeaderValue>,
    http: HttpClient,
}

impl Member {
    async fn connect(cluster: &str, credential: &ClusterCredential) -> Result<Member, String> {
        use kube::client::ConfigExt as _;
        let config = credential
            .to_config(cluster, None)
            .await
            .map_err(|e| e.to_string())?;
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = config
            .rustls_https_connector_with_connector(connector)
            .map_err(|e| super::describe_kube_error(&e))?;
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        let authorization = match &credential.auth {
            super::credentials::ClusterAuth::Token(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| "the stored token is not a valid header value".to_string())?,
            ),
            super::credentials::ClusterAuth::ClientCertificate { .. } => None,
        };
        Ok(Member {
            endpoint: credential.endpoint.trim_end_matches('/').to_string(),
            authorization,
            http,
        })
    }
}

impl std::fmt::Debug for ClusterGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGateway").finish_non_exhaustive()
    }
}

impl ClusterGateway {
    /// Starts the reflectors on the current runtime; they run for the life of the process.
    pub fn start(hub_client: kube::Client) -> Arc<ClusterGateway> {
        let clusters_writer = reflector::store::Writer::new(managed_cluster::api_resource());
        let clusters = clusters_writer.as_reader();
        let (secrets, secrets_writer) = reflector::store();
        let cluster_api = managed_cluster::api(&hub_client);
        tokio::spawn(
            reflector::reflector(
                clusters_writer,
                watcher(cluster_api, watcher::Config::default()),
            )
            .default_backoff()
            .for_each(|_| futures::future::ready(())),
        );
        let secret_api: Api<Secret> = Api::namespaced(hub_client.clone(), CREDENTIAL_NAMESPACE);
        tokio::spawn(
            reflector::reflector(
                secrets_writer,
                watcher(
                    secret_api,
                    watcher::Config::default().labels(CREDENTIAL_TYPE_LABEL),
                ),
            )
            .default_backoff()
            .for_each(|_| futures::future::ready(())),
        );
        Arc::new(ClusterGateway {
            hub_client,
            clusters,
            secrets,
            pool: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `request` (its URI a member-side path and query) to `cluster` as `identity`. The
    /// request body is streamed to the member as it arrives and the response body is handed
    /// back unread, so uploads of any size, watches and other long streams pass through.
    pub async fn forward(
        &self,
        cluster: &str,
        request: http::Request<RequestBody>,
        identity: &Identity,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let member = self.member(cluster).await?;
        let (mut parts, body) = request.into_parts();
        impersonate(&mut parts.headers, identity)?;
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let unavailable = |reason: String| Error::Unavailable {
            cluster: cluster.to_string(),
            reason,
        };
        parts.uri = format!("{}{path}", member.endpoint)
            .parse()
            .map_err(|e: http::uri::InvalidUri| unavailable(e.to_string()))?;
        if let Some(authorization) = &member.authorization {
            parts
                .headers
                .insert(http::header::AUTHORIZATION, authorization.clone());
        }
        match member
            .http
            .request(http::Request::from_parts(parts, body))
            .await
        {
            Ok(response) => Ok(response),
            Err(e) => {
                // The member may have moved or restarted with new credentials.
                self.pool.lock().await.remove(cluster);
                Err(unavailable(super::registry::one_line(&e)))
            }
        }
    }

    /// Every registered cluster as a `cluster.core.oam.dev/v1alpha1` `ClusterGateway` object:
    /// the ManagedCluster's name, labels and creation time, the endpoint it is reached at and
    /// whether its last health probe succeeded.
    pub async fn clusters(&self) -> Vec<serde_json::Value> {
        let _ = tokio::time::timeout(SYNC_TIMEOUT, self.clusters.wait_until_ready()).await;
        let mut out: Vec<serde_json::Value> = self
            .clusters
            .state()
            .iter()
            .map(|mc| {
                let endpoint = mc
                    .data
                    .pointer("/spec/managedClusterClientConfigs/0/url")
                    .cloned()
                    .unwrap_or_default();
                let healthy = managed_cluster::is_available(mc);
                serde_json::json!({
                    "apiVersion": "cluster.core.oam.dev/v1alpha1",
                    "kind": "ClusterGateway",
                    "metadata": {
                        "name": mc.metadata.name,
                        "labels": mc.metadata.labels,
                        "creationTimestamp": mc.metadata.creation_timestamp,
                    },
                    "spec": {"access": {"endpoint": {"type": "Const", "const": {"address": endpoint}}}},
                    "status": {"healthy": healthy},
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        out
    }

    /// The pooled connection to `cluster`, rebuilt when its credentials Secret changes.
    async fn member(&self, cluster: &str) -> Result<Arc<Member>> {
        let secret = self.credentials_secret(cluster).await?;
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let mut pool = self.pool.lock().await;
        if let Some((v, member)) = pool.get(cluster)
            && *v == version
        {
            return Ok(member.clone());
        }
        let unavailable = |reason: String| Error::Unavailable {
            cluster: cluster.to_string(),
            reason,
        };
        let credential =
            ClusterCredential::from_secret(&secret).map_err(|e| unavailable(e.to_string()))?;
        let member = Arc::new(
            Member::connect(cluster, &credential)
                .await
                .map_err(unavailable)?,
        );
        pool.insert(cluster.to_string(), (version, member.clone()));
        Ok(member)
    }

    /// The credentials Secret of a registered cluster: 404 unless a ManagedCluster exists,
    /// 503 when its credentials are missing.
    async fn credentials_secret(&self, cluster: &str) -> Result<Arc<Secret>> {
        let _ = tokio::time::timeout(SYNC_TIMEOUT, async {
            let _ = self.clusters.wait_until_ready().await;
            let _ = self.secrets.wait_until_ready().await;
        })
        .await;
        let hub_error = |e: kube::Error| Error::Unavailable {
            cluster: cluster.to_string(),
            reason: format!("hub: {}", super::describe_kube_error(&e)),
        };
        let cluster_ref = ObjectRef::new_with(cluster, managed_cluster::api_resource());
        if self.clusters.get(&cluster_ref).is_none() {
            // Joined a moment ago: the reflector may not have seen it yet.
            let found = managed_cluster::api(&self.hub_client)
                .get_opt(cluster)
                .await
                .map_err(hub_error)?;
            if found.is_none() {
                return Err(Error::UnknownCluster {
                    cluster: cluster.to_string(),
                });
            }
        }
        if let Some(secret) = self
            .secrets
            .get(&ObjectRef::new(cluster).within(CREDENTIAL_NAMESPACE))
        {
            return Ok(secret);
        }
        let secrets: Api<Secret> = Api::namespaced(self.hub_client.clone(), CREDENTIAL_NAMESPACE);
        match secrets.get_opt(cluster).await.map_err(hub_error)? {
            Some(secret) => Ok(Arc::new(secret)),
            None => Err(Error::Unavailable {
                cluster: cluster.to_string(),
                reason: format!(
                    "no credentials (secret {CREDENTIAL_NAMESPACE}/{cluster} not found)"
                ),
            }),
        }
    }
}

/// The path prefix of cluster `cluster`'s gateway on the hub.
pub(crate) fn proxy_prefix(cluster: &str) -> String {
    format!("/apis/cluster.core.oam.dev/v1alpha1/clustergateways/{cluster}/proxy")
}

/// A client that reaches member `cluster` through the hub's cluster gateway, as whoever
/// `hub_client` authenticates as: every request path is put under `proxy_prefix`. No member
/// credentials are read; the hub authorizes `clustergateways/proxy` and the member's RBAC
/// decides the rest.
pub fn gateway_client(hub_client: &kube::Client, cluster: &str) -> kube::Client {
    let prefix = proxy_prefix(cluster);
    let hub = hub_client.clone();
    let namespace = hub_client.default_namespace().to_string();
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let hub = hub.clone();
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let uri = format!("{prefix}{path}").parse::<http::Uri>();
        async move {
            *request.uri_mut() = uri.map_err(|e| kube::Error::Service(Box::new(e)))?;
            hub.send(request).await
        }
    });
    kube::Client::new(service, namespace)
}

/// Replaces any impersonation headers with ones naming `identity`.
pub(crate) fn impersonate(headers: &mut http::HeaderMap, identity: &Identity) -> Result<()> {
    let stale: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in stale {
        headers.remove(name);
    }
    let value = |what: &str, v: &str| {
        HeaderValue::from_str(v).map_err(|_| Error::BadIdentity {
            what: what.to_string(),
        })
    };
    headers.insert("impersonate-user", value("user name", &identity.user)?);
    if !identity.uid.is_empty() {
        headers.insert("impersonate-uid", value("uid", &identity.uid)?);
    }
    for group in &identity.groups {
        headers.append("impersonate-group", value("group", group)?);
    }
    for (key, values) in &identity.extra {
        let name =
            HeaderName::from_bytes(format!("impersonate-extra-{}", escape_key(key)).as_bytes())
                .map_err(|_| Error::BadIdentity {
                    what: format!("extra key {key:?}"),
                })?;
        for v in values {
            headers.append(name.clone(), value("extra value", v)?);
        }
    }
    Ok(())
}

/// Percent-encodes an extra key for a header name, as Kubernetes clients do.
fn escape_key(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_headers_name_the_caller_only() {
        let mut headers = http::HeaderMap::new();
        headers.insert("impersonate-user", HeaderValue::from_static("root"));
        headers.insert("impersonate-extra-x", HeaderValue::from_static("y"));
        let identity = Identity {
            user: "vic".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: BTreeMap::from([(
                "authentication.kubernetes.io/pod-name".to_string(),
                vec!["p".to_string()],
            )]),
            uid: "42".into(),
        };
        impersonate(&mut headers, &identity).unwrap();
        assert_eq!(headers["impersonate-uid"], "42");
        assert_eq!(headers["impersonate-user"], "vic");
        let groups: Vec<_> = headers.get_all("impersonate-group").iter().collect();
        assert_eq!(groups, ["dev", "system:authenticated"]);
        assert!(headers.get("impersonate-extra-x").is_none());
        assert_eq!(
            headers["impersonate-extra-authentication.kubernetes.io%2Fpod-name"],
            "p"
        );
        let bad = Identity {
            user: "a\nb".into(),
            ..Identity::default()
        };
        assert!(matches!(
            impersonate(&mut headers, &bad),
            Err(Error::BadIdentity { .. })
        ));
    }
}
