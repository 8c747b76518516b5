//! Server-side apply (`application/apply-patch+yaml`) and field ownership
//! (`metadata.managedFields`, `FieldsV1`).
//!
//! Every write records which *field manager* owns which fields, in the format kube-apiserver
//! uses, so `kubectl get -o yaml --show-managed-fields` and kube-rs read it unchanged:
//!
//! ```json
//! {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
//!  "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
//!  "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers":
//!    {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}
//! ```
//!
//! - [`server_side_apply_with`] merges an applied configuration into the live object (or creates it):
//!   the manager then owns exactly the fields it applied; a field owned by another manager
//!   whose value would change is a conflict ([`ApplyError::Conflicts`], 409) unless `force`,
//!   which moves ownership; fields the manager applied before but no longer does are removed
//!   from the object unless someone else owns them. Lists with a merge key (from
//!   [`MergeKeys`]) are associative (ownership per item, `k:{"name":"web"}`), lists of scalars
//!   with the set strategy per value (`v:"x"`), every other list is atomic.
//! - [`update_managed_fields_with`] records a non-apply write (POST, PUT, PATCH) as an `Update` by
//!   a manager: the fields it changed become its own and leave every other manager's set.
//! - [`default_field_manager`] derives kube-apiserver's default manager from a User-Agent
//!   (`kubectl-client-side-apply/v1.30.0 (linux/amd64) ...` → `kubectl-client-side-apply`).
//!
//! Not owned: `apiVersion`, `kind`, `metadata.{name, namespace, managedFields,
//! resourceVersion, uid, creationTimestamp, generation, deletionTimestamp,
//! deletionGracePeriodSeconds, selfLink}`, and `status` when [`FieldManager::ignore_status`]
//! (the main resource of a kind with a status subresource). The caller fills server-set
//! metadata (uid, timestamps, resourceVersion, generation) after the call.
//!
//! managedFields are kept sorted as kube-apiserver sorts them (operation, time, manager,
//! apiVersion, subresource); an entry's time only moves when its field set changes, so a no-op
//! apply leaves the object byte-identical.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value, json};

use super::strategic::{ListStrategy, MergeKeys, order_by, union};
use crate::status::{ApiError, StatusCause};

/// Why an apply (or an ownership update) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change (409 `Conflict`).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is not usable (400 `BadRequest`, e.g. missing `kind`).
    #[error("{0}")]
    InvalidObject(String),
    /// Apply without a field manager (kube-apiserver requires `?fieldManager=` for apply).
    #[error("fieldManager is required for apply requests")]
    ManagerRequired,
    /// A field manager name longer than 128 characters.
    #[error("fieldManager: Too long: may not be longer than 128")]
    ManagerTooLong,
}

/// One conflicting field: who owns it and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owning manager, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// The apiVersion that manager wrote with.
    pub api_version: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The subresource the manager wrote through (`""` for the main resource).
    pub subresource: String,
    /// The field as kube-apiserver prints it, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="web"].image`.
    pub path: String,
}

impl Conflict {
    /// The manager as kube-apiserver names it in conflict messages: `"kubectl"` for an
    /// applier, `"kubectl-edit" using apps/v1` for an updater, with the subresource if any.
    pub fn owner(&self) -> String {
        let mut s = format!("\"{}\"", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource \"{}\"", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.owner(),
            c.path
        );
    }
    // Grouped by manager, managers in order, paths in the order found.
    let mut groups: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        groups
            .entry((c.manager.clone(), c.owner()))
            .or_default()
            .push(&c.path);
    }
    let mut lines = Vec::new();
    for ((_, owner), paths) in &groups {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl ApplyError {
    /// The Kubernetes `Status` for this error: 409 `Conflict` with one
    /// `FieldManagerConflict` cause per field, or 400 `BadRequest`.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ApplyError::Conflicts(conflicts) => {
                let mut e = ApiError::new(409, "Conflict", self.to_string());
                e.causes = conflicts
                    .iter()
                    .map(|c| StatusCause {
                        reason: "FieldManagerConflict".to_string(),
                        message: format!("conflict with {}", c.owner()),
                        field: c.path.clone(),
                    })
                    .collect();
                e
            }
            other => ApiError::new(400, "BadRequest", other.to_string()),
        }
    }
}

/// The manager kube-apiserver attributes the fields of a never-tracked object to on its first
/// server-side apply.
pub(crate) const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Who is writing and how: the field manager and the context of the write.
#[derive(Debug, Clone, Copy)]
pub struct FieldManager<'a> {
    /// `?fieldManager=` (or [`default_field_manager`] of the User-Agent for non-apply writes).
    pub manager: &'a str,
    /// The write time, RFC 3339 with seconds (`2024-01-01T00:00:00Z`).
    pub now: &'a str,
    /// `Some("status")` for writes through the status subresource.
    pub subresource: Option<&'a str>,
    /// True when `status` is not part of this write (the main resource of a kind with a status
    /// subresource): status is neither merged from the applied config nor owned.
    pub ignore_status: bool,
}

impl<'a> FieldManager<'a> {
    /// A manager writing the main resource, status tracked like any field.
    pub fn new(manager: &'a str, now: &'a str) -> Self {
        FieldManager {
            manager,
            now,
            subresource: None,
            ignore_status: false,
        }
    }
}

/// kube-apiserver's default field manager for a request without `?fieldManager=`: the
/// User-Agent up to its first `/`, at most 128 characters.
pub fn default_field_manager(user_agent: &str) -> String {
    let name = user_agent.split('/').next().unwrap_or_default();
    name.chars().take(128).collect()
}

/// [`server_side_apply_with`] by `manager` on the main resource, status treated like any field.
#[cfg(test)]
pub(crate) fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    merge_keys: &dyn MergeKeys,
    now: &str,
) -> Result<Value, ApplyError> {
    server_side_apply_with(
        live,
        applied,
        force,
        merge_keys,
        &FieldManager::new(manager, now),
    )
}

