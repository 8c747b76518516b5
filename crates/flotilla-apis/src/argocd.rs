//! Argo CD's `Application` and `ApplicationSet` (argoproj.io/v1alpha1): a Git source synced to a
//! destination cluster, and a template fanned out by generators.
//!
//! The Rust name of Argo CD's Application is [`ArgoApplication`], so it never shadows
//! KubeVela's [`crate::Application`].

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::{empty, fleet_resource};

/// The Argo CD API group.
pub(crate) const ARGO_GROUP: &str = "argoproj.io";
/// The destination name of the hub itself.
pub const IN_CLUSTER: &str = "in-cluster";
/// The destination server of the hub itself.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// Label on Secrets that hold repository credentials.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// Value of [`SECRET_TYPE_LABEL`] for repository credentials.
pub const SECRET_TYPE_REPOSITORY: &str = "repository";
/// Opt-in finalizer: deleting the Application deletes what it synced.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// Annotation on synced objects: `<app-namespace>_<app-name>` of the owning Application.
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Annotation: when set (any value), the controller fetches the repository at once.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

/// An Argo CD Application: manifests at a Git revision, synced to one destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgoApplication {
    /// `argoproj.io/v1alpha1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `Application`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Source, destination and sync policy.
    #[serde(default)]
    pub spec: ArgoApplicationSpec,
    /// A requested operation (`{"sync": {...}}`), cleared once it has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    /// What the controller observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ArgoApplicationStatus>,
}
fleet_resource!(
    ArgoApplication,
    "argoproj.io",
    "v1alpha1",
    "Application",
    "applications",
    NamespaceResourceScope
);

/// `spec` of an [`ArgoApplication`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgoApplicationSpec {
    /// The AppProject; only `default` is served.
    #[serde(default)]
    pub project: String,
    /// Where the manifests come from.
    #[serde(default)]
    pub source: ApplicationSource,
    /// Where they go.
    #[serde(default)]
    pub destination: ApplicationDestination,
    /// When and how to sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
}

/// A Git source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    /// `https://`, `git://` or `file://` URL of the repository.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag or commit SHA; empty or `HEAD` for the remote's default branch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_revision: String,
    /// Folder in the repository holding plain YAML (or JSON) manifests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Directory options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
}

/// `source.directory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Read sub-folders too.
    #[serde(default)]
    pub recurse: bool,
}

/// Where manifests are applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    /// A joined cluster's name, or `in-cluster` for the hub.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A cluster's API URL (alternative to `name`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// Namespace for namespaced objects that name none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// `spec.syncPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync automatically when Git changes; absent: only on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<AutomatedSync>,
    /// `CreateNamespace=true`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
}

/// `spec.syncPolicy.automated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomatedSync {
    /// Delete objects that left Git.
    #[serde(default)]
    pub prune: bool,
    /// Correct drift in the cluster.
    #[serde(default)]
    pub self_heal: bool,
}

/// `status` of an [`ArgoApplication`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgoApplicationStatus {
    /// Git vs cluster.
    #[serde(default)]
    pub sync: SyncStatus,
    /// Aggregated health of the synced objects.
    #[serde(default)]
    pub health: HealthStatus,
    /// The objects of the revision and their state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    /// The last sync operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// Successful syncs, oldest first (10 kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionHistory>,
    /// `ComparisonError`, `SyncError`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ApplicationCondition>,
    /// When Git and the cluster were last compared (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
}

/// `status.sync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// `Synced`, `OutOfSync` or `Unknown`.
    #[serde(default)]
    pub status: String,
    /// The commit SHA compared against.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
}

/// A health verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// `Healthy`, `Progressing`, `Degraded`, `Missing` or `Unknown`.
    #[serde(default)]
    pub status: String,
    /// Why, when not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One object of the revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group (empty for core).
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `Synced` or `OutOfSync`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Health of the live object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// Live, synced before, gone from Git: deleted by the next sync with prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_pruning: Option<bool>,
    /// Flotilla's addition: where live differs from Git (`path: git X != live Y`), for
    /// `flotilla gitops diff`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

/// `status.operationState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// What was asked (`{"sync": {"revision": ...}}`).
    #[serde(default)]
    pub operation: Value,
    /// `Running`, `Succeeded`, `Failed` or `Error`.
    #[serde(default)]
    pub phase: String,
    /// Summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Per-resource results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncOperationResult>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// `operationState.syncResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResult {
    /// The commit SHA synced.
    #[serde(default)]
    pub revision: String,
    /// The result per object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceResult>,
}

/// The result of syncing one object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `Synced`, `SyncFailed`, `Pruned` or `PruneSkipped`.
    #[serde(default)]
    pub status: String,
    /// `configured`, `unchanged`, `pruned`, or the error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `Sync`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sync_phase: String,
}

/// One entry of `status.history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// Increasing id.
    #[serde(default)]
    pub id: i64,
    /// The commit SHA deployed.
    #[serde(default)]
    pub revision: String,
    /// RFC 3339.
    #[serde(default)]
    pub deployed_at: String,
    /// The source at that time.
    #[serde(default)]
    pub source: ApplicationSource,
}

/// An Argo CD application condition (no `status` field, as Argo CD's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    /// `ComparisonError`, `SyncError`, `InvalidSpecError`, ...
    #[serde(default, rename = "type")]
    pub condition_type: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// An ApplicationSet: generators produce parameter sets, each rendering the template into one
/// [`ArgoApplication`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSet {
    /// `argoproj.io/v1alpha1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `ApplicationSet`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Generators and template.
    #[serde(default)]
    pub spec: ApplicationSetSpec,
    /// What the controller observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationSetStatus>,
}
fleet_resource!(
    ApplicationSet,
    "argoproj.io",
    "v1alpha1",
    "ApplicationSet",
    "applicationsets",
    NamespaceResourceScope
);

/// `spec` of an [`ApplicationSet`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Each generator yields parameter sets; all are used.
    #[serde(default)]
    pub generators: Vec<Generator>,
    /// The Application template: `metadata` and `spec`, with `{{param}}` placeholders.
    #[serde(default)]
    pub template: Value,
}

/// One generator (exactly one field set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    /// Literal parameter sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    /// One parameter set per joined cluster matching a selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClustersGenerator>,
}

/// `generators[].list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListGenerator {
    /// Each element is a parameter set (string values; nested objects flatten to `a.b`).
    #[serde(default)]
    pub elements: Vec<Value>,
}

/// `generators[].clusters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClustersGenerator {
    /// Label selector over joined clusters (ManagedClusters); empty: all.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Extra parameters, as `values.<key>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

/// `status` of an [`ApplicationSet`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetStatus {
    /// `ErrorOccurred`, `ResourcesUpToDate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<crate::Condition>,
    /// The Applications generated, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}
