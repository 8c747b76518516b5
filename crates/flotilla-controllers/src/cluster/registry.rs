//! The cluster registry operations behind `flotilla cluster join|list|labels|detach`:
//! verify a member, store its credentials, and keep its `ManagedCluster` in step.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use super::credentials::{self, ClusterCredential, CredentialType, FIELD_MANAGER};
use super::managed_cluster::{self, Condition};
use flotilla_apis::{CONDITION_AVAILABLE, CONDITION_JOINED};

/// The name reserved for the hub itself as a placement target.
pub const LOCAL_CLUSTER: &str = "local";

/// How long join waits for a member to answer.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the registry operations; each prints as one line for the CLI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `local` names the hub.
    #[error("cluster name \"local\" is reserved for the hub itself")]
    ReservedName,
    /// Not a DNS-1123 label.
    #[error(
        "invalid cluster name {0:?}: must be lower case alphanumerics or '-', start and end with an alphanumeric, at most 63 characters"
    )]
    InvalidName(String),
    /// A label argument is malformed.
    #[error("invalid label {0:?}: {1}")]
    InvalidLabel(String, String),
    /// The member could not be reached.
    #[error("cannot reach cluster {cluster_name:?} at {endpoint}: {reason}")]
    Unreachable {
        /// The member cluster.
        cluster_name: String,
        /// The API server URL tried.
        endpoint: String,
        /// The connection error.
        reason: String,
    },
    /// The member refused the credentials.
    #[error("cluster {cluster_name:?} at {endpoint} refused the credentials: {reason}")]
    Unauthorized {
        /// The member cluster.
        cluster_name: String,
        /// The API server URL tried.
        endpoint: String,
        /// The member's answer.
        reason: String,
    },
    /// No cluster of that name is registered.
    #[error("cluster {0:?} not found")]
    NotFound(String),
    /// Credentials could not be read, stored or used.
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
    /// The hub API refused or failed a request.
    #[error("hub API: {}", crate::cluster::describe_kube_error(.0))]
    Hub(Box<kube::Error>),
    /// The hub's impersonate-only identity could not be created on the member.
    #[error(transparent)]
    HubIdentity(#[from] super::hub_identity::Error),
}

/// Result with this module's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

fn hub_error(e: kube::Error) -> Error {
    Error::Hub(Box::new(e))
}

/// Checks a cluster name: a DNS-1123 label that is not `local`.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    if name == LOCAL_CLUSTER {
        return Err(Error::ReservedName);
    }
    if !is_dns1123_label(name) {
        return Err(Error::InvalidName(name.to_string()));
    }
    Ok(())
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn validate_label_key(key: &str) -> std::result::Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_dns1123_label) {
                return Err("prefix must be a DNS subdomain".into());
            }
            name
        }
        None => key,
    };
    if !is_label_name(name) {
        return Err("name must be 63 characters or less, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".into());
    }
    Ok(())
}

