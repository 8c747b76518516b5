//! Pods, and the pod-spec defaults and checks shared by every kind that embeds a pod template
//! (see `apps` and `batch`).

use flotilla_core::status::StatusCause;
use serde_json::{Map, Value, json};

use super::print::{age, arr, i, name, or_none, s};
use super::{Aggregate, PrintColumn, Strategy, get, obj_at, set_default};
use crate::validation::{DNS1123_LABEL_MSG, cause, invalid, is_dns1123_label, required};
use flotilla_core::kinds::PatchSchema;

/// The Pod strategy.
pub(crate) const STRATEGIES: &[Strategy] = &[Strategy::typed::<k8s_openapi::api::core::v1::Pod>()
    .short_names(&["po"])
    .in_all()
    .status()
    .patch(Some(PatchSchema::Pod))
    .aggregate(Aggregate::ViewEdit)
    .field_labels(&[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ])
    .defaults(|o| default_pod_spec(obj_at(o, &["spec"])))
    .on_create(|o, _| {
        o["status"] = json!({"phase": "Pending"});
        Ok(())
    })
    .validate(validate_pod)
    .columns(POD_COLUMNS)];

const POD_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Ready", |o| {
        let ready = container_statuses(o)
            .iter()
            .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
            .count();
        json!(format!("{ready}/{}", arr(o, "/spec/containers").len()))
    }),
    PrintColumn::new("Status", |o| json!(pod_status(o))),
    PrintColumn::new("Restarts", |o| {
        let restarts: i64 = container_statuses(o)
            .iter()
            .map(|c| i(c, "/restartCount"))
            .sum();
        json!(restarts.to_string())
    }),
    PrintColumn::new("Age", age),
    PrintColumn::new("IP", |o| json!(or_none(s(o, "/status/podIP")))).wide(),
    PrintColumn::new("Node", |o| json!(or_none(s(o, "/spec/nodeName")))).wide(),
    PrintColumn::new("Nominated Node", |o| {
        json!(or_none(s(o, "/status/nominatedNodeName")))
    })
    .wide(),
    PrintColumn::new("Readiness Gates", |_| json!("<none>")).wide(),
];

fn container_statuses(o: &Value) -> &[Value] {
    arr(o, "/status/containerStatuses")
}

/// The reason, else the phase, overridden by a waiting or terminated container's reason, and
/// `Terminating` once deletion started.
fn pod_status(o: &Value) -> String {
    let mut status = match s(o, "/status/reason") {
        "" => match s(o, "/status/phase") {
            "" => "Pending".to_string(),
            p => p.to_string(),
        },
        r => r.to_string(),
    };
    for c in container_statuses(o) {
        let waiting = s(c, "/state/waiting/reason");
        let terminated = s(c, "/state/terminated/reason");
        if !waiting.is_empty() {
            status = waiting.to_string();
        } else if !terminated.is_empty() {
            status = terminated.to_string();
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".into();
    }
    status
}

fn validate_pod(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
    match containers {
        Some(list) if !list.is_empty() => validate_containers(list, "spec.containers", causes),
        _ => causes.push(required("spec.containers")),
    }
}

fn default_containers(list: Option<&mut Value>) {
    let Some(list) = list.and_then(Value::as_array_mut) else {
        return;
    };
    for c in list {
        let Some(c) = c.as_object_mut() else { continue };
        let image = c
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let tag_latest = {
            let last = image.rsplit('/').next().unwrap_or("");
            !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
        };
        set_default(
            c,
            "imagePullPolicy",
            json!(if tag_latest { "Always" } else { "IfNotPresent" }),
        );
        set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json!("File"));
        set_default(c, "resources", json!({}));
        if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// Pod spec defaults: restart policy, grace period, DNS policy, scheduler, and per container
/// the pull policy (from the image tag), termination message, port protocols.
pub(crate) fn default_pod_spec(spec: Option<&mut Map<String, Value>>) {
    let Some(spec) = spec else { return };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    default_containers(spec.get_mut("containers"));
    default_containers(spec.get_mut("initContainers"));
}

/// The pod template of `obj` (at `spec.template.spec`) has valid containers.
pub(crate) fn validate_pod_template(obj: &Value, prefix: &str, causes: &mut Vec<StatusCause>) {
    let spec = get(obj, &["spec", "template", "spec"]);
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => causes.push(required(&format!("{prefix}.containers"))),
        Some(list) if list.is_empty() => causes.push(required(&format!("{prefix}.containers"))),
        Some(list) => validate_containers(list, &format!("{prefix}.containers"), causes),
    }
    if let Some(list) = spec
        .and_then(|s| s.get("initContainers"))
        .and_then(Value::as_array)
    {
        validate_containers(list, &format!("{prefix}.initContainers"), causes);
    }
}

fn validate_containers(list: &[Value], prefix: &str, causes: &mut Vec<StatusCause>) {
    let mut seen = std::collections::HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            causes.push(required(&format!("{prefix}[{i}].name")));
        } else if !is_dns1123_label(name) {
            causes.push(invalid(
                &format!("{prefix}[{i}].name"),
                &Value::String(name.into()),
                DNS1123_LABEL_MSG,
            ));
        } else if !seen.insert(name.to_string()) {
            causes.push(cause(
                "FieldValueDuplicate",
                &format!("{prefix}[{i}].name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .is_empty()
        {
            causes.push(required(&format!("{prefix}[{i}].image")));
        }
        if let Some(ports) = c.get("ports").and_then(Value::as_array) {
            for (j, p) in ports.iter().enumerate() {
                let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(invalid(
                        &format!("{prefix}[{i}].ports[{j}].containerPort"),
                        p.get("containerPort").unwrap_or(&Value::Null),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
}