/// Server-side apply of `applied` (the request body, already decoded to JSON) by
/// `fm.manager`.
///
/// `live` is the stored object, `None` to create. Returns the new object with updated
/// `metadata.managedFields`. `fm` says whether status is ignored and which subresource the
/// write goes through.
pub fn server_side_apply_with(
    live: Option<&Value>,
    applied: &Value,
    force: bool,
    merge_keys: &dyn MergeKeys,
    fm: &FieldManager<'_>,
) -> Result<Value, ApplyError> {
    if fm.manager.is_empty() {
        return Err(ApplyError::ManagerRequired);
    }
    if fm.manager.chars().count() > 128 {
        return Err(ApplyError::ManagerTooLong);
    }
    let Value::Object(applied_map) = applied else {
        return Err(ApplyError::InvalidObject(
            "the applied configuration must be an object".to_string(),
        ));
    };
    let api_version = applied_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = applied_map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version.is_empty() {
        return Err(ApplyError::InvalidObject(
            "apiVersion must be set in an applied configuration".to_string(),
        ));
    }
    if kind.is_empty() {
        return Err(ApplyError::InvalidObject(
            "kind must be set in an applied configuration".to_string(),
        ));
    }
    if let Some(live) = live
        && let Some(live_kind) = live.get("kind").and_then(Value::as_str)
        && live_kind != kind
    {
        return Err(ApplyError::InvalidObject(format!(
            "the applied kind {kind} does not match the existing object's kind {live_kind}"
        )));
    }

    let scope = Scope::new(fm);
    // A null in an applied configuration sets nothing.
    let config = without_nulls(scope.mergeable(applied.clone()));
    let mut path = Vec::new();
    if let Some(dup) = duplicate_key(&config, &mut path, merge_keys) {
        return Err(ApplyError::InvalidObject(dup));
    }
    let applied_set = scope.owned_fields(&config, merge_keys);

    let mut entries = match live {
        Some(l) => read_entries(l),
        None => Vec::new(),
    };
    // An object that has never been tracked (no managedFields) is first attributed whole to
    // `before-first-apply`, as kube-apiserver does, so its existing values can conflict.
    if let Some(l) = live
        && entries.is_empty()
    {
        let fields = Scope::full().owned_fields(l, merge_keys);
        if !fields.is_empty() {
            entries.push(Entry {
                key: EntryKey::new(BEFORE_FIRST_APPLY, "Update", None),
                api_version: l
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(&api_version)
                    .to_string(),
                time: fm.now.to_string(),
                fields,
            });
        }
    }
    let mut live_obj = live.cloned().unwrap_or_else(|| json!({}));
    if let Some(m) = live_obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("managedFields");
    }

    let mut path = Vec::new();
    let mut merged = merge_applied(live_obj.clone(), config, &mut path, merge_keys);

    // Conflicts: applied fields owned by another manager whose value changes.
    let me = EntryKey::new(fm.manager, "Apply", fm.subresource);
    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.key == me {
            continue;
        }
        let mut visit = |p: &[String], _: &FieldSet, b: Option<&Value>, a: Option<&Value>| {
            let Some(node) = applied_set.node(p) else {
                return;
            };
            if node.member && changed(node, b, a) {
                conflicts.push(Conflict {
                    manager: e.key.manager.clone(),
                    api_version: e.api_version.clone(),
                    operation: e.key.operation.clone(),
                    subresource: e.key.subresource.clone(),
                    path: display_path(p),
                });
                taken.push((i, p.to_vec()));
            }
        };
        visit_members(
            &e.fields,
            Some(&live_obj),
            Some(&merged),
            &mut Vec::new(),
            &mut visit,
        );
    }
    if !conflicts.is_empty() && !force {
        // kubectl upgrading from client-side apply: conflicts on fields named in the
        // last-applied-configuration annotation are taken over, the others still conflict.
        let allowed = (fm.manager == KUBECTL)
            .then(|| live.and_then(|l| last_applied_fields(l, merge_keys)))
            .flatten();
        let remaining: Vec<Conflict> = conflicts
            .iter()
            .zip(&taken)
            .filter(|(_, (_, p))| {
                !allowed
                    .as_ref()
                    .is_some_and(|a| a.node(p).is_some_and(|n| n.member))
            })
            .map(|(c, _)| c.clone())
            .collect();
        if !remaining.is_empty() {
            return Err(ApplyError::Conflicts(remaining));
        }
    }
    for (i, p) in taken {
        entries[i].fields.remove_member(&p);
    }

    // Prune: fields this manager applied before, no longer applies, and nobody else owns.
    let previous = entries
        .iter()
        .find(|e| e.key == me)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut to_remove = FieldSet::default();
    for p in previous.members() {
        let kept = applied_set.node(&p).is_some()
            || applied_set.covers(&p)
            || entries
                .iter()
                .any(|e| e.key != me && e.fields.node(&p).is_some());
        if !kept {
            to_remove.insert_member(&p);
        }
    }
    remove_fields(&mut merged, &to_remove);

    // Every set only names fields that exist; trimming before the upsert keeps the entry's time
    // still when a re-apply changes nothing.
    let merged_fields = Scope::full().owned_fields(&merged, merge_keys);
    let mut mine = applied_set;
    mine.retain_existing(&merged_fields);
    for e in &mut entries {
        e.fields.retain_existing(&merged_fields);
    }
    upsert_entry(&mut entries, me, &api_version, mine, fm.now);
    entries.retain(|e| !e.fields.is_empty());
    cap_update_managers(&mut entries);
    write_entries(&mut merged, entries);
    if fm.manager == KUBECTL && live.is_some_and(|l| l.pointer(LAST_APPLIED_POINTER).is_some()) {
        sync_last_applied(&mut merged, applied);
    }
    Ok(merged)
}

/// kubectl's field manager for `kubectl apply --server-side`.
const KUBECTL: &str = "kubectl";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const LAST_APPLIED_POINTER: &str =
    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";

/// The fields client-side apply still manages: those named in the last-applied annotation
/// whose live value is still the last-applied one (a field changed since, e.g. by
/// `kubectl scale`, belongs to whoever changed it).
fn last_applied_fields(live: &Value, merge_keys: &dyn MergeKeys) -> Option<FieldSet> {
    let text = live.pointer(LAST_APPLIED_POINTER)?.as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if !last.is_object() {
        return None;
    }
    let last = Scope::full().strip_unowned(without_nulls(last));
    let named = fields_of(&last, merge_keys);
    let mut still = FieldSet::default();
    visit_members(
        &named,
        Some(live),
        Some(&last),
        &mut Vec::new(),
        &mut |p, node, l, a| {
            if !changed(node, l, a) {
                still.insert_member(p);
            }
        },
    );
    Some(still)
}

/// Keeps the client-side apply annotation in step with a server-side apply by kubectl, so a
/// later client-side apply computes its patch from what was really applied last.
fn sync_last_applied(obj: &mut Value, applied: &Value) {
    let mut config = applied.clone();
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(Value::Object(ann)) = meta.get_mut("annotations")
    {
        ann.shift_remove(LAST_APPLIED);
        if ann.is_empty() {
            meta.shift_remove("annotations");
        }
    }
    let text = format!("{}\n", sorted_keys(config));
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
        ann.insert(LAST_APPLIED.to_string(), Value::String(text));
    }
}

/// The value with object keys in lexical order (how Go encodes unstructured objects).
fn sorted_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

/// [`update_managed_fields_with`] by `manager` on the main resource.
#[cfg(test)]
pub(crate) fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    merge_keys: &dyn MergeKeys,
    now: &str,
) -> Value {
    update_managed_fields_with(old, new, merge_keys, &FieldManager::new(manager, now))
}

/// Records a non-apply write (POST, PUT, PATCH of any kind) by `fm.manager` as an `Update`.
///
/// `old` is the object before the write (`None` on create), `new` the object about to be
/// stored. Fields whose value the write changed become owned by the manager and leave every
/// other manager's set; fields that no longer exist leave every set. A body that carries its
/// own `managedFields` (different from the stored ones) replaces them, and `[{}]` strips them,
/// as in kube-apiserver.
pub fn update_managed_fields_with(
    old: Option<&Value>,
    new: &Value,
    merge_keys: &dyn MergeKeys,
    fm: &FieldManager<'_>,
) -> Value {
    let mut out = new.clone();
    record_managed_fields(old, &mut out, merge_keys, fm);
    out
}

