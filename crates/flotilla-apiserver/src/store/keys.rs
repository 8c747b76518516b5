//! The storage key layout, and the only place it is spelled out:
//! `/registry/{group or "core"}/{resource}/[{namespace}/]{name}`.

use std::sync::Arc;

use crate::registry::ResourceInfo;

/// Every object's key starts with this.
pub(crate) const ALL_OBJECTS: &str = "/registry/";

/// Which stored resource an object belongs to: all the key layout needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The API group (`""` for the legacy group).
    pub group: &'a str,
    /// The plural resource name.
    pub resource: &'a str,
    /// Objects live in namespaces.
    pub namespaced: bool,
}

/// Namespaces.
pub(crate) const NAMESPACES: Resource<'static> = Resource {
    group: "",
    resource: "namespaces",
    namespaced: false,
};
/// ServiceAccounts.
pub(crate) const SERVICE_ACCOUNTS: Resource<'static> = Resource {
    group: "",
    resource: "serviceaccounts",
    namespaced: true,
};
/// The RBAC API group.
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// ClusterRoles.
pub(crate) const CLUSTER_ROLES: Resource<'static> = Resource {
    group: RBAC_GROUP,
    resource: "clusterroles",
    namespaced: false,
};

impl Resource<'_> {
    /// The key prefix of all objects of this resource (ends with `/`).
    pub fn prefix(&self) -> String {
        format!("{}{}/", group_prefix(self.group), self.resource)
    }

    /// The key prefix of one namespace (all objects when `namespace` is empty).
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        if self.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", self.prefix())
        } else {
            self.prefix()
        }
    }

    /// The key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{namespace}/{name}", self.prefix())
        } else {
            format!("{}{name}", self.prefix())
        }
    }

    /// The Namespace kind keeps `spec.finalizers` of its own.
    pub(crate) fn is_namespaces(&self) -> bool {
        *self == NAMESPACES
    }
}

/// The key prefix of every object of an API group (ends with `/`).
pub(crate) fn group_prefix(group: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    format!("{ALL_OBJECTS}{group}/")
}

/// The API group (`""` for the legacy group) and resource of a key.
pub(crate) fn group_resource(key: &str) -> Option<(String, String)> {
    let mut parts = key.strip_prefix(ALL_OBJECTS)?.split('/');
    let group = parts.next()?;
    let resource = parts.next()?;
    let group = if group == "core" { "" } else { group };
    Some((group.to_string(), resource.to_string()))
}

/// The name in a key of a cluster-scoped `resource` (`None` for keys of other resources).
pub(crate) fn cluster_scoped_name<'k>(resource: &Resource<'_>, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(resource.prefix().as_str())
        .filter(|n| !n.contains('/'))
}

impl<'a> From<&'a ResourceInfo> for Resource<'a> {
    fn from(info: &'a ResourceInfo) -> Self {
        Resource {
            group: &info.group,
            resource: &info.resource,
            namespaced: info.namespaced,
        }
    }
}

impl<'a> From<&'a &ResourceInfo> for Resource<'a> {
    fn from(info: &'a &ResourceInfo) -> Self {
        Resource::from(*info)
    }
}

impl<'a> From<&'a Arc<ResourceInfo>> for Resource<'a> {
    fn from(info: &'a Arc<ResourceInfo>) -> Self {
        Resource::from(&**info)
    }
}

impl ResourceInfo {
    /// Where this resource's objects are kept.
    pub fn stored(&self) -> Resource<'_> {
        Resource::from(self)
    }

    /// The key prefix of all objects of this resource (ends with `/`).
    pub fn prefix(&self) -> String {
        self.stored().prefix()
    }

    /// The key prefix of one namespace (all objects when `namespace` is empty).
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        self.stored().namespace_prefix(namespace)
    }

    /// The key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        self.stored().key(namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_kubernetes_layout() {
        assert_eq!(
            SERVICE_ACCOUNTS.key("ci", "builder"),
            "/registry/core/serviceaccounts/ci/builder"
        );
        assert_eq!(
            CLUSTER_ROLES.key("", "admin"),
            "/registry/rbac.authorization.k8s.io/clusterroles/admin"
        );
        assert_eq!(
            NAMESPACES.namespace_prefix("x"),
            "/registry/core/namespaces/"
        );
        assert_eq!(
            group_resource("/registry/apps/deployments/d/x"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            cluster_scoped_name(&NAMESPACES, "/registry/core/namespaces/dev"),
            Some("dev")
        );
        assert_eq!(
            cluster_scoped_name(&NAMESPACES, "/registry/core/pods/dev/x"),
            None
        );
    }
}
