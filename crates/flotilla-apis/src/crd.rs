//! The CustomResourceDefinitions of the fleet kinds, as `apiextensions.k8s.io/v1` JSON.
//!
//! The hub creates these before it reports ready. Free-form parts of the schemas (component
//! properties, policy properties, status) keep unknown fields, as KubeVela's own CRDs do.

use serde_json::{Value, json};

/// An open object: any fields are kept.
fn open_object() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// An array of open objects.
fn open_array() -> Value {
    json!({"type": "array", "items": open_object()})
}

/// The `AGE` printer column every kind has.
fn age_column() -> Value {
    json!({"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
}

/// What differs between the fleet CRDs.
struct CrdShape<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    plural: &'a str,
    singular: &'a str,
    short_names: &'a [&'a str],
    namespaced: bool,
    categories: &'a [&'a str],
    schema: Value,
    columns: Vec<Value>,
    status_subresource: bool,
}

fn crd(shape: CrdShape<'_>) -> Value {
    let mut version = json!({
        "name": shape.version,
        "served": true,
        "storage": true,
        "schema": {"openAPIV3Schema": shape.schema},
    });
    if !shape.columns.is_empty() {
        version["additionalPrinterColumns"] = Value::Array(shape.columns);
    }
    if shape.status_subresource {
        version["subresources"] = json!({"status": {}});
    }
    let mut names = json!({
        "kind": shape.kind,
        "listKind": format!("{}List", shape.kind),
        "plural": shape.plural,
        "singular": shape.singular,
    });
    if !shape.short_names.is_empty() {
        names["shortNames"] = json!(shape.short_names);
    }
    if !shape.categories.is_empty() {
        names["categories"] = json!(shape.categories);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", shape.plural, shape.group)},
        "spec": {
            "group": shape.group,
            "names": names,
            "scope": if shape.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [version],
        },
    })
}

/// A root schema with `metadata`, an open `status` and the given other top-level properties.
fn root_schema(properties: Value) -> Value {
    let mut props = properties;
    props["apiVersion"] = json!({"type": "string"});
    props["kind"] = json!({"type": "string"});
    props["metadata"] = json!({"type": "object"});
    if props.get("status").is_none() {
        props["status"] = open_object();
    }
    json!({"type": "object", "properties": props})
}

fn application_crd() -> Value {
    let named_typed = |extra: Value| {
        let mut props = json!({
            "name": {"type": "string"},
            "type": {"type": "string"},
            "properties": open_object(),
        });
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": props,
        })
    };
    let trait_schema = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["type"],
        "properties": {"type": {"type": "string"}, "properties": open_object()},
    });
    let mut component = named_typed(json!({"traits": {"type": "array", "items": trait_schema}}));
    component["required"] = json!(["name", "type"]);
    let mut policy = named_typed(json!({}));
    policy["required"] = json!(["type"]);
    let schema = root_schema(json!({
        "spec": {
            "type": "object",
            "required": ["components"],
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "components": {"type": "array", "items": component},
                "policies": {"type": "array", "items": policy},
                "workflow": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "ref": {"type": "string"},
                        "mode": open_object(),
                        "steps": open_array(),
                    },
                },
            },
        },
    }));
    crd(CrdShape {
        group: crate::OAM_GROUP,
        version: "v1beta1",
        kind: "Application",
        plural: "applications",
        singular: "application",
        short_names: &["app", "velaapp"],
        namespaced: true,
        categories: &["oam"],
        schema,
        columns: vec![
            json!({"name": "COMPONENT", "type": "string", "jsonPath": ".spec.components[*].name"}),
            json!({"name": "TYPE", "type": "string", "jsonPath": ".spec.components[*].type"}),
            json!({"name": "PHASE", "type": "string", "jsonPath": ".status.status"}),
            json!({"name": "HEALTHY", "type": "boolean", "jsonPath": ".status.services[*].healthy"}),
            json!({"name": "STATUS", "type": "string", "jsonPath": ".status.services[*].message"}),
            age_column(),
        ],
        status_subresource: true,
    })
}

fn policy_crd() -> Value {
    crd(CrdShape {
        group: crate::OAM_GROUP,
        version: "v1alpha1",
        kind: "Policy",
        plural: "policies",
        singular: "policy",
        short_names: &[],
        namespaced: true,
        categories: &["oam"],
        schema: root_schema(json!({
            "type": {"type": "string"},
            "properties": open_object(),
        })),
        columns: vec![
            json!({"name": "TYPE", "type": "string", "jsonPath": ".type"}),
            age_column(),
        ],
        status_subresource: false,
    })
}

fn workflow_crd() -> Value {
    crd(CrdShape {
        group: crate::OAM_GROUP,
        version: "v1alpha1",
        kind: "Workflow",
        plural: "workflows",
        singular: "workflow",
        short_names: &[],
        namespaced: true,
        categories: &["oam"],
        schema: root_schema(json!({
            "mode": open_object(),
            "steps": open_array(),
        })),
        columns: vec![age_column()],
        status_subresource: false,
    })
}

