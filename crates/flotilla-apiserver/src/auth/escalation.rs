//! RBAC escalation prevention, as kube-apiserver's RBAC storage does it: a user may only
//! create or update a Role/ClusterRole granting rights they already hold (or with verb
//! `escalate` on roles/clusterroles), and only bind a role whose rights they hold (or with
//! verb `bind` on that role).

use flotilla_core::status::ApiError;
use flotilla_core::user::{SYSTEM_MASTERS, UserInfo};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::Auth;
use super::rbac::Attributes;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == v)
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

/// Splits rules into one rule per (group, resource, verb, name) or (url, verb).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    let one = |v: &str| Some(vec![v.to_string()]);
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: vec![verb.clone()],
                        ..Default::default()
                    });
                }
                for name in names {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        verbs: vec![verb.clone()],
                        ..Default::default()
                    });
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..Default::default()
            });
        }
    }
    out
}

fn resource_covers_all(owner: &[String], requested: &[String]) -> bool {
    if has(owner, "*") {
        return true;
    }
    requested.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn urls_cover_all(owner: &[String], requested: &[String]) -> bool {
    requested.iter().all(|url| {
        owner.iter().any(|o| {
            o == url
                || o == "*"
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        })
    })
}

fn rule_covers(owner: &PolicyRule, requested: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || requested.verbs.iter().all(|v| has(&owner.verbs, v));
    let groups = has(list(&owner.api_groups), "*")
        || list(&requested.api_groups)
            .iter()
            .all(|g| has(list(&owner.api_groups), g));
    let resources = resource_covers_all(list(&owner.resources), list(&requested.resources));
    let urls = urls_cover_all(
        list(&owner.non_resource_urls),
        list(&requested.non_resource_urls),
    );
    let owner_names = list(&owner.resource_names);
    let names = if list(&requested.resource_names).is_empty() {
        owner_names.is_empty()
    } else {
        owner_names.is_empty()
            || list(&requested.resource_names)
                .iter()
                .all(|n| has(owner_names, n))
    };
    verbs && groups && resources && urls && names
}

/// The parts of `servant` not covered by `owner` (empty when fully covered).
pub(super) fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Kubernetes' compact rule rendering: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
fn compact(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, values) in [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
        ("ResourceNames", list(&rule.resource_names)),
        ("Verbs", rule.verbs.as_slice()),
    ] {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", go_quoted_list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Merges single-resource rules that differ only in verb, as Kubernetes' `CompactRules`.
fn compact_rules(missing: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for rule in missing {
        let simple = rule.resource_names.as_ref().is_none_or(|n| n.is_empty())
            && rule.non_resource_urls.as_ref().is_none_or(|n| n.is_empty())
            && list(&rule.api_groups).len() == 1
            && list(&rule.resources).len() == 1;
        if simple
            && let Some(existing) = out.iter_mut().find(|o| {
                o.resource_names.is_none()
                    && o.non_resource_urls.is_none()
                    && o.api_groups == rule.api_groups
                    && o.resources == rule.resources
            })
        {
            for verb in &rule.verbs {
                if !has(&existing.verbs, verb) {
                    existing.verbs.push(verb.clone());
                }
            }
            continue;
        }
        out.push(rule.clone());
    }
    out
}

fn escalation_forbidden(
    resource: &str,
    name: &str,
    user: &UserInfo,
    missing: &[PolicyRule],
) -> ApiError {
    let mut rules: Vec<String> = compact_rules(missing).iter().map(compact).collect();
    rules.sort();
    rules.dedup();
    let message = format!(
        "{}.{RBAC_GROUP} {:?} is forbidden: user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        resource,
        name,
        user.username,
        go_quoted_list(&user.groups),
        rules.join("\n")
    );
    let mut e = ApiError::forbidden(message);
    e.group = Some(RBAC_GROUP.into());
    e.kind = Some(resource.to_string());
    e.name = Some(name.to_string()).filter(|n| !n.is_empty());
    e
}

/// Refuses storing an RBAC object (`object` as it would be stored) that would grant `user`
/// rights it does not hold; `resource` is `roles`, `clusterroles`, `rolebindings` or
/// `clusterrolebindings` (anything else passes). Verbs `escalate` and `bind` lift it.
pub(super) async fn check(
    auth: &Auth,
    user: &UserInfo,
    resource: &str,
    object: &Value,
) -> Result<(), ApiError> {
    if user.in_group(SYSTEM_MASTERS) {
        return Ok(());
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    match resource {
        "roles" | "clusterroles" => {
            let escalate = Attributes {
                verb: "escalate".into(),
                is_resource_request: true,
                api_group: RBAC_GROUP.into(),
                resource: resource.to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
                ..Default::default()
            };
            if auth.authorize(user, &escalate).await.allowed() {
                return Ok(());
            }
            let mut rules: Vec<PolicyRule> =
                serde_json::from_value(object["rules"].clone()).unwrap_or_default();
            if resource == "clusterroles" && object["aggregationRule"].is_object() {
                // An aggregated role's rules are computed; what it could select is checked
                // when those roles are written.
                rules.clear();
            }
            confirm_no_escalation(auth, resource, &name, user, &namespace, &rules).await
        }
        "rolebindings" | "clusterrolebindings" => {
            // A malformed roleRef grants nothing; validation refuses the object.
            let Ok(role_ref) = serde_json::from_value::<RoleRef>(object["roleRef"].clone()) else {
                return Ok(());
            };
            let bind = Attributes {
                verb: "bind".into(),
                is_resource_request: true,
                api_group: RBAC_GROUP.into(),
                resource: if role_ref.kind == "Role" {
                    "roles".into()
                } else {
                    "clusterroles".into()
                },
                namespace: namespace.clone(),
                name: role_ref.name.clone(),
                ..Default::default()
            };
            if auth.authorize(user, &bind).await.allowed() {
                return Ok(());
            }
            auth.rbac.wait_synced().await;
            let _ = auth.rbac.refresh().await;
            let rules = auth
                .rbac
                .snapshot()
                .role_rules(&role_ref, &namespace)
                .ok_or_else(|| {
                    let resource = if role_ref.kind == "Role" {
                        "roles"
                    } else {
                        "clusterroles"
                    };
                    ApiError::not_found(RBAC_GROUP, resource, &role_ref.name)
                })?;
            confirm_no_escalation(auth, resource, &name, user, &namespace, &rules).await
        }
        _ => Ok(()),
    }
}

/// Registers the check with the store: it runs on the final object of every RBAC create
/// and update a user asks for (PUT, PATCH, apply, POST alike).
pub(super) fn register(auth: &std::sync::Arc<Auth>) {
    let weak = std::sync::Arc::downgrade(auth);
    auth.store.before_write(std::sync::Arc::new(
        move |attempt: &crate::store::WriteAttempt<'_>| {
            if attempt.resource.group != RBAC_GROUP || attempt.user.in_group(SYSTEM_MASTERS) {
                return None;
            }
            let auth = weak.upgrade()?;
            let user = attempt.user.clone();
            let resource = attempt.resource.resource.to_string();
            let object = attempt.object.clone();
            Some(Box::pin(async move {
                check(&auth, &user, &resource, &object).await
            }))
        },
    ));
}

async fn confirm_no_escalation(
    auth: &Auth,
    resource: &str,
    name: &str,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), ApiError> {
    auth.rbac.wait_synced().await;
    let owned = auth.rbac.snapshot().rules_for(user, namespace).rules;
    let missing = uncovered(&owned, rules);
    if missing.is_empty() {
        return Ok(());
    }
    // The cache may be a moment behind a grant just made: re-read before refusing.
    if let Ok(true) = auth.rbac.refresh().await {
        let owned = auth.rbac.snapshot().rules_for(user, namespace).rules;
        let missing = uncovered(&owned, rules);
        if missing.is_empty() {
            return Ok(());
        }
        return Err(escalation_forbidden(resource, name, user, &missing));
    }
    Err(escalation_forbidden(resource, name, user, &missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn coverage() {
        let owner = vec![
            rule(&["get", "list"], &[""], &["configmaps", "pods/log"]),
            rule(&["*"], &["apps"], &["deployments"]),
            rule(&["get"], &["batch"], &["*/status"]),
        ];
        assert!(uncovered(&owner, &[rule(&["get"], &[""], &["configmaps"])]).is_empty());
        assert!(
            uncovered(
                &owner,
                &[rule(&["delete", "get"], &["apps"], &["deployments"])]
            )
            .is_empty()
        );
        assert!(uncovered(&owner, &[rule(&["get"], &["batch"], &["jobs/status"])]).is_empty());
        let missing = uncovered(
            &owner,
            &[rule(&["get", "create"], &[""], &["configmaps", "secrets"])],
        );
        assert_eq!(missing.len(), 3);
        let text: Vec<String> = compact_rules(&missing).iter().map(compact).collect();
        assert_eq!(
            text,
            vec![
                "{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"create\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"create\"]}",
            ]
        );
        // A wildcard is only covered by a wildcard.
        assert_eq!(
            uncovered(&owner, &[rule(&["get"], &["*"], &["*"])]).len(),
            1
        );
        // Named grants are covered by unnamed ones, not the other way round.
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named.resource_names = Some(vec!["a".into()]);
        assert!(uncovered(&owner, std::slice::from_ref(&named)).is_empty());
        assert_eq!(
            uncovered(&[named], &[rule(&["get"], &[""], &["configmaps"])]).len(),
            1
        );
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/apis/*".into()]),
            ..Default::default()
        };
        let want = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/apis/apps".into()]),
            ..Default::default()
        };
        assert!(uncovered(&[urls], &[want]).is_empty());
    }
}
