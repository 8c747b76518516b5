//! The RBAC objects every API server starts with, shaped like kube-apiserver's bootstrap
//! policy: `cluster-admin`, the aggregated `admin`/`edit`/`view` roles with their
//! `system:aggregate-to-*` building blocks (plus the fleet kinds), and the discovery,
//! basic-user and public-info roles bound to every authenticated user, and
//! `system:monitoring` (`/metrics`) for the group of that name.

use serde_json::{Value, json};

const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn metadata(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({
        "name": name,
        "labels": l,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": RBAC_V1,
        "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "rules": rules,
    })
}

fn aggregated_role(name: &str, labels: &[(&str, &str)], aggregate_from: &str) -> Value {
    json!({
        "apiVersion": RBAC_V1,
        "kind": "ClusterRole",
        "metadata": metadata(name, labels),
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {format!("{AGGREGATE_TO}{aggregate_from}"): "true"}}
        ]},
        "rules": [],
    })
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": RBAC_V1,
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn to(level: &str) -> (String, &'static str) {
    (format!("{AGGREGATE_TO}{level}"), "true")
}

/// The bootstrap ClusterRoles and ClusterRoleBindings, in creation order.
pub(super) fn objects() -> Vec<Value> {
    let (admin_k, t) = to("admin");
    let (edit_k, _) = to("edit");
    let (view_k, _) = to("view");
    let admin_l = [(admin_k.as_str(), t)];
    let edit_l = [(edit_k.as_str(), t)];
    let view_l = [(view_k.as_str(), t)];

    let view_rules = vec![
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ,
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
        rule(
            READ,
            &["multicluster.x-k8s.io"],
            &["serviceexports", "serviceexports/status", "serviceimports"],
        ),
    ];
    let edit_rules = vec![
        rule(
            READ,
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(
            WRITE,
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(
            WRITE,
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
        ),
        rule(
            WRITE,
            &["multicluster.x-k8s.io"],
            &["serviceexports", "serviceimports"],
        ),
    ];
    let admin_rules = vec![
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
        ),
        rule(ALL, &[RBAC_GROUP], &["rolebindings", "roles"]),
    ];
    // The fleet kinds (KubeVela applications and OCM clusters).
    let fleet_view_rules = vec![
        rule(
            READ,
            &["core.oam.dev"],
            &[
                "applications",
                "applications/status",
                "applicationrevisions",
                "policies",
                "workflows",
                "resourcetrackers",
            ],
        ),
        rule(
            READ,
            &["cluster.open-cluster-management.io"],
            &["managedclusters", "managedclusters/status"],
        ),
    ];
    let fleet_edit_rules = vec![
        rule(
            WRITE,
            &["core.oam.dev"],
            &[
                "applications",
                "applications/status",
                "policies",
                "workflows",
            ],
        ),
        rule(&["delete"], &["core.oam.dev"], &["applicationrevisions"]),
    ];

    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated_role("admin", &[], "admin"),
        aggregated_role("edit", &admin_l, "edit"),
        aggregated_role("view", &edit_l, "view"),
        cluster_role("system:aggregate-to-admin", &admin_l, admin_rules),
        cluster_role("system:aggregate-to-edit", &edit_l, edit_rules),
        cluster_role("system:aggregate-to-view", &view_l, view_rules),
        cluster_role(
            "flotilla:fleet-aggregate-to-edit",
            &edit_l,
            fleet_edit_rules,
        ),
        cluster_role(
            "flotilla:fleet-aggregate-to-view",
            &view_l,
            fleet_view_rules,
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:monitoring",
            "system:monitoring",
            &["system:monitoring"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::{Attributes, Snapshot};
    use flotilla_core::user::UserInfo;

    /// Evaluates the bootstrap policy plus `extra` objects.
    fn snapshot(extra: Vec<Value>) -> Snapshot {
        let mut all = objects();
        all.extend(extra);
        Snapshot::for_tests(all)
    }

    fn user() -> UserInfo {
        UserInfo::new("carol", vec!["system:authenticated".into()])
    }

    #[test]
    fn every_object_is_labelled_and_parses() {
        for o in objects() {
            assert_eq!(
                o["metadata"]["labels"]["kubernetes.io/bootstrapping"],
                "rbac-defaults"
            );
        }
        let _ = snapshot(vec![]);
    }

    #[test]
    fn authenticated_users_can_discover_and_review_only() {
        let s = snapshot(vec![]);
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(s.authorize(&user(), &path("/apis/apps/v1")).allowed());
        assert!(s.authorize(&user(), &path("/version")).allowed());
        assert!(!s.authorize(&user(), &path("/metrics")).allowed());
        let scraper = UserInfo::new("prometheus", vec!["system:monitoring".into()]);
        assert!(s.authorize(&scraper, &path("/metrics")).allowed());
        let ssar = Attributes::resource(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            "",
        );
        assert!(s.authorize(&user(), &ssar).allowed());
        let whoami = Attributes::resource(
            "create",
            "authentication.k8s.io",
            "selfsubjectreviews",
            "",
            "",
        );
        assert!(s.authorize(&user(), &whoami).allowed());
        let list = Attributes::resource("list", "", "configmaps", "default", "");
        assert!(!s.authorize(&user(), &list).allowed());
    }

    #[test]
    fn view_edit_admin_aggregate() {
        let bind = |role: &str| {
            json!({"apiVersion": RBAC_V1, "kind": "RoleBinding",
                   "metadata": {"name": "b", "namespace": "team"},
                   "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
                   "subjects": [{"kind": "User", "apiGroup": RBAC_GROUP, "name": "carol"}]})
        };
        let a = |verb: &str, group: &str, resource: &str| {
            Attributes::resource(verb, group, resource, "team", "")
        };
        let view = snapshot(vec![bind("view")]);
        assert!(
            view.authorize(&user(), &a("list", "apps", "deployments"))
                .allowed()
        );
        assert!(
            view.authorize(&user(), &a("get", "core.oam.dev", "applications"))
                .allowed()
        );
        assert!(!view.authorize(&user(), &a("list", "", "secrets")).allowed());
        assert!(
            !view
                .authorize(&user(), &a("create", "apps", "deployments"))
                .allowed()
        );

        let edit = snapshot(vec![bind("edit")]);
        assert!(
            edit.authorize(&user(), &a("create", "apps", "deployments"))
                .allowed()
        );
        assert!(edit.authorize(&user(), &a("list", "", "secrets")).allowed());
        assert!(
            edit.authorize(&user(), &a("patch", "core.oam.dev", "applications"))
                .allowed()
        );
        assert!(
            !edit
                .authorize(&user(), &a("create", RBAC_GROUP, "roles"))
                .allowed()
        );

        let admin = snapshot(vec![bind("admin")]);
        assert!(
            admin
                .authorize(&user(), &a("create", RBAC_GROUP, "rolebindings"))
                .allowed()
        );
        assert!(
            admin
                .authorize(&user(), &a("list", "apps", "deployments"))
                .allowed()
        );
        let elsewhere = Attributes::resource("list", "", "configmaps", "other", "");
        assert!(!admin.authorize(&user(), &elsewhere).allowed());
    }
}
