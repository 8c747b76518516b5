//! Rollout status for workload kinds, as the real controllers report it: pure functions from
//! an object (JSON) and the simulated progress to its new `status`.

use serde_json::{Map, Value, json};

/// Where a simulated rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Pods of the current generation are starting: nothing new is ready yet.
    Rolling,
    /// Every desired pod of the current generation is ready.
    Ready,
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// `metadata.generation` (1 when the server does not track generations).
pub(crate) fn generation(object: &Value) -> i64 {
    int(object, "/metadata/generation").unwrap_or(1)
}

/// `spec.replicas`, defaulting to 1 like the API server.
pub(crate) fn desired_replicas(object: &Value) -> i64 {
    int(object, "/spec/replicas").unwrap_or(1).max(0)
}

/// Ready replicas to report while rolling: what was ready before, capped by the new desire.
fn ready_while_rolling(object: &Value, ready_field: &str, desired: i64) -> i64 {
    int(object, &format!("/status/{ready_field}"))
        .unwrap_or(0)
        .min(desired)
}

/// Inserts integer counters, omitting zeros like the Kubernetes API (`omitempty`).
fn counters(status: &mut Map<String, Value>, fields: &[(&str, i64)]) {
    for (name, value) in fields {
        if *value != 0 {
            status.insert((*name).to_string(), json!(value));
        }
    }
}

/// A status condition; keeps `lastTransitionTime` (and `lastUpdateTime`) of one that did not
/// change.
pub(crate) fn condition(
    object: &Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    with_update_time: bool,
) -> Value {
    let previous = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let transition = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => Value::String(now.to_string()),
    };
    let mut c = json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if with_update_time {
        let unchanged = previous.is_some_and(|p| {
            p["status"] == status && p["reason"] == reason && p["message"] == message
        });
        c["lastUpdateTime"] = if unchanged {
            previous
                .map(|p| p["lastUpdateTime"].clone())
                .unwrap_or(Value::Null)
        } else {
            Value::String(now.to_string())
        };
        if c["lastUpdateTime"].is_null() {
            c["lastUpdateTime"] = Value::String(now.to_string());
        }
    }
    c
}

fn name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A stable ReplicaSet-style hash suffix for the current generation.
fn revision_hash(object: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{}/{}", name(object), generation(object)).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:x}", h & 0xffff_ffff)
}

/// Deployment status (apps/v1).
pub(crate) fn deployment_status(object: &Value, progress: Progress, now: &str) -> Value {
    let desired = desired_replicas(object);
    let ready = match progress {
        Progress::Ready => desired,
        Progress::Rolling => ready_while_rolling(object, "readyReplicas", desired),
    };
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(object)));
    counters(
        &mut status,
        &[
            ("replicas", desired),
            ("updatedReplicas", desired),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("unavailableReplicas", desired - ready),
        ],
    );
    let rs_name = format!("{}-{}", name(object), revision_hash(object));
    let available = if ready >= desired {
        condition(
            object,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
            true,
        )
    } else {
        condition(
            object,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
            true,
        )
    };
    let progressing = match progress {
        Progress::Ready => condition(
            object,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            now,
            true,
        ),
        Progress::Rolling => condition(
            object,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
            now,
            true,
        ),
    };
    status.insert("conditions".into(), json!([available, progressing]));
    Value::Object(status)
}

/// StatefulSet status (apps/v1).
pub(crate) fn statefulset_status(object: &Value, progress: Progress, _now: &str) -> Value {
    let desired = desired_replicas(object);
    let ready = match progress {
        Progress::Ready => desired,
        Progress::Rolling => ready_while_rolling(object, "readyReplicas", desired),
    };
    let revision = format!("{}-{}", name(object), revision_hash(object));
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(object)));
    status.insert("replicas".into(), json!(desired));
    counters(
        &mut status,
        &[
            ("readyReplicas", ready),
            ("currentReplicas", desired),
            ("updatedReplicas", desired),
            ("availableReplicas", ready),
        ],
    );
    status.insert("currentRevision".into(), json!(revision));
    status.insert("updateRevision".into(), json!(revision));
    status.insert("collisionCount".into(), json!(0));
    Value::Object(status)
}

/// ReplicaSet status (apps/v1).
pub(crate) fn replicaset_status(object: &Value, progress: Progress, _now: &str) -> Value {
    let desired = desired_replicas(object);
    let ready = match progress {
        Progress::Ready => desired,
        Progress::Rolling => ready_while_rolling(object, "readyReplicas", desired),
    };
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(object)));
    status.insert("replicas".into(), json!(desired));
    counters(
        &mut status,
        &[
            ("fullyLabeledReplicas", desired),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
        ],
    );
    Value::Object(status)
}