/// [`update_managed_fields_with`] in place: `new` gets its `managedFields` (no copy of the
/// object is made; the write path calls this once per create, update and patch).
pub fn record_managed_fields(
    old: Option<&Value>,
    new: &mut Value,
    merge_keys: &dyn MergeKeys,
    fm: &FieldManager<'_>,
) {
    let old_mf = old.and_then(|o| o.pointer("/metadata/managedFields"));
    let new_mf = new.pointer("/metadata/managedFields");
    let mut entries = match new_mf {
        Some(Value::Array(a)) if a.len() == 1 && a[0] == json!({}) => {
            // `[{}]` strips managedFields entirely.
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.shift_remove("managedFields");
            }
            return;
        }
        Some(Value::Array(a)) if !a.is_empty() && new_mf != old_mf => read_entries(new),
        _ => old.map(read_entries).unwrap_or_default(),
    };

    let new_fields = Scope::new(fm).owned_fields(new, merge_keys);
    let me = EntryKey::new(fm.manager, "Update", fm.subresource);
    let mine = if old.is_none() && entries.is_empty() {
        // A create that names no managers: every field it sets is new, so the manager owns
        // exactly those, as the general path would find by comparing each with nothing.
        new_fields
    } else {
        claim_changed_fields(old, new, &mut entries, &me, new_fields, merge_keys)
    };
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    upsert_entry(&mut entries, me, &api_version, mine, fm.now);
    entries.retain(|e| !e.fields.is_empty());
    cap_update_managers(&mut entries);
    write_entries(new, entries);
}

/// What `me` owns after a write from `old` to `new`: the fields it owned before and those
/// the write changed, all within `new_fields` (what `new` sets). The changed fields leave the
/// other `entries`; fields that no longer exist leave every entry.
fn claim_changed_fields(
    old: Option<&Value>,
    new: &Value,
    entries: &mut [Entry],
    me: &EntryKey,
    new_fields: FieldSet,
    merge_keys: &dyn MergeKeys,
) -> FieldSet {
    let all_fields = Scope::full().owned_fields(new, merge_keys);
    // Only owned paths are visited, so the unstripped objects give the same values.
    let mut changed_paths = Vec::new();
    visit_members(
        &new_fields,
        old,
        Some(new),
        &mut Vec::new(),
        &mut |p, node, b, a| {
            if changed(node, b, a) {
                changed_paths.push(p.to_vec());
            }
        },
    );
    for e in entries.iter_mut() {
        if e.key != *me {
            for p in &changed_paths {
                e.fields.remove_member(p);
            }
        }
        e.fields.retain_existing(&all_fields);
    }
    let mut mine = entries
        .iter()
        .find(|e| e.key == *me)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in &changed_paths {
        mine.insert_member(p);
    }
    mine.retain_existing(&new_fields);
    mine
}

/// Whether [`record_managed_fields`]' shortcut for a create gives what the general path
/// gives (`Err` shows both); for the randomised tests.
#[cfg(test)]
pub(crate) fn create_shortcut_agrees(
    new: &Value,
    merge_keys: &dyn MergeKeys,
) -> Result<(), String> {
    let fm = FieldManager::new("m", "2024-01-01T00:00:00Z");
    let new_fields = Scope::new(&fm).owned_fields(new, merge_keys);
    let me = EntryKey::new(fm.manager, "Update", fm.subresource);
    let general = claim_changed_fields(None, new, &mut [], &me, new_fields.clone(), merge_keys);
    if general == new_fields {
        Ok(())
    } else {
        Err(format!(
            "shortcut {} != general {}",
            new_fields.to_json(),
            general.to_json()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Scope: which parts of an object are owned fields.
// ---------------------------------------------------------------------------------------------

const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

struct Scope {
    ignore_status: bool,
    status_only: bool,
}

/// Server-set metadata that an applied configuration never changes.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

impl Scope {
    fn full() -> Self {
        Scope {
            ignore_status: false,
            status_only: false,
        }
    }

    /// The applied configuration as merged into the object: server-set metadata dropped,
    /// status dropped or kept alone per scope; identity (`apiVersion`, `kind`, name) kept.
    fn mergeable(&self, v: Value) -> Value {
        let Value::Object(mut m) = v else { return v };
        if self.ignore_status {
            m.shift_remove("status");
        }
        if self.status_only {
            m.retain(|k, _| matches!(k.as_str(), "status" | "metadata" | "apiVersion" | "kind"));
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in SERVER_METADATA {
                meta.shift_remove(*k);
            }
            if self.status_only {
                meta.retain(|k, _| k == "name" || k == "namespace");
            }
        }
        Value::Object(m)
    }

    fn new(fm: &FieldManager<'_>) -> Self {
        Scope {
            ignore_status: fm.ignore_status,
            status_only: fm.subresource == Some("status"),
        }
    }

    /// The object without the fields nobody owns (identity, server-set metadata) and, per
    /// scope, without status (main resource) or with only status (status subresource).
    /// `name`/`namespace` stay in applied configs: they are merged, just not owned.
    fn strip_unowned(&self, v: Value) -> Value {
        let Value::Object(mut m) = v else { return v };
        m.shift_remove("apiVersion");
        m.shift_remove("kind");
        if self.ignore_status {
            m.shift_remove("status");
        }
        if self.status_only {
            m.retain(|k, _| k == "status" || k == "metadata");
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in UNOWNED_METADATA {
                meta.shift_remove(*k);
            }
            if meta.is_empty() {
                m.shift_remove("metadata");
            }
        }
        Value::Object(m)
    }

    /// Whether top-level field `k` can be owned in this scope (what [`Scope::strip_unowned`]
    /// keeps at the top).
    fn owns_top(&self, k: &str) -> bool {
        !(k == "apiVersion"
            || k == "kind"
            || (self.ignore_status && k == "status")
            || (self.status_only && k != "status" && k != "metadata"))
    }

    /// `fields_of(&self.strip_unowned(obj.clone()))`, without copying the object.
    fn owned_fields(&self, obj: &Value, schema: &dyn MergeKeys) -> FieldSet {
        let Value::Object(m) = obj else {
            return FieldSet::default();
        };
        let mut path = Vec::new();
        object_fields_where(m, &mut path, schema, &|k, v| {
            if !self.owns_top(k) {
                return None;
            }
            Some(match (k, v) {
                ("metadata", Value::Object(meta)) => Some(meta),
                _ => None,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Field sets (FieldsV1 trees).
// ---------------------------------------------------------------------------------------------

/// A set of field paths as a FieldsV1 tree: keys are `f:<field>`, `k:<json>`, `v:<json>`,
/// `i:<index>`; `member` is the `"."` marker (or an empty leaf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn leaf() -> Self {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn from_json(v: &Value) -> Self {
        let mut set = FieldSet::default();
        let Value::Object(m) = v else { return set };
        if m.is_empty() {
            set.member = true;
            return set;
        }
        for (k, child) in m {
            if k == "." {
                set.member = true;
            } else {
                set.children
                    .insert(canonical_element(k), FieldSet::from_json(child));
            }
        }
        set
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".to_string(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut cur = self;
        for p in path {
            cur = cur.children.get(p)?;
        }
        Some(cur)
    }

    fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.collect(&mut path, &mut out);
        out
    }

    fn collect(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !path.is_empty() {
            out.push(path.clone());
        }
        for (k, c) in &self.children {
            path.push(k.clone());
            c.collect(path, out);
            path.pop();
        }
    }

    fn insert_member(&mut self, path: &[String]) {
        let mut cur = self;
        for p in path {
            cur = cur.children.entry(p.clone()).or_default();
        }
        cur.member = true;
    }

    fn remove_member(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            self.member = false;
            return;
        };
        if let Some(c) = self.children.get_mut(first) {
            c.remove_member(rest);
            if c.is_empty() {
                self.children.remove(first);
            }
        }
    }

    /// True when a proper prefix of `path` (or `path` itself) is a leaf member: an atomic
    /// value that includes everything below it.
    fn covers(&self, path: &[String]) -> bool {
        let mut cur = self;
        for p in path {
            if cur.member && cur.children.is_empty() {
                return true;
            }
            match cur.children.get(p) {
                Some(c) => cur = c,
                None => return false,
            }
        }
        cur.member && cur.children.is_empty()
    }

    /// Drops every path that does not exist in `existing`.
    fn retain_existing(&mut self, existing: &FieldSet) {
        self.children.retain(|k, c| match existing.children.get(k) {
            Some(e) => {
                c.retain_existing(e);
                !c.is_empty()
            }
            None => false,
        });
    }
}

/// The fields an object sets, per the list strategies of `schema`.
fn fields_of(obj: &Value, schema: &dyn MergeKeys) -> FieldSet {
    let mut path = Vec::new();
    match obj {
        Value::Object(m) => object_fields(m, &mut path, schema),
        _ => FieldSet::default(),
    }
}

fn object_fields(
    m: &Map<String, Value>,
    path: &mut Vec<String>,
    schema: &dyn MergeKeys,
) -> FieldSet {
    object_fields_where(m, path, schema, &|_, _| Some(None))
}

/// What [`object_fields_where`] does with one field: `None` skips it, `Some(None)` describes
/// it whole, `Some(Some(meta))` describes `metadata` without the server-set fields nobody owns.
type FieldFilter<'f> =
    dyn for<'v> Fn(&str, &'v Value) -> Option<Option<&'v Map<String, Value>>> + 'f;

fn object_fields_where(
    m: &Map<String, Value>,
    path: &mut Vec<String>,
    schema: &dyn MergeKeys,
    filter: &FieldFilter<'_>,
) -> FieldSet {
    let mut set = FieldSet::default();
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        let Some(metadata) = filter(k, v) else {
            continue;
        };
        path.push(k.clone());
        let child = match metadata {
            Some(meta) => object_fields_where(meta, path, schema, &|k, _| {
                (!UNOWNED_METADATA.contains(&k)).then_some(None)
            }),
            None => value_fields(v, path, schema),
        };
        path.pop();
        if !child.is_empty() {
            set.children.insert(format!("f:{k}"), child);
        }
    }
    set
}

fn value_fields(v: &Value, path: &mut Vec<String>, schema: &dyn MergeKeys) -> FieldSet {
    match v {
        Value::Object(m) if !m.is_empty() => object_fields(m, path, schema),
        Value::Array(items) if !items.is_empty() => match schema.list_strategy(path) {
            ListStrategy::Merge { key } if items.iter().all(|i| i.get(&key).is_some()) => {
                let mut set = FieldSet::default();
                for item in items {
                    let (Value::Object(m), Some(kv)) = (item, item.get(&key)) else {
                        continue;
                    };
                    // With duplicate keys (possible in stored objects) the first item is the
                    // one a key resolves to, so only it is described.
                    let element = item_key(&key, kv);
                    if set.children.contains_key(&element) {
                        continue;
                    }
                    let mut child = object_fields(m, path, schema);
                    child.member = true;
                    set.children.insert(element, child);
                }
                set
            }
            ListStrategy::Set if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                let mut set = FieldSet::default();
                for item in items {
                    set.children.insert(format!("v:{item}"), FieldSet::leaf());
                }
                set
            }
            _ => FieldSet::leaf(),
        },
        _ => FieldSet::leaf(),
    }
}

fn item_key(key: &str, value: &Value) -> String {
    let mut m = Map::new();
    m.insert(key.to_string(), value.clone());
    format!("k:{}", Value::Object(m))
}

/// Finds an associative list with two items under the same key (kube-apiserver refuses to
/// apply such a configuration: ownership per item would be ambiguous).
fn duplicate_key(v: &Value, path: &mut Vec<String>, schema: &dyn MergeKeys) -> Option<String> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, child)| {
            path.push(k.clone());
            let found = duplicate_key(child, path, schema);
            path.pop();
            found
        }),
        Value::Array(items) => {
            if let ListStrategy::Merge { key } = schema.list_strategy(path) {
                let mut seen: HashSet<String> = HashSet::new();
                for kv in items.iter().filter_map(|i| i.get(&key)) {
                    if !seen.insert(kv.to_string()) {
                        return Some(format!(
                            ".{}: duplicate entries for key [{key}={kv}]",
                            path.join(".")
                        ));
                    }
                }
            }
            items.iter().find_map(|i| duplicate_key(i, path, schema))
        }
        _ => None,
    }
}

