//! The built-in kinds every Flotilla API server serves (SPEC section 2), described the way
//! kube-apiserver's discovery describes them. Identity (plural, scope, short names, storage
//! version, subresources) comes from the one kind table, `flotilla_core::kinds`; behaviour
//! (generation tracking, scale paths) from the kind's [`crate::strategy`].

use flotilla_core::kinds::{self, Kind};

use crate::registry::{ALL_VERBS, CREATE_ONLY, ResourceInfo, ScalePaths};

/// Groups whose resources are create-only reviews.
fn is_review_group(group: &str) -> bool {
    group == "authorization.k8s.io" || group == "authentication.k8s.io"
}

/// How one row of the kind table is served.
pub(crate) fn resource_info(kind: &Kind) -> ResourceInfo {
    let is_virtual = is_review_group(kind.group);
    let strategy = crate::strategy::for_kind(kind.group, kind.kind);
    ResourceInfo {
        group: kind.group.into(),
        version: kind.version.into(),
        resource: kind.plural.into(),
        kind: kind.kind.into(),
        singular: kind.singular(),
        namespaced: kind.namespaced(),
        short_names: kind.short_names.iter().map(|s| s.to_string()).collect(),
        categories: kind.categories.iter().map(|s| s.to_string()).collect(),
        verbs: if is_virtual { CREATE_ONLY } else { ALL_VERBS },
        status: kind.status,
        scale: strategy
            .scale
            .filter(|_| kind.scale)
            .map(|fields| ScalePaths {
                spec_replicas: fields.spec_replicas.into(),
                status_replicas: fields.status_replicas.into(),
                label_selector: String::new(),
            }),
        storage_version: kind.storage_version.into(),
        crd: None,
        is_virtual,
        tracks_generation: strategy.tracks_generation,
    }
}

/// Every built-in resource, in discovery order.
pub(crate) fn resources() -> Vec<ResourceInfo> {
    kinds::builtin().map(resource_info).collect()
}
