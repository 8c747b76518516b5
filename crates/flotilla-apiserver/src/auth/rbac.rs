//! The RBAC authorizer: Role, ClusterRole, RoleBinding and ClusterRoleBinding
//! (`rbac.authorization.k8s.io/v1`) evaluated the way kube-apiserver's RBAC authorizer does.
//!
//! The objects are kept in memory ([`RbacCache`]), refreshed by a storage watch, so a
//! decision is a read lock and a walk over the bindings. Aggregated ClusterRoles
//! (`aggregationRule`) get their rules computed from the ClusterRoles their selectors match,
//! transitively, each time the cache changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flotilla_core::status::ApiError;
use flotilla_core::user::{SYSTEM_MASTERS, UserInfo};
use flotilla_storage::{Event, KeyValue, Revision};
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use parking_lot::{Mutex, RwLock};

use crate::request_info::RequestInfo;

/// How long a request waits for the first read of the RBAC policy.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

use crate::store::Store;
use crate::store::keys::{CLUSTER_ROLES, RBAC_GROUP, group_resource};
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// What is being asked: Kubernetes' `authorizer.Attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub verb: String,
    pub is_resource_request: bool,
    /// Non-resource requests: the path.
    pub path: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl Attributes {
    /// The attributes of an API request.
    pub(crate) fn from_request(info: &RequestInfo) -> Attributes {
        Attributes {
            verb: info.verb.clone(),
            is_resource_request: info.is_resource_request,
            path: info.path.clone(),
            namespace: info.namespace.clone(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            name: info.name.clone(),
        }
    }

    /// A resource check (`kubectl auth can-i VERB RESOURCE`).
    #[cfg(test)]
    pub(crate) fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attributes {
            verb: verb.into(),
            is_resource_request: true,
            api_group: api_group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Allowed; the reason names the binding (`RBAC: allowed by ClusterRoleBinding ...`).
    Allow(String),
    /// No rule allows it; the reason lists broken role references, if any (may be empty).
    Deny(String),
}

impl Decision {
    pub(crate) fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub(crate) fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) => r,
        }
    }
}

/// The 403 kube-apiserver returns for a denied request, word for word, e.g.
/// `configmaps "x" is forbidden: User "alice" cannot get resource "configmaps" in API group
/// "" in the namespace "default"`.
pub(crate) fn forbidden(user: &str, attrs: &Attributes, reason: &str) -> ApiError {
    let what = if !attrs.is_resource_request {
        format!(
            "User {:?} cannot {} path {:?}",
            user, attrs.verb, attrs.path
        )
    } else {
        let mut resource = attrs.resource.clone();
        if !attrs.subresource.is_empty() {
            resource = format!("{resource}/{}", attrs.subresource);
        }
        if attrs.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                user, attrs.verb, resource, attrs.api_group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                user, attrs.verb, resource, attrs.api_group, attrs.namespace
            )
        }
    };
    let what = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let message = if !attrs.is_resource_request || qualified.is_empty() {
        format!("forbidden: {what}")
    } else if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {what}")
    } else {
        format!("{qualified} {:?} is forbidden: {what}", attrs.name)
    };
    let mut e = ApiError::forbidden(message);
    if attrs.is_resource_request {
        e.group = Some(attrs.api_group.clone()).filter(|g| !g.is_empty());
        e.kind = Some(attrs.resource.clone()).filter(|r| !r.is_empty());
        e.name = Some(attrs.name.clone()).filter(|n| !n.is_empty());
    }
    e
}

// ---------------------------------------------------------------------------------------------
// Rule matching (pure).

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == value)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    rule.resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| {
            r == "*"
                || *r == combined
                || (!subresource.is_empty()
                    && r.len() == subresource.len() + 2
                    && r.starts_with("*/")
                    && r.ends_with(subresource))
        })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => has(names, name),
    }
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
}

/// Whether one rule allows the request (Kubernetes' `RuleAllows`).
pub(crate) fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if attrs.is_resource_request {
        verb_matches(rule, &attrs.verb)
            && api_group_matches(rule, &attrs.api_group)
            && resource_matches(rule, &attrs.resource, &attrs.subresource)
            && resource_name_matches(rule, &attrs.name)
    } else {
        verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, &attrs.path)
    }
}