fn application_revision_crd() -> Value {
    crd(CrdShape {
        group: crate::OAM_GROUP,
        version: "v1beta1",
        kind: "ApplicationRevision",
        plural: "applicationrevisions",
        singular: "applicationrevision",
        short_names: &["apprev"],
        namespaced: true,
        categories: &["oam"],
        schema: root_schema(json!({"spec": open_object()})),
        columns: vec![age_column()],
        status_subresource: true,
    })
}

fn resource_tracker_crd() -> Value {
    crd(CrdShape {
        group: crate::OAM_GROUP,
        version: "v1beta1",
        kind: "ResourceTracker",
        plural: "resourcetrackers",
        singular: "resourcetracker",
        short_names: &["rt"],
        namespaced: false,
        categories: &["oam"],
        schema: root_schema(json!({"spec": open_object()})),
        columns: vec![age_column()],
        status_subresource: false,
    })
}

fn managed_cluster_crd() -> Value {
    let condition = |ty: &str| format!(".status.conditions[?(@.type==\"{ty}\")].status");
    crd(CrdShape {
        group: crate::OCM_CLUSTER_GROUP,
        version: "v1",
        kind: "ManagedCluster",
        plural: "managedclusters",
        singular: "managedcluster",
        short_names: &["mcl", "mcls"],
        namespaced: false,
        categories: &[],
        schema: root_schema(json!({
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "hubAcceptsClient": {"type": "boolean"},
                    "leaseDurationSeconds": {"type": "integer", "format": "int32"},
                    "managedClusterClientConfigs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "url": {"type": "string"},
                                "caBundle": {"type": "string", "format": "byte"},
                            },
                        },
                    },
                    "taints": open_array(),
                },
            },
        })),
        columns: vec![
            json!({"name": "HUB ACCEPTED", "type": "boolean", "jsonPath": ".spec.hubAcceptsClient"}),
            json!({"name": "MANAGED CLUSTER URLS", "type": "string", "jsonPath": ".spec.managedClusterClientConfigs[*].url"}),
            json!({"name": "JOINED", "type": "string", "jsonPath": condition("ManagedClusterJoined")}),
            json!({"name": "AVAILABLE", "type": "string", "jsonPath": condition("ManagedClusterConditionAvailable")}),
            age_column(),
        ],
        status_subresource: true,
    })
}

fn multicluster_crd(kind: &str, plural: &str, singular: &str) -> Value {
    crd(CrdShape {
        group: crate::MCS_GROUP,
        version: "v1alpha1",
        kind,
        plural,
        singular,
        short_names: &[],
        namespaced: true,
        categories: &[],
        schema: root_schema(json!({"spec": open_object()})),
        columns: vec![age_column()],
        status_subresource: true,
    })
}

fn argo_application_crd() -> Value {
    let source = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["repoURL"],
        "properties": {
            "repoURL": {"type": "string"},
            "targetRevision": {"type": "string"},
            "path": {"type": "string"},
            "directory": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"recurse": {"type": "boolean"}},
            },
        },
    });
    let schema = root_schema(json!({
        "spec": {
            "type": "object",
            "required": ["destination", "project", "source"],
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                // Only the default AppProject exists.
                "project": {"type": "string", "enum": ["default"]},
                "source": source,
                "destination": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "name": {"type": "string"},
                        "server": {"type": "string"},
                        "namespace": {"type": "string"},
                    },
                },
                "syncPolicy": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "automated": {
                            "type": "object",
                            "properties": {
                                "prune": {"type": "boolean"},
                                "selfHeal": {"type": "boolean"},
                            },
                        },
                        "syncOptions": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "operation": open_object(),
    }));
    crd(CrdShape {
        group: crate::ARGO_GROUP,
        version: "v1alpha1",
        kind: "Application",
        plural: "applications",
        singular: "application",
        // Argo CD's own short names (`app`, `apps`) would take `kubectl get app` from
        // KubeVela's Application; none are served, as in clusters that run both.
        short_names: &[],
        namespaced: true,
        categories: &[],
        schema,
        // Argo CD's columns, word for word (kubectl prints them upper-cased).
        columns: vec![
            json!({"name": "Sync Status", "type": "string", "jsonPath": ".status.sync.status"}),
            json!({"name": "Health Status", "type": "string", "jsonPath": ".status.health.status"}),
            json!({"name": "Revision", "type": "string", "jsonPath": ".status.sync.revision", "priority": 10}),
            json!({"name": "Project", "type": "string", "jsonPath": ".spec.project", "priority": 10}),
        ],
        status_subresource: false,
    })
}