/// The canonical form of a FieldsV1 key (compact JSON in `k:`/`v:` elements), so keys read
/// from stored managedFields match the ones computed here.
fn canonical_element(k: &str) -> String {
    for prefix in ["k:", "v:"] {
        if let Some(j) = k.strip_prefix(prefix)
            && let Ok(v) = serde_json::from_str::<Value>(j)
        {
            return format!("{prefix}{v}");
        }
    }
    k.to_string()
}

/// Positions of the items of a list by the element keys `set` uses (`k:`, `v:`, `i:`), built
/// once per list so lookups stay constant-time on long lists. The first item wins on duplicates.
fn element_index(items: &[Value], set: &FieldSet) -> HashMap<String, usize> {
    let names: Option<Vec<String>> = set
        .children
        .keys()
        .find_map(|k| k.strip_prefix("k:"))
        .and_then(|j| match serde_json::from_str::<Value>(j) {
            Ok(Value::Object(m)) => Some(m.keys().cloned().collect()),
            _ => None,
        });
    let by_value = set.children.keys().any(|k| k.starts_with("v:"));
    let by_position = set.children.keys().any(|k| k.starts_with("i:"));
    let mut index = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(names) = &names {
            let key: Option<Map<String, Value>> = names
                .iter()
                .map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            if let Some(key) = key {
                index
                    .entry(format!("k:{}", Value::Object(key)))
                    .or_insert(i);
            }
        }
        if by_value {
            index.entry(format!("v:{item}")).or_insert(i);
        }
        if by_position {
            index.insert(format!("i:{i}"), i);
        }
    }
    index
}

/// What [`visit_members`] calls for each member: `(path, node, before, after)`.
type Visitor<'a, 'v> = dyn FnMut(&[String], &FieldSet, Option<&'v Value>, Option<&'v Value>) + 'a;

/// The children of one value, addressable by FieldsV1 element keys.
enum Children<'v> {
    Object(&'v Map<String, Value>),
    List(&'v [Value], HashMap<String, usize>),
    Nothing,
}

impl<'v> Children<'v> {
    fn of(v: Option<&'v Value>, set: &FieldSet) -> Self {
        match v {
            Some(Value::Object(m)) => Children::Object(m),
            Some(Value::Array(items)) => Children::List(items, element_index(items, set)),
            _ => Children::Nothing,
        }
    }

    fn get(&self, k: &str) -> Option<&'v Value> {
        match self {
            Children::Object(m) => m.get(k.strip_prefix("f:")?),
            Children::List(items, index) => items.get(*index.get(k)?),
            Children::Nothing => None,
        }
    }
}

