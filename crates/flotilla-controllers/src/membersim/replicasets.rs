//! What the Deployment controller decides, as pure functions: the pod-template hash, the
//! ReplicaSet for a template, revisions, how far to scale the new and the old ReplicaSets in a
//! rolling update (or a recreate), which old ones to prune, and the Deployment's status
//! derived from its ReplicaSets.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::slim::{SimDeployment, SimReplicaSet, annotation};

/// Label a ReplicaSet (and its Pods) carries: the hash of the pod template.
pub(crate) const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotation: the revision of a ReplicaSet (and of its Deployment: the newest one's).
pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation: earlier revisions a ReplicaSet served under (after a rollback to it).
pub(crate) const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Annotation: the Deployment's `spec.replicas` when the ReplicaSet was last scaled.
pub(crate) const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation: `spec.replicas` plus max surge.
pub(crate) const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations that are not copied onto its ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Writes `v` with object keys sorted, so equal templates hash equally.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The `pod-template-hash` of a pod template (JSON text; its own hash label is ignored):
/// FNV-32a of the canonical JSON, its decimal digits spelled in the alphabet Kubernetes
/// uses for generated names.
pub(crate) fn template_hash(template: &str) -> String {
    let mut v: Value = serde_json::from_str(template).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let mut text = String::new();
    canonical(&v, &mut text);
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// `spec.replicas` of a Deployment (default 1).
pub(crate) fn desired(d: &SimDeployment) -> i64 {
    d.spec.replicas.unwrap_or(1).max(0)
}

/// Resolves an int-or-percent against `total`, rounding up or down.
fn int_or_percent(v: Option<&Value>, default: &str, total: i64, round_up: bool) -> i64 {
    let owned = Value::String(default.into());
    match v.unwrap_or(&owned) {
        Value::Number(n) => n.as_i64().unwrap_or(0).max(0),
        Value::String(s) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            let scaled = total * p;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        _ => 0,
    }
}

/// `(maxSurge, maxUnavailable)` resolved for the Deployment's replica count.
pub(crate) fn surge_and_unavailable(d: &SimDeployment) -> (i64, i64) {
    let total = desired(d);
    let ru = d.spec.strategy.rolling_update.clone().unwrap_or_default();
    let surge = int_or_percent(ru.max_surge.as_ref(), "25%", total, true);
    let mut unavailable = int_or_percent(ru.max_unavailable.as_ref(), "25%", total, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(total))
}

/// Whether the Deployment replaces its pods all at once.
pub(crate) fn recreates(d: &SimDeployment) -> bool {
    d.spec.strategy.type_.as_deref() == Some("Recreate")
}

/// The Deployment's annotations that its ReplicaSets carry too.
pub(crate) fn copied_annotations(d: &SimDeployment) -> Map<String, Value> {
    d.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect()
}

/// The new ReplicaSet for the Deployment's current template.
pub(crate) fn new_replicaset(
    d: &SimDeployment,
    hash: &str,
    revision: i64,
    replicas: i64,
) -> Result<Value, serde_json::Error> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let mut template: Value = serde_json::from_str(&d.spec.template)?;
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
    let mut selector = d.spec.selector.clone();
    if !selector.is_object() {
        selector = json!({});
    }
    if !selector["matchLabels"].is_object() {
        selector["matchLabels"] = json!({});
    }
    selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
    let mut annotations = copied_annotations(d);
    annotations.extend(scale_annotations(d, replicas_annotations(d)));
    annotations.insert(REVISION.into(), json!(revision.to_string()));
    let mut spec = json!({"replicas": replicas, "selector": selector, "template": template});
    if let Some(m) = d.spec.min_ready_seconds {
        spec["minReadySeconds"] = json!(m);
    }
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{hash}"),
            "namespace": d.metadata.namespace,
            "labels": template["metadata"]["labels"],
            "annotations": annotations,
            "ownerReferences": [owner_reference(d)],
        },
        "spec": spec,
    }))
}

