//! The defaults kube-apiserver fills into built-in kinds that users (and kubectl's
//! columns) rely on: replicas, strategies, Service type, container pull policy, ...

use serde_json::{Map, Value, json};

use crate::registry::ResourceInfo;

fn obj_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for p in path {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()
}

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
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

fn default_pod_spec(spec: Option<&mut Map<String, Value>>) {
    let Some(spec) = spec else { return };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    default_containers(spec.get_mut("containers"));
    default_containers(spec.get_mut("initContainers"));
}

/// Fills defaults into a built-in object (before it is stored).
pub fn apply(info: &ResourceInfo, obj: &mut Value) {
    if !info.is_builtin() {
        return;
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("apps", "Deployment") => {
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
            default_pod_spec(obj_at(obj, &["spec", "template", "spec"]));
        }
        ("apps", "StatefulSet") => {
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
            default_pod_spec(obj_at(obj, &["spec", "template", "spec"]));
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "replicas", json!(1));
            }
            default_pod_spec(obj_at(obj, &["spec", "template", "spec"]));
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            default_pod_spec(obj_at(obj, &["spec", "template", "spec"]));
        }
        ("batch", "Job") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completions", json!(1));
                set_default(spec, "parallelism", json!(1));
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
            }
            if let Some(tpl) = obj_at(obj, &["spec", "template", "spec"]) {
                set_default(tpl, "restartPolicy", json!("Never"));
            }
            default_pod_spec(obj_at(obj, &["spec", "template", "spec"]));
        }
        ("batch", "CronJob") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "concurrencyPolicy", json!("Allow"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "successfulJobsHistoryLimit", json!(3));
                set_default(spec, "failedJobsHistoryLimit", json!(1));
            }
            default_pod_spec(obj_at(
                obj,
                &["spec", "jobTemplate", "spec", "template", "spec"],
            ));
        }
        ("", "Service") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            } else {
                obj["spec"] = json!({"type": "ClusterIP", "sessionAffinity": "None"});
            }
        }
        ("", "Pod") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                default_pod_spec(Some(spec));
            }
        }
        ("", "Secret") => {
            if let Some(map) = obj.as_object_mut() {
                set_default(map, "type", json!("Opaque"));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        _ => {}
    }
}

/// Converts stringData into data for Secrets (base64), as kube-apiserver does on write.
pub fn fold_secret_string_data(info: &ResourceInfo, obj: &mut Value) {
    if !info.group.is_empty() || info.kind != "Secret" {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    use base64::Engine;
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            if let Some(s) = v.as_str() {
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
                );
            }
        }
    }
}
