//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! A JSON merge patch in which some lists merge instead of being replaced. Which lists merge,
//! and on which key, comes from a [`MergeKeys`] schema addressed by *field paths*: the field
//! names from the object root, list items not counted (`["spec", "template", "spec",
//! "containers", "env"]` is the env list of every container of a Deployment).
//! [`builtin_merge_keys`] gives the schema of the built-in kinds the hub serves;
//! [`builtin_merge_keys`] gives `None` for a kind without one (CRDs do not: the API server answers
//! 415 for them, as kube-apiserver does).
//!
//! Behaviour follows kube-apiserver (server side of `k8s.io/apimachinery` strategicpatch):
//! - maps merge recursively, `null` deletes a key, scalars and atomic lists are replaced;
//! - merging lists of maps match items on the merge key; unmatched patch items are added;
//! - merging lists of scalars (e.g. `metadata.finalizers`) are unions;
//! - `$patch: replace` (map or list item) replaces, `$patch: delete` (map: empties it; list
//!   item: deletes the item with that key), `$patch: merge` is the default and accepted;
//! - `$setElementOrder/<field>` orders the merged list (what `kubectl apply` sends), server-only
//!   items keep their place relative to the live order;
//! - `$retainKeys` drops every key of the live map not listed;
//! - `$deleteFromPrimitiveList/<field>` removes scalars from a merging list;
//! - without an order directive, new patch items go before the live items they cannot be
//!   compared with (as kube-apiserver does).
//!
//! Directives never leak into the result: values that are new to the object are stripped of
//! them (and of `null`s) before insertion.

use std::collections::{HashMap, HashSet};

use crate::kinds::PatchSchema;
use serde_json::{Map, Value};

/// How a list field is patched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStrategy {
    /// The list is replaced whole (no patch strategy; `listType=atomic`).
    Atomic,
    /// A list of objects merged item by item, matched on this key (`patchMergeKey`).
    /// Server-side apply tracks ownership per item (`k:{"key":value}`).
    Merge {
        /// The merge key, e.g. `name` for containers.
        key: String,
    },
    /// A list of scalars merged as a set (`patchStrategy=merge` on `[]string`).
    Set,
}

/// The patch schema: for a field path, how its list is patched.
pub trait MergeKeys {
    /// `path` holds the field names from the object root; list items are not counted.
    fn list_strategy(&self, path: &[String]) -> ListStrategy;
}

/// The schema in which every list is atomic (strategic merge then behaves like JSON merge
/// patch plus directives).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMergeKeys;

impl MergeKeys for NoMergeKeys {
    fn list_strategy(&self, _path: &[String]) -> ListStrategy {
        ListStrategy::Atomic
    }
}

/// A table of list strategies by exact field path; unlisted lists are atomic.
#[derive(Debug, Clone, Default)]
pub struct MergeKeyTable {
    rules: Vec<(Vec<String>, ListStrategy)>,
}

impl MergeKeyTable {
    /// Adds (or overrides) the strategy of one field path.
    pub fn insert(&mut self, path: &[&str], strategy: ListStrategy) {
        self.rules.retain(|(p, _)| !same_path(p, path));
        self.rules
            .push((path.iter().map(|s| s.to_string()).collect(), strategy));
    }

    /// The list strategies declared by an OpenAPI v3 schema (a CRD's `openAPIV3Schema`):
    /// `x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys` merges on the first key,
    /// `set` merges scalars, anything else is atomic (the CRD default).
    pub fn from_openapi_schema(schema: &Value) -> Self {
        let mut table = MergeKeyTable::default();
        let mut path = Vec::new();
        table.walk_schema(schema, &mut path, 0);
        table
    }

