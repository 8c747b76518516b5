//! `apps/v1`: Deployment, ReplicaSet, StatefulSet, DaemonSet. All embed a pod template whose
//! labels the (immutable) selector must match.

use flotilla_core::status::StatusCause;
use serde_json::{Map, Value, json};

use super::pods::{default_pod_spec, validate_pod_template};
use super::print::{age, container_images, container_names, i, map_text, name, selector_text};
use super::{Aggregate, PrintColumn, REPLICAS, Strategy, get, obj_at, set_default};
use crate::typed_kinds::{KindScope, KindType};
use crate::validation::{cause, invalid, required};
use flotilla_core::kinds::POD_TEMPLATE;
use k8s_openapi::api::apps::v1 as apps;

/// Deployment, StatefulSet, ReplicaSet, DaemonSet.
pub(crate) const STRATEGIES: &[Strategy] = &[
    workload::<apps::Deployment>(&["deploy"])
        .defaults(default_deployment)
        .validate(validate_replicated)
        .columns(DEPLOYMENT_COLUMNS)
        .scale(REPLICAS),
    workload::<apps::StatefulSet>(&["sts"])
        .defaults(default_statefulset)
        .validate(validate_replicated)
        .columns(STATEFULSET_COLUMNS)
        .scale(REPLICAS),
    workload::<apps::ReplicaSet>(&["rs"])
        .field_labels(&["status.replicas"])
        .defaults(default_replicaset)
        .validate(validate_replicated)
        .columns(REPLICASET_COLUMNS)
        .scale(REPLICAS),
    workload::<apps::DaemonSet>(&["ds"])
        .defaults(default_daemonset)
        .validate(validate_daemonset)
        .columns(DAEMONSET_COLUMNS),
];

/// What every `apps/v1` workload shares: in `all`, a `/status` subresource, a pod template
/// merged by its patch schema, granted by view/edit, a generation, an immutable selector.
const fn workload<T: KindType>(short_names: &'static [&'static str]) -> Strategy
where
    T::Scope: KindScope,
{
    Strategy::typed::<T>()
        .short_names(short_names)
        .in_all()
        .status()
        .patch(POD_TEMPLATE)
        .aggregate(Aggregate::ViewEdit)
        .validate_update(selector_is_immutable)
        .generation()
}

const CONTAINERS: &str = "/spec/template/spec/containers";

fn template_spec(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj_at(obj, &["spec", "template", "spec"])
}

fn default_deployment(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
        set_default(
            spec,
            "strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
        );
    }
    default_pod_spec(template_spec(obj));
}

fn default_statefulset(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "podManagementPolicy", json!("OrderedReady"));
        set_default(
            spec,
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        );
    }
    default_pod_spec(template_spec(obj));
}

fn default_replicaset(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "replicas", json!(1));
    }
    default_pod_spec(template_spec(obj));
}

fn default_daemonset(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(
            spec,
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        );
    }
    default_pod_spec(template_spec(obj));
}

/// `path` holds no negative number.
pub(crate) fn check_non_negative(obj: &Value, path: &[&str], causes: &mut Vec<StatusCause>) {
    if let Some(v) = get(obj, path)
        && v.as_i64().is_some_and(|n| n < 0)
    {
        causes.push(invalid(
            &path.join("."),
            v,
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_replicated(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    check_non_negative(obj, &["spec", "replicas"], causes);
    validate_selector_matches_template(obj, causes);
    validate_pod_template(obj, "spec.template.spec", causes);
}

fn validate_daemonset(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    validate_selector_matches_template(obj, causes);
    validate_pod_template(obj, "spec.template.spec", causes);
}

fn selector_is_immutable(old: &Value, new: &Value, causes: &mut Vec<StatusCause>) {
    let a = old.pointer("/spec/selector");
    let b = new.pointer("/spec/selector");
    if a != b {
        causes.push(invalid(
            "spec.selector",
            b.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

/// The selector must be present, not empty, and match the pod template's labels.
fn validate_selector_matches_template(obj: &Value, causes: &mut Vec<StatusCause>) {
    let Some(selector) = get(obj, &["spec", "selector"]) else {
        causes.push(required("spec.selector"));
        return;
    };
    let empty = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
        && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if empty {
        causes.push(invalid(
            "spec.selector",
            selector,
            "empty selector is invalid for deployment",
        ));
        return;
    }
    let labels = get(obj, &["spec", "template", "metadata", "labels"])
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match flotilla_core::selector::LabelSelector::from_json(selector) {
        Ok(sel) => {
            if !sel.matches(&labels) {
                let shown = format!(
                    "map[string]string{{{}}}",
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                causes.push(cause(
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    format!("Invalid value: {shown}: `selector` does not match template `labels`"),
                ));
            }
        }
        Err(e) => causes.push(invalid("spec.selector", selector, &e.to_string())),
    }
}

fn ready_of_replicas(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        i(o, "/status/readyReplicas"),
        i(o, "/spec/replicas")
    ))
}

const CONTAINERS_COLUMN: PrintColumn =
    PrintColumn::new("Containers", |o| container_names(o, CONTAINERS)).wide();
const IMAGES_COLUMN: PrintColumn =
    PrintColumn::new("Images", |o| container_images(o, CONTAINERS)).wide();
const SELECTOR_COLUMN: PrintColumn = PrintColumn::new("Selector", |o| {
    json!(selector_text(o.pointer("/spec/selector")))
})
.wide();

const DEPLOYMENT_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Ready", ready_of_replicas),
    PrintColumn::new("Up-to-date", |o| json!(i(o, "/status/updatedReplicas"))),
    PrintColumn::new("Available", |o| json!(i(o, "/status/availableReplicas"))),
    PrintColumn::new("Age", age),
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

const STATEFULSET_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Ready", ready_of_replicas),
    PrintColumn::new("Age", age),
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
];

const REPLICASET_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Desired", |o| json!(i(o, "/spec/replicas"))).typed("integer"),
    PrintColumn::new("Current", |o| json!(i(o, "/status/replicas"))).typed("integer"),
    PrintColumn::new("Ready", |o| json!(i(o, "/status/readyReplicas"))).typed("integer"),
    PrintColumn::new("Age", age),
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

const DAEMONSET_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Desired", |o| json!(i(o, "/status/desiredNumberScheduled"))).typed("integer"),
    PrintColumn::new("Current", |o| json!(i(o, "/status/currentNumberScheduled"))).typed("integer"),
    PrintColumn::new("Ready", |o| json!(i(o, "/status/numberReady"))).typed("integer"),
    PrintColumn::new("Up-to-date", |o| {
        json!(i(o, "/status/updatedNumberScheduled"))
    })
    .typed("integer"),
    PrintColumn::new("Available", |o| json!(i(o, "/status/numberAvailable"))).typed("integer"),
    PrintColumn::new("Node Selector", |o| {
        json!(map_text(o.pointer("/spec/template/spec/nodeSelector")))
    }),
    PrintColumn::new("Age", age),
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];