/// Parses `k=v` items (already split on commas, empty items ignored).
pub fn parse_labels<S: AsRef<str>>(items: &[S]) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for item in items.iter().flat_map(|i| i.as_ref().split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| Error::InvalidLabel(item.to_string(), "expected key=value".into()))?;
        validate_label_key(key).map_err(|e| Error::InvalidLabel(item.to_string(), e))?;
        if !value.is_empty() && !is_label_name(value) {
            return Err(Error::InvalidLabel(
                item.to_string(),
                "value must be 63 characters or less, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".into(),
            ));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// Parses label keys (`k[,k]`).
pub fn parse_label_keys(items: &str) -> Result<Vec<String>> {
    let keys: Vec<String> = items
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    for key in &keys {
        validate_label_key(key).map_err(|e| Error::InvalidLabel(key.clone(), e))?;
    }
    if keys.is_empty() {
        return Err(Error::InvalidLabel(
            items.to_string(),
            "no label keys given".into(),
        ));
    }
    Ok(keys)
}

/// Checks that the member answers (`/version`) and accepts the credentials (an authorized
/// request; a 403 still proves the credentials authenticate).
pub(crate) async fn verify_member(
    cluster_name: &str,
    credential: &ClusterCredential,
) -> Result<()> {
    let endpoint = credential.endpoint.clone();
    let unreachable = |reason: String| Error::Unreachable {
        cluster_name: cluster_name.to_string(),
        endpoint: endpoint.clone(),
        reason,
    };
    let config = credential
        .to_config(cluster_name, Some(JOIN_TIMEOUT))
        .await?;
    let member_client = kube::Client::try_from(config).map_err(|e| unreachable(one_line(&e)))?;
    match tokio::time::timeout(JOIN_TIMEOUT, member_client.apiserver_version()).await {
        Err(_) => return Err(unreachable("timed out".into())),
        Ok(Err(kube::Error::Api(status))) if status.code == 401 || status.code == 403 => {}
        Ok(Err(e)) => return Err(unreachable(super::describe_kube_error(&e))),
        Ok(Ok(_)) => {}
    }
    let namespaces: Api<Namespace> = Api::all(member_client);
    match tokio::time::timeout(
        JOIN_TIMEOUT,
        namespaces.list(&ListParams::default().limit(1)),
    )
    .await
    {
        Err(_) => Err(unreachable("timed out".into())),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(status))) if status.code == 403 => Ok(()),
        Ok(Err(kube::Error::Api(status))) if status.code == 401 => Err(Error::Unauthorized {
            cluster_name: cluster_name.to_string(),
            endpoint,
            reason: if status.message.is_empty() {
                "Unauthorized".into()
            } else {
                status.message.clone()
            },
        }),
        Ok(Err(e)) => Err(unreachable(super::describe_kube_error(&e))),
    }
}

/// The innermost useful message of an error chain, on one line.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// What [`join`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// A new cluster was registered.
    Joined,
    /// The cluster was registered already; credentials and labels were refreshed.
    Updated,
}

/// What [`join`] did and what it stored.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Joined or updated.
    pub outcome: JoinOutcome,
    /// The credential stored on the hub.
    pub stored: ClusterCredential,
    /// Whether `stored` is the hub's own impersonate-only identity created at join (the given
    /// credential, an administrator's, was used once and not stored).
    pub hub_identity: bool,
}

/// Registers (or re-registers) a member: verifies it, replaces an administrator credential by
/// the hub's impersonate-only identity ([`super::hub_identity`]), stores that and creates or
/// updates its `ManagedCluster` (labels merged over any existing ones). Nothing is stored when
/// the member cannot be verified.
pub async fn join(
    hub_client: &kube::Client,
    cluster_name: &str,
    given: &ClusterCredential,
    labels: &BTreeMap<String, String>,
) -> Result<Joined> {
    validate_cluster_name(cluster_name)?;
    verify_member(cluster_name, given).await?;
    let (stored, hub_identity) =
        super::hub_identity::credential_to_store(cluster_name, given, JOIN_TIMEOUT).await?;
    if hub_identity {
        verify_member(cluster_name, &stored).await?;
    }
    let outcome = store(hub_client, cluster_name, &stored, labels).await?;
    Ok(Joined {
        outcome,
        stored,
        hub_identity,
    })
}