    fn walk_schema(&mut self, schema: &Value, path: &mut Vec<String>, depth: usize) {
        // Schemas are trees, but bound the walk anyway against hostile input.
        if depth > 64 {
            return;
        }
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, sub) in props {
                path.push(name.clone());
                self.walk_schema(sub, path, depth + 1);
                path.pop();
            }
        }
        if let Some(items) = schema.get("items") {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => {
                    if let Some(key) = schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(|k| k.get(0))
                        .and_then(Value::as_str)
                    {
                        self.merge(&refs, key);
                    }
                }
                Some("set") => self.insert(&refs, ListStrategy::Set),
                _ => {}
            }
            self.walk_schema(items, path, depth + 1);
        }
    }

    fn merge(&mut self, path: &[&str], key: &str) {
        self.insert(
            path,
            ListStrategy::Merge {
                key: key.to_string(),
            },
        );
    }

    fn prefixed(prefix: &[&'static str], rest: &[&'static str]) -> Vec<&'static str> {
        prefix.iter().chain(rest).copied().collect()
    }

    fn metadata(&mut self, prefix: &[&'static str]) {
        self.insert(
            &Self::prefixed(prefix, &["metadata", "finalizers"]),
            ListStrategy::Set,
        );
        self.merge(
            &Self::prefixed(prefix, &["metadata", "ownerReferences"]),
            "uid",
        );
    }

    /// The pod spec lists, for a pod spec found at `prefix` (and its template metadata).
    fn pod_spec(&mut self, prefix: &[&'static str]) {
        for containers in ["containers", "initContainers", "ephemeralContainers"] {
            let c = Self::prefixed(prefix, &[containers]);
            self.merge(&c, "name");
            self.merge(&Self::prefixed(&c, &["ports"]), "containerPort");
            self.merge(&Self::prefixed(&c, &["env"]), "name");
            self.merge(&Self::prefixed(&c, &["volumeMounts"]), "mountPath");
            self.merge(&Self::prefixed(&c, &["volumeDevices"]), "devicePath");
        }
        for (field, key) in [
            ("volumes", "name"),
            ("imagePullSecrets", "name"),
            ("hostAliases", "ip"),
            ("topologySpreadConstraints", "topologyKey"),
            ("resourceClaims", "name"),
            ("schedulingGates", "name"),
        ] {
            self.merge(&Self::prefixed(prefix, &[field]), key);
        }
        // A pod template's own metadata sits next to its spec.
        if let Some((_, parent)) = prefix.split_last()
            && !parent.is_empty()
        {
            self.metadata(parent);
        }
    }
}

impl MergeKeys for MergeKeyTable {
    fn list_strategy(&self, path: &[String]) -> ListStrategy {
        self.rules
            .iter()
            .find(|(p, _)| same_path(p, path))
            .map(|(_, s)| s.clone())
            .unwrap_or(ListStrategy::Atomic)
    }
}

fn same_path<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.as_ref() == y.as_ref())
}

/// The patch schema of a built-in kind, or `None` for kinds without one (custom resources).
///
/// Covers object metadata (`finalizers` as a set, `ownerReferences` by `uid`),
/// `status.conditions` by `type`, and what the kind table's [`PatchSchema`] adds: pod specs
/// wherever a kind embeds one, Service ports by `port`, Node addresses, ServiceAccount secrets.
pub fn builtin_merge_keys(group: &str, kind: &str) -> Option<MergeKeyTable> {
    let schema = crate::kinds::find(group, kind)?.patch_schema?;
    Some(merge_keys_of(schema))
}

/// The merge keys of a [`PatchSchema`].
pub(crate) fn merge_keys_of(schema: PatchSchema) -> MergeKeyTable {
    let mut t = MergeKeyTable::default();
    t.metadata(&[]);
    t.merge(&["status", "conditions"], "type");
    match schema {
        PatchSchema::Object => {}
        PatchSchema::Pod => {
            t.pod_spec(&["spec"]);
            t.merge(&["status", "podIPs"], "ip");
            t.merge(&["status", "hostIPs"], "ip");
            t.merge(&["status", "resourceClaimStatuses"], "name");
        }
        PatchSchema::PodTemplate(path) => t.pod_spec(path),
        PatchSchema::Service => t.merge(&["spec", "ports"], "port"),
        PatchSchema::Node => {
            t.merge(&["status", "addresses"], "type");
            t.insert(&["spec", "podCIDRs"], ListStrategy::Set);
        }
        PatchSchema::ServiceAccount => t.merge(&["secrets"], "name"),
    }
    t
}

