//! Cluster plumbing in the core group: Namespace, Node, ServiceAccount, PersistentVolumeClaim,
//! Event; `events.k8s.io` Event and `coordination.k8s.io` Lease.

use serde_json::{Value, json};

use super::print::{age, age_of, arr, name, s};
use crate::objects::{meta_mut, meta_str};

use super::{Aggregate, NameRule, PrintColumn, Strategy, obj_at, set_default};
use flotilla_core::kinds::{Kind, PatchSchema, Scope};
use k8s_openapi::api::{coordination::v1 as coord, core::v1 as core, events::v1 as events};

/// Namespace, Node, ServiceAccount, PersistentVolumeClaim, Event (both groups), Lease.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::typed::<core::Namespace>()
        .short_names(&["ns"])
        .status()
        .aggregate(Aggregate::View)
        .field_labels(&["status.phase"])
        .names(NameRule::Label)
        .on_create(|o, _| {
            create_namespace(o);
            Ok(())
        })
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Status", |o| json!(s(o, "/status/phase"))),
            PrintColumn::new("Age", age),
        ]),
    // Nodes are stored as sent (no k8s-openapi decoding, no schema).
    Strategy::untyped(Kind::new("", "v1", "nodes", "Node", Scope::Cluster))
        .short_names(&["no"])
        .in_all()
        .status()
        .patch(Some(PatchSchema::Node))
        .field_labels(&["spec.unschedulable"])
        .columns(NODE_COLUMNS),
    Strategy::typed::<core::ServiceAccount>()
        .short_names(&["sa"])
        .patch(Some(PatchSchema::ServiceAccount))
        .aggregate(Aggregate::ViewEdit)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Secrets", |o| json!(arr(o, "/secrets").len())),
            PrintColumn::new("Age", age),
        ]),
    Strategy::typed::<core::PersistentVolumeClaim>()
        .short_names(&["pvc"])
        .status()
        .aggregate(Aggregate::ViewEdit)
        .defaults(|o| {
            if let Some(spec) = obj_at(o, &["spec"]) {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        })
        .columns(PVC_COLUMNS),
    Strategy::typed::<core::Event>()
        .short_names(&["ev"])
        .aggregate(Aggregate::ViewEdit)
        .field_labels(EVENT_FIELD_LABELS)
        .columns(EVENT_COLUMNS),
    Strategy::typed::<events::Event>()
        .short_names(&["ev"])
        .field_labels(EVENT_FIELD_LABELS),
    Strategy::typed::<coord::Lease>().columns(&[
        PrintColumn::new("Name", name),
        PrintColumn::new("Holder", |o| json!(s(o, "/spec/holderIdentity"))),
        PrintColumn::new("Age", age),
    ]),
];

/// What Events of either group can be selected by.
const EVENT_FIELD_LABELS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
];

/// A new Namespace is `Active`, carries the `kubernetes` finalizer and the
/// `kubernetes.io/metadata.name` label.
fn create_namespace(obj: &mut Value) {
    obj["status"] = json!({"phase": "Active"});
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let finalizers = obj["spec"]
        .as_object_mut()
        .expect("spec is an object")
        .entry("finalizers")
        .or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut()
        && !list
            .iter()
            .any(|f| f == crate::namespace::KUBERNETES_FINALIZER)
    {
        list.push(json!(crate::namespace::KUBERNETES_FINALIZER));
    }
    let name = meta_str(obj, "name").to_string();
    let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
}

/// `kubectl get nodes`: Ready condition, roles from `node-role.kubernetes.io/*` labels,
/// kubelet version and (wide) addresses and node info.
const NODE_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Status", |o| json!(node_status(o))),
    PrintColumn::new("Roles", |o| {
        let roles: Vec<&str> = o
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|l| {
                l.keys()
                    .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                    .collect()
            })
            .unwrap_or_default();
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        })
    }),
    PrintColumn::new("Age", age),
    PrintColumn::new("Version", |o| {
        json!(s(o, "/status/nodeInfo/kubeletVersion"))
    }),
    PrintColumn::new("Internal-IP", |o| json!(node_address(o, "InternalIP"))).wide(),
    PrintColumn::new("External-IP", |o| json!(node_address(o, "ExternalIP"))).wide(),
    PrintColumn::new("OS-Image", |o| json!(s(o, "/status/nodeInfo/osImage"))).wide(),
    PrintColumn::new("Kernel-Version", |o| {
        json!(s(o, "/status/nodeInfo/kernelVersion"))
    })
    .wide(),
    PrintColumn::new("Container-Runtime", |o| {
        json!(s(o, "/status/nodeInfo/containerRuntimeVersion"))
    })
    .wide(),
];

