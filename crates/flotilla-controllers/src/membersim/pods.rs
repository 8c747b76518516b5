//! Pods as the ReplicaSet controller creates them and as a kubelet reports them, as pure
//! functions: a Pod from its owner's template, its status while the containers start and once
//! they run, and the owner's counts of its Pods.

use serde_json::{Value, json};

use super::network::fnv1a;
use super::slim::{SimPod, SimReplicaSet};

/// A Pod of `owner` (kind, name, uid) from a pod template (JSON text), named by the server
/// from `generate_name` (or exactly `name`), placed on `node`.
pub(crate) fn pod_from_template(
    template: &str,
    namespace: &str,
    name: PodName<'_>,
    owner: (&str, &str, &str),
    node: &str,
) -> Result<Value, serde_json::Error> {
    let template: Value = serde_json::from_str(template)?;
    let (kind, owner_name, uid) = owner;
    let mut metadata = json!({
        "namespace": namespace,
        "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": kind, "name": owner_name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }],
    });
    match name {
        PodName::Generate(prefix) => metadata["generateName"] = json!(prefix),
    }
    for field in ["labels", "annotations"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}")) {
            metadata[field] = v.clone();
        }
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["nodeName"] = json!(node);
    Ok(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}))
}

/// How a new Pod is named.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PodName<'a> {
    /// By the server: this prefix and five random characters.
    Generate(&'a str),
}

/// Where the Pod runs.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub host_ip: String,
    pub pod_ip: String,
}

fn hex64(seed: &str) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        fnv1a(seed),
        fnv1a(&format!("{seed}/1")),
        fnv1a(&format!("{seed}/2")),
        fnv1a(&format!("{seed}/3"))
    )
}

/// A Pod's status as its kubelet reports it: `ready` false while the containers are being
/// created (phase `Pending`), true once they run (phase `Running`, every condition `True`).
pub(crate) fn pod_status(pod: &SimPod, at: &Placement, ready: bool, now: &str) -> Value {
    let start = pod.status.start_time.clone().unwrap_or_else(|| now.into());
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let names: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let condition = |type_: &str, ok: bool, since: &str| {
        let mut c = json!({
            "type": type_,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": since,
        });
        if !ok {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!(
                "containers with unready status: [{}]",
                names.join(" ")
            ));
        }
        c
    };
    let containers: Vec<Value> = pod
        .spec
        .containers
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": ready,
                "started": ready,
                "restartCount": 0,
                "lastState": {},
            });
            if ready {
                s["imageID"] = json!(format!("{}@sha256:{}", c.image, hex64(&c.image)));
                s["containerID"] = json!(format!(
                    "containerd://{}",
                    hex64(&format!("{uid}/{}", c.name))
                ));
                s["state"] = json!({"running": {"startedAt": now}});
            } else {
                s["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
            }
            s
        })
        .collect();
    json!({
        "phase": if ready { "Running" } else { "Pending" },
        "conditions": [
            condition("PodReadyToStartContainers", true, &start),
            condition("Initialized", true, &start),
            condition("Ready", ready, now),
            condition("ContainersReady", ready, now),
            condition("PodScheduled", true, &start),
        ],
        "hostIP": at.host_ip,
        "hostIPs": [{"ip": at.host_ip}],
        "podIP": at.pod_ip,
        "podIPs": [{"ip": at.pod_ip}],
        "startTime": start,
        "containerStatuses": containers,
    })
}

/// Whether the Pod already reports what `pod_status` would for this readiness and placement.
pub(crate) fn status_current(pod: &SimPod, at: &Placement, ready: bool) -> bool {
    let phase = if ready { "Running" } else { "Pending" };
    pod.status.phase.as_deref() == Some(phase)
        && pod.is_ready() == ready
        && pod.status.pod_ip.as_deref() == Some(at.pod_ip.as_str())
        && pod.status.host_ip.as_deref() == Some(at.host_ip.as_str())
        && !pod.status.conditions.is_empty()
}

/// Counts of an owner's active Pods: `(replicas, ready)`.
pub(crate) fn counts<'a>(pods: impl Iterator<Item = &'a SimPod>) -> (i64, i64) {
    pods.filter(|p| !p.is_inactive())
        .fold((0, 0), |(n, r), p| (n + 1, r + i64::from(p.is_ready())))
}

/// A ReplicaSet's status from its Pods' counts.
pub(crate) fn replicaset_status(rs: &SimReplicaSet, (replicas, ready): (i64, i64)) -> Value {
    let mut status = serde_json::Map::new();
    status.insert("replicas".into(), json!(replicas));
    for (field, v) in [
        ("fullyLabeledReplicas", replicas),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
    ] {
        if v != 0 {
            status.insert(field.into(), json!(v));
        }
    }
    status.insert(
        "observedGeneration".into(),
        json!(rs.metadata.generation.unwrap_or(1)),
    );
    Value::Object(status)
}

/// Whether the ReplicaSet's status already says so.
pub(crate) fn replicaset_status_current(rs: &SimReplicaSet, (replicas, ready): (i64, i64)) -> bool {
    let s = &rs.status;
    s.replicas == replicas
        && s.fully_labeled_replicas == replicas
        && s.ready_replicas == ready
        && s.available_replicas == ready
        && s.observed_generation == rs.metadata.generation.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> SimPod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc-x", "namespace": "default", "uid": "p1"},
            "spec": {"nodeName": "m-node-1", "containers": [{"name": "web", "image": "nginx"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn pods_copy_the_template_and_point_at_their_owner() {
        let t = r#"{"metadata":{"labels":{"app":"web","pod-template-hash":"h"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}"#;
        let p = pod_from_template(
            t,
            "default",
            PodName::Generate("web-h-"),
            ("ReplicaSet", "web-h", "u1"),
            "n1",
        )
        .unwrap();
        assert_eq!(p["metadata"]["generateName"], "web-h-");
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], "h");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["spec"]["nodeName"], "n1");
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx");
    }

    #[test]
    fn status_goes_from_creating_to_running() {
        let at = Placement {
            host_ip: "100.64.0.1".into(),
            pod_ip: "10.128.0.2".into(),
        };
        let p = pod(json!({"phase": "Pending"}));
        assert!(!status_current(&p, &at, false));
        let pending = pod_status(&p, &at, false, "t0");
        assert_eq!(pending["phase"], "Pending");
        assert_eq!(
            pending["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        let p = pod(pending);
        assert!(status_current(&p, &at, false));
        assert!(!p.is_ready());
        let running = pod_status(&p, &at, true, "t1");
        assert_eq!(running["phase"], "Running");
        assert_eq!(running["startTime"], "t0");
        assert_eq!(running["podIP"], "10.128.0.2");
        assert_eq!(running["containerStatuses"][0]["ready"], true);
        assert_eq!(running["containerStatuses"][0]["restartCount"], 0);
        let p = pod(running);
        assert!(p.is_ready());
        assert!(status_current(&p, &at, true));
        assert_eq!(counts([p].iter()), (1, 1));
    }
}