/// Calls `visit(path, node, before, after)` for every member of `set`, with the values the
/// path names in `before` and `after`. Linear in the size of the set and the objects.
fn visit_members<'v>(
    set: &FieldSet,
    before: Option<&'v Value>,
    after: Option<&'v Value>,
    path: &mut Vec<String>,
    visit: &mut Visitor<'_, 'v>,
) {
    if set.member && !path.is_empty() {
        visit(path, set, before, after);
    }
    if set.children.is_empty() {
        return;
    }
    let (b, a) = (Children::of(before, set), Children::of(after, set));
    for (k, child) in &set.children {
        path.push(k.clone());
        visit_members(child, b.get(k), a.get(k), path, visit);
        path.pop();
    }
}

/// Removes every member of `set` from `v` (with everything below it), in one pass per level.
fn remove_fields(v: &mut Value, set: &FieldSet) {
    if set.children.is_empty() {
        return;
    }
    match v {
        Value::Object(m) => {
            let gone: HashSet<&str> = set
                .children
                .iter()
                .filter(|(_, c)| c.member)
                .filter_map(|(k, _)| k.strip_prefix("f:"))
                .collect();
            if !gone.is_empty() {
                m.retain(|k, _| !gone.contains(k.as_str()));
            }
            for (k, child) in &set.children {
                if !child.member
                    && let Some(f) = k.strip_prefix("f:")
                    && let Some(cv) = m.get_mut(f)
                {
                    remove_fields(cv, child);
                }
            }
        }
        Value::Array(items) => {
            let index = element_index(items, set);
            let mut gone = HashSet::new();
            for (k, child) in &set.children {
                let Some(&i) = index.get(k) else { continue };
                if child.member {
                    gone.insert(i);
                } else {
                    remove_fields(&mut items[i], child);
                }
            }
            if !gone.is_empty() {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !gone.contains(&i);
                    i += 1;
                    keep
                });
            }
        }
        _ => {}
    }
}

/// Whether a write changes a field: for a leaf its value, for a list item (a member with
/// children) only its presence.
fn changed(node: &FieldSet, before: Option<&Value>, after: Option<&Value>) -> bool {
    if node.children.is_empty() {
        before != after
    } else {
        before.is_some() != after.is_some()
    }
}

/// `.spec.template.spec.containers[name="web"].image`, as kube-apiserver prints field paths.
fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let keys = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => k.to_string(),
            };
            out.push_str(&format!("[{keys}]"));
        } else if let Some(v) = p.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Merging an applied configuration into the live object.
// ---------------------------------------------------------------------------------------------

fn merge_applied(
    live: Value,
    applied: Value,
    path: &mut Vec<String>,
    schema: &dyn MergeKeys,
) -> Value {
    match (live, applied) {
        (Value::Object(mut l), Value::Object(a)) => {
            for (k, av) in a {
                if av.is_null() {
                    continue;
                }
                path.push(k.clone());
                match l.get_mut(&k) {
                    Some(slot) => {
                        let lv = std::mem::take(slot);
                        *slot = merge_applied(lv, av, path, schema);
                    }
                    None => {
                        l.insert(k, without_nulls(av));
                    }
                }
                path.pop();
            }
            Value::Object(l)
        }
        (Value::Array(l), Value::Array(a)) => Value::Array(match schema.list_strategy(path) {
            ListStrategy::Merge { key } if a.iter().chain(&l).all(|i| i.get(&key).is_some()) => {
                let server_order = l.clone();
                let mut merged = l;
                let mut at: HashMap<String, usize> = HashMap::new();
                for (i, m) in merged.iter().enumerate() {
                    if let Some(id) = m.get(&key) {
                        at.entry(id.to_string()).or_insert(i);
                    }
                }
                for item in &a {
                    let Some(id) = item.get(&key).map(Value::to_string) else {
                        continue;
                    };
                    match at.get(&id).copied() {
                        Some(i) => {
                            let lv = std::mem::take(&mut merged[i]);
                            merged[i] = merge_applied(lv, item.clone(), path, schema);
                        }
                        None => {
                            at.insert(id, merged.len());
                            merged.push(without_nulls(item.clone()));
                        }
                    }
                }
                order_by(merged, &a, &server_order, Some(&key))
            }
            ListStrategy::Set if a.iter().chain(&l).all(|i| !i.is_object() && !i.is_array()) => {
                order_by(union(&l, &a), &a, &l, None)
            }
            _ => a.into_iter().map(without_nulls).collect(),
        }),
        (_, a) => without_nulls(a),
    }
}

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// managedFields entries.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryKey {
    manager: String,
    operation: String,
    subresource: String,
}

impl EntryKey {
    fn new(manager: &str, operation: &str, subresource: Option<&str>) -> Self {
        EntryKey {
            manager: manager.to_string(),
            operation: operation.to_string(),
            subresource: subresource.unwrap_or_default().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: EntryKey,
    api_version: String,
    time: String,
    fields: FieldSet,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
            if s("manager").is_empty() && s("operation").is_empty() {
                return None;
            }
            Some(Entry {
                key: EntryKey::new(s("manager"), s("operation"), Some(s("subresource"))),
                api_version: s("apiVersion").to_string(),
                time: s("time").to_string(),
                fields: e
                    .get("fieldsV1")
                    .map(FieldSet::from_json)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn upsert_entry(
    entries: &mut Vec<Entry>,
    key: EntryKey,
    api_version: &str,
    fields: FieldSet,
    now: &str,
) {
    match entries.iter_mut().find(|e| e.key == key) {
        Some(e) => {
            if e.fields != fields || e.api_version != api_version {
                e.time = now.to_string();
            }
            e.fields = fields;
            e.api_version = api_version.to_string();
        }
        None => {
            if !fields.is_empty() {
                entries.push(Entry {
                    key,
                    api_version: api_version.to_string(),
                    time: now.to_string(),
                    fields,
                });
            }
        }
    }
}

/// Paths named by an object's managedFields that do not exist in it (always empty for what
/// the engines here produce; checked by the randomised tests).
#[cfg(test)]
pub(crate) fn dangling_fields(obj: &Value) -> Vec<String> {
    let view = Scope::full().strip_unowned(obj.clone());
    let mut out = Vec::new();
    for e in read_entries(obj) {
        let scoped = if e.key.subresource == "status" {
            Scope {
                ignore_status: false,
                status_only: true,
            }
            .strip_unowned(obj.clone())
        } else {
            view.clone()
        };
        visit_members(
            &e.fields,
            Some(&scoped),
            Some(&scoped),
            &mut Vec::new(),
            &mut |p, _, v, _| {
                if v.is_none() {
                    out.push(format!("{}: {}", e.key.manager, display_path(p)));
                }
            },
        );
    }
    out
}

/// kube-apiserver keeps at most this many `Update` entries; older ones are folded together.
pub(crate) const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager that collects the oldest `Update` entries beyond [`MAX_UPDATE_MANAGERS`].
pub(crate) const ANCIENT_CHANGES: &str = "ancient-changes";

/// Folds the oldest `Update` entries into one `ancient-changes` entry until at most
/// [`MAX_UPDATE_MANAGERS`] remain, as kube-apiserver does so managedFields stay bounded.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    loop {
        let mut updates: Vec<usize> = (0..entries.len())
            .filter(|i| entries[*i].key.operation == "Update")
            .collect();
        if updates.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        updates.sort_by(|a, b| {
            let (ea, eb) = (&entries[*a], &entries[*b]);
            (&ea.time, &ea.key.manager).cmp(&(&eb.time, &eb.key.manager))
        });
        let bucket_key = EntryKey::new(ANCIENT_CHANGES, "Update", None);
        let bucket = entries.iter().position(|e| e.key == bucket_key);
        // The oldest entry that is not the bucket itself goes into the bucket.
        let Some(oldest) = updates.into_iter().find(|i| Some(*i) != bucket) else {
            return;
        };
        let old = entries.remove(oldest);
        match entries.iter_mut().find(|e| e.key == bucket_key) {
            Some(b) => {
                for p in old.fields.members() {
                    b.fields.insert_member(&p);
                }
                if old.time > b.time {
                    b.time = old.time;
                }
                b.api_version = old.api_version;
            }
            None => entries.push(Entry {
                key: bucket_key,
                ..old
            }),
        }
    }
}

fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.sort_by(|a, b| {
        (
            &a.key.operation,
            &a.time,
            &a.key.manager,
            &a.api_version,
            &a.key.subresource,
        )
            .cmp(&(
                &b.key.operation,
                &b.time,
                &b.key.manager,
                &b.api_version,
                &b.key.subresource,
            ))
    });
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.key.manager));
            m.insert("operation".into(), json!(e.key.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            m.insert("time".into(), json!(e.time));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), e.fields.to_json());
            if !e.key.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.key.subresource));
            }
            Value::Object(m)
        })
        .collect();
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if list.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