/// Why a strategic merge patch was refused (the API server answers 400 `BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicMergeError {
    /// The patch body or the original is not a JSON object.
    #[error("{0} is not a JSON object")]
    NotAnObject(&'static str),
    /// A `$patch` value other than `replace`, `merge` or `delete`.
    #[error("unknown patch type: {value} in map: {map}")]
    BadPatchType {
        /// The `$patch` value given.
        value: String,
        /// The map that carried it, as Go prints a map.
        map: String,
    },
    /// A merging list item without its merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The item, as Go prints a map.
        map: String,
        /// The merge key it lacks.
        key: String,
    },
    /// A directive whose value has the wrong shape (e.g. `$retainKeys` not a list of strings).
    #[error("invalid patch format for {directive} at {path}: {reason}")]
    BadDirective {
        /// The directive, e.g. `$retainKeys`.
        directive: String,
        /// Where it was found, as a field path.
        path: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A merging list whose items mix objects and scalars, or contain lists.
    #[error("invalid list at {path}: {reason}")]
    BadList {
        /// The list's field path.
        path: String,
        /// What is wrong with its items.
        reason: String,
    },
}

impl StrategicMergeError {
    /// The Kubernetes `Status` (400 `BadRequest`).
    pub fn to_api_error(&self) -> crate::status::ApiError {
        crate::status::ApiError::bad_request(self.to_string())
    }
}

type Result<T, E = StrategicMergeError> = std::result::Result<T, E>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `original` and returns the result.
pub fn strategic_merge(original: &Value, patch: &Value, schema: &dyn MergeKeys) -> Result<Value> {
    let Value::Object(orig) = original else {
        return Err(StrategicMergeError::NotAnObject("the object"));
    };
    let Value::Object(p) = patch else {
        return Err(StrategicMergeError::NotAnObject("the patch"));
    };
    let mut path = Vec::new();
    Ok(Value::Object(merge_map(
        orig.clone(),
        p.clone(),
        &mut path,
        schema,
    )?))
}

fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        format!(".{}", path.join("."))
    }
}

fn merge_map(
    mut orig: Map<String, Value>,
    mut patch: Map<String, Value>,
    path: &mut Vec<String>,
    schema: &dyn MergeKeys,
) -> Result<Map<String, Value>> {
    if let Some(d) = patch.shift_remove(DIRECTIVE) {
        match d.as_str() {
            Some("replace") => return Ok(clean_map(patch)),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(StrategicMergeError::BadPatchType {
                    value: d.to_string(),
                    map: Value::Object(patch).to_string(),
                });
            }
        }
    }

    if let Some(retain) = patch.shift_remove(RETAIN_KEYS) {
        let keys = string_list(&retain).ok_or_else(|| StrategicMergeError::BadDirective {
            directive: RETAIN_KEYS.to_string(),
            path: dotted(path),
            reason: "must be a list of strings".to_string(),
        })?;
        orig.retain(|k, _| keys.iter().any(|r| r == k));
    }

    // $setElementOrder/<field>: merge the field's list here, then order it.
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in order_keys {
        let field = key[SET_ORDER.len()..].to_string();
        let Some(Value::Array(order)) = patch.shift_remove(&key) else {
            return Err(StrategicMergeError::BadDirective {
                directive: key,
                path: dotted(path),
                reason: "must be a list".to_string(),
            });
        };
        path.push(field.clone());
        let strategy = schema.list_strategy(path);
        let orig_list = match orig.get(&field) {
            Some(Value::Array(a)) => Some(a.clone()),
            _ => None,
        };
        let patch_list = match patch.shift_remove(&field) {
            Some(Value::Array(a)) => Some(a),
            Some(other) => {
                // Not a list: let the ordinary merge below deal with it.
                patch.insert(field.clone(), other);
                path.pop();
                continue;
            }
            None => None,
        };
        let merged = match (orig_list.clone(), patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => clean_list(p),
            (Some(o), Some(p)) => merge_list(o, p, path, schema)?,
            (None, None) => {
                path.pop();
                continue;
            }
        };
        let key_field = match &strategy {
            ListStrategy::Merge { key } => Some(key.as_str()),
            _ => None,
        };
        let server_order = orig_list.unwrap_or_default();
        let ordered = order_by(merged, &order, &server_order, key_field);
        path.pop();
        orig.insert(field, Value::Array(ordered));
    }

    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            let Value::Array(remove) = v else {
                return Err(StrategicMergeError::BadDirective {
                    directive: k.clone(),
                    path: dotted(path),
                    reason: "must be a list".to_string(),
                });
            };
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                let remove: HashSet<String> = remove.iter().map(Value::to_string).collect();
                list.retain(|item| !remove.contains(&item.to_string()));
            }
            continue;
        }
        if v.is_null() {
            orig.shift_remove(&k);
            continue;
        }
        // Merge in place so the live key order is kept.
        let Some(slot) = orig.get_mut(&k) else {
            if let Some(clean) = clean_value(v) {
                orig.insert(k, clean);
            }
            continue;
        };
        path.push(k.clone());
        let merged = match (std::mem::take(slot), v) {
            (Value::Object(o), Value::Object(p)) => {
                Some(Value::Object(merge_map(o, p, path, schema)?))
            }
            (Value::Array(o), Value::Array(p)) => {
                Some(Value::Array(merge_list(o, p, path, schema)?))
            }
            (_, v) => clean_value(v),
        };
        path.pop();
        match merged {
            Some(m) => *slot = m,
            None => {
                orig.shift_remove(&k);
            }
        }
    }
    Ok(orig)
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