/// Whether a binding subject names `user`; `namespace` is the binding's (RoleBindings) and
/// the default namespace of ServiceAccount subjects.
fn applies_to(user: &UserInfo, subject: &Subject, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.username == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty()
                && user.username.strip_prefix(SERVICE_ACCOUNT_PREFIX)
                    == Some(&format!("{ns}:{}", subject.name))
        }
        _ => false,
    }
}

fn describe_subject(subject: &Subject, namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let ns = subject
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(namespace);
        format!("{} {:?}", subject.kind, format!("{ns}/{}", subject.name))
    } else {
        format!("{} {:?}", subject.kind, subject.name)
    }
}

/// Whether `labels` match a `LabelSelector` (matchLabels and matchExpressions; an empty
/// selector matches everything, as in Kubernetes).
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = selector
        .match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| has(values, v)),
                "NotIn" => value.is_none_or(|v| !has(values, v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    labels_ok && exprs_ok
}

// ---------------------------------------------------------------------------------------------
// The evaluated state.

/// One RoleBinding or ClusterRoleBinding, reduced to what evaluation needs.
#[derive(Debug, Clone)]
struct Binding {
    name: String,
    namespace: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// Called per applicable binding with (describe the binding, its rules, a broken-reference
/// error); returns false to stop the walk.
type BindingVisitor<'a> =
    dyn FnMut(&dyn Fn() -> String, &[PolicyRule], Option<String>) -> bool + 'a;

/// A consistent view of all RBAC objects with aggregated rules resolved.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    /// Aggregated ClusterRoles whose stored `rules` differ from the computed ones.
    stale_aggregations: Vec<(String, Vec<PolicyRule>)>,
    role_bindings: HashMap<String, Vec<Binding>>,
    cluster_role_bindings: Vec<Binding>,
}

/// Every RBAC rule that applies to a user in a namespace, for SelfSubjectRulesReview.
#[derive(Debug, Default)]
pub(crate) struct RulesSummary {
    pub rules: Vec<PolicyRule>,
    /// Broken role references met on the way.
    pub errors: Vec<String>,
}

impl Snapshot {
    /// Builds the snapshot from parsed objects.
    fn build(objects: &Objects) -> Snapshot {
        let mut snap = Snapshot::default();
        for object in objects.by_key.values().filter_map(|e| e.object.as_ref()) {
            match object {
                RbacObject::Role(r) => {
                    let ns = r.metadata.namespace.clone().unwrap_or_default();
                    let name = r.metadata.name.clone().unwrap_or_default();
                    snap.roles
                        .insert((ns, name), Arc::new(r.rules.clone().unwrap_or_default()));
                }
                RbacObject::RoleBinding(b) => {
                    let ns = b.metadata.namespace.clone().unwrap_or_default();
                    snap.role_bindings
                        .entry(ns.clone())
                        .or_default()
                        .push(Binding {
                            name: b.metadata.name.clone().unwrap_or_default(),
                            namespace: ns,
                            role_ref: b.role_ref.clone(),
                            subjects: b.subjects.clone().unwrap_or_default(),
                        });
                }
                RbacObject::ClusterRoleBinding(b) => snap.cluster_role_bindings.push(Binding {
                    name: b.metadata.name.clone().unwrap_or_default(),
                    namespace: String::new(),
                    role_ref: b.role_ref.clone(),
                    subjects: b.subjects.clone().unwrap_or_default(),
                }),
                RbacObject::ClusterRole(_) => {}
            }
        }
        // Deterministic evaluation order (and so deterministic "allowed by" reasons).
        snap.cluster_role_bindings
            .sort_by(|a, b| a.name.cmp(&b.name));
        for list in snap.role_bindings.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let cluster_roles: BTreeMap<&str, &ClusterRole> = objects
            .by_key
            .values()
            .filter_map(|e| match &e.object {
                Some(RbacObject::ClusterRole(c)) => {
                    Some((c.metadata.name.as_deref().unwrap_or(""), c))
                }
                _ => None,
            })
            .collect();
        let mut resolved: HashMap<String, Vec<PolicyRule>> = HashMap::new();
        for name in cluster_roles.keys() {
            let mut visiting = HashSet::new();
            resolve_cluster_role(name, &cluster_roles, &mut resolved, &mut visiting);
        }
        for (name, rules) in resolved {
            if let Some(role) = cluster_roles.get(name.as_str())
                && is_aggregated(role)
                && role.rules.as_deref().unwrap_or_default() != rules.as_slice()
            {
                snap.stale_aggregations.push((name.clone(), rules.clone()));
            }
            snap.cluster_roles.insert(name, Arc::new(rules));
        }
        snap
    }

    /// RBAC's decision for `user` (the `system:masters` group is allowed everything).
    pub(crate) fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow(String::new());
        }
        let mut errors: Vec<String> = Vec::new();
        let mut verdict: Option<String> = None;
        self.visit(user, &attrs.namespace, &mut |source, rules, error| {
            if let Some(e) = error {
                errors.push(e);
                return true;
            }
            if rules.iter().any(|r| rule_allows(attrs, r)) {
                verdict = Some(format!("RBAC: allowed by {}", source()));
                return false;
            }
            true
        });
        match verdict {
            Some(reason) => Decision::Allow(reason),
            None => Decision::Deny(aggregate_errors(&errors)),
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide bindings included).
    pub(crate) fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesSummary {
        let mut summary = RulesSummary::default();
        if user.in_group(SYSTEM_MASTERS) {
            summary.rules.push(PolicyRule {
                api_groups: Some(vec!["*".into()]),
                resources: Some(vec!["*".into()]),
                verbs: vec!["*".into()],
                ..Default::default()
            });
            summary.rules.push(PolicyRule {
                non_resource_urls: Some(vec!["*".into()]),
                verbs: vec!["*".into()],
                ..Default::default()
            });
        }
        self.visit(user, namespace, &mut |_, rules, error| {
            match error {
                Some(e) => summary.errors.push(e),
                None => summary.rules.extend(rules.iter().cloned()),
            }
            true
        });
        summary
    }

    /// Calls `visitor(describe, rules, error)` for each binding that applies to `user`:
    /// cluster-wide ones, then those of `namespace`. The visitor returns false to stop.
    fn visit(&self, user: &UserInfo, namespace: &str, visitor: &mut BindingVisitor<'_>) {
        for b in &self.cluster_role_bindings {
            let Some(subject) = b.subjects.iter().find(|s| applies_to(user, s, "")) else {
                continue;
            };
            let describe = || {
                format!(
                    "ClusterRoleBinding {:?} of {} {:?} to {}",
                    b.name,
                    b.role_ref.kind,
                    b.role_ref.name,
                    describe_subject(subject, "")
                )
            };
            let keep_going = match self.role_ref_rules(&b.role_ref, "") {
                Ok(rules) => visitor(&describe, rules, None),
                Err(e) => visitor(&describe, &[], Some(e)),
            };
            if !keep_going {
                return;
            }
        }
        if namespace.is_empty() {
            return;
        }
        for b in self.role_bindings.get(namespace).into_iter().flatten() {
            let Some(subject) = b
                .subjects
                .iter()
                .find(|s| applies_to(user, s, &b.namespace))
            else {
                continue;
            };
            let describe = || {
                format!(
                    "RoleBinding {:?} of {} {:?} to {}",
                    format!("{}/{}", b.name, b.namespace),
                    b.role_ref.kind,
                    b.role_ref.name,
                    describe_subject(subject, &b.namespace)
                )
            };
            let keep_going = match self.role_ref_rules(&b.role_ref, &b.namespace) {
                Ok(rules) => visitor(&describe, rules, None),
                Err(e) => visitor(&describe, &[], Some(e)),
            };
            if !keep_going {
                return;
            }
        }
    }

    /// The effective rules a role reference points at (`None` if the role is missing).
    pub(crate) fn role_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Option<Vec<PolicyRule>> {
        self.role_ref_rules(role_ref, namespace)
            .ok()
            .map(<[PolicyRule]>::to_vec)
    }

    fn role_ref_rules(&self, role_ref: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|r| r.as_slice())
                .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {:?} not found", role_ref.name)),
            "Role" => self
                .roles
                .get(&(namespace.to_string(), role_ref.name.clone()))
                .map(|r| r.as_slice())
                .ok_or_else(|| format!("role.{RBAC_GROUP} {:?} not found", role_ref.name)),
            other => Err(format!("unsupported role reference kind: {other:?}")),
        }
    }
}

