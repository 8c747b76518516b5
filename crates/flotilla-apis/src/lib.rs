//! The fleet API kinds: typed structs and the CRDs the hub installs at start.
//!
//! - [`crds`]: the CustomResourceDefinitions the hub serves the fleet kinds from.
//! - [`Application`], [`Policy`], [`Workflow`], [`ApplicationRevision`], [`ResourceTracker`],
//!   [`ManagedCluster`]: typed objects usable with `kube::Api<K>`.
//! - [`ArgoApplication`], [`ApplicationSet`]: Argo CD's kinds (`argoproj.io/v1alpha1`).
//! - [`operation`]: the workflow operations (`resume`, `suspend`, ...) as status patches, shared
//!   by the CLI and anyone else who drives a workflow through the hub API.

mod application;
mod argocd;
mod cluster;
mod crd;
pub mod operation;
mod policy;
mod resource;
mod tracker;

pub use application::*;
pub use argocd::*;
pub use cluster::*;
pub use crd::{crds, mcs_crds};
pub use policy::*;
pub use tracker::*;

/// The KubeVela API group.
pub(crate) const OAM_GROUP: &str = "core.oam.dev";
/// The Open Cluster Management cluster API group.
pub(crate) const OCM_CLUSTER_GROUP: &str = "cluster.open-cluster-management.io";
/// The multi-cluster services API group.
pub const MCS_GROUP: &str = "multicluster.x-k8s.io";

/// The name of the hub itself as a placement target.
pub const LOCAL_CLUSTER: &str = "local";

/// Well-known labels and annotations.
pub mod labels {
    /// Label: the owning application's name.
    pub const APP_NAME: &str = "app.oam.dev/name";
    /// Label: the owning application's namespace.
    pub const APP_NAMESPACE: &str = "app.oam.dev/namespace";
    /// Label: the component the object was rendered from.
    pub const APP_COMPONENT: &str = "app.oam.dev/component";
    /// Label: the cluster the object was dispatched to.
    pub const APP_CLUSTER: &str = "app.oam.dev/cluster";
    /// Label: the application revision that last dispatched the object.
    pub const APP_REVISION: &str = "app.oam.dev/appRevision";
    /// Annotation: hash of the rendered object, so unchanged objects are not rewritten.
    pub const RENDER_HASH: &str = "app.oam.dev/render-hash";
    /// Annotation: the authenticated user who last created or updated the application.
    pub const USERNAME: &str = "app.oam.dev/username";
    /// Annotation: the groups (comma-separated) of that user.
    pub const GROUP: &str = "app.oam.dev/group";
    /// Annotation: the workflow re-runs only when this value changes.
    pub const PUBLISH_VERSION: &str = "app.oam.dev/publishVersion";
    /// Annotation (opt-in, `"true"`): create the target namespace in a cluster before
    /// dispatching there, instead of failing with `namespaces "<ns>" not found`.
    pub const CREATE_NAMESPACE: &str = "flotilla.io/create-namespace";
    /// Annotation on an Application: `report` lists drift in `status.drift` instead of
    /// correcting it.
    pub const DRIFT: &str = "app.oam.dev/drift";
    /// Label on a cleanup record (a `ResourceTracker` of type `cleanup`): the cluster whose
    /// objects are still to be deleted once it is reachable again.
    pub const PENDING_CLEANUP: &str = "app.oam.dev/pending-cleanup-cluster";
    /// Annotation on a member object a `shared-resource` policy shares: every sharing
    /// application (`ns/name`, comma-separated, the owner first).
    pub const SHARED_BY: &str = "app.oam.dev/shared-by";
    /// Finalizer on an Application (`vela delete --orphan`): deleting it leaves its objects on
    /// the members.
    pub const ORPHAN_FINALIZER: &str = "app.oam.dev/orphan-resource";
}
