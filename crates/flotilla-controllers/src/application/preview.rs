//! What an application would dispatch, worked out without writing anything (`flotilla
//! dry-run`, `flotilla diff`): the same snapshot (read as the caller) and, for every deploy
//! step of its workflow, the same override → render → place → prepare as the controller.

use std::collections::BTreeMap;

use flotilla_apis::Application;
use serde_json::Value;

use super::dispatch::{self, KindInfo, Target};
use super::placement::ClusterInfo;
use super::reconcile::gather::{GatherError, gather};
use super::reconcile::workflow::deploy_steps;
use super::step_plan;
use super::workflow;

/// Why a preview could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The application does not render (the message the controller would show).
    #[error("{0}")]
    Spec(String),
    /// The hub failed.
    #[error("{0}")]
    Hub(String),
}

/// The prepared objects each cluster would get (cluster → objects in dispatch order, each
/// once). `clusters` are the registered clusters and their labels.
pub async fn preview(
    app: &Application,
    hub: &kube::Client,
    clusters: &[ClusterInfo],
) -> Result<BTreeMap<String, Vec<Value>>, Error> {
    let snapshot = match gather(app, hub, hub).await {
        Ok(s) => s,
        Err(GatherError::Spec(message)) => return Err(Error::Spec(message)),
        Err(GatherError::Hub(e)) => return Err(Error::Hub(e.to_string())),
    };
    let steps = workflow::effective_steps(
        &snapshot.spec,
        snapshot.workflow.as_ref().map(|w| w.steps.as_slice()),
        &snapshot.spec.policies,
    )
    .map_err(|e| Error::Spec(e.to_string()))?;
    let app_name = app.metadata.name.clone().unwrap_or_default();
    let app_namespace = app.metadata.namespace.clone().unwrap_or_default();
    let revision = app
        .status
        .as_ref()
        .and_then(|s| s.latest_revision.as_ref())
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for step in deploy_steps(&steps) {
        let plan = step_plan::plan(&snapshot, step, clusters, &app_name, &app_namespace)
            .map_err(Error::Spec)?;
        for (placement, pinned_only) in &plan.targets {
            let objects = out.entry(placement.cluster.clone()).or_default();
            for component in &plan.components {
                let target = Target {
                    app_name: &app_name,
                    app_namespace: &app_namespace,
                    component: &component.name,
                    cluster: &placement.cluster,
                    revision: &revision,
                    namespace: placement.namespace.as_deref(),
                };
                for o in step_plan::objects_for(component, &placement.cluster, *pinned_only) {
                    let kind = KindInfo::of(
                        o.object["apiVersion"].as_str().unwrap_or_default(),
                        o.object["kind"].as_str().unwrap_or_default(),
                    );
                    let prepared = dispatch::prepare(&o.object, &target, kind.namespaced);
                    // A later step's copy of the same object wins, as on the cluster.
                    objects.retain(|x| identity(x) != identity(&prepared));
                    objects.push(prepared);
                }
            }
        }
    }
    Ok(out)
}

/// `apiVersion`, kind, namespace and name of an object.
pub fn identity(o: &Value) -> (String, String, String, String) {
    let text = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (
        text("/apiVersion"),
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}
