//! `meta.k8s.io` Tables (what `kubectl get` prints) and PartialObjectMetadata.
//!
//! Columns follow kube-apiserver's printers for each built-in kind (wide-only columns have
//! priority 1); custom resources use their CRD's `additionalPrinterColumns`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::registry::ResourceInfo;

/// `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Reads `includeObject` (default Metadata).
pub fn include_object(query: &HashMap<String, String>) -> IncludeObject {
    match query.get("includeObject").map(String::as_str) {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// A `PartialObjectMetadata` view of an object.
pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: &'static str,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// For custom resources: the JSONPath of the value.
    pub json_path: Option<String>,
}

fn col(name: &str, ty: &'static str, priority: i64) -> Column {
    Column {
        name: name.into(),
        ty,
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: describe(name),
        priority,
        json_path: None,
    }
}

fn describe(name: &str) -> String {
    match name {
        "Name" => "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names".into(),
        "Age" => "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
        other => format!("{other} of the object."),
    }
}

/// kube-apiserver's `HumanDuration`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&str>) -> Value {
    match ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => json!(human_duration(
            Utc::now().signed_duration_since(t.with_timezone(&Utc))
        )),
        None => json!("<unknown>"),
    }
}

fn age(obj: &Value) -> Value {
    age_of(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
    )
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn containers_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = arr(obj, ptr);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector_text(sel: Option<&Value>) -> String {
    match sel.and_then(|s| flotilla_core::selector::LabelSelector::from_json(s).ok()) {
        Some(s) if !s.is_everything() => s.to_string(),
        Some(_) => "<none>".into(),
        None => "<none>".into(),
    }
}

fn map_text(m: Option<&Value>) -> String {
    match m.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

fn service_ports(obj: &Value) -> String {
    let ports = arr(obj, "/spec/ports");
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| {
            let port = i(p, "/port");
            let proto = match s(p, "/protocol") {
                "" => "TCP",
                x => x,
            };
            let node = i(p, "/nodePort");
            if node > 0 {
                format!("{port}:{node}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `True`, or `False (reason)`, as kubectl prints an APIService's availability.
fn apiservice_available(obj: &Value) -> String {
    let available = arr(obj, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Available");
    match available {
        None => "Unknown".into(),
        Some(c) if s(c, "/status") == "True" => "True".into(),
        Some(c) => format!("{} ({})", s(c, "/status"), s(c, "/reason")),
    }
}

/// `Approved,Issued`, `Denied`, `Pending`, ... as kubectl prints a CSR's state.
fn csr_condition(obj: &Value) -> String {
    let mut parts: Vec<String> = arr(obj, "/status/conditions")
        .iter()
        .filter(|c| s(c, "/status") == "True" || s(c, "/status").is_empty())
        .map(|c| s(c, "/type").to_string())
        .collect();
    if !s(obj, "/status/certificate").is_empty() {
        parts.push("Issued".into());
    }
    if parts.is_empty() {
        "Pending".into()
    } else {
        parts.join(",")
    }
}

/// At most three items joined with commas, then `+ N more...`, as kubectl's printers.
fn first_three(items: Vec<String>) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    let mut text = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        text.push_str(&format!(" + {} more...", items.len() - 3));
    }
    text
}

/// `ip:port` for every address and port of an Endpoints object.
fn endpoints_text(obj: &Value) -> String {
    let mut items = Vec::new();
    for subset in arr(obj, "/subsets") {
        for address in arr(subset, "/addresses") {
            for port in arr(subset, "/ports") {
                items.push(format!("{}:{}", s(address, "/ip"), i(port, "/port")));
            }
        }
    }
    first_three(items)
}

fn slice_ports(obj: &Value) -> String {
    let ports = arr(obj, "/ports");
    if ports.is_empty() {
        return "<unset>".into();
    }
    first_three(ports.iter().map(|p| i(p, "/port").to_string()).collect())
}

fn slice_endpoints(obj: &Value) -> String {
    let addresses = arr(obj, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses").to_vec())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    first_three(addresses)
}

fn lb_ingress(obj: &Value, ptr: &str) -> Vec<String> {
    arr(obj, ptr)
        .iter()
        .filter_map(|i| {
            let ip = s(i, "/ip");
            let host = s(i, "/hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect()
}

fn service_external_ip(obj: &Value) -> String {
    let ty = s(obj, "/spec/type");
    let external: Vec<String> = arr(obj, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    match ty {
        "ClusterIP" | "" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ips = lb_ingress(obj, "/status/loadBalancer/ingress");
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn ingress_hosts(obj: &Value) -> String {
    let hosts: Vec<&str> = arr(obj, "/spec/rules")
        .iter()
        .map(|r| s(r, "/host"))
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return "*".into();
    }
    if hosts.len() > 4 {
        return format!("{} + {} more...", hosts[..4].join(","), hosts.len() - 4);
    }
    hosts.join(",")
}

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

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

fn hpa_targets(obj: &Value) -> String {
    let metrics = arr(obj, "/spec/metrics");
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current = arr(obj, "/status/currentMetrics");
    metrics
        .iter()
        .enumerate()
        .map(|(idx, m)| {
            let name = s(m, "/resource/name");
            let target = m
                .pointer("/resource/target/averageUtilization")
                .map(|v| format!("{v}%"))
                .or_else(|| {
                    m.pointer("/resource/target/averageValue")
                        .map(|v| v.as_str().unwrap_or("").to_string())
                })
                .unwrap_or_else(|| "<unknown>".into());
            let cur = current
                .get(idx)
                .and_then(|c| {
                    c.pointer("/resource/current/averageUtilization")
                        .map(|v| format!("{v}%"))
                })
                .unwrap_or_else(|| "<unknown>".into());
            if name.is_empty() {
                format!("{cur}/{target}")
            } else {
                format!("{name}: {cur}/{target}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn job_duration(obj: &Value) -> String {
    let start = s(obj, "/status/startTime");
    let Ok(start) = DateTime::parse_from_rfc3339(start) else {
        return String::new();
    };
    let end = DateTime::parse_from_rfc3339(s(obj, "/status/completionTime"))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    human_duration(end.signed_duration_since(start.with_timezone(&Utc)))
}

fn job_status(obj: &Value) -> String {
    let conds = arr(obj, "/status/conditions");
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
    };
    if has("Failed") {
        "Failed".into()
    } else if has("Complete") {
        "Complete".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else if has("FailureTarget") {
        "FailureTarget".into()
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet".into()
    } else {
        "Running".into()
    }
}

/// Columns and a row function for a built-in kind.
fn builtin_columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    let c = |spec: &[(&str, &'static str, i64)]| {
        spec.iter()
            .map(|(n, t, p)| col(n, t, *p))
            .collect::<Vec<_>>()
    };
    Some(match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => c(&[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ]),
        ("", "Node") => c(&[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ]),
        ("", "Pod") => c(&[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ]),
        ("", "ConfigMap") => c(&[
            ("Name", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ]),
        ("", "Secret") => c(&[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ]),
        ("", "Service") => c(&[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ]),
        ("", "Endpoints") => c(&[
            ("Name", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ]),
        ("discovery.k8s.io", "EndpointSlice") => c(&[
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ]),
        ("apiregistration.k8s.io", "APIService") => c(&[
            ("Name", "string", 0),
            ("Service", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
        ]),
        ("certificates.k8s.io", "CertificateSigningRequest") => c(&[
            ("Name", "string", 0),
            ("Age", "string", 0),
            ("SignerName", "string", 0),
            ("Requestor", "string", 0),
            ("RequestedDuration", "string", 0),
            ("Condition", "string", 0),
        ]),
        ("", "ServiceAccount") => c(&[
            ("Name", "string", 0),
            ("Secrets", "string", 0),
            ("Age", "string", 0),
        ]),
        ("", "PersistentVolumeClaim") => c(&[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Volume", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ]),
        ("", "Event") => c(&[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ]),
        ("apps", "Deployment") => c(&[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]),
        ("apps", "StatefulSet") => c(&[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ]),
        ("apps", "DaemonSet") => c(&[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]),
        ("apps", "ReplicaSet") => c(&[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]),
        ("batch", "Job") => c(&[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]),
        ("batch", "CronJob") => c(&[
            ("Name", "string", 0),
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ]),
        ("networking.k8s.io", "Ingress") => c(&[
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ]),
        ("networking.k8s.io", "IngressClass") => c(&[
            ("Name", "string", 0),
            ("Controller", "string", 0),
            ("Parameters", "string", 0),
            ("Age", "string", 0),
        ]),
        ("networking.k8s.io", "NetworkPolicy") => c(&[
            ("Name", "string", 0),
            ("Pod-Selector", "string", 0),
            ("Age", "string", 0),
        ]),
        ("autoscaling", "HorizontalPodAutoscaler") => c(&[
            ("Name", "string", 0),
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "string", 0),
            ("Replicas", "string", 0),
            ("Age", "string", 0),
        ]),
        ("policy", "PodDisruptionBudget") => c(&[
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ]),
        ("coordination.k8s.io", "Lease") => c(&[
            ("Name", "string", 0),
            ("Holder", "string", 0),
            ("Age", "string", 0),
        ]),
        ("rbac.authorization.k8s.io", "Role") | ("rbac.authorization.k8s.io", "ClusterRole") => {
            c(&[("Name", "string", 0), ("Created At", "date", 0)])
        }
        ("rbac.authorization.k8s.io", "RoleBinding")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => c(&[
            ("Name", "string", 0),
            ("Role", "string", 0),
            ("Age", "string", 0),
            ("Users", "string", 1),
            ("Groups", "string", 1),
            ("ServiceAccounts", "string", 1),
        ]),
        _ => return None,
    })
}

/// `kubectl get nodes` cells: Ready condition, roles from `node-role.kubernetes.io/*` labels,
/// kubelet version and (wide) addresses and node info.
fn node_cells(o: &Value) -> Vec<Value> {
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
    let roles: Vec<&str> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    let address = |t: &str| {
        arr(o, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == t)
            .map_or("<none>".to_string(), |a| s(a, "/address").to_string())
    };
    vec![
        json!(s(o, "/metadata/name")),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        age(o),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(s(o, "/status/nodeInfo/osImage")),
        json!(s(o, "/status/nodeInfo/kernelVersion")),
        json!(s(o, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn builtin_cells(info: &ResourceInfo, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => vec![name, json!(s(o, "/status/phase")), age(o)],
        ("", "Node") => node_cells(o),
        ("", "Pod") => {
            let total = arr(o, "/spec/containers").len();
            let statuses = arr(o, "/status/containerStatuses");
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
            let mut status = match s(o, "/status/reason") {
                "" => match s(o, "/status/phase") {
                    "" => "Pending".to_string(),
                    p => p.to_string(),
                },
                r => r.to_string(),
            };
            for c in statuses {
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
            let none = |v: &str| {
                if v.is_empty() {
                    "<none>".to_string()
                } else {
                    v.to_string()
                }
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age(o),
                json!(none(s(o, "/status/podIP"))),
                json!(none(s(o, "/spec/nodeName"))),
                json!(none(s(o, "/status/nominatedNodeName"))),
                json!("<none>"),
            ]
        }
        ("", "ConfigMap") => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, Map::len)
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len);
            vec![name, json!(n), age(o)]
        }
        ("", "Secret") => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, Map::len);
            vec![name, json!(s(o, "/type")), json!(n), age(o)]
        }
        ("", "Endpoints") => vec![name, json!(endpoints_text(o)), age(o)],
        ("apiregistration.k8s.io", "APIService") => {
            let service = match (s(o, "/spec/service/namespace"), s(o, "/spec/service/name")) {
                (_, "") => "Local".to_string(),
                (ns, n) => format!("{ns}/{n}"),
            };
            vec![name, json!(service), json!(apiservice_available(o)), age(o)]
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => vec![
            name,
            age(o),
            json!(s(o, "/spec/signerName")),
            json!(s(o, "/spec/username")),
            json!(match i(o, "/spec/expirationSeconds") {
                0 => "<none>".to_string(),
                secs => human_duration(chrono::Duration::seconds(secs)),
            }),
            json!(csr_condition(o)),
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            name,
            json!(s(o, "/addressType")),
            json!(slice_ports(o)),
            json!(slice_endpoints(o)),
            age(o),
        ],
        ("", "Service") => {
            let ip = match s(o, "/spec/clusterIP") {
                "" => "<none>".to_string(),
                x => x.to_string(),
            };
            vec![
                name,
                json!(s(o, "/spec/type")),
                json!(ip),
                json!(service_external_ip(o)),
                json!(service_ports(o)),
                age(o),
                json!(map_text(o.pointer("/spec/selector"))),
            ]
        }
        ("", "ServiceAccount") => vec![name, json!(arr(o, "/secrets").len()), age(o)],
        ("", "PersistentVolumeClaim") => {
            let phase = if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                s(o, "/status/phase")
            };
            let bound = s(o, "/status/phase") == "Bound";
            let capacity = if bound {
                s(o, "/status/capacity/storage").to_string()
            } else {
                String::new()
            };
            let modes = if bound {
                access_modes(o, "/status/accessModes")
            } else {
                String::new()
            };
            let class = match s(o, "/spec/storageClassName") {
                "" => "<unset>",
                x => x,
            };
            let vac = match s(o, "/spec/volumeAttributesClassName") {
                "" => "<unset>",
                x => x,
            };
            vec![
                name,
                json!(phase),
                json!(s(o, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(class),
                json!(vac),
                age(o),
                json!(s(o, "/spec/volumeMode")),
            ]
        }
        ("", "Event") => {
            let last = o
                .pointer("/lastTimestamp")
                .and_then(Value::as_str)
                .or_else(|| o.pointer("/eventTime").and_then(Value::as_str));
            let first = o
                .pointer("/firstTimestamp")
                .and_then(Value::as_str)
                .or_else(|| o.pointer("/eventTime").and_then(Value::as_str));
            let object = format!(
                "{}/{}",
                s(o, "/involvedObject/kind").to_ascii_lowercase(),
                s(o, "/involvedObject/name")
            );
            let source = match (s(o, "/source/component"), s(o, "/reportingComponent")) {
                ("", r) => r.to_string(),
                (c, _) => c.to_string(),
            };
            let count = o.pointer("/count").and_then(Value::as_i64).unwrap_or(1);
            vec![
                age_of(last),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(object),
                json!(s(o, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(o, "/message")),
                age_of(first),
                json!(count),
                name,
            ]
        }
        ("apps", "Deployment") => {
            let (cs, is) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                )),
                json!(i(o, "/status/updatedReplicas")),
                json!(i(o, "/status/availableReplicas")),
                age(o),
                json!(cs),
                json!(is),
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        ("apps", "StatefulSet") => {
            let (cs, is) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(o, "/status/readyReplicas"),
                    i(o, "/spec/replicas")
                )),
                age(o),
                json!(cs),
                json!(is),
            ]
        }
        ("apps", "DaemonSet") => {
            let (cs, is) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(i(o, "/status/desiredNumberScheduled")),
                json!(i(o, "/status/currentNumberScheduled")),
                json!(i(o, "/status/numberReady")),
                json!(i(o, "/status/updatedNumberScheduled")),
                json!(i(o, "/status/numberAvailable")),
                json!(map_text(o.pointer("/spec/template/spec/nodeSelector"))),
                age(o),
                json!(cs),
                json!(is),
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (cs, is) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(i(o, "/spec/replicas")),
                json!(i(o, "/status/replicas")),
                json!(i(o, "/status/readyReplicas")),
                age(o),
                json!(cs),
                json!(is),
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        ("batch", "Job") => {
            let (cs, is) = containers_images(o, "/spec/template/spec/containers");
            let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(c) => format!("{}/{c}", i(o, "/status/succeeded")),
                None => format!(
                    "{}/1 of {}",
                    i(o, "/status/succeeded"),
                    o.pointer("/spec/parallelism")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
            };
            vec![
                name,
                json!(job_status(o)),
                json!(completions),
                json!(job_duration(o)),
                age(o),
                json!(cs),
                json!(is),
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        ("batch", "CronJob") => {
            let (cs, is) = containers_images(o, "/spec/jobTemplate/spec/template/spec/containers");
            let last = match o
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str)
            {
                Some(t) => age_of(Some(t)),
                None => json!("<none>"),
            };
            let tz = match s(o, "/spec/timeZone") {
                "" => "<none>",
                x => x,
            };
            vec![
                name,
                json!(s(o, "/spec/schedule")),
                json!(tz),
                json!(
                    o.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(arr(o, "/status/active").len()),
                last,
                age(o),
                json!(cs),
                json!(is),
                json!(selector_text(o.pointer("/spec/jobTemplate/spec/selector"))),
            ]
        }
        ("networking.k8s.io", "Ingress") => {
            let class = match s(o, "/spec/ingressClassName") {
                "" => "<none>",
                x => x,
            };
            let addr = lb_ingress(o, "/status/loadBalancer/ingress").join(",");
            let ports = if arr(o, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name,
                json!(class),
                json!(ingress_hosts(o)),
                json!(addr),
                json!(ports),
                age(o),
            ]
        }
        ("networking.k8s.io", "IngressClass") => {
            let params = match o.pointer("/spec/parameters") {
                Some(p) => format!("{}/{}", s(p, "/kind"), s(p, "/name")),
                None => "<none>".into(),
            };
            vec![name, json!(s(o, "/spec/controller")), json!(params), age(o)]
        }
        ("networking.k8s.io", "NetworkPolicy") => vec![
            name,
            json!(selector_text(o.pointer("/spec/podSelector"))),
            age(o),
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let reference = format!(
                "{}/{}",
                s(o, "/spec/scaleTargetRef/kind"),
                s(o, "/spec/scaleTargetRef/name")
            );
            let min = o
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .map_or("<unset>".to_string(), |v| v.to_string());
            vec![
                name,
                json!(reference),
                json!(hpa_targets(o)),
                json!(min),
                json!(i(o, "/spec/maxReplicas")),
                json!(i(o, "/status/currentReplicas")),
                age(o),
            ]
        }
        ("policy", "PodDisruptionBudget") => vec![
            name,
            json!(int_or_string(o.pointer("/spec/minAvailable"))),
            json!(int_or_string(o.pointer("/spec/maxUnavailable"))),
            json!(i(o, "/status/disruptionsAllowed")),
            age(o),
        ],
        ("coordination.k8s.io", "Lease") => vec![name, json!(s(o, "/spec/holderIdentity")), age(o)],
        ("rbac.authorization.k8s.io", "Role") | ("rbac.authorization.k8s.io", "ClusterRole") => {
            vec![name, json!(s(o, "/metadata/creationTimestamp"))]
        }
        ("rbac.authorization.k8s.io", "RoleBinding")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            let role = format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name"));
            vec![
                name,
                json!(role),
                age(o),
                json!(subjects(o, "User")),
                json!(subjects(o, "Group")),
                json!(subjects(o, "ServiceAccount")),
            ]
        }
        _ => vec![name, json!(s(o, "/metadata/creationTimestamp"))],
    }
}

/// The columns of `info`'s table.
pub fn columns(info: &ResourceInfo) -> Vec<Column> {
    if let Some(crd) = &info.crd {
        let mut cols = vec![col("Name", "string", 0)];
        if crd.printer_columns.is_empty() {
            let mut age = col("Age", "date", 0);
            age.json_path = Some(".metadata.creationTimestamp".into());
            cols.push(age);
        } else {
            cols.extend(crd.printer_columns.iter().cloned());
        }
        return cols;
    }
    builtin_columns(info)
        .unwrap_or_else(|| vec![col("Name", "string", 0), col("Created At", "date", 0)])
}

fn cells(info: &ResourceInfo, cols: &[Column], obj: &Value) -> Vec<Value> {
    if info.crd.is_none() {
        return builtin_cells(info, obj);
    }
    let mut out = vec![json!(s(obj, "/metadata/name"))];
    for c in &cols[1..] {
        let path = c.json_path.as_deref().unwrap_or("");
        let found = crate::jsonpath::evaluate(obj, path);
        let value = match found.first() {
            None => Value::Null,
            Some(v) => match c.ty {
                "date" => age_of(v.as_str()),
                "integer" => v.as_i64().map(|n| json!(n)).unwrap_or_else(|| (*v).clone()),
                "number" => v.as_f64().map(|n| json!(n)).unwrap_or_else(|| (*v).clone()),
                "boolean" => v
                    .as_bool()
                    .map(|b| json!(b))
                    .unwrap_or_else(|| (*v).clone()),
                _ => match v {
                    Value::String(s) => json!(s),
                    other if found.len() == 1 => json!(other.to_string()),
                    _ => json!(
                        found
                            .iter()
                            .map(|v| v
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                },
            },
        };
        out.push(value);
    }
    out
}

/// A `meta.k8s.io` Table of `objects`.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    version: &str,
    include: IncludeObject,
    list_meta: Value,
    with_headers: bool,
) -> Value {
    let cols = columns(info);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(info, &cols, o)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o, version),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let defs: Vec<Value> = if with_headers {
        cols.iter()
            .map(|c| json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubernetes() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_duration(d(-5)), "<invalid>");
        assert_eq!(human_duration(d(-1)), "0s");
        assert_eq!(human_duration(d(45)), "45s");
        assert_eq!(human_duration(d(119)), "119s");
        assert_eq!(human_duration(d(130)), "2m10s");
        assert_eq!(human_duration(d(180)), "3m");
        assert_eq!(human_duration(d(60 * 15)), "15m");
        assert_eq!(human_duration(d(3600 * 5 + 60 * 3)), "5h3m");
        assert_eq!(human_duration(d(3600 * 30)), "30h");
        assert_eq!(human_duration(d(3600 * 24 * 3 + 3600 * 2)), "3d2h");
        assert_eq!(human_duration(d(3600 * 24 * 100)), "100d");
        assert_eq!(human_duration(d(3600 * 24 * 365 * 3)), "3y");
    }

    #[test]
    fn deployment_row() {
        let info = crate::builtin::resources()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        let o = json!({"metadata":{"name":"web","creationTimestamp":"2020-01-01T00:00:00Z"},
            "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}},
            "status":{"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}});
        let t = table(&info, &[o], "v1", IncludeObject::Metadata, json!({}), true);
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 8);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "2/3");
        assert_eq!(cells[2], 3);
        assert_eq!(cells[7], "app=web");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