fn replicas_annotations(d: &SimDeployment) -> (i64, i64) {
    let (surge, _) = surge_and_unavailable(d);
    (desired(d), desired(d) + surge)
}

fn scale_annotations(_d: &SimDeployment, (want, max): (i64, i64)) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(DESIRED_REPLICAS.into(), json!(want.to_string()));
    m.insert(MAX_REPLICAS.into(), json!(max.to_string()));
    m
}

/// The annotations a ReplicaSet of `d` should carry now (copied ones and the scale ones), with
/// `null` for copied ones the Deployment dropped: a merge patch, or `None` when up to date.
pub(crate) fn annotations_patch(
    d: &SimDeployment,
    rs: &SimReplicaSet,
    is_new: bool,
) -> Option<Value> {
    let mut want = copied_annotations(d);
    if is_new {
        want.extend(scale_annotations(d, replicas_annotations(d)));
    }
    let mut patch = Map::new();
    for (k, v) in &want {
        if annotation(&rs.metadata, k) != v.as_str() {
            patch.insert(k.clone(), v.clone());
        }
    }
    for k in rs.metadata.annotations.iter().flatten().map(|(k, _)| k) {
        let managed = NOT_COPIED.contains(&k.as_str());
        if !managed && !want.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    (!patch.is_empty()).then(|| json!({"metadata": {"annotations": patch}}))
}

/// The controller owner reference to a Deployment.
pub(crate) fn owner_reference(d: &SimDeployment) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": d.metadata.name,
        "uid": d.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The highest revision among `sets`.
pub(crate) fn max_revision(sets: &[&SimReplicaSet]) -> i64 {
    sets.iter().map(|rs| rs.revision()).max().unwrap_or(0)
}

/// Replica counts to set: `(name, replicas)` for each ReplicaSet whose `spec.replicas`
/// should change now, following the rolling-update rules (or recreate).
pub(crate) fn scaling(
    d: &SimDeployment,
    new: &SimReplicaSet,
    old: &[&SimReplicaSet],
) -> Vec<(String, i64)> {
    let want = desired(d);
    let name = |rs: &SimReplicaSet| rs.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    if recreates(d) {
        let old_active: Vec<_> = old.iter().filter(|rs| rs.desired() > 0).collect();
        for rs in &old_active {
            out.push((name(rs), 0));
        }
        let old_pods: i64 = old.iter().map(|rs| rs.status.replicas).sum();
        if old_active.is_empty() && old_pods == 0 && new.desired() != want {
            out.push((name(new), want));
        }
        return out;
    }
    let (surge, max_unavailable) = surge_and_unavailable(d);
    let all_spec: i64 = new.desired() + old.iter().map(|rs| rs.desired()).sum::<i64>();
    // Scale the new ReplicaSet up (within the surge) or down to the desired count.
    let new_target = if new.desired() >= want {
        want
    } else {
        let room = (want + surge - all_spec).max(0);
        (new.desired() + room).min(want)
    };
    if new_target != new.desired() {
        out.push((name(new), new_target));
    }
    // Scale old ones down while enough pods stay available.
    let min_available = want - max_unavailable;
    let new_unavailable = (new.desired() - new.status.available_replicas).max(0);
    let mut budget = (all_spec - min_available - new_unavailable).max(0);
    let mut old_sorted: Vec<&&SimReplicaSet> = old.iter().filter(|rs| rs.desired() > 0).collect();
    old_sorted.sort_by_key(|rs| rs.revision());
    // First the pods that are not available anyway.
    let mut targets: Vec<i64> = old_sorted.iter().map(|rs| rs.desired()).collect();
    for (rs, target) in old_sorted.iter().zip(targets.iter_mut()) {
        let unhealthy = (rs.desired() - rs.status.available_replicas).max(0);
        let cut = unhealthy.min(budget).min(*target);
        *target -= cut;
        budget -= cut;
    }
    // Then available ones, as long as the minimum stays available.
    let available: i64 = new.status.available_replicas
        + old_sorted
            .iter()
            .map(|rs| rs.status.available_replicas)
            .sum::<i64>();
    let mut spare = (available - min_available).max(0).min(budget);
    for target in targets.iter_mut() {
        let cut = (*target).min(spare);
        *target -= cut;
        spare -= cut;
    }
    for (rs, target) in old_sorted.iter().zip(targets) {
        if target != rs.desired() {
            out.push((name(rs), target));
        }
    }
    out
}

/// Old ReplicaSets beyond `revisionHistoryLimit` (scaled to zero and without pods), oldest
/// first: the ones to delete.
pub(crate) fn prunable(d: &SimDeployment, old: &[&SimReplicaSet]) -> Vec<String> {
    let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let mut idle: Vec<&&SimReplicaSet> = old
        .iter()
        .filter(|rs| rs.desired() == 0 && rs.status.replicas == 0)
        .collect();
    if idle.len() <= limit {
        return Vec::new();
    }
    idle.sort_by_key(|rs| rs.revision());
    idle[..idle.len() - limit]
        .iter()
        .filter_map(|rs| rs.metadata.name.clone())
        .collect()
}

/// Whether the rollout is over: the new ReplicaSet has every replica available and the old
/// ones are at zero without Pods.
pub(crate) fn settled(
    d: &SimDeployment,
    new: Option<&SimReplicaSet>,
    old: &[&SimReplicaSet],
) -> bool {
    let want = desired(d);
    new.is_some_and(|rs| rs.desired() == want && rs.status.available_replicas == want)
        && old
            .iter()
            .all(|rs| rs.desired() == 0 && rs.status.replicas == 0)
}

/// The Deployment's status from its ReplicaSets (`new` is the one for the current template).
pub(crate) fn deployment_status(
    d: &SimDeployment,
    new: Option<&SimReplicaSet>,
    all: &[&SimReplicaSet],
    now: &str,
) -> Value {
    let want = desired(d);
    let sum = |f: fn(&SimReplicaSet) -> i64| all.iter().map(|rs| f(rs)).sum::<i64>();
    let replicas = sum(|rs| rs.status.replicas);
    let ready = sum(|rs| rs.status.ready_replicas);
    let available = sum(|rs| rs.status.available_replicas);
    let updated = new.map_or(0, |rs| rs.status.replicas);
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        json!(d.metadata.generation.unwrap_or(1)),
    );
    for (field, value) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        (
            "unavailableReplicas",
            (replicas.max(want) - available).max(0),
        ),
    ] {
        if value != 0 {
            status.insert(field.into(), json!(value));
        }
    }
    let (_, max_unavailable) = surge_and_unavailable(d);
    let object = json!({"status": d.status});
    let condition = |type_: &str, st: &str, reason: &str, message: &str| {
        super::rollout::condition(&object, type_, st, reason, message, now, true)
    };
    let available_condition = if available >= want - max_unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let rs_name = new
        .and_then(|rs| rs.metadata.name.clone())
        .unwrap_or_default();
    let complete = updated == want && replicas == want && available == want;
    let progressing = if complete && new.is_some() {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else if new.is_some() {
        condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    } else {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            "Created new replica set.",
        )
    };
    status.insert(
        "conditions".into(),
        json!([available_condition, progressing]),
    );
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, strategy: Value) -> SimDeployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 2,
                         "annotations": {"team": "a", REVISION: "3"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
                "strategy": strategy,
            },
        }))
        .unwrap()
    }

    fn rs(name: &str, revision: i64, spec: i64, available: i64) -> SimReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {REVISION: revision.to_string()}},
            "spec": {"replicas": spec},
            "status": {"replicas": spec, "readyReplicas": available,
                       "availableReplicas": available},
        }))
        .unwrap()
    }

    #[test]
    fn hash_ignores_key_order_and_its_own_label() {
        let a = template_hash(r#"{"metadata":{"labels":{"app":"web","x":"1"}}}"#);
        let b = template_hash(
            r#"{"metadata":{"labels":{"x":"1","pod-template-hash":"zz","app":"web"}}}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, template_hash(r#"{"metadata":{"labels":{"app":"db"}}}"#));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn new_replicaset_is_labelled_annotated_and_owned() {
        let d = deployment(4, json!({}));
        let hash = template_hash(&d.spec.template);
        let rs = new_replicaset(&d, &hash, 4, 4).unwrap();
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
        assert_eq!(rs["metadata"]["labels"][POD_TEMPLATE_HASH], hash);
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH],
            hash
        );
        let a = &rs["metadata"]["annotations"];
        assert_eq!(a[REVISION], "4");
        assert_eq!(a[DESIRED_REPLICAS], "4");
        assert_eq!(a[MAX_REPLICAS], "5");
        assert_eq!(a["team"], "a");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "u1");
    }

    #[test]
    fn rolling_update_surges_then_scales_old_down() {
        let d = deployment(4, json!({}));
        // Fresh rollout: new at 0, old fully available at 4; surge 1, unavailable 1.
        let new = rs("new", 2, 0, 0);
        let old = rs("old", 1, 4, 4);
        let plan = scaling(&d, &new, &[&old]);
        assert!(plan.contains(&("new".into(), 1)), "{plan:?}");
        assert!(plan.contains(&("old".into(), 3)), "{plan:?}");
        // New ones available: old goes to zero.
        let new = rs("new", 2, 4, 4);
        let old = rs("old", 1, 1, 1);
        assert_eq!(scaling(&d, &new, &[&old]), vec![("old".into(), 0)]);
        // Nothing left to do.
        let old = rs("old", 1, 0, 0);
        assert!(scaling(&d, &new, &[&old]).is_empty());
    }

    #[test]
    fn stuck_new_pods_keep_old_ones() {
        let d = deployment(2, json!({}));
        // 2 replicas: surge 1, unavailable 0. New pod never becomes available.
        let new = rs("new", 2, 1, 0);
        let old = rs("old", 1, 2, 2);
        assert!(scaling(&d, &new, &[&old]).is_empty());
    }

    #[test]
    fn recreate_scales_old_to_zero_first() {
        let d = deployment(3, json!({"type": "Recreate"}));
        let new = rs("new", 2, 0, 0);
        let old = rs("old", 1, 3, 3);
        assert_eq!(scaling(&d, &new, &[&old]), vec![("old".into(), 0)]);
        let old = rs("old", 1, 0, 0);
        assert_eq!(scaling(&d, &new, &[&old]), vec![("new".into(), 3)]);
    }

    #[test]
    fn history_is_pruned_beyond_the_limit() {
        let mut d = deployment(1, json!({}));
        d.spec.revision_history_limit = Some(1);
        let a = rs("a", 1, 0, 0);
        let b = rs("b", 2, 0, 0);
        assert_eq!(prunable(&d, &[&b, &a]), vec!["a".to_string()]);
    }

    #[test]
    fn status_counts_pods_of_every_replicaset() {
        let d = deployment(4, json!({}));
        let new = rs("web-new", 2, 2, 1);
        let old = rs("web-old", 1, 3, 3);
        let s = deployment_status(&d, Some(&new), &[&new, &old], "t");
        assert_eq!(s["replicas"], 5);
        assert_eq!(s["updatedReplicas"], 2);
        assert_eq!(s["availableReplicas"], 4);
        assert_eq!(s["unavailableReplicas"], 1);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        let done = rs("web-new", 2, 4, 4);
        let s = deployment_status(&d, Some(&done), &[&done], "t");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert!(s.get("unavailableReplicas").is_none());
    }
}