impl fmt::Display for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::strategic::builtin_merge_keys;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";
    const T2: &str = "2024-01-01T00:02:00Z";

    fn keys() -> crate::patch::MergeKeyTable {
        builtin_merge_keys("apps", "Deployment").unwrap()
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}
                }
            }
        })
    }

    fn managed(obj: &Value) -> Vec<Value> {
        obj.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
        obj.pointer("/metadata/managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == op)
    }

    /// Create by apply: the manager owns every field it set, in real FieldsV1 form.
    #[test]
    fn create_records_fields_v1() {
        let out =
            server_side_apply(None, &deploy(2, "nginx:1"), "kubectl", false, &keys(), T0).unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["apiVersion"], "apps/v1");
        assert_eq!(out["kind"], "Deployment");
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(out["metadata"]["namespace"], "default");
        let mf = managed(&out);
        assert_eq!(mf.len(), 1);
        assert_eq!(
            mf[0],
            json!({
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {"f:matchLabels": {"f:app": {}}},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                                ".": {}, "f:image": {}, "f:name": {}
                            }}}
                        }
                    }
                }
            })
        );
    }

    /// Re-applying the same config is a no-op: byte-identical object, time unchanged.
    #[test]
    fn reapply_is_stable() {
        let a =
            server_side_apply(None, &deploy(2, "nginx:1"), "kubectl", false, &keys(), T0).unwrap();
        let b = server_side_apply(
            Some(&a),
            &deploy(2, "nginx:1"),
            "kubectl",
            false,
            &keys(),
            T1,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    /// kubectl scale (an Update by another manager) then apply with a different replicas:
    /// kube-apiserver answers 409 with the exact kubectl message; --force-conflicts wins.
    #[test]
    fn conflict_with_update_manager_and_force() {
        let created =
            server_side_apply(None, &deploy(2, "nginx:1"), "kubectl", false, &keys(), T0).unwrap();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scaled = update_managed_fields(
            Some(&created),
            &scaled,
            "kubectl-client-side-apply",
            &keys(),
            T1,
        );
        // kubectl-client-side-apply now owns .spec.replicas; kubectl lost it.
        assert!(
            entry(&scaled, "kubectl-client-side-apply", "Update").unwrap()["fieldsV1"]
                .pointer("/f:spec/f:replicas")
                .is_some()
        );
        assert!(
            entry(&scaled, "kubectl", "Apply").unwrap()["fieldsV1"]
                .pointer("/f:spec/f:replicas")
                .is_none()
        );

        let err = server_side_apply(
            Some(&scaled),
            &deploy(3, "nginx:1"),
            "kubectl",
            false,
            &keys(),
            T2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        let status = err.to_api_error();
        assert_eq!(status.code, 409);
        assert_eq!(status.causes[0].field, ".spec.replicas");
        assert_eq!(status.causes[0].reason, "FieldManagerConflict");

        // Same value as live: shared ownership, no conflict.
        let shared = server_side_apply(
            Some(&scaled),
            &deploy(5, "nginx:1"),
            "kubectl",
            false,
            &keys(),
            T2,
        )
        .unwrap();
        assert_eq!(shared["spec"]["replicas"], 5);
        assert!(
            entry(&shared, "kubectl-client-side-apply", "Update").unwrap()["fieldsV1"]
                .pointer("/f:spec/f:replicas")
                .is_some()
        );

        // Force: the value changes and ownership moves (the other entry disappears when empty).
        let forced = server_side_apply(
            Some(&scaled),
            &deploy(3, "nginx:1"),
            "kubectl",
            true,
            &keys(),
            T2,
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        assert!(entry(&forced, "kubectl-client-side-apply", "Update").is_none());
        assert!(
            entry(&forced, "kubectl", "Apply").unwrap()["fieldsV1"]
                .pointer("/f:spec/f:replicas")
                .is_some()
        );
    }

    /// `kubectl apply --server-side` after client-side `kubectl apply`: fields recorded in the
    /// last-applied annotation move to `kubectl` without conflict (kube-apiserver's upgrade
    /// path), and the annotation is rewritten to the applied configuration.
    #[test]
    fn upgrade_from_client_side_apply() {
        let mut csa = deploy(2, "nginx:1");
        let last = serde_json::to_string(&deploy(2, "nginx:1")).unwrap();
        csa["metadata"]["annotations"] = json!({ LAST_APPLIED: last });
        let created = update_managed_fields(None, &csa, "kubectl-client-side-apply", &keys(), T0);

        let ssa = server_side_apply(
            Some(&created),
            &deploy(3, "nginx:2"),
            "kubectl",
            false,
            &keys(),
            T1,
        )
        .unwrap();
        assert_eq!(ssa["spec"]["replicas"], 3);
        let e = entry(&ssa, "kubectl", "Apply").unwrap();
        assert!(e["fieldsV1"].pointer("/f:spec/f:replicas").is_some());
        let synced: Value = serde_json::from_str(
            ssa.pointer(LAST_APPLIED_POINTER)
                .and_then(Value::as_str)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(synced["spec"]["replicas"], 3);

        // A field client-side apply never set (here: added by kubectl edit) still conflicts.
        let mut edited = created.clone();
        edited["spec"]["minReadySeconds"] = json!(5);
        let edited = update_managed_fields(Some(&created), &edited, "kubectl-edit", &keys(), T1);
        let mut cfg = deploy(2, "nginx:1");
        cfg["spec"]["minReadySeconds"] = json!(10);
        let err =
            server_side_apply(Some(&edited), &cfg, "kubectl", false, &keys(), T2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.minReadySeconds"
        );
        // A field changed since the last client-side apply (kubectl scale through /scale) is
        // not client-side apply's any more: it conflicts with the scaler.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scale_fm = FieldManager {
            subresource: Some("scale"),
            ..FieldManager::new("kubectl", T1)
        };
        let scaled = update_managed_fields_with(Some(&created), &scaled, &keys(), &scale_fm);
        let err = server_side_apply(
            Some(&scaled),
            &deploy(4, "nginx:1"),
            "kubectl",
            false,
            &keys(),
            T2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        );
        // Another field manager gets no upgrade: the conflict names client-side apply.
        let err = server_side_apply(
            Some(&created),
            &deploy(3, "nginx:1"),
            "ci",
            false,
            &keys(),
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
    }

    /// Two appliers on one container: conflicts are listed per manager and path.
    #[test]
    fn conflict_message_lists_every_path() {
        let a =
            server_side_apply(None, &deploy(2, "nginx:1"), "alice", false, &keys(), T0).unwrap();
        let err = server_side_apply(Some(&a), &deploy(4, "nginx:2"), "bob", false, &keys(), T1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
        );
        // One conflict with an applier names no apiVersion; several managers are listed in order.
        let err = server_side_apply(Some(&a), &deploy(4, "nginx:1"), "bob", false, &keys(), T1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
        );
        let mut edited = a.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:9");
        let edited = update_managed_fields(Some(&a), &edited, "kubectl-edit", &keys(), T1);
        let err = server_side_apply(
            Some(&edited),
            &deploy(4, "nginx:2"),
            "bob",
            false,
            &keys(),
            T2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\nconflicts with \"kubectl-edit\" using apps/v1:\n- .spec.template.spec.containers[name=\"web\"].image"
        );
    }

    /// A field dropped from the applied config is removed from the object, unless another
    /// manager also owns it; an env entry dropped from an associative list goes too.
    #[test]
    fn dropped_fields_are_removed_unless_shared() {
        let mut cfg = deploy(2, "nginx:1");
        cfg["metadata"]["labels"]["tier"] = json!("fe");
        cfg["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let a = server_side_apply(None, &cfg, "kubectl", false, &keys(), T0).unwrap();

        // Another manager adds its own label.
        let mut labeled = a.clone();
        labeled["metadata"]["labels"]["owner"] = json!("ops");
        let labeled = update_managed_fields(Some(&a), &labeled, "kubectl-label", &keys(), T1);

        let mut cfg2 = deploy(2, "nginx:1");
        cfg2["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}]);
        let b = server_side_apply(Some(&labeled), &cfg2, "kubectl", false, &keys(), T2).unwrap();
        assert_eq!(
            b["metadata"]["labels"],
            json!({"app": "web", "owner": "ops"})
        );
        assert_eq!(
            b["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}])
        );
        // The label manager's field survives; its entry still exists.
        assert!(entry(&b, "kubectl-label", "Update").is_some());
    }

    /// A field set by another manager and later dropped by the applier stays.
    #[test]
    fn fields_owned_by_others_survive_prune() {
        let a =
            server_side_apply(None, &deploy(2, "nginx:1"), "kubectl", false, &keys(), T0).unwrap();
        let b = server_side_apply(Some(&a), &deploy(2, "nginx:1"), "other", false, &keys(), T1)
            .unwrap();
        // kubectl stops managing replicas; "other" still owns it with the same value.
        let mut cfg = deploy(2, "nginx:1");
        cfg["spec"]
            .as_object_mut()
            .unwrap()
            .shift_remove("replicas");
        let c = server_side_apply(Some(&b), &cfg, "kubectl", false, &keys(), T2).unwrap();
        assert_eq!(c["spec"]["replicas"], 2);
        // When nobody else owns it, it goes.
        let d = server_side_apply(Some(&a), &cfg, "kubectl", false, &keys(), T2).unwrap();
        assert!(d["spec"].get("replicas").is_none());
    }

    /// Associative lists: another manager's container is kept, and owned per item.
    #[test]
    fn associative_list_items_are_owned_per_key() {
        let a =
            server_side_apply(None, &deploy(2, "nginx:1"), "kubectl", false, &keys(), T0).unwrap();
        let sidecar = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "envoy", "image": "envoy:1"}]}}}
        });
        let b = server_side_apply(Some(&a), &sidecar, "mesh", false, &keys(), T1).unwrap();
        let names: Vec<&str> = b["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"web") && names.contains(&"envoy"));
        assert!(
            entry(&b, "mesh", "Apply").unwrap()["fieldsV1"]
                .pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"envoy\"}/f:image")
                .is_some()
        );
        // kubectl re-applies its config: the mesh container stays (owned by mesh).
        let c = server_side_apply(
            Some(&b),
            &deploy(2, "nginx:2"),
            "kubectl",
            false,
            &keys(),
            T2,
        )
        .unwrap();
        assert_eq!(
            c["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // mesh stops applying its container: it is removed.
        let mut none = sidecar.clone();
        none.as_object_mut().unwrap().shift_remove("spec");
        let d = server_side_apply(Some(&c), &none, "mesh", false, &keys(), T2).unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:2"}])
        );
        assert!(entry(&d, "mesh", "Apply").is_none());
    }

    /// Atomic lists are owned whole; finalizers are a set owned per value.
    #[test]
    fn atomic_and_set_lists() {
        let mut cfg = deploy(1, "x");
        cfg["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
        cfg["metadata"]["finalizers"] = json!(["example.com/f"]);
        let a = server_side_apply(None, &cfg, "kubectl", false, &keys(), T0).unwrap();
        let f = &entry(&a, "kubectl", "Apply").unwrap()["fieldsV1"];
        assert_eq!(
            f.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"web\"}/f:args"),
            Some(&json!({}))
        );
        assert_eq!(
            f.pointer("/f:metadata/f:finalizers"),
            Some(&json!({"v:\"example.com/f\"": {}}))
        );
    }

    /// Status: ignored on the main resource when asked, owned via the status subresource.
    #[test]
    fn status_scope() {
        let mut cfg = deploy(1, "x");
        cfg["status"] = json!({"replicas": 1});
        let fm = FieldManager {
            ignore_status: true,
            ..FieldManager::new("kubectl", T0)
        };
        let a = server_side_apply_with(None, &cfg, false, &keys(), &fm).unwrap();
        assert!(a.get("status").is_none());
        assert!(
            entry(&a, "kubectl", "Apply").unwrap()["fieldsV1"]
                .get("f:status")
                .is_none()
        );
        let mut with_status = a.clone();
        with_status["status"] = json!({"replicas": 1, "readyReplicas": 1});
        let fm = FieldManager {
            subresource: Some("status"),
            ..FieldManager::new("deployment-controller", T1)
        };
        let b = update_managed_fields_with(Some(&a), &with_status, &keys(), &fm);
        let e = entry(&b, "deployment-controller", "Update").unwrap();
        assert_eq!(e["subresource"], "status");
        // The applier keeps its spec fields.
        assert!(
            entry(&b, "kubectl", "Apply").unwrap()["fieldsV1"]
                .pointer("/f:spec/f:replicas")
                .is_some()
        );
        assert_eq!(
            e["fieldsV1"],
            json!({"f:status": {"f:readyReplicas": {}, "f:replicas": {}}})
        );
    }

    /// Server-side apply through the status subresource (kube-rs `patch_status` with
    /// `Patch::Apply`): only status is merged and owned; a dropped status field goes.
    #[test]
    fn status_subresource_apply() {
        let main = FieldManager {
            ignore_status: true,
            ..FieldManager::new("kubectl", T0)
        };
        let live = server_side_apply_with(None, &deploy(2, "x"), false, &keys(), &main).unwrap();
        let status_fm = FieldManager {
            subresource: Some("status"),
            ..FieldManager::new("controller", T1)
        };
        let mut cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"sneaky": "x"}},
            "spec": {"replicas": 99},
            "status": {"replicas": 2, "readyReplicas": 2,
                "conditions": [{"type": "Available", "status": "True"}]}});
        let a = server_side_apply_with(Some(&live), &cfg, false, &keys(), &status_fm).unwrap();
        assert_eq!(
            a["spec"]["replicas"], 2,
            "spec is not writable through status"
        );
        assert!(a["metadata"]["labels"].get("sneaky").is_none());
        assert_eq!(a["status"]["readyReplicas"], 2);
        let e = entry(&a, "controller", "Apply").unwrap();
        assert_eq!(e["subresource"], "status");
        assert!(
            e["fieldsV1"]
                .pointer("/f:status/f:conditions/k:{\"type\":\"Available\"}/f:status")
                .is_some()
        );
        cfg["status"]
            .as_object_mut()
            .unwrap()
            .shift_remove("readyReplicas");
        let b = server_side_apply_with(Some(&a), &cfg, false, &keys(), &status_fm).unwrap();
        assert!(b["status"].get("readyReplicas").is_none());
        assert_eq!(b["status"]["replicas"], 2);
        // The main-resource applier keeps its spec.
        assert!(entry(&b, "kubectl", "Apply").is_some());
    }

    /// Update operations: kubectl create owns everything; kubectl label takes only its label;
    /// `[{}]` strips managedFields; a no-op update changes nothing.
    #[test]
    fn update_operations() {
        let created = update_managed_fields(None, &deploy(1, "x"), "kubectl-create", &keys(), T0);
        let e = entry(&created, "kubectl-create", "Update").unwrap();
        assert_eq!(e["time"], T0);
        assert!(e["fieldsV1"].pointer("/f:spec/f:replicas").is_some());

        let mut labeled = created.clone();
        labeled["metadata"]["labels"]["env"] = json!("prod");
        let labeled = update_managed_fields(Some(&created), &labeled, "kubectl-label", &keys(), T1);
        assert_eq!(
            entry(&labeled, "kubectl-label", "Update").unwrap()["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:env": {}}}})
        );
        assert_eq!(managed(&labeled).len(), 2);
        // Sorted by operation, then time.
        assert_eq!(managed(&labeled)[0]["manager"], "kubectl-create");

        let same = update_managed_fields(Some(&labeled), &labeled, "kubectl-edit", &keys(), T2);
        assert_eq!(same, labeled);

        let mut stripped = labeled.clone();
        stripped["metadata"]["managedFields"] = json!([{}]);
        let stripped =
            update_managed_fields(Some(&labeled), &stripped, "kubectl-edit", &keys(), T2);
        assert!(stripped["metadata"].get("managedFields").is_none());

        // Removing a label removes it from its owner's set (and empty entries go).
        let mut unlabeled = labeled.clone();
        unlabeled["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .shift_remove("env");
        let unlabeled =
            update_managed_fields(Some(&labeled), &unlabeled, "kubectl-label", &keys(), T2);
        assert!(entry(&unlabeled, "kubectl-label", "Update").is_none());
    }

    /// An object stored without managedFields: its fields belong to `before-first-apply`.
    #[test]
    fn first_apply_on_untracked_object() {
        let live = deploy(1, "nginx:1");
        let err = server_side_apply(
            Some(&live),
            &deploy(3, "nginx:1"),
            "kubectl",
            false,
            &keys(),
            T0,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let ok = server_side_apply(
            Some(&live),
            &deploy(1, "nginx:1"),
            "kubectl",
            false,
            &keys(),
            T0,
        )
        .unwrap();
        assert!(entry(&ok, "before-first-apply", "Update").is_some());
        assert!(entry(&ok, "kubectl", "Apply").is_some());
    }

    /// Many different writers: the oldest `Update` entries fold into `ancient-changes`.
    #[test]
    fn update_managers_are_capped() {
        let mut obj = update_managed_fields(None, &deploy(1, "x"), "creator", &keys(), T0);
        for i in 0..12 {
            let mut next = obj.clone();
            next["metadata"]["labels"][format!("l{i}")] = json!("v");
            let now = format!("2024-01-02T00:00:{i:02}Z");
            obj = update_managed_fields(Some(&obj), &next, &format!("writer-{i}"), &keys(), &now);
        }
        let mf = managed(&obj);
        assert_eq!(mf.len(), MAX_UPDATE_MANAGERS);
        let ancient = entry(&obj, ANCIENT_CHANGES, "Update").expect("bucket");
        // The creator's fields and the first writers' labels are kept in the bucket.
        assert!(ancient["fieldsV1"].pointer("/f:spec/f:replicas").is_some());
        assert!(
            ancient["fieldsV1"]
                .pointer("/f:metadata/f:labels/f:l0")
                .is_some()
        );
        assert!(entry(&obj, "writer-11", "Update").is_some());
        assert!(entry(&obj, "creator", "Update").is_none());
    }

    #[test]
    fn apply_errors() {
        let k = keys();
        assert_eq!(
            server_side_apply(None, &deploy(1, "x"), "", false, &k, T0),
            Err(ApplyError::ManagerRequired)
        );
        assert!(matches!(
            server_side_apply(None, &json!({"kind": "Deployment"}), "m", false, &k, T0),
            Err(ApplyError::InvalidObject(_))
        ));
        assert!(matches!(
            server_side_apply(None, &json!([1]), "m", false, &k, T0),
            Err(ApplyError::InvalidObject(_))
        ));
        let live = deploy(1, "x");
        let mut svc = deploy(1, "x");
        svc["kind"] = json!("Service");
        assert!(matches!(
            server_side_apply(Some(&live), &svc, "m", false, &k, T0),
            Err(ApplyError::InvalidObject(_))
        ));
        assert_eq!(
            server_side_apply(None, &deploy(1, "x"), &"m".repeat(129), false, &k, T0),
            Err(ApplyError::ManagerTooLong)
        );
        // Two items under one merge key cannot be owned separately.
        let mut dup = deploy(1, "x");
        dup["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "a", "image": "1"}, {"name": "a", "image": "2"}]);
        assert_eq!(
            server_side_apply(None, &dup, "m", false, &k, T0),
            Err(ApplyError::InvalidObject(
                ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]".into()
            ))
        );
        // Garbage managedFields in the live object are ignored, not a panic.
        let mut bad = deploy(1, "x");
        bad["metadata"]["managedFields"] = json!([1, {"manager": "x", "fieldsV1": "nope"}, null]);
        assert!(server_side_apply(Some(&bad), &deploy(1, "x"), "m", false, &k, T0).is_ok());
    }

    #[test]
    fn default_manager_from_user_agent() {
        assert_eq!(
            default_field_manager("kubectl-client-side-apply/v1.30.0 (linux/amd64) kubernetes/abc"),
            "kubectl-client-side-apply"
        );
        assert_eq!(default_field_manager("kube-rs"), "kube-rs");
        assert_eq!(default_field_manager(&"x".repeat(300)).len(), 128);
    }
}
