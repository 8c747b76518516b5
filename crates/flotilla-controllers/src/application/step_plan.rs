//! One deploy step, worked out without I/O: its policies in order (overrides applied), its
//! components rendered, the clusters its topologies select and the objects each cluster gets
//! (an object labelled `app.oam.dev/cluster` goes to that cluster only). Shared by the deploy
//! sub-step and `preview` (dry-run, diff). Pure.

use std::collections::BTreeSet;

use flotilla_apis::WorkflowStep;

use super::r#override;
use super::placement::{self, ClusterInfo, Placement};
use super::render::{self, RenderedComponent, RenderedObject};
use super::revision::Snapshot;
use super::workflow;

/// A deploy step's components and where they go.
pub(crate) struct StepPlan {
    /// The components, rendered after the step's overrides.
    pub components: Vec<RenderedComponent>,
    /// Every cluster the step writes to; `true` when a cluster is there only for objects
    /// pinned to it.
    pub targets: Vec<(Placement, bool)>,
    /// How many component × cluster pairs are dispatched at once.
    pub parallelism: usize,
}

/// Plans one deploy step of `snapshot` for application `app_name` in `app_namespace`.
pub(crate) fn plan(
    snapshot: &Snapshot,
    step: &WorkflowStep,
    clusters: &[ClusterInfo],
    app_name: &str,
    app_namespace: &str,
) -> Result<StepPlan, String> {
    if step.step_type == "apply-component" {
        return plan_component(snapshot, step, clusters, app_name, app_namespace);
    }
    let props = workflow::deploy_properties(step).map_err(|e| e.to_string())?;
    let mut topologies = Vec::new();
    let mut components = snapshot.spec.components.clone();
    for name in &props.policies {
        let policy = snapshot
            .policy(name)
            .ok_or_else(|| format!("policy {name} not found"))?;
        match policy.policy_type.as_str() {
            "topology" => topologies.push(
                placement::parse(name, policy.properties.as_ref()).map_err(|e| e.to_string())?,
            ),
            "override" => {
                components = r#override::parse(name, policy.properties.as_ref())
                    .and_then(|o| r#override::apply(name, &components, &o))
                    .map_err(|e| e.to_string())?;
            }
            _ => {}
        }
    }
    let components = components
        .iter()
        .map(|c| {
            render::render_component(c, app_name, app_namespace, &snapshot.referred_objects)
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut placements = BTreeSet::new();
    if topologies.is_empty() {
        placements.insert(Placement::local());
    }
    for t in &topologies {
        placements.extend(placement::place(t, clusters).map_err(|e| e.to_string())?);
    }
    let mut pinned = placement::pinned_clusters(components.iter().flat_map(|c| &c.objects));
    let mut targets = Vec::new();
    for placement in placements {
        pinned.remove(&placement.cluster);
        targets.push((placement, false));
    }
    targets.extend(pinned.into_iter().map(|cluster| {
        let placement = Placement {
            cluster,
            namespace: None,
        };
        (placement, true)
    }));
    Ok(StepPlan {
        components,
        targets,
        parallelism: props.parallelism.max(1),
    })
}

/// An `apply-component` step: one component, to one cluster (`local` unless named), in the
/// namespace asked for.
fn plan_component(
    snapshot: &Snapshot,
    step: &WorkflowStep,
    clusters: &[ClusterInfo],
    app_name: &str,
    app_namespace: &str,
) -> Result<StepPlan, String> {
    let props = workflow::apply_component_properties(step).map_err(|e| e.to_string())?;
    let component = snapshot
        .spec
        .components
        .iter()
        .find(|c| c.name == props.component)
        .ok_or_else(|| format!("component {} not found", props.component))?;
    let rendered = render::render_component(
        component,
        app_name,
        app_namespace,
        &snapshot.referred_objects,
    )
    .map_err(|e| e.to_string())?;
    let mut placement = Placement::local();
    if !props.cluster.is_empty() && props.cluster != placement.cluster {
        if !clusters.iter().any(|c| c.name == props.cluster) {
            return Err(format!("cluster {} not found", props.cluster));
        }
        placement.cluster = props.cluster;
    }
    placement.namespace = (!props.namespace.is_empty()).then_some(props.namespace);
    Ok(StepPlan {
        components: vec![rendered],
        targets: vec![(placement, false)],
        parallelism: 1,
    })
}

/// The objects of `component` that go to `cluster`: those pinned there, and unless
/// `pinned_only` the unpinned ones. Objects a trait rendered follow the component's workload
/// (its first object).
pub(crate) fn objects_for<'a>(
    component: &'a RenderedComponent,
    cluster: &'a str,
    pinned_only: bool,
) -> impl Iterator<Item = &'a RenderedObject> {
    let workload_pin = component
        .objects
        .first()
        .and_then(|o| placement::pin(&o.object));
    component.objects.iter().filter(move |o| {
        let pin = placement::pin(&o.object).or(workload_pin.filter(|_| o.trait_type.is_some()));
        match pin {
            Some(pin) => pin == cluster,
            None => !pinned_only,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pinned_objects_go_to_their_cluster_only() {
        let spec = serde_json::from_value(json!({
            "components": [{"name": "c", "type": "k8s-objects", "properties": {"objects": [
                {"apiVersion": "v1", "kind": "ConfigMap"},
                {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "p", "labels": {"app.oam.dev/cluster": "b"}}}]}}],
            "policies": [{"name": "t", "type": "topology", "properties": {"clusters": ["a"]}}],
        }))
        .unwrap();
        let snapshot = Snapshot {
            spec,
            ..Default::default()
        };
        let step = workflow::default_steps(&snapshot.spec.policies).remove(0);
        let clusters: Vec<ClusterInfo> = ["a", "b"]
            .iter()
            .map(|n| ClusterInfo {
                name: n.to_string(),
                labels: Default::default(),
            })
            .collect();
        let p = plan(&snapshot, &step, &clusters, "app", "default").unwrap();
        let names = |cluster: &str, only: bool| -> Vec<String> {
            objects_for(&p.components[0], cluster, only)
                .map(|o| o.object["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(p.targets.len(), 2);
        assert_eq!(
            (p.targets[0].0.cluster.as_str(), p.targets[0].1),
            ("a", false)
        );
        assert_eq!(
            (p.targets[1].0.cluster.as_str(), p.targets[1].1),
            ("b", true)
        );
        assert_eq!(names("a", false), ["c"]);
        assert_eq!(names("b", true), ["p"]);
    }
}
