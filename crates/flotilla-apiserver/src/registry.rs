//! Which resources are served: the built-in kinds and, dynamically, every established
//! CustomResourceDefinition. Readers take a cheap snapshot (an `Arc`); CRD changes swap it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::crd::CrdVersion;

/// All verbs of an ordinary resource, in the order kube-apiserver lists them.
pub(crate) const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// The verbs of create-only virtual resources (access reviews, token reviews).
pub(crate) const CREATE_ONLY: &[&str] = &["create"];

/// Where `/scale` finds replicas in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`
    pub spec_replicas: String,
    /// e.g. `.status.replicas`
    pub status_replicas: String,
    /// e.g. `.status.selector` (CRDs) — empty for built-ins, which use `spec.selector`.
    pub label_selector: String,
}

/// How one resource (in one version) is served.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub kind: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: &'static [&'static str],
    /// Has a `/status` subresource.
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: Option<ScalePaths>,
    /// The version objects are stored in (HPA `v1` is stored as `v2`).
    pub storage_version: String,
    /// Set for custom resources: schema, printer columns, ...
    pub crd: Option<Arc<CrdVersion>>,
    /// Create-only virtual resource handled by the auth module.
    pub is_virtual: bool,
    /// `metadata.generation` is tracked (bumped on spec changes).
    pub tracks_generation: bool,
}

impl ResourceInfo {
    /// `apps/v1`, `v1`.
    pub fn api_version(&self) -> String {
        flotilla_core::resource::api_version(&self.group, &self.version)
    }

    /// `deployments.apps`, `configmaps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The `kind` of lists: `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_builtin(&self) -> bool {
        self.crd.is_none()
    }
}

/// One served API group with its versions, preferred first.
#[derive(Debug, Clone)]
pub(crate) struct GroupInfo {
    pub name: String,
    pub versions: Vec<String>,
}

/// An immutable view of everything served.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// In discovery order.
    pub resources: Vec<Arc<ResourceInfo>>,
    by_gvr: HashMap<(String, String, String), Arc<ResourceInfo>>,
    /// In discovery order (core group "" first).
    pub groups: Vec<GroupInfo>,
    /// Bumped on every change (used for openapi hashes).
    pub generation: u64,
    /// `/openapi/v3` documents rendered from this snapshot (see `openapi::rendered`).
    pub openapi_cache: crate::openapi::RenderedCache,
}

impl Snapshot {
    fn build(
        builtin: &[Arc<ResourceInfo>],
        crds: &BTreeMap<String, Vec<Arc<ResourceInfo>>>,
        generation: u64,
    ) -> Snapshot {
        let mut resources: Vec<Arc<ResourceInfo>> = builtin.to_vec();
        for infos in crds.values() {
            resources.extend(infos.iter().cloned());
        }
        let mut by_gvr = HashMap::new();
        let mut groups: Vec<GroupInfo> = Vec::new();
        for r in &resources {
            by_gvr.insert(
                (r.group.clone(), r.version.clone(), r.resource.clone()),
                r.clone(),
            );
            match groups.iter_mut().find(|g| g.name == r.group) {
                Some(g) => {
                    if !g.versions.contains(&r.version) {
                        g.versions.push(r.version.clone());
                    }
                }
                None => groups.push(GroupInfo {
                    name: r.group.clone(),
                    versions: vec![r.version.clone()],
                }),
            }
        }
        Snapshot {
            resources,
            by_gvr,
            groups,
            generation,
            openapi_cache: Default::default(),
        }
    }

    pub(crate) fn lookup(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
            .cloned()
    }

    /// The served resource of `kind` in `group`/`version`.
    pub(crate) fn by_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind && !r.is_virtual)
            .cloned()
    }

    /// Every served resource in one group-version.
    pub(crate) fn group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }

    /// All distinct stored resources (one entry per group/resource, in its storage version).
    pub(crate) fn stored_resources(&self) -> Vec<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .filter(|r| !r.is_virtual && r.version == r.storage_version)
            .cloned()
            .collect()
    }
}

/// Served CRDs by name, and the snapshot built from them.
type CrdState = (BTreeMap<String, Vec<Arc<ResourceInfo>>>, Arc<Snapshot>);

/// The live registry.
pub(crate) struct Registry {
    builtin: Vec<Arc<ResourceInfo>>,
    crds: RwLock<CrdState>,
    /// The generation of the current snapshot, for tasks that follow what is served.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry serving the built-in kinds.
    pub(crate) fn new() -> Registry {
        let builtin: Vec<Arc<ResourceInfo>> = crate::builtin::resources()
            .into_iter()
            .map(Arc::new)
            .collect();
        let snapshot = Arc::new(Snapshot::build(&builtin, &BTreeMap::new(), 1));
        Registry {
            builtin,
            crds: RwLock::new((BTreeMap::new(), snapshot)),
            changes: tokio::sync::watch::Sender::new(1),
        }
    }

    /// Follows what is served: the receiver sees each new snapshot generation.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A registry serving the built-in kinds and the hub's `clustergateways`.
    pub(crate) fn with_cluster_gateway() -> Registry {
        let mut builtin: Vec<ResourceInfo> = crate::builtin::resources();
        builtin.push(crate::cluster_gateway::resource_info());
        let builtin: Vec<Arc<ResourceInfo>> = builtin.into_iter().map(Arc::new).collect();
        let snapshot = Arc::new(Snapshot::build(&builtin, &BTreeMap::new(), 1));
        Registry {
            builtin,
            crds: RwLock::new((BTreeMap::new(), snapshot)),
            changes: tokio::sync::watch::Sender::new(1),
        }
    }

    /// The current view.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.crds.read().1.clone()
    }

    /// Serves (or re-serves) the versions of the CRD named `crd_name`.
    pub(crate) fn set_crd(&self, crd_name: &str, infos: Vec<ResourceInfo>) {
        let mut guard = self.crds.write();
        guard.0.insert(
            crd_name.to_string(),
            infos.into_iter().map(Arc::new).collect(),
        );
        let generation = guard.1.generation + 1;
        guard.1 = Arc::new(Snapshot::build(&self.builtin, &guard.0, generation));
        self.changes.send_replace(generation);
    }

    /// Stops serving a CRD's kind.
    pub(crate) fn remove_crd(&self, crd_name: &str) {
        let mut guard = self.crds.write();
        if guard.0.remove(crd_name).is_some() {
            let generation = guard.1.generation + 1;
            guard.1 = Arc::new(Snapshot::build(&self.builtin, &guard.0, generation));
            self.changes.send_replace(generation);
        }
    }
}