fn merge_list(
    orig: Vec<Value>,
    patch: Vec<Value>,
    path: &mut Vec<String>,
    schema: &dyn MergeKeys,
) -> Result<Vec<Value>> {
    let strategy = schema.list_strategy(path);
    let key = match strategy {
        ListStrategy::Atomic => return Ok(clean_list(patch)),
        ListStrategy::Set => None,
        ListStrategy::Merge { key } => Some(key),
    };
    if orig.is_empty() && patch.is_empty() {
        return Ok(orig);
    }
    let all_scalars = orig.iter().chain(&patch).all(is_scalar);
    if all_scalars {
        return Ok(order_by(union(&orig, &patch), &patch, &orig, None));
    }
    let all_objects = orig.iter().chain(&patch).all(Value::is_object);
    let (Some(key), true) = (key, all_objects) else {
        return Err(StrategicMergeError::BadList {
            path: dotted(path),
            reason: "a merging list must hold only objects with a merge key, or only scalars"
                .to_string(),
        });
    };

    // Special items first: deletions and replace.
    let mut orig = orig;
    let mut plain = Vec::new();
    let mut replace = false;
    let mut deleted: HashSet<String> = HashSet::new();
    for item in patch {
        let Value::Object(m) = item else { continue };
        match m.get(DIRECTIVE) {
            None => plain.push(m),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(kv) = m.get(&key) else {
                        return Err(no_merge_key(&m, &key));
                    };
                    deleted.insert(kv.to_string());
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    let mut m = m;
                    m.shift_remove(DIRECTIVE);
                    plain.push(m);
                }
                _ => {
                    return Err(StrategicMergeError::BadPatchType {
                        value: d.to_string(),
                        map: Value::Object(m).to_string(),
                    });
                }
            },
        }
    }
    if replace {
        return Ok(clean_list(plain.into_iter().map(Value::Object).collect()));
    }
    if !deleted.is_empty() {
        orig.retain(|o| {
            !o.get(&key)
                .is_some_and(|kv| deleted.contains(&kv.to_string()))
        });
    }

    let server_order = orig.clone();
    let mut merged = orig;
    let mut at = positions(&merged, Some(&key));
    let mut patch_order = Vec::with_capacity(plain.len());
    for item in plain {
        let Some(key_value) = item.get(&key).cloned() else {
            return Err(no_merge_key(&item, &key));
        };
        let kv = key_value.to_string();
        let mut marker = Map::new();
        marker.insert(key.clone(), key_value);
        patch_order.push(Value::Object(marker));
        match at.get(&kv).copied() {
            Some(i) => {
                merged[i] = match std::mem::take(&mut merged[i]) {
                    Value::Object(o) => Value::Object(merge_map(o, item, path, schema)?),
                    other => other,
                };
            }
            None => {
                if let Some(clean) = clean_value(Value::Object(item)) {
                    at.insert(kv, merged.len());
                    merged.push(clean);
                }
            }
        }
    }
    Ok(order_by(merged, &patch_order, &server_order, Some(&key)))
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> StrategicMergeError {
    StrategicMergeError::NoMergeKey {
        map: Value::Object(m.clone()).to_string(),
        key: key.to_string(),
    }
}

/// The identity of a list item: its merge key's value, or the item itself for scalars.
fn identity(v: &Value, key: Option<&str>) -> Option<String> {
    match key {
        Some(k) => v.get(k).map(Value::to_string),
        None => Some(v.to_string()),
    }
}