/// DaemonSet status (apps/v1) for a member with one simulated node.
pub(crate) fn daemonset_status(object: &Value, progress: Progress, _now: &str) -> Value {
    let desired = 1;
    let ready = match progress {
        Progress::Ready => desired,
        Progress::Rolling => ready_while_rolling(object, "numberReady", desired),
    };
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(object)));
    status.insert("currentNumberScheduled".into(), json!(desired));
    status.insert("desiredNumberScheduled".into(), json!(desired));
    status.insert("numberMisscheduled".into(), json!(0));
    status.insert("numberReady".into(), json!(ready));
    counters(
        &mut status,
        &[
            ("updatedNumberScheduled", desired),
            ("numberAvailable", ready),
            ("numberUnavailable", desired - ready),
        ],
    );
    Value::Object(status)
}

/// Job status (batch/v1): running pods while rolling, then complete.
pub(crate) fn job_status(object: &Value, progress: Progress, now: &str) -> Value {
    let completions = int(object, "/spec/completions").unwrap_or(1).max(0);
    let parallelism = int(object, "/spec/parallelism").unwrap_or(1).max(0);
    let suspended = object
        .pointer("/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let start = object
        .pointer("/status/startTime")
        .cloned()
        .unwrap_or_else(|| Value::String(now.to_string()));
    let mut status = Map::new();
    if suspended {
        status.insert(
            "conditions".into(),
            json!([condition(
                object,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
                true
            )]),
        );
        return Value::Object(status);
    }
    status.insert("startTime".into(), start);
    match progress {
        Progress::Rolling => {
            let active = parallelism.min(completions.max(1));
            counters(&mut status, &[("active", active)]);
            status.insert("ready".into(), json!(0));
        }
        Progress::Ready => {
            counters(&mut status, &[("succeeded", completions)]);
            status.insert("ready".into(), json!(0));
            let done = object
                .pointer("/status/completionTime")
                .cloned()
                .unwrap_or_else(|| Value::String(now.to_string()));
            status.insert("completionTime".into(), done);
            status.insert(
                "conditions".into(),
                json!([
                    condition(
                        object,
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                        true
                    ),
                    condition(
                        object,
                        "Complete",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                        true
                    ),
                ]),
            );
        }
    }
    Value::Object(status)
}

/// Whether a Job already finished (its status never changes afterwards).
pub(crate) fn job_finished(object: &Value) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, generation: i64, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas},
            "status": status,
        })
    }

    #[test]
    fn ready_deployment_reports_every_counter() {
        let s = deployment_status(&deployment(3, 2, json!({})), Progress::Ready, "t0");
        assert_eq!(s["observedGeneration"], 2);
        for f in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            assert_eq!(s[f], 3, "{f}");
        }
        assert!(s.get("unavailableReplicas").is_none());
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
    }

    #[test]
    fn rolling_deployment_is_not_ready_and_keeps_old_ready_count() {
        let old = deployment_status(&deployment(3, 1, json!({})), Progress::Ready, "t0");
        let s = deployment_status(&deployment(5, 2, old), Progress::Rolling, "t1");
        assert_eq!(s["replicas"], 5);
        assert_eq!(s["readyReplicas"], 3);
        assert_eq!(s["unavailableReplicas"], 2);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        // A fresh rollout reports no ready replicas at all (zero is omitted).
        let fresh = deployment_status(&deployment(2, 1, json!({})), Progress::Rolling, "t0");
        assert!(fresh.get("readyReplicas").is_none());
    }

    #[test]
    fn unchanged_status_is_identical() {
        let first = deployment_status(&deployment(3, 1, json!({})), Progress::Ready, "t0");
        let again = deployment_status(&deployment(3, 1, first.clone()), Progress::Ready, "t9");
        assert_eq!(first, again);
    }

    #[test]
    fn scale_to_zero() {
        let s = deployment_status(&deployment(0, 1, json!({})), Progress::Ready, "t0");
        assert!(s.get("replicas").is_none());
        assert_eq!(s["conditions"][0]["status"], "True");
    }

    #[test]
    fn statefulset_and_replicaset() {
        let o = deployment(2, 4, json!({}));
        let s = statefulset_status(&o, Progress::Ready, "t");
        assert_eq!(s["readyReplicas"], 2);
        assert_eq!(s["observedGeneration"], 4);
        assert_eq!(s["currentRevision"], s["updateRevision"]);
        let r = replicaset_status(&o, Progress::Rolling, "t");
        assert_eq!(r["replicas"], 2);
        assert!(r.get("readyReplicas").is_none());
    }

    #[test]
    fn daemonset_has_one_node() {
        let s = daemonset_status(&json!({"metadata": {"name": "d"}}), Progress::Ready, "t");
        assert_eq!(s["desiredNumberScheduled"], 1);
        assert_eq!(s["numberReady"], 1);
    }

    #[test]
    fn job_completes() {
        let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 2, "parallelism": 1}});
        let running = job_status(&job, Progress::Rolling, "t0");
        assert_eq!(running["active"], 1);
        assert!(!job_finished(&json!({"status": running})));
        let done = job_status(&job, Progress::Ready, "t1");
        assert_eq!(done["succeeded"], 2);
        assert!(job_finished(&json!({"status": done.clone()})));
        assert_eq!(done["conditions"][1]["type"], "Complete");
    }
}
