//! The RBAC objects every API server starts with, shaped like kube-apiserver's bootstrap
//! policy: `cluster-admin`, the aggregated `admin`/`edit`/`view` roles with their
//! `system:aggregate-to-*` building blocks (generated from the kind table: each built-in
//! kind's strategy says which levels grant it, [`Aggregate`]; plus the fleet kinds), and the discovery,
//! basic-user and public-info roles bound to every authenticated user, and
//! `system:monitoring` (`/metrics`) for the group of that name.

use flotilla_core::kinds;
use serde_json::{Value, json};

use crate::strategy::{self, Aggregate};

const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
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

/// One rule's verbs, API group and resources.
type Grant = (
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
);

/// What `view` reads beyond the served kinds' own grants: kube-apiserver's bootstrap view
/// role names these resources Flotilla does not serve (or serves as subresources), and the
/// multicluster CRDs Flotilla installs.
const VIEW_BEYOND_KINDS: &[Grant] = &[
    (
        READ,
        "",
        &[
            "bindings",
            "limitranges",
            "pods/log",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "replicationcontrollers/status",
            "resourcequotas",
            "resourcequotas/status",
        ],
    ),
    (READ, "apps", &["controllerrevisions"]),
    (
        READ,
        "multicluster.x-k8s.io",
        &["serviceexports", "serviceexports/status", "serviceimports"],
    ),
];

/// What `edit` may do beyond the served kinds' own grants, as kube-apiserver's bootstrap
/// edit role (pod and service subresources, ServiceAccount tokens and impersonation,
/// ReplicationControllers, rollbacks), and the multicluster CRDs.
const EDIT_BEYOND_KINDS: &[Grant] = &[
    (
        READ,
        "",
        &[
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
            "services/proxy",
        ],
    ),
    (&["impersonate"], "", &["serviceaccounts"]),
    (
        WRITE,
        "",
        &[
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "services/proxy",
        ],
    ),
    (&["create"], "", &["pods/eviction", "serviceaccounts/token"]),
    (WRITE, "apps", &["deployments/rollback"]),
    (
        WRITE,
        "multicluster.x-k8s.io",
        &["serviceexports", "serviceimports"],
    ),
];

/// One of the aggregated roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    View,
    Edit,
    Admin,
}

/// What `level` grants on the served kinds, as each kind's strategy declares
/// ([`Aggregate`]): (verbs, group, resource), in kind-table order.
fn kind_grants(level: Level) -> Vec<(&'static [&'static str], &'static str, String)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for k in kinds::builtin().filter(|k| seen.insert((k.group, k.plural))) {
        let p = k.plural;
        let mut grant = |verbs: &'static [&'static str], sub: &str| {
            out.push((verbs, k.group, format!("{p}{sub}")))
        };
        match (strategy::for_kind(k.group, k.kind).aggregate, level) {
            (Aggregate::ViewEdit | Aggregate::View, Level::View) => {
                grant(READ, "");
                if k.status {
                    grant(READ, "/status");
                }
                if k.scale {
                    grant(READ, "/scale");
                }
            }
            (Aggregate::ViewEdit, Level::Edit) => {
                grant(WRITE, "");
                if k.scale {
                    grant(WRITE, "/scale");
                }
            }
            (Aggregate::Edit, Level::Edit) => {
                grant(READ, "");
                grant(WRITE, "");
            }
            (Aggregate::Admin(verbs), Level::Admin) => grant(verbs, ""),
            _ => {}
        }
    }
    out
}