/// Stores a verified member's credential and creates or updates its `ManagedCluster`.
async fn store(
    hub_client: &kube::Client,
    cluster_name: &str,
    credential: &ClusterCredential,
    labels: &BTreeMap<String, String>,
) -> Result<JoinOutcome> {
    let clusters = managed_cluster::api(hub_client);
    let existing = clusters.get_opt(cluster_name).await.map_err(hub_error)?;
    let mut all_labels: BTreeMap<String, String> = existing
        .as_ref()
        .and_then(|o| o.metadata.labels.clone())
        .unwrap_or_default();
    all_labels.extend(labels.clone());

    credentials::write(hub_client, cluster_name, credential).await?;
    if !all_labels.is_empty() {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(hub_client.clone(), credentials::CREDENTIAL_NAMESPACE);
        secrets
            .patch(
                cluster_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": all_labels}})),
            )
            .await
            .map_err(hub_error)?;
    }

    let ca_bundle = credential
        .ca_pem
        .as_ref()
        .map(|ca| base64::engine::general_purpose::STANDARD.encode(ca));
    let mut client_config = json!({ "url": credential.endpoint });
    if let Some(ca) = ca_bundle {
        client_config["caBundle"] = ca.into();
    }
    let object = json!({
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": { "name": cluster_name, "labels": all_labels },
        "spec": {
            "hubAcceptsClient": true,
            "managedClusterClientConfigs": [client_config],
        },
    });
    clusters
        .patch(
            cluster_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(hub_error)?;
    let current = clusters.get(cluster_name).await.map_err(hub_error)?;
    let wanted = [
        Condition::new(
            CONDITION_JOINED,
            "True",
            "ManagedClusterJoined",
            "Managed cluster joined",
        ),
        Condition::new(
            CONDITION_AVAILABLE,
            "True",
            "ManagedClusterAvailable",
            "Managed cluster is available",
        ),
    ];
    if let Some(conditions) = managed_cluster::set_conditions(
        &managed_cluster::conditions(&current),
        &wanted,
        &managed_cluster::now_rfc3339(),
    ) {
        clusters
            .patch_status(
                cluster_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conditions}})),
            )
            .await
            .map_err(hub_error)?;
    }
    Ok(if existing.is_some() {
        JoinOutcome::Updated
    } else {
        JoinOutcome::Joined
    })
}

/// One row of `flotilla cluster list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// How the hub authenticates (`None` if its credentials are missing).
    pub credential_type: Option<CredentialType>,
    /// The member API endpoint.
    pub endpoint: String,
    /// `spec.hubAcceptsClient`.
    pub accepted: bool,
    /// The cluster's labels.
    pub labels: BTreeMap<String, String>,
    /// `ManagedClusterConditionAvailable` status, if reported.
    pub available: Option<String>,
}