fn node_status(o: &Value) -> String {
    let ready = arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map_or("Unknown", |c| match s(c, "/status") {
            "True" => "Ready",
            "False" => "NotReady",
            _ => "Unknown",
        });
    let mut status = ready.to_string();
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_address(o: &Value, ty: &str) -> String {
    arr(o, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == ty)
        .map_or("<none>".to_string(), |a| s(a, "/address").to_string())
}

fn pvc_bound(o: &Value) -> bool {
    s(o, "/status/phase") == "Bound"
}

fn unset_if_empty(v: &str) -> &str {
    if v.is_empty() { "<unset>" } else { v }
}

const PVC_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Status", |o| {
        json!(if o.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating"
        } else {
            s(o, "/status/phase")
        })
    }),
    PrintColumn::new("Volume", |o| json!(s(o, "/spec/volumeName"))),
    PrintColumn::new("Capacity", |o| {
        json!(if pvc_bound(o) {
            s(o, "/status/capacity/storage")
        } else {
            ""
        })
    }),
    PrintColumn::new("Access Modes", |o| {
        json!(if pvc_bound(o) {
            access_modes(o, "/status/accessModes")
        } else {
            String::new()
        })
    }),
    PrintColumn::new("StorageClass", |o| {
        json!(unset_if_empty(s(o, "/spec/storageClassName")))
    }),
    PrintColumn::new("VolumeAttributesClass", |o| {
        json!(unset_if_empty(s(o, "/spec/volumeAttributesClassName")))
    }),
    PrintColumn::new("Age", age),
    PrintColumn::new("VolumeMode", |o| json!(s(o, "/spec/volumeMode"))).wide(),
];

/// `lastTimestamp` (or `firstTimestamp`) falling back to `eventTime`.
fn event_time<'a>(o: &'a Value, ptr: &str) -> Option<&'a str> {
    o.pointer(ptr)
        .and_then(Value::as_str)
        .or_else(|| o.pointer("/eventTime").and_then(Value::as_str))
}

const EVENT_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Last Seen", |o| age_of(event_time(o, "/lastTimestamp"))),
    PrintColumn::new("Type", |o| json!(s(o, "/type"))),
    PrintColumn::new("Reason", |o| json!(s(o, "/reason"))),
    PrintColumn::new("Object", |o| {
        json!(format!(
            "{}/{}",
            s(o, "/involvedObject/kind").to_ascii_lowercase(),
            s(o, "/involvedObject/name")
        ))
    }),
    PrintColumn::new("Subobject", |o| json!(s(o, "/involvedObject/fieldPath"))).wide(),
    PrintColumn::new("Source", |o| {
        json!(
            match (s(o, "/source/component"), s(o, "/reportingComponent")) {
                ("", r) => r,
                (c, _) => c,
            }
        )
    })
    .wide(),
    PrintColumn::new("Message", |o| json!(s(o, "/message"))),
    PrintColumn::new("First Seen", |o| age_of(event_time(o, "/firstTimestamp"))).wide(),
    PrintColumn::new("Count", |o| {
        json!(o.pointer("/count").and_then(Value::as_i64).unwrap_or(1))
    })
    .wide(),
    PrintColumn::new("Name", name).wide(),
];

fn access_modes(obj: &Value, ptr: &str) -> String {
    let mut out = Vec::new();
    for m in arr(obj, ptr).iter().filter_map(Value::as_str) {
        let short = match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        };
        if !out.contains(&short) {
            out.push(short);
        }
    }
    out.join(",")
}