/// First position of each identity in `list`.
fn positions(list: &[Value], key: Option<&str>) -> HashMap<String, usize> {
    let mut at = HashMap::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        if let Some(id) = identity(v, key) {
            at.entry(id).or_insert(i);
        }
    }
    at
}

/// `a` followed by the items of `b` it lacks, without duplicates (a set union of scalars).
pub(crate) fn union(a: &[Value], b: &[Value]) -> Vec<Value> {
    let mut seen = HashSet::new();
    a.iter()
        .chain(b)
        .filter(|v| seen.insert(v.to_string()))
        .cloned()
        .collect()
}

/// Orders `merged`: items named in `patch_order` follow that order; the others (server-only)
/// keep the live order and are interleaved where the live order allows, new items first when
/// they cannot be compared (kube-apiserver's `normalizeElementOrder`).
pub(crate) fn order_by(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let patch_at = positions(patch_order, key);
    let server_at = positions(server_order, key);
    // (item, position in the patch order, position in the live order)
    let (mut in_patch, mut server_only): (Vec<_>, Vec<_>) = merged
        .into_iter()
        .map(|v| {
            let id = identity(&v, key);
            let p = id.as_ref().and_then(|id| patch_at.get(id).copied());
            let s = id.as_ref().and_then(|id| server_at.get(id).copied());
            (v, p, s)
        })
        .partition(|(_, p, _)| p.is_some());
    in_patch.sort_by_key(|(_, p, _)| p.unwrap_or(usize::MAX));
    server_only.sort_by_key(|(_, _, s)| s.unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, _, ls)), Some((_, _, rs))) => matches!((ls, rs), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(v, _, _)| v));
    }
    out
}

