//! Where an Application's manifests go: `in-cluster` (or `https://kubernetes.default.svc`) is
//! the hub; any other name (or server URL) is a joined cluster. Every request impersonates the
//! user recorded on the Application (`app.oam.dev/username|group`, stamped by the hub).

use flotilla_apis::{ApplicationDestination, IN_CLUSTER, IN_CLUSTER_SERVER, ManagedCluster};
use kube::api::Api;

use crate::application::member_clients::{Identity, MemberClients, impersonating};

/// A resolved destination.
#[derive(Clone)]
pub(crate) struct Target {
    /// `in-cluster` or the joined cluster's name (for messages and the kind cache).
    pub cluster: String,
    /// A client acting as the Application's user there.
    pub client: kube::Client,
    /// Namespace for namespaced objects that name none.
    pub namespace: String,
}

async fn cluster_by_server(hub_client: &kube::Client, server: &str) -> Result<String, String> {
    let clusters = Api::<ManagedCluster>::all(hub_client.clone())
        .list(&Default::default())
        .await
        .map_err(|e| format!("listing clusters: {e}"))?;
    let wanted = server.trim_end_matches('/');
    clusters
        .items
        .iter()
        .find(|c| {
            c.spec
                .managed_cluster_client_configs
                .iter()
                .any(|cc| cc.url.trim_end_matches('/') == wanted)
        })
        .and_then(|c| c.metadata.name.clone())
        .ok_or_else(|| format!("there are no clusters with this URL: {server}"))
}

/// The cluster name `destination` names (`in-cluster` for the hub).
pub(crate) async fn cluster_name(
    hub_client: &kube::Client,
    destination: &ApplicationDestination,
) -> Result<String, String> {
    match (destination.name.as_str(), destination.server.as_str()) {
        ("", "") => Err("spec.destination.name or spec.destination.server is required".into()),
        (IN_CLUSTER, _) | ("", IN_CLUSTER_SERVER) => Ok(IN_CLUSTER.to_string()),
        ("", server) => cluster_by_server(hub_client, server).await,
        (name, _) => {
            let api = Api::<ManagedCluster>::all(hub_client.clone());
            match api.get_opt(name).await {
                Ok(Some(_)) => Ok(name.to_string()),
                Ok(None) => Err(format!(
                    "there are no clusters with this name: {name} (join it with `flotilla cluster join`)"
                )),
                Err(e) => Err(format!("reading cluster {name}: {e}")),
            }
        }
    }
}

/// A client for `destination` acting as `identity`.
pub(crate) async fn connect(
    hub_client: &kube::Client,
    members: &MemberClients,
    destination: &ApplicationDestination,
    identity: &Identity,
) -> Result<Target, String> {
    let cluster = cluster_name(hub_client, destination).await?;
    let client = if cluster == IN_CLUSTER {
        impersonating(hub_client.clone(), identity)
    } else {
        members
            .as_user(&cluster, identity)
            .await
            .map_err(|e| e.to_string())?
    };
    Ok(Target {
        cluster,
        client,
        namespace: destination.namespace.clone(),
    })
}