fn aggregate_errors(errors: &[String]) -> String {
    match errors {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    }
}

fn is_aggregated(role: &ClusterRole) -> bool {
    role.aggregation_rule
        .as_ref()
        .and_then(|a| a.cluster_role_selectors.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// The effective rules of a ClusterRole: its own, or for an aggregated one the union of the
/// effective rules of every other ClusterRole its selectors match.
fn resolve_cluster_role(
    name: &str,
    all: &BTreeMap<&str, &ClusterRole>,
    resolved: &mut HashMap<String, Vec<PolicyRule>>,
    visiting: &mut HashSet<String>,
) -> Vec<PolicyRule> {
    if let Some(rules) = resolved.get(name) {
        return rules.clone();
    }
    let Some(role) = all.get(name) else {
        return Vec::new();
    };
    if !is_aggregated(role) {
        let rules = role.rules.clone().unwrap_or_default();
        resolved.insert(name.to_string(), rules.clone());
        return rules;
    }
    if !visiting.insert(name.to_string()) {
        // A cycle: the stored rules stand in for this role.
        return role.rules.clone().unwrap_or_default();
    }
    let selectors = role
        .aggregation_rule
        .as_ref()
        .and_then(|a| a.cluster_role_selectors.clone())
        .unwrap_or_default();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for (other_name, other) in all {
        if *other_name == name {
            continue;
        }
        let labels = other.metadata.labels.clone().unwrap_or_default();
        if selectors.iter().any(|s| selector_matches(s, &labels)) {
            for rule in resolve_cluster_role(other_name, all, resolved, visiting) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    visiting.remove(name);
    resolved.insert(name.to_string(), rules.clone());
    rules
}

// ---------------------------------------------------------------------------------------------
// The cache: parsed objects by storage key, kept fresh by a watch.

#[derive(Debug, Clone)]
enum RbacObject {
    Role(Role),
    ClusterRole(ClusterRole),
    RoleBinding(RoleBinding),
    ClusterRoleBinding(ClusterRoleBinding),
}

#[derive(Debug, Clone)]
struct Entry {
    mod_revision: Revision,
    /// `None` for a value that does not parse (kept so revisions still compare).
    object: Option<RbacObject>,
}

#[derive(Debug, Default)]
struct Objects {
    by_key: BTreeMap<String, Entry>,
    /// Everything at or before this revision is reflected (from a consistent read).
    revision: Revision,
}

fn parse_kv(kv: &KeyValue) -> Option<RbacObject> {
    let (group, resource) = group_resource(&kv.key)?;
    if group != RBAC_GROUP {
        return None;
    }
    let parsed = match resource.as_str() {
        "roles" => serde_json::from_slice(&kv.value).map(RbacObject::Role),
        "clusterroles" => serde_json::from_slice(&kv.value).map(RbacObject::ClusterRole),
        "rolebindings" => serde_json::from_slice(&kv.value).map(RbacObject::RoleBinding),
        "clusterrolebindings" => {
            serde_json::from_slice(&kv.value).map(RbacObject::ClusterRoleBinding)
        }
        _ => return None,
    };
    match parsed {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::warn!(key = %kv.key, error = %e, "ignoring an RBAC object that does not parse");
            None
        }
    }
}

/// The in-memory RBAC state with its refresh machinery.
pub(crate) struct RbacCache {
    store: Store,
    objects: Mutex<Objects>,
    snapshot: RwLock<Arc<Snapshot>>,
    synced: AtomicBool,
    synced_notify: tokio::sync::Notify,
}

impl RbacCache {
    /// A cache that is empty until [`RbacCache::spawn`]'s first list completes.
    pub(crate) fn new(store: Store) -> Arc<RbacCache> {
        Arc::new(RbacCache {
            store,
            objects: Mutex::new(Objects::default()),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            synced: AtomicBool::new(false),
            synced_notify: tokio::sync::Notify::new(),
        })
    }

    /// Starts the list-then-watch loop on the current tokio runtime.
    pub(crate) fn spawn(self: &Arc<Self>) {
        let cache = self.clone();
        tokio::spawn(async move { cache.run().await });
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    /// Waits for the first full list (returns at once afterwards).
    pub(crate) async fn wait_synced(&self) {
        loop {
            let notified = self.synced_notify.notified();
            if self.synced.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Authorizes against the cache; before denying, makes sure the cache is not behind the
    /// store (a binding created a moment ago must count), re-reading it if it is.
    pub(crate) async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if tokio::time::timeout(SYNC_TIMEOUT, self.wait_synced())
            .await
            .is_err()
        {
            // The store cannot be read: refuse rather than hang every request.
            return Decision::Deny("RBAC: the authorizer could not read its policy yet".into());
        }
        let decision = self.snapshot().authorize(user, attrs);
        if decision.allowed() {
            return decision;
        }
        match self.refresh().await {
            Ok(true) => self.snapshot().authorize(user, attrs),
            Ok(false) => decision,
            Err(e) => {
                tracing::warn!(error = %e, "re-reading RBAC objects failed");
                decision
            }
        }
    }

    /// Re-reads all RBAC objects; returns true if anything differed from the cache.
    pub(crate) async fn refresh(&self) -> Result<bool, ApiError> {
        // Nothing at all was written since the cache was last known complete: done.
        let current = self.store.current_revision().await?;
        if current <= self.objects.lock().revision {
            return Ok(false);
        }
        let (kvs, revision) = self.list_all().await?;
        let changed = {
            let mut objects = self.objects.lock();
            let changed = kvs.len() != objects.by_key.len()
                || kvs.iter().any(|kv| {
                    objects
                        .by_key
                        .get(&kv.key)
                        .is_none_or(|e| e.mod_revision != kv.mod_revision)
                });
            if !changed {
                // The read proves the cache complete up to its revision.
                objects.revision = objects.revision.max(revision);
            }
            changed
        };
        if changed {
            self.replace(kvs, revision);
        }
        Ok(changed)
    }

    async fn list_all(&self) -> Result<(Vec<KeyValue>, Revision), ApiError> {
        self.store
            .list_kvs(&crate::store::keys::group_prefix(RBAC_GROUP))
            .await
    }

    fn replace(&self, kvs: Vec<KeyValue>, revision: Revision) {
        let mut objects = self.objects.lock();
        if revision < objects.revision {
            return;
        }
        objects.by_key = kvs
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    Entry {
                        mod_revision: kv.mod_revision,
                        object: parse_kv(kv),
                    },
                )
            })
            .collect();
        objects.revision = revision;
        self.publish(&objects);
    }

    fn apply(&self, events: Vec<Event>) {
        let mut objects = self.objects.lock();
        let mut changed = false;
        for event in events {
            let revision = event.revision();
            if revision <= objects.revision {
                continue; // already part of a later consistent read
            }
            match event {
                Event::Put { kv, .. } => {
                    objects.by_key.insert(
                        kv.key.clone(),
                        Entry {
                            mod_revision: kv.mod_revision,
                            object: parse_kv(&kv),
                        },
                    );
                }
                Event::Delete { prev, .. } => {
                    objects.by_key.remove(&prev.key);
                }
            }
            // Watch events arrive in revision order: everything up to here is reflected.
            objects.revision = revision;
            changed = true;
        }
        if changed {
            self.publish(&objects);
        }
    }

    fn publish(&self, objects: &Objects) {
        let snapshot = Arc::new(Snapshot::build(objects));
        *self.snapshot.write() = snapshot;
    }

    async fn run(self: Arc<Self>) {
        loop {
            let revision = match self.list_all().await {
                Ok((kvs, revision)) => {
                    self.replace(kvs, revision);
                    revision
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing RBAC objects failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            };
            if !self.synced.swap(true, Ordering::AcqRel) {
                self.synced_notify.notify_waiters();
            }
            self.reconcile_aggregations().await;
            let mut stream = match self
                .store
                .watch_prefix(&crate::store::keys::group_prefix(RBAC_GROUP), revision)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "watching RBAC objects failed; re-listing");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(batch) = stream.next().await {
                match batch {
                    Ok(events) => {
                        self.apply(events);
                        self.reconcile_aggregations().await;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "RBAC watch ended; re-listing");
                        break;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Writes the computed rules into aggregated ClusterRoles whose stored rules differ, as
    /// Kubernetes' aggregation controller does, so `kubectl get clusterrole admin -o yaml`
    /// shows them. Conflicts are left to the next event.
    async fn reconcile_aggregations(&self) {
        let stale = self.snapshot().stale_aggregations.clone();
        for (name, rules) in stale {
            let Ok(Some((mut object, revision))) = self.store.get(CLUSTER_ROLES, "", &name).await
            else {
                continue;
            };
            let Ok(rules_json) = serde_json::to_value(&rules) else {
                continue;
            };
            if object.get("rules") == Some(&rules_json) {
                continue;
            }
            object["rules"] = rules_json;
            let result = self.store.update(CLUSTER_ROLES, &object, revision).await;
            if let Err(e) = result {
                tracing::debug!(%name, error = %e, "updating aggregated ClusterRole rules");
            }
        }
    }
}

/// Parsed objects from JSON values (tests of this module and of the bootstrap policy).
#[cfg(test)]
fn objects_from(list: Vec<serde_json::Value>) -> Objects {
    let mut o = Objects::default();
    for (i, v) in list.into_iter().enumerate() {
        let kind = v["kind"].as_str().unwrap();
        let ns = v["metadata"]["namespace"].as_str();
        let name = v["metadata"]["name"].as_str().unwrap();
        let resource = format!("{}s", kind.to_ascii_lowercase());
        let key = crate::store::keys::Resource {
            group: RBAC_GROUP,
            resource: &resource,
            namespaced: ns.is_some(),
        }
        .key(ns.unwrap_or(""), name);
        let kv = KeyValue {
            key: key.clone(),
            value: serde_json::to_vec(&v).unwrap().into(),
            create_revision: i as i64 + 1,
            mod_revision: i as i64 + 1,
        };
        o.by_key.insert(
            key,
            Entry {
                mod_revision: kv.mod_revision,
                object: Some(parse_kv(&kv).unwrap()),
            },
        );
    }
    o
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot of the given objects.
    pub(crate) fn for_tests(list: Vec<serde_json::Value>) -> Snapshot {
        Snapshot::build(&objects_from(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn get(resource: &str, sub: &str) -> Attributes {
        Attributes {
            verb: "get".into(),
            is_resource_request: true,
            resource: resource.into(),
            subresource: sub.into(),
            api_group: "apps".into(),
            namespace: "x".into(),
            name: "web".into(),
            ..Default::default()
        }
    }

    #[test]
    fn resources_subresources_and_wildcards() {
        let r = rule(&["get"], &["apps"], &["deployments"]);
        assert!(rule_allows(&get("deployments", ""), &r));
        assert!(!rule_allows(&get("deployments", "scale"), &r));
        let r = rule(&["get"], &["apps"], &["deployments/scale"]);
        assert!(rule_allows(&get("deployments", "scale"), &r));
        assert!(!rule_allows(&get("deployments", ""), &r));
        let r = rule(&["get"], &["apps"], &["*/scale"]);
        assert!(rule_allows(&get("statefulsets", "scale"), &r));
        assert!(!rule_allows(&get("statefulsets", "status"), &r));
        let r = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(&get("statefulsets", "status"), &r));
        let r = rule(&["list"], &["apps"], &["*"]);
        assert!(!rule_allows(&get("deployments", ""), &r));
        let r = rule(&["get"], &[""], &["deployments"]);
        assert!(
            !rule_allows(&get("deployments", ""), &r),
            "group must match"
        );
    }

    #[test]
    fn resource_names_and_non_resource_urls() {
        let mut r = rule(&["get"], &["apps"], &["deployments"]);
        r.resource_names = Some(vec!["web".into()]);
        assert!(rule_allows(&get("deployments", ""), &r));
        let mut other = get("deployments", "");
        other.name = "db".into();
        assert!(!rule_allows(&other, &r));
        let n = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/apis/*".into(), "/healthz".into()]),
            ..Default::default()
        };
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(rule_allows(&path("/apis/apps/v1"), &n));
        assert!(rule_allows(&path("/healthz"), &n));
        assert!(!rule_allows(&path("/healthz/ping"), &n));
        assert!(!rule_allows(&path("/metrics"), &n));
    }

    fn objects(list: Vec<serde_json::Value>) -> Objects {
        objects_from(list)
    }

    use super::objects_from;

    fn alice() -> UserInfo {
        UserInfo::new("alice", vec!["dev".into(), "system:authenticated".into()])
    }

    #[test]
    fn role_binding_grants_exactly_its_namespace() {
        let snap = Snapshot::build(&objects(vec![
            json!({"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1",
                   "metadata":{"name":"cm-reader","namespace":"team"},
                   "rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["get","list"]}]}),
            json!({"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1",
                   "metadata":{"name":"alice-reads","namespace":"team"},
                   "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"cm-reader"},
                   "subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"}]}),
        ]));
        let list = Attributes::resource("list", "", "configmaps", "team", "");
        let d = snap.authorize(&alice(), &list);
        assert_eq!(
            d,
            Decision::Allow(
                "RBAC: allowed by RoleBinding \"alice-reads/team\" of Role \"cm-reader\" to User \"alice\"".into()
            )
        );
        assert!(
            !snap
                .authorize(
                    &alice(),
                    &Attributes::resource("create", "", "configmaps", "team", "")
                )
                .allowed()
        );
        assert!(
            !snap
                .authorize(
                    &alice(),
                    &Attributes::resource("list", "", "configmaps", "other", "")
                )
                .allowed()
        );
        assert!(
            !snap
                .authorize(&UserInfo::new("bob", vec![]), &list)
                .allowed()
        );
    }

    #[test]
    fn groups_service_accounts_and_missing_roles() {
        let snap = Snapshot::build(&objects(vec![
            json!({"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1",
                   "metadata":{"name":"devs"},
                   "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"gone"},
                   "subjects":[{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"dev"}]}),
            json!({"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1",
                   "metadata":{"name":"reader"},
                   "rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["get"]}]}),
            json!({"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1",
                   "metadata":{"name":"sa","namespace":"ci"},
                   "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"reader"},
                   "subjects":[{"kind":"ServiceAccount","name":"builder"}]}),
        ]));
        let attrs = Attributes::resource("get", "apps", "deployments", "ci", "web");
        let d = snap.authorize(&alice(), &attrs);
        assert_eq!(
            d,
            Decision::Deny("RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found".into())
        );
        let sa = UserInfo::new("system:serviceaccount:ci:builder", vec![]);
        assert!(snap.authorize(&sa, &attrs).allowed());
        let other_ns = UserInfo::new("system:serviceaccount:prod:builder", vec![]);
        assert!(!snap.authorize(&other_ns, &attrs).allowed());
        let admin = UserInfo::new("root", vec![SYSTEM_MASTERS.into()]);
        assert!(snap.authorize(&admin, &attrs).allowed());
    }

    #[test]
    fn aggregation_is_transitive() {
        let snap = Snapshot::build(&objects(vec![
            json!({"kind":"ClusterRole","metadata":{"name":"view","labels":{"rbac.authorization.k8s.io/aggregate-to-edit":"true"}},
                   "aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"rbac.authorization.k8s.io/aggregate-to-view":"true"}}]}}),
            json!({"kind":"ClusterRole","metadata":{"name":"edit"},
                   "aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"rbac.authorization.k8s.io/aggregate-to-edit":"true"}}]}}),
            json!({"kind":"ClusterRole","metadata":{"name":"base-view","labels":{"rbac.authorization.k8s.io/aggregate-to-view":"true"}},
                   "rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["get"]}]}),
            json!({"kind":"ClusterRole","metadata":{"name":"base-edit","labels":{"rbac.authorization.k8s.io/aggregate-to-edit":"true"}},
                   "rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["create"]}]}),
            json!({"kind":"ClusterRoleBinding","metadata":{"name":"alice-edit"},
                   "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"edit"},
                   "subjects":[{"kind":"User","name":"alice"}]}),
        ]));
        let get = Attributes::resource("get", "", "configmaps", "x", "a");
        let create = Attributes::resource("create", "", "configmaps", "x", "");
        assert!(snap.authorize(&alice(), &get).allowed());
        assert!(snap.authorize(&alice(), &create).allowed());
        assert_eq!(snap.cluster_roles["view"].len(), 1);
        assert_eq!(snap.cluster_roles["edit"].len(), 2);
        assert_eq!(snap.stale_aggregations.len(), 2);
    }

    #[test]
    fn forbidden_messages_match_kubernetes() {
        let e = forbidden(
            "alice",
            &Attributes::resource("list", "", "configmaps", "default", ""),
            "",
        );
        assert_eq!(
            e.message,
            "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        );
        let mut a = Attributes::resource("get", "apps", "deployments", "x", "web");
        a.subresource = "scale".into();
        let e = forbidden("alice", &a, "");
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"x\""
        );
        assert_eq!(
            (e.group.as_deref(), e.kind.as_deref(), e.name.as_deref()),
            (Some("apps"), Some("deployments"), Some("web"))
        );
        let e = forbidden(
            "alice",
            &Attributes::resource("impersonate", "", "users", "", "bob"),
            "",
        );
        assert_eq!(
            e.message,
            "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        let e = forbidden(
            "alice",
            &Attributes {
                verb: "get".into(),
                path: "/foo".into(),
                ..Default::default()
            },
            "",
        );
        assert_eq!(
            e.message,
            "forbidden: User \"alice\" cannot get path \"/foo\""
        );
        assert_eq!(e.code, 403);
    }
}