/// Strips directives and nulls from a value that is new to the object; `None` when the value
/// is itself a `$patch: delete`.
fn clean_value(v: Value) -> Option<Value> {
    match v {
        Value::Object(mut m) => match m.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => None,
            _ => {
                m.shift_remove(DIRECTIVE);
                Some(Value::Object(clean_map(m)))
            }
        },
        Value::Array(a) => Some(Value::Array(clean_list(a))),
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| {
            !v.is_null()
                && k != DIRECTIVE
                && k != RETAIN_KEYS
                && !k.starts_with(SET_ORDER)
                && !k.starts_with(DELETE_PRIMITIVE)
        })
        .filter_map(|(k, v)| clean_value(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(a: Vec<Value>) -> Vec<Value> {
    a.into_iter()
        .filter(|v| {
            // A bare `{"$patch": "replace"}` marker item carries no data.
            !matches!(v, Value::Object(m) if m.len() == 1 && m.contains_key(DIRECTIVE))
        })
        .filter_map(clean_value)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> MergeKeyTable {
        builtin_merge_keys("apps", "Deployment").expect("built-in")
    }

    fn smp(orig: Value, patch: Value) -> Value {
        strategic_merge(&orig, &patch, &deployment()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod_template(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    /// `kubectl apply` (client-side) removing an env var from the last-applied config sends
    /// `$setElementOrder/env` plus a `$patch: delete` item: the var must disappear.
    #[test]
    fn kubectl_apply_removes_env_entry() {
        let live = pod_template(json!([{
            "name": "web", "image": "nginx:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
        }]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "name": "web"
            }]
        }}}});
        assert_eq!(
            smp(live, patch),
            pod_template(json!([{
                "name": "web", "image": "nginx:1",
                "env": [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
            }]))
        );
    }

    /// `kubectl apply` changing an image and adding an env var keeps other containers
    /// (added by someone else) and orders the list as `$setElementOrder` says.
    #[test]
    fn kubectl_apply_changes_image_and_adds_env() {
        let live = pod_template(json!([
            {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "envoy"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "Z"}, {"name": "A"}],
                "env": [{"name": "Z", "value": "26"}],
                "image": "nginx:2",
                "name": "web"
            }]
        }}}});
        assert_eq!(
            smp(live, patch),
            pod_template(json!([
                {"name": "web", "image": "nginx:2", "env": [{"name": "Z", "value": "26"}, {"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "envoy"}
            ]))
        );
    }

    /// (original, patch, expected) — each case names the kube-apiserver behaviour it checks.
    #[test]
    fn strategic_merge_table() {
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            (
                "containers merge by name: patch one field of one container",
                pod_template(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])),
                pod_template(json!([{"name": "b", "image": "z"}])),
                pod_template(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}])),
            ),
            (
                "a new container without order directive goes first (normalizeElementOrder)",
                pod_template(json!([{"name": "a"}])),
                pod_template(json!([{"name": "b"}])),
                pod_template(json!([{"name": "b"}, {"name": "a"}])),
            ),
            (
                "$patch: delete removes a container by name",
                pod_template(json!([{"name": "a"}, {"name": "b"}])),
                pod_template(json!([{"name": "a", "$patch": "delete"}])),
                pod_template(json!([{"name": "b"}])),
            ),
            (
                "$patch: replace in a list item replaces the whole list",
                pod_template(json!([{"name": "a", "image": "1"}, {"name": "b"}])),
                pod_template(json!([{"name": "c"}, {"$patch": "replace"}])),
                pod_template(json!([{"name": "c"}])),
            ),
            (
                "env merges by name, null deletes a field inside an item",
                pod_template(
                    json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}]),
                ),
                pod_template(
                    json!([{"name": "a", "env": [{"name": "Y", "value": "2", "valueFrom": null}]}]),
                ),
                pod_template(
                    json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]),
                ),
            ),
            (
                "container ports merge by containerPort",
                pod_template(
                    json!([{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]),
                ),
                pod_template(
                    json!([{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]),
                ),
                pod_template(
                    json!([{"name": "a", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]}]),
                ),
            ),
            (
                "volumeMounts merge by mountPath",
                pod_template(
                    json!([{"name": "a", "volumeMounts": [{"mountPath": "/a", "name": "v1"}]}]),
                ),
                pod_template(
                    json!([{"name": "a", "volumeMounts": [{"mountPath": "/a", "readOnly": true}]}]),
                ),
                pod_template(
                    json!([{"name": "a", "volumeMounts": [{"mountPath": "/a", "name": "v1", "readOnly": true}]}]),
                ),
            ),
            (
                "args are atomic: replaced whole",
                pod_template(json!([{"name": "a", "args": ["1", "2"]}])),
                pod_template(json!([{"name": "a", "args": ["3"]}])),
                pod_template(json!([{"name": "a", "args": ["3"]}])),
            ),
            (
                "tolerations are atomic: replaced whole",
                json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}}}),
                json!({"spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}}),
                json!({"spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}}),
            ),
            (
                "volumes merge by name; $retainKeys drops the old volume source",
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}}}),
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}}}),
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}}}),
            ),
            (
                "$retainKeys on Deployment strategy (kubectl apply switching to Recreate)",
                json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "finalizers merge as a set",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            ),
            (
                "$deleteFromPrimitiveList removes finalizers",
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
                json!({"metadata": {"finalizers": ["a", "c"]}}),
            ),
            (
                "$setElementOrder on a primitive list keeps the given order",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["b", "a", "c"], "finalizers": ["c"]}}),
                json!({"metadata": {"finalizers": ["b", "a", "c"]}}),
            ),
            (
                "ownerReferences merge by uid",
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
            ),
            (
                "status.conditions merge by type",
                json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
            ),
            (
                "kubectl scale / label / annotate style patches",
                json!({"metadata": {"labels": {"a": "1"}, "annotations": {"x": "y"}}, "spec": {"replicas": 1}}),
                json!({"metadata": {"labels": {"a": null, "b": "2"}, "annotations": {"z": "w"}}, "spec": {"replicas": 5}}),
                json!({"metadata": {"labels": {"b": "2"}, "annotations": {"x": "y", "z": "w"}}, "spec": {"replicas": 5}}),
            ),
            (
                "$patch: replace on a map replaces it",
                json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}}),
                json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"c": "3"}}}}),
                json!({"spec": {"selector": {"matchLabels": {"c": "3"}}}}),
            ),
            (
                "$patch: delete on a map empties it",
                json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 1}}),
                json!({"spec": {"strategy": {"$patch": "delete"}}}),
                json!({"spec": {"strategy": {}, "replicas": 1}}),
            ),
            (
                "new subtrees are stored without directives or nulls",
                json!({"spec": {}}),
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": null, "env": [{"name": "X", "$patch": "delete"}]}]}}}}),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": []}]}}}}),
            ),
            (
                "a null for a missing key is ignored",
                json!({"a": 1}),
                json!({"b": null}),
                json!({"a": 1}),
            ),
            (
                "type change replaces",
                json!({"a": {"b": 1}}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
        ];
        for (what, orig, patch, want) in cases {
            let got = strategic_merge(&orig, &patch, &deployment())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn kind_specific_keys() {
        // Service ports merge by port.
        let svc = builtin_merge_keys("", "Service").unwrap();
        let got = strategic_merge(
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            &svc,
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}})
        );
        // A Pod's containers live under spec; a CronJob's deep under jobTemplate.
        let pod = builtin_merge_keys("", "Pod").unwrap();
        let got = strategic_merge(
            &json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}),
            &json!({"spec": {"containers": [{"name": "a", "image": "2"}]}}),
            &pod,
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b"}]}})
        );
        let cron = builtin_merge_keys("batch", "CronJob").unwrap();
        let p = |c: Value| json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": c}}}}}});
        let got = strategic_merge(
            &p(json!([{"name": "a"}, {"name": "b"}])),
            &p(json!([{"name": "b", "image": "x"}])),
            &cron,
        )
        .unwrap();
        assert_eq!(got, p(json!([{"name": "a"}, {"name": "b", "image": "x"}])));
        // ConfigMap data is a plain map.
        let cm = builtin_merge_keys("", "ConfigMap").unwrap();
        let got = strategic_merge(
            &json!({"data": {"a": "1", "b": "2"}}),
            &json!({"data": {"a": null, "c": "3"}}),
            &cm,
        )
        .unwrap();
        assert_eq!(got, json!({"data": {"b": "2", "c": "3"}}));
        // Custom resources have no strategic merge.
        assert!(builtin_merge_keys("core.oam.dev", "Application").is_none());
        assert!(builtin_merge_keys("apps", "Deployment").is_some());
    }

    /// A CRD schema's list annotations drive merging (what kube-apiserver uses for SSA on CRDs).
    #[test]
    fn merge_keys_from_crd_schema() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "components": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"traits": {"type": "array", "items": {"type": "object"}}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "steps": {"type": "array", "items": {"type": "object"}}
        }}}});
        let t = MergeKeyTable::from_openapi_schema(&schema);
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            t.list_strategy(&p(&["spec", "components"])),
            ListStrategy::Merge { key: "name".into() }
        );
        assert_eq!(t.list_strategy(&p(&["spec", "tags"])), ListStrategy::Set);
        assert_eq!(
            t.list_strategy(&p(&["spec", "steps"])),
            ListStrategy::Atomic
        );
        assert_eq!(
            t.list_strategy(&p(&["spec", "components", "traits"])),
            ListStrategy::Atomic
        );
    }

    /// Merging keeps the live key order (no reshuffling of the stored object).
    #[test]
    fn key_order_is_preserved() {
        let orig = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3});
        let got = strategic_merge(
            &orig,
            &json!({"b": {"x": 5}, "a": null, "d": 4}),
            &NoMergeKeys,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"b":{"x":5,"y":2},"c":3,"d":4}"#
        );
    }

    /// Bad patches are errors, never panics.
    #[test]
    fn strategic_merge_errors() {
        let mut live = pod_template(json!([{"name": "a"}]));
        live["metadata"] = json!({"finalizers": ["f"]});
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "the patch is not a JSON object"),
            (json!({"$patch": "explode"}), "unknown patch type"),
            (
                pod_template(json!([{"image": "x"}])),
                "does not contain declared merge key: name",
            ),
            (
                pod_template(json!([{"$patch": "delete"}])),
                "does not contain declared merge key: name",
            ),
            (
                pod_template(json!(["x"])),
                "invalid list at .spec.template.spec.containers",
            ),
            (json!({"metadata": {"$retainKeys": "x"}}), "$retainKeys"),
            (
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
                "$deleteFromPrimitiveList/finalizers",
            ),
            (
                json!({"spec": {"$setElementOrder/x": {"a": 1}}}),
                "$setElementOrder/x",
            ),
        ];
        for (patch, want) in cases {
            let err = strategic_merge(&live, &patch, &deployment())
                .expect_err(&patch.to_string())
                .to_string();
            assert!(err.contains(want), "{patch}: {err}");
        }
        assert!(strategic_merge(&json!([]), &json!({}), &NoMergeKeys).is_err());
    }
}