/// The rules of `system:aggregate-to-{level}`: the served kinds' grants, then `beyond`, one
/// rule per verbs and group (in order of first appearance) with its resources sorted.
fn aggregated_rules(level: Level, beyond: &[Grant]) -> Vec<Value> {
    let beyond = beyond
        .iter()
        .flat_map(|(verbs, group, rs)| rs.iter().map(|r| (*verbs, *group, r.to_string())));
    let mut rules: Vec<(&[&str], &str, std::collections::BTreeSet<String>)> = Vec::new();
    for (verbs, group, resource) in kind_grants(level).into_iter().chain(beyond) {
        match rules
            .iter_mut()
            .find(|(v, g, _)| *v == verbs && *g == group)
        {
            Some((_, _, resources)) => {
                resources.insert(resource);
            }
            None => rules.push((verbs, group, [resource].into())),
        }
    }
    rules
        .into_iter()
        .map(|(verbs, group, resources)| {
            json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
        })
        .collect()
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

    let view_rules = aggregated_rules(Level::View, VIEW_BEYOND_KINDS);
    let edit_rules = aggregated_rules(Level::Edit, EDIT_BEYOND_KINDS);
    let admin_rules = aggregated_rules(Level::Admin, &[]);
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
    use std::collections::BTreeSet;

    /// Evaluates the bootstrap policy plus `extra` objects.
    fn snapshot(extra: Vec<Value>) -> Snapshot {
        let mut all = objects();
        all.extend(extra);
        Snapshot::for_tests(all)
    }

    fn user() -> UserInfo {
        UserInfo::new("carol", vec!["system:authenticated".into()])
    }

    /// Every (verb, group, resource) the rules of the ClusterRole `name` grant.
    fn grants_of(rules: &[Value]) -> BTreeSet<(String, String, String)> {
        let strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let mut out = BTreeSet::new();
        for rule in rules {
            for verb in strs(&rule["verbs"]) {
                for group in strs(&rule["apiGroups"]) {
                    for resource in strs(&rule["resources"]) {
                        out.insert((verb.clone(), group.clone(), resource));
                    }
                }
            }
        }
        out
    }

    fn role_rules(name: &str) -> Vec<Value> {
        let role = objects()
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap();
        role["rules"].as_array().unwrap().clone()
    }

    /// The aggregated roles still grant everything they granted when they were a hand-written
    /// list (the fixture), now that the served kinds' strategies declare their grants.
    #[test]
    fn aggregated_roles_grant_what_the_hand_written_list_did() {
        let before: Value = serde_json::from_str(include_str!(
            "testdata/aggregate_roles_before_kind_table.json"
        ))
        .unwrap();
        for level in ["view", "edit", "admin"] {
            let old = grants_of(before[level].as_array().unwrap());
            let new = grants_of(&role_rules(&format!("system:aggregate-to-{level}")));
            let lost: Vec<_> = old.difference(&new).collect();
            assert!(lost.is_empty(), "{level} no longer grants {lost:?}");
        }
    }

    /// Every namespaced workload-like kind (category `all`) is readable by `view` with its
    /// subresources and writable by `edit`; nothing `view` reads is writable by `view`.
    #[test]
    fn view_and_edit_cover_every_namespaced_kind_in_all() {
        let view = grants_of(&role_rules("system:aggregate-to-view"));
        let edit = grants_of(&role_rules("system:aggregate-to-edit"));
        let has = |set: &BTreeSet<(String, String, String)>, verb: &str, g: &str, r: &str| {
            set.contains(&(verb.to_string(), g.to_string(), r.to_string()))
        };
        for k in kinds::builtin().filter(|k| k.namespaced() && k.categories.contains(&"all")) {
            assert!(
                has(&view, "list", k.group, k.plural),
                "view lists {}",
                k.plural
            );
            assert!(
                has(&edit, "patch", k.group, k.plural),
                "edit patches {}",
                k.plural
            );
            let status = format!("{}/status", k.plural);
            assert_eq!(has(&view, "get", k.group, &status), k.status, "{status}");
            let scale = format!("{}/scale", k.plural);
            assert_eq!(has(&edit, "update", k.group, &scale), k.scale, "{scale}");
        }
        assert!(
            view.iter()
                .all(|(verb, _, _)| READ.contains(&verb.as_str()))
        );
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
