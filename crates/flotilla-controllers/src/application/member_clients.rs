//! Clients for the clusters an application dispatches to, acting as the application's user.
//!
//! One [`kube::Client`] per member, multiplexing its requests over one HTTP/2 connection
//! (the member's one connection, shared with the hub's other clients of that member:
//! [`crate::multiplexed_client::shared_client`]; built from the credentials Secret the cluster
//! registry stores in `vela-system`, see [`crate::cluster::credentials`]), cached and shared;
//! `local` is the hub itself. Requests on an application's behalf go through a thin wrapper that
//! adds `Impersonate-User` / `Impersonate-Group` for the user recorded on the application
//! (annotations `app.oam.dev/username`, `app.oam.dev/group`), so the member's RBAC and audit log
//! see that user.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_apis::{LOCAL_CLUSTER, labels};
use http::HeaderValue;
use kube::client::Body;
use tokio::sync::{Mutex, Semaphore};

use crate::cluster::credentials::{self, ClusterCredential};
use crate::multiplexed_client::{forget_shared, shared_client};

/// Why a member client could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The cluster's credentials are missing or unusable.
    #[error("failed to get cluster {cluster}: {source}")]
    Credentials {
        /// Cluster name.
        cluster: String,
        /// What went wrong.
        #[source]
        source: Box<crate::cluster::credentials::Error>,
    },
    /// The client could not be built.
    #[error("cluster {cluster}: cannot build a client: {source}")]
    Build {
        /// Cluster name.
        cluster: String,
        /// What went wrong.
        #[source]
        source: Box<kube::Error>,
    },
}

/// `Result` of getting a client.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Who the controllers act as on an application's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Identity {
    /// User name; `None` when the application carries none (the controller acts as itself).
    pub user: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
}