fn argo_application_set_crd() -> Value {
    let schema = root_schema(json!({
        "spec": {
            "type": "object",
            "required": ["generators", "template"],
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "generators": open_array(),
                "template": open_object(),
            },
        },
    }));
    crd(CrdShape {
        group: crate::ARGO_GROUP,
        version: "v1alpha1",
        kind: "ApplicationSet",
        plural: "applicationsets",
        singular: "applicationset",
        short_names: &["appset", "appsets"],
        namespaced: true,
        categories: &[],
        schema,
        columns: vec![age_column()],
        status_subresource: true,
    })
}

/// The multi-cluster Services CRDs (ServiceExport, ServiceImport): the hub serves them, and
/// every simulated member serves them from its first start (as an MCS implementation installs
/// them in each member).
pub fn mcs_crds() -> Vec<Value> {
    vec![
        multicluster_crd("ServiceExport", "serviceexports", "serviceexport"),
        multicluster_crd("ServiceImport", "serviceimports", "serviceimport"),
    ]
}

/// The CustomResourceDefinitions (as JSON) the hub creates before it reports ready:
/// Application, Policy, Workflow, ApplicationRevision, ResourceTracker, ManagedCluster,
/// ServiceExport, ServiceImport and Argo CD's Application and ApplicationSet are served from these.
/// `FleetRoleBinding` (`auth.flotilla.io/v1alpha1`, cluster-scoped): a grant of a ClusterRole to
/// users or groups on selected member clusters (`flotilla auth grant-privileges`).
fn fleet_role_binding_crd() -> Value {
    crd(CrdShape {
        group: "auth.flotilla.io",
        version: "v1alpha1",
        kind: "FleetRoleBinding",
        plural: "fleetrolebindings",
        singular: "fleetrolebinding",
        short_names: &["frb"],
        namespaced: false,
        categories: &[],
        schema: root_schema(json!({
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "subjects": open_array(),
                    "clusters": {"type": "array", "items": {"type": "string"}},
                    "clusterSelector": open_object(),
                    "namespace": {"type": "string"},
                    "clusterRole": {"type": "string"},
                    "readonly": {"type": "boolean"},
                },
            },
        })),
        columns: vec![
            json!({"name": "ROLE", "type": "string", "jsonPath": ".spec.clusterRole"}),
            json!({"name": "NAMESPACE", "type": "string", "jsonPath": ".spec.namespace"}),
            json!({"name": "CLUSTERS", "type": "string", "jsonPath": ".spec.clusters"}),
            age_column(),
        ],
        status_subresource: false,
    })
}

/// Every CustomResourceDefinition the hub installs at start (the fleet kinds, MCS and Argo CD's),
/// as JSON objects ready to create.
pub fn crds() -> Vec<Value> {
    vec![
        fleet_role_binding_crd(),
        application_crd(),
        policy_crd(),
        workflow_crd(),
        application_revision_crd(),
        resource_tracker_crd(),
        managed_cluster_crd(),
        multicluster_crd("ServiceExport", "serviceexports", "serviceexport"),
        multicluster_crd("ServiceImport", "serviceimports", "serviceimport"),
        argo_application_crd(),
        argo_application_set_crd(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    #[test]
    fn every_crd_parses_as_a_custom_resource_definition() {
        let mut names = Vec::new();
        for value in crds() {
            let crd: CustomResourceDefinition =
                serde_json::from_value(value).expect("valid CustomResourceDefinition");
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{}.{}", crd.spec.names.plural, crd.spec.group).as_str())
            );
            assert_eq!(crd.spec.versions.len(), 1);
            assert!(crd.spec.versions[0].schema.is_some());
            names.push(crd.spec.names.kind.clone());
        }
        assert_eq!(
            names,
            [
                "FleetRoleBinding",
                "Application",
                "Policy",
                "Workflow",
                "ApplicationRevision",
                "ResourceTracker",
                "ManagedCluster",
                "ServiceExport",
                "ServiceImport",
                "Application",
                "ApplicationSet"
            ]
        );
    }

    #[test]
    fn application_columns_match_kubectl_get_app() {
        let app = application_crd();
        let columns: Vec<&str> = app["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            ["COMPONENT", "TYPE", "PHASE", "HEALTHY", "STATUS", "AGE"]
        );
        assert_eq!(
            app["spec"]["names"]["shortNames"],
            json!(["app", "velaapp"])
        );
        assert_eq!(
            app["spec"]["versions"][0]["subresources"],
            json!({"status": {}})
        );
    }

    #[test]
    fn managed_cluster_is_cluster_scoped_with_ocm_columns() {
        let mc = managed_cluster_crd();
        assert_eq!(mc["spec"]["scope"], "Cluster");
        let columns: Vec<&str> = mc["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            [
                "HUB ACCEPTED",
                "MANAGED CLUSTER URLS",
                "JOINED",
                "AVAILABLE",
                "AGE"
            ]
        );
    }
}
