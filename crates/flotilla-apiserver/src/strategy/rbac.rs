//! `rbac.authorization.k8s.io/v1`: Role, ClusterRole, RoleBinding, ClusterRoleBinding. Names
//! are path segments (`system:controller:x` is fine); bindings print their subjects.

use serde_json::{Value, json};

use super::print::{age, arr, name, s};
use super::{Aggregate, NameRule, PrintColumn, Strategy};
use k8s_openapi::api::rbac::v1 as rbac;

/// Namespace admins manage their Roles and RoleBindings with every verb.
const ALL: &[&str] = crate::registry::ALL_VERBS;

/// Roles and bindings.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::typed::<rbac::Role>()
        .names(NameRule::Path)
        .aggregate(Aggregate::Admin(ALL)),
    Strategy::typed::<rbac::ClusterRole>().names(NameRule::Path),
    Strategy::typed::<rbac::RoleBinding>()
        .names(NameRule::Path)
        .aggregate(Aggregate::Admin(ALL))
        .columns(BINDING_COLUMNS),
    Strategy::typed::<rbac::ClusterRoleBinding>()
        .names(NameRule::Path)
        .columns(BINDING_COLUMNS),
];

const BINDING_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Role", |o| {
        json!(format!(
            "{}/{}",
            s(o, "/roleRef/kind"),
            s(o, "/roleRef/name")
        ))
    }),
    PrintColumn::new("Age", age),
    PrintColumn::new("Users", |o| json!(subjects(o, "User"))).wide(),
    PrintColumn::new("Groups", |o| json!(subjects(o, "Group"))).wide(),
    PrintColumn::new("ServiceAccounts", |o| json!(subjects(o, "ServiceAccount"))).wide(),
];

fn subjects(obj: &Value, kind: &str) -> String {
    arr(obj, "/subjects")
        .iter()
        .filter(|sub| s(sub, "/kind") == kind)
        .map(|sub| {
            if kind == "ServiceAccount" {
                format!("{}/{}", s(sub, "/namespace"), s(sub, "/name"))
            } else {
                s(sub, "/name").to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