impl Identity {
    /// A hub component's own identity on members, `system:flotilla:<component>` in `groups`:
    /// the hub's stored credential may only impersonate (see
    /// [`crate::cluster::hub_identity`]), so work not done for a user is done as one of these,
    /// which the member's RBAC and audit log name.
    pub fn hub_component(component: &str, groups: &[&str]) -> Identity {
        Identity {
            user: Some(format!("system:flotilla:{component}")),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The identity recorded on an application's annotations.
    pub(crate) fn of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Identity {
        let get = |k: &str| annotations.and_then(|a| a.get(k)).cloned();
        Identity {
            user: get(labels::USERNAME).filter(|u| !u.is_empty()),
            groups: get(labels::GROUP)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// How long a member client is used before its credentials are read again.
const CLIENT_TTL: Duration = Duration::from_secs(60);

fn credentials_error(cluster: &str, e: credentials::Error) -> Error {
    Error::Credentials {
        cluster: cluster.to_string(),
        source: Box::new(e),
    }
}

/// Requests (watches aside) a pool sends to one member at once unless told otherwise.
pub(crate) const DEFAULT_REQUESTS_PER_MEMBER: usize = 32;

/// A member's client and what outlives it when it is rebuilt.
struct Pooled {
    client: kube::Client,
    /// The member's URL, which its shared connection is known by.
    url: http::Uri,
    /// When the credentials were last read (and found unchanged) or the client built.
    built: Instant,
    /// The credentials the client was built from.
    credential: ClusterCredential,
    /// Permits for requests in flight to this member, shared by every client built for it.
    in_flight: Arc<Semaphore>,
}

/// The pool of member clients.
#[derive(Clone)]
pub(crate) struct MemberClients {
    hub_client: kube::Client,
    pool: Arc<Mutex<HashMap<String, Pooled>>>,
    requests_per_member: usize,
}

impl MemberClients {
    /// A pool that reads credentials through `hub_client`, sending at most
    /// [`DEFAULT_REQUESTS_PER_MEMBER`] requests to each member at once over the member's
    /// connection (shared with the hub's other pools and controllers).
    pub(crate) fn new(hub_client: kube::Client) -> Self {
        Self::with_requests_per_member(hub_client, DEFAULT_REQUESTS_PER_MEMBER)
    }

    /// The application controller's pool, sending at most `limit`
    /// requests (watches aside) to each member at once; more wait for a turn. Each member's
    /// requests share one HTTP/2 connection, so this bounds the streams (and the member's
    /// work) one hub fan-out opens on it.
    pub(crate) fn with_requests_per_member(hub_client: kube::Client, limit: usize) -> Self {
        MemberClients {
            hub_client,
            pool: Arc::new(Mutex::new(HashMap::new())),
            requests_per_member: limit.max(1),
        }
    }

    /// The controller's own client for `cluster` (`local`: the hub). Every [`CLIENT_TTL`] the
    /// credentials are read again; unchanged ones keep the client and its connection (a new
    /// client means a new TLS connection to the member), changed ones get a new client.
    pub(crate) async fn base(&self, cluster: &str) -> Result<kube::Client> {
        if cluster == LOCAL_CLUSTER {
            return Ok(self.hub_client.clone());
        }
        if let Some(pooled) = self.pool.lock().await.get(cluster)
            && pooled.built.elapsed() < CLIENT_TTL
        {
            return Ok(pooled.client.clone());
        }
        // Read without holding the pool, so that one member's refresh never waits for another's.
        let credential = credentials::read(&self.hub_client, cluster)
            .await
            .map_err(|e| credentials_error(cluster, e))?;
        let mut pool = self.pool.lock().await;
        if let Some(pooled) = pool.get_mut(cluster)
            && (pooled.built.elapsed() < CLIENT_TTL || pooled.credential == credential)
        {
            if pooled.credential == credential {
                pooled.built = Instant::now();
            }
            return Ok(pooled.client.clone());
        }
        let mut config = credential
            .to_config(cluster, None)
            .await
            .map_err(|e| credentials_error(cluster, e))?;
        // Bound each request so an unreachable member delays only its own placements.
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(20));
        config.write_timeout = Some(Duration::from_secs(20));
        let url = config.cluster_url.clone();
        let in_flight = pool.get(cluster).map_or_else(
            || Arc::new(Semaphore::new(self.requests_per_member)),
            |p| p.in_flight.clone(),
        );
        let client = shared_client(config, Some(in_flight.clone())).map_err(|e| Error::Build {
            cluster: cluster.to_string(),
            source: Box::new(e),
        })?;
        pool.insert(
            cluster.to_string(),
            Pooled {
                client: client.clone(),
                url,
                built: Instant::now(),
                credential,
                in_flight,
            },
        );
        Ok(client)
    }

    /// Drops the cached client of `cluster` (after a transport error or a re-join); its next
    /// client opens a new connection.
    pub(crate) async fn forget(&self, cluster: &str) {
        if let Some(gone) = self.pool.lock().await.remove(cluster) {
            forget_shared(&gone.url);
        }
    }

    /// A client for `cluster` whose every request impersonates `identity`.
    pub(crate) async fn as_user(&self, cluster: &str, identity: &Identity) -> Result<kube::Client> {
        let base = self.base(cluster).await?;
        Ok(impersonating(base, identity))
    }
}

/// Wraps `client` so that every request carries the impersonation headers of `identity`.
/// An identity without a user leaves requests unchanged.
pub fn impersonating(client: kube::Client, identity: &Identity) -> kube::Client {
    let Some(user) = identity.user.clone() else {
        return client;
    };
    let namespace = client.default_namespace().to_string();
    let groups = identity.groups.clone();
    let service = tower::service_fn(move |mut request: http::Request<Body>| {
        let client = client.clone();
        let headers = request.headers_mut();
        headers.remove("Impersonate-User");
        headers.remove("Impersonate-Group");
        let mut valid = true;
        match HeaderValue::from_str(&user) {
            Ok(v) => {
                headers.insert("Impersonate-User", v);
            }
            Err(_) => valid = false,
        }
        for group in &groups {
            match HeaderValue::from_str(group) {
                Ok(v) => {
                    headers.append("Impersonate-Group", v);
                }
                Err(_) => valid = false,
            }
        }
        async move {
            if !valid {
                return Err(kube::Error::Service(
                    "the application's user or group is not a valid HTTP header value".into(),
                ));
            }
            client.send(request).await
        }
    });
    kube::Client::new(service, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_from_annotations() {
        let mut annotations = std::collections::BTreeMap::new();
        assert_eq!(Identity::of(Some(&annotations)), Identity::default());
        annotations.insert(labels::USERNAME.to_string(), "alice".to_string());
        annotations.insert(labels::GROUP.to_string(), "dev, ops,".to_string());
        assert_eq!(
            Identity::of(Some(&annotations)),
            Identity {
                user: Some("alice".into()),
                groups: vec!["dev".into(), "ops".into()],
            }
        );
    }
}