/// Every registered cluster, sorted by name.
pub async fn list(hub_client: &kube::Client) -> Result<Vec<ClusterInfo>> {
    let clusters = managed_cluster::api(hub_client)
        .list(&ListParams::default())
        .await
        .map_err(hub_error)?;
    let credentials = credentials::list(hub_client).await?;
    let mut out: Vec<ClusterInfo> = clusters
        .items
        .iter()
        .filter_map(|mc| {
            let name = mc.metadata.name.clone()?;
            let credential = credentials.get(&name);
            let endpoint = credential
                .map(|c| c.endpoint.clone())
                .or_else(|| {
                    mc.data
                        .pointer("/spec/managedClusterClientConfigs/0/url")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            Some(ClusterInfo {
                credential_type: credential.map(ClusterCredential::credential_type),
                endpoint,
                accepted: mc
                    .data
                    .pointer("/spec/hubAcceptsClient")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                labels: mc.metadata.labels.clone().unwrap_or_default(),
                available: managed_cluster::condition_status(mc, CONDITION_AVAILABLE),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Adds or changes labels on a cluster (its ManagedCluster and credentials Secret).
pub async fn add_labels(
    hub_client: &kube::Client,
    cluster_name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    let patch: BTreeMap<&String, Value> = labels
        .iter()
        .map(|(k, v)| (k, Value::String(v.clone())))
        .collect();
    patch_labels(hub_client, cluster_name, json!(patch)).await
}

/// Removes labels from a cluster (its ManagedCluster and credentials Secret). The credential
/// type label of the Secret is never removed.
pub async fn remove_labels(
    hub_client: &kube::Client,
    cluster_name: &str,
    keys: &[String],
) -> Result<()> {
    let patch: BTreeMap<&String, Value> = keys
        .iter()
        .filter(|k| k.as_str() != credentials::CREDENTIAL_TYPE_LABEL)
        .map(|k| (k, Value::Null))
        .collect();
    patch_labels(hub_client, cluster_name, json!(patch)).await
}

async fn patch_labels(hub_client: &kube::Client, cluster_name: &str, labels: Value) -> Result<()> {
    if cluster_name == LOCAL_CLUSTER {
        return Err(Error::ReservedName);
    }
    let body = json!({"metadata": {"labels": labels}});
    match managed_cluster::api(hub_client)
        .patch(cluster_name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(Error::NotFound(cluster_name.to_string()));
        }
        Err(e) => return Err(hub_error(e)),
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(hub_client.clone(), credentials::CREDENTIAL_NAMESPACE);
    match secrets
        .patch(cluster_name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(hub_error(e)),
    }
}

/// Removes a cluster: its ManagedCluster, its credentials, and every ResourceTracker entry that
/// records an object in it. Never contacts the member, so an unreachable member cannot block it.
pub async fn detach(hub_client: &kube::Client, cluster_name: &str) -> Result<()> {
    if cluster_name == LOCAL_CLUSTER {
        return Err(Error::ReservedName);
    }
    let clusters = managed_cluster::api(hub_client);
    let had_cluster = match clusters
        .delete(cluster_name, &DeleteParams::default())
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(e) => return Err(hub_error(e)),
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(hub_client.clone(), credentials::CREDENTIAL_NAMESPACE);
    let had_credentials = secrets
        .get_opt(cluster_name)
        .await
        .map_err(hub_error)?
        .is_some();
    credentials::delete(hub_client, cluster_name).await?;
    if !had_cluster && !had_credentials {
        return Err(Error::NotFound(cluster_name.to_string()));
    }
    release_tracked_resources(hub_client, cluster_name).await
}

fn resource_tracker_api(hub_client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("core.oam.dev", "v1beta1", "ResourceTracker"),
        "resourcetrackers",
    );
    Api::all_with(hub_client.clone(), &resource)
}

/// Drops `cluster_name` entries from every ResourceTracker's `spec.managedResources`.
async fn release_tracked_resources(hub_client: &kube::Client, cluster_name: &str) -> Result<()> {
    let trackers = resource_tracker_api(hub_client);
    for _attempt in 0..5 {
        let list = match trackers.list(&ListParams::default()).await {
            Ok(list) => list,
            // No ResourceTracker kind served: nothing is tracked.
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(e) => return Err(hub_error(e)),
        };
        let mut conflict = false;
        for mut tracker in list.items {
            let Some(entries) = tracker
                .data
                .pointer_mut("/spec/managedResources")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            let before = entries.len();
            entries.retain(|e| e["cluster"] != cluster_name);
            if entries.len() == before {
                continue;
            }
            let name = tracker.metadata.name.clone().unwrap_or_default();
            match trackers.replace(&name, &Default::default(), &tracker).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => conflict = true,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(hub_error(e)),
            }
        }
        if !conflict {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(
            validate_cluster_name("local"),
            Err(Error::ReservedName)
        ));
        assert!(validate_cluster_name("beijing-1").is_ok());
        assert!(validate_cluster_name("Beijing").is_err());
        assert!(validate_cluster_name("-a").is_err());
        assert!(validate_cluster_name("").is_err());
    }

    #[test]
    fn labels() {
        let l = parse_labels(&["provider=AWS,region=us-west", "env="]).unwrap();
        assert_eq!(l["provider"], "AWS");
        assert_eq!(l["region"], "us-west");
        assert_eq!(l["env"], "");
        assert!(parse_labels(&["noequals"]).is_err());
        assert!(parse_labels(&["a=b c"]).is_err());
        assert!(parse_labels(&["example.com/x=y"]).is_ok());
        assert!(parse_labels(&["/x=y"]).is_err());
        assert_eq!(parse_label_keys("a, b").unwrap(), vec!["a", "b"]);
        assert!(parse_label_keys(",").is_err());
    }
}
