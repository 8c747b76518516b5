//! CustomResourceDefinitions: serving a CRD's kind as soon as it is stored, structural
//! schema validation with defaulting and unknown-field pruning, printer columns, status
//! conditions, and removing a CRD's objects when it is deleted.

use std::sync::Arc;

use flotilla_core::status::{ApiError, StatusCause};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::handlers::FieldValidation;
use crate::objects::{self, meta_str};
use crate::registry::{ALL_VERBS, ResourceInfo, ScalePaths};
use crate::state::ApiState;
use crate::table::Column;
use crate::validation::{cause, invalid, required};

/// One served version of a CRD.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    pub crd_name: String,
    pub version: String,
    /// `openAPIV3Schema`, if any.
    pub schema: Option<Value>,
    pub printer_columns: Vec<Column>,
}

/// Whether `info` is the CustomResourceDefinition resource itself.
pub(crate) fn is_crd(info: &ResourceInfo) -> bool {
    info.is_builtin()
        && info.group == "apiextensions.k8s.io"
        && info.resource == "customresourcedefinitions"
}

fn crd_info(state: &ApiState) -> Option<Arc<ResourceInfo>> {
    state
        .registry
        .snapshot()
        .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a CRD object serves (one per served version).
pub(crate) fn infos_from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = crd.get("spec").cloned().unwrap_or(json!({}));
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let names = spec.get("names").cloned().unwrap_or(json!({}));
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or(versions.first())
        .and_then(|v| v.get("name").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    let crd_name = meta_str(crd, "name").to_string();
    let mut out = Vec::new();
    for v in &versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let version = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| Column {
                        name: c
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        ty: match c.get("type").and_then(Value::as_str).unwrap_or("string") {
                            "integer" => "integer",
                            "number" => "number",
                            "boolean" => "boolean",
                            "date" => "date",
                            _ => "string",
                        },
                        format: c
                            .get("format")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        description: c
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: c
                            .get("jsonPath")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let subresources = v.get("subresources").cloned().unwrap_or(json!({}));
        let scale = subresources.get("scale").map(|s| ScalePaths {
            spec_replicas: s
                .get("specReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: s
                .get("statusReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
        out.push(ResourceInfo {
            group: group.clone(),
            version: version.clone(),
            resource: plural.clone(),
            kind: kind.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            verbs: ALL_VERBS,
            status: subresources.get("status").is_some(),
            scale,
            storage_version: storage_version.clone(),
            crd: Some(Arc::new(CrdVersion {
                crd_name: crd_name.clone(),
                version,
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                printer_columns,
            })),
            is_virtual: false,
            tracks_generation: true,
        });
    }
    out
}

/// Whether a store hook is about the CustomResourceDefinition resource.
fn is_crd_resource(res: &crate::store::Resource<'_>) -> bool {
    res.group == "apiextensions.k8s.io" && res.resource == "customresourcedefinitions"
}

/// Registers with the store: a CRD this server creates or updates is served (or updated)
/// at once, a removed one stops being served. (Other servers' changes come through
/// [`spawn_watch`].)
pub(crate) fn register_hooks(state: &Arc<ApiState>) {
    let weak = Arc::downgrade(state);
    let changed: crate::store::Hook = Arc::new(move |ev: &crate::store::HookEvent<'_>| {
        if is_crd_resource(&ev.resource)
            && let Some(state) = weak.upgrade()
        {
            crd_changed(&state, ev.object);
        }
    });
    state.store.after_create(changed.clone());
    state.store.after_update(changed);
    let weak = Arc::downgrade(state);
    state
        .store
        .after_delete(Arc::new(move |ev: &crate::store::HookEvent<'_>| {
            if is_crd_resource(&ev.resource)
                && let Some(state) = weak.upgrade()
            {
                crd_deleted(&state, ev.object);
            }
        }));
}

/// Starts (or updates) serving a stored CRD.
pub(crate) fn crd_changed(state: &ApiState, crd: &Value) {
    let name = meta_str(crd, "name");
    if !meta_str(crd, "deletionTimestamp").is_empty() {
        return;
    }
    state.registry.set_crd(name, infos_from_crd(crd));
}

/// Stops serving a deleted CRD.
pub(crate) fn crd_deleted(state: &ApiState, crd: &Value) {
    state.registry.remove_crd(meta_str(crd, "name"));
}

/// Serves every stored CRD (at start).
pub(crate) async fn load_all(state: &ApiState) -> Result<(), ApiError> {
    let Some(info) = crd_info(state) else {
        return Ok(());
    };
    for (crd, _) in state.store.list(&info, "").await? {
        crd_changed(state, &crd);
    }
    Ok(())
}

/// Follows CRD changes made through other API servers sharing the store.
pub(crate) fn spawn_watch(state: Arc<ApiState>) {
    tokio::spawn(async move {
        let Some(info) = crd_info(&state) else { return };
        loop {
            // The store may be unreachable for a while (etcd without quorum): keep trying.
            let Ok(rev) = state.store.current_revision().await else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            let Ok(mut stream) = state.store.watch(&info, rev).await else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            // Read every CRD once the watch runs: one another server created while this one
            // bootstrapped, or while the watch was broken, is not missed.
            if let Err(e) = load_all(&state).await {
                tracing::warn!(error = %e.message, "reloading CustomResourceDefinitions failed");
            }
            while let Some(Ok(batch)) = stream.next().await {
                for ev in batch {
                    match &ev {
                        flotilla_storage::Event::Put { kv, .. } => {
                            if let Ok(crd) = objects::decode(kv) {
                                crd_changed(&state, &crd);
                            }
                        }
                        flotilla_storage::Event::Delete { prev, .. } => {
                            if let Ok(crd) = objects::decode(prev) {
                                crd_deleted(&state, &crd);
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
}

/// Deletes every object of a CRD's kind (before the CRD itself goes).
pub(crate) async fn delete_custom_objects(state: &ApiState, crd: &Value) -> Result<(), ApiError> {
    let infos = infos_from_crd(crd);
    let Some(info) = infos.into_iter().find(|i| i.version == i.storage_version) else {
        return Ok(());
    };
    for (obj, rev) in state.store.list(&info, "").await? {
        match state.store.delete_now(&info, &obj, rev).await {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" || e.reason == "Conflict" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `status` the way the apiextensions controllers do once names are accepted.
pub(crate) fn set_initial_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted
        .get("singular")
        .is_none_or(|s| s.as_str() == Some(""))
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(kind.to_ascii_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let now = objects::now_rfc3339();
    let keep_time = |t: &str| -> String {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|c| c.get("lastTransitionTime").and_then(Value::as_str))
            .unwrap_or(&now)
            .to_string()
    };
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": keep_time("NamesAccepted"), "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": keep_time("Established"), "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

/// Checks of a CRD object beyond its type.
pub(crate) fn validate_definition(crd: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = meta_str(crd, "name");
    if group.is_empty() {
        causes.push(required("spec.group"));
    } else if !group.contains('.') {
        causes.push(invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(required("spec.names.plural"));
    }
    if kind.is_empty() {
        causes.push(required("spec.names.kind"));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match crd.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Namespaced") | Some("Cluster") => {}
        Some(other) => causes.push(cause(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""),
        )),
        None => causes.push(required("spec.scope")),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        ));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): must have exactly one version marked as storage version",
            ));
        }
        for (i, v) in versions.iter().enumerate() {
            if v.pointer("/schema/openAPIV3Schema").is_none() {
                causes.push(required(&format!(
                    "spec.versions[{i}].schema.openAPIV3Schema"
                )));
            }
        }
    }
    if let Some(old) = old {
        for (field, ptr) in [
            ("spec.group", "/spec/group"),
            ("spec.names.plural", "/spec/names/plural"),
        ] {
            if old.pointer(ptr) != crd.pointer(ptr) {
                causes.push(invalid(
                    field,
                    crd.pointer(ptr).unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
    }
    causes
}

/// Validates a custom object against its version's schema: applies defaults, prunes
/// unknown fields (or refuses them under Strict), checks types, enums and required fields.
pub(crate) fn decode_custom(
    info: &ResourceInfo,
    version: &CrdVersion,
    obj: &Value,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let mut out = obj.clone();
    let mut unknown = Vec::new();
    let mut causes = Vec::new();
    if let Some(schema) = &version.schema
        && let Some(map) = out.as_object_mut()
    {
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        apply_defaults(schema, map);
        let keys: Vec<String> = map.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(child) => {
                    let mut v = map.remove(&k).expect("present");
                    if v.is_null() && child.get("nullable").and_then(Value::as_bool) != Some(true) {
                        continue;
                    }
                    check(child, &mut v, &k, &mut unknown, &mut causes);
                    map.insert(k, v);
                }
                None if preserve => {}
                None => {
                    map.remove(&k);
                    unknown.push(k);
                }
            }
        }
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    causes.push(required(r));
                }
            }
        }
    }
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match mode {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(crate::validation::strict_message(
                    &unknown,
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
            }
            FieldValidation::Ignore => {}
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            &info.group,
            &info.kind,
            meta_str(obj, "name"),
            causes,
        ));
    }
    Ok((out, warnings))
}

fn apply_defaults(schema: &Value, map: &mut Map<String, Value>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            if !map.contains_key(k)
                && let Some(d) = child.get("default")
            {
                map.insert(k.clone(), d.clone());
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `v` against `schema` at `path`: type, enum and bounds, then its fields or items
/// (defaulting, pruning unknown fields into `unknown`); problems go to `causes`.
fn check(
    schema: &Value,
    v: &mut Value,
    path: &str,
    unknown: &mut Vec<String>,
    causes: &mut Vec<StatusCause>,
) {
    if !check_type(schema, v, path, causes) {
        return;
    }
    check_enum(schema, v, path, causes);
    check_number_bounds(schema, v, path, causes);
    check_string_bounds(schema, v, path, causes);
    match v {
        Value::Object(map) => {
            apply_defaults(schema, map);
            check_fields(schema, map, path, unknown, causes);
            check_required(schema, map, path, causes);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), unknown, causes);
                }
            }
        }
        _ => {}
    }
}

/// Whether the schema sets the boolean extension `name` (e.g. `x-kubernetes-int-or-string`).
fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// The type check; false when nothing further is to be checked (a wrong type, or an
/// int-or-string value, which has no more to it).
fn check_type(schema: &Value, v: &Value, path: &str, causes: &mut Vec<StatusCause>) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        if !matches!(type_name(v), "integer" | "string") {
            causes.push(invalid(
                path,
                v,
                &format!(
                    "{path} in body must be of type integer,string: {:?}",
                    type_name(v)
                ),
            ));
        }
        return false;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == ty || (ty == "number" && actual == "integer");
        if !ok {
            causes.push(invalid(
                path,
                &json!(actual),
                &format!("{path} in body must be of type {ty}: \"{actual}\""),
            ));
            return false;
        }
    }
    true
}

fn check_enum(schema: &Value, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let supported = options
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        causes.push(cause(
            "FieldValueNotSupported",
            path,
            format!("Unsupported value: {v}: supported values: {supported}"),
        ));
    }
}

/// `minimum` and `maximum` of a number.
fn check_number_bounds(schema: &Value, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    let Some(n) = v.as_f64() else {
        return;
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        causes.push(invalid(
            path,
            v,
            &format!("{path} in body should be greater than or equal to {min}"),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        causes.push(invalid(
            path,
            v,
            &format!("{path} in body should be less than or equal to {max}"),
        ));
    }
}

/// `maxLength` and `pattern` of a string.
fn check_string_bounds(schema: &Value, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    let Some(s) = v.as_str() else {
        return;
    };
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && s.chars().count() as u64 > max
    {
        causes.push(cause(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(pattern)
        && !re.is_match(s)
    {
        causes.push(invalid(
            path,
            v,
            &format!("{path} in body should match '{pattern}'"),
        ));
    }
}

/// Checks each field of an object against its property (or `additionalProperties`) schema;
/// unknown fields are pruned unless the schema keeps them.
fn check_fields(
    schema: &Value,
    map: &mut serde_json::Map<String, Value>,
    path: &str,
    unknown: &mut Vec<String>,
    causes: &mut Vec<StatusCause>,
) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let child_path = format!("{path}.{k}");
        if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child_schema = props
            .and_then(|p| p.get(&k))
            .or_else(|| additional.filter(|a| a.is_object()));
        match child_schema {
            Some(child) => {
                let mut cv = map.remove(&k).expect("present");
                if cv.is_null() && child.get("nullable").and_then(Value::as_bool) != Some(true) {
                    continue;
                }
                check(child, &mut cv, &child_path, unknown, causes);
                map.insert(k, cv);
            }
            None if preserve || additional == Some(&Value::Bool(true)) => {}
            None if props.is_none() && additional.is_none() && schema.get("type").is_none() => {}
            None => {
                map.remove(&k);
                unknown.push(child_path);
            }
        }
    }
}

fn check_required(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    causes: &mut Vec<StatusCause>,
) {
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(required(&format!("{path}.{r}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
          "metadata":{"name":"widgets.example.com"},
          "spec":{"group":"example.com","scope":"Namespaced",
            "names":{"plural":"widgets","singular":"widget","kind":"Widget","shortNames":["wd"]},
            "versions":[{"name":"v1","served":true,"storage":true,
              "subresources":{"status":{}},
              "additionalPrinterColumns":[{"name":"Size","type":"integer","jsonPath":".spec.size"}],
              "schema":{"openAPIV3Schema":{"type":"object","properties":{
                "spec":{"type":"object","required":["size"],"properties":{
                  "size":{"type":"integer","minimum":0},
                  "color":{"type":"string","enum":["red","blue"],"default":"red"},
                  "extra":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}},
                "status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}})
    }

    #[test]
    fn schema_prunes_defaults_and_validates() {
        let infos = infos_from_crd(&crd());
        assert_eq!(infos.len(), 1);
        let info = &infos[0];
        assert!(info.status);
        let v = info.crd.clone().unwrap();
        let obj = json!({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"a"},
            "spec":{"size":3,"bogus":1,"extra":{"anything":{"goes":true}}}});
        let (out, warnings) = decode_custom(info, &v, &obj, FieldValidation::Warn).unwrap();
        assert_eq!(out["spec"]["color"], "red");
        assert!(out["spec"].get("bogus").is_none());
        assert_eq!(out["spec"]["extra"]["anything"]["goes"], true);
        assert_eq!(warnings, vec!["unknown field \"spec.bogus\"".to_string()]);
        let err = decode_custom(info, &v, &obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.message,
            "strict decoding error: unknown field \"spec.bogus\""
        );
        let bad = json!({"metadata":{"name":"a"},"spec":{"size":"big","color":"green"}});
        let err = decode_custom(info, &v, &bad, FieldValidation::Ignore).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("spec.size in body must be of type integer"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("Unsupported value: \"green\""),
            "{}",
            err.message
        );
        let missing = json!({"metadata":{"name":"a"},"spec":{}});
        let err = decode_custom(info, &v, &missing, FieldValidation::Ignore).unwrap_err();
        assert!(
            err.message.contains("spec.size: Required value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn definition_checks() {
        assert!(validate_definition(&crd(), None).is_empty());
        let mut bad = crd();
        bad["metadata"]["name"] = json!("nope");
        assert_eq!(validate_definition(&bad, None).len(), 1);
    }
}
