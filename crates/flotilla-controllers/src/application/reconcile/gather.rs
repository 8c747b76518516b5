//! Gathering the snapshot: the spec plus the standalone Workflow, the standalone Policies the
//! deploy steps name, and the hub objects `ref-objects` copies (read as the application's user).

use std::collections::BTreeSet;

use flotilla_apis::{Application, ApplicationWorkflow, Policy, Workflow, WorkflowStep};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::super::controller::{Error, hub};
use super::super::dispatch;
use super::super::render;
use super::super::revision::{self, Snapshot};
use super::super::workflow;

/// What went wrong gathering the snapshot.
pub(crate) enum GatherError {
    /// A user error: shown on the application.
    Spec(String),
    /// The hub failed.
    Hub(Error),
}

impl From<kube::Error> for GatherError {
    fn from(e: kube::Error) -> Self {
        GatherError::Hub(hub(e))
    }
}

fn collect_step_policies(steps: &[WorkflowStep], out: &mut BTreeSet<String>) {
    for step in steps {
        if step.step_type == "deploy"
            && let Ok(props) = workflow::deploy_properties(step)
        {
            out.extend(props.policies);
        }
        collect_step_policies(&step.sub_steps, out);
    }
}

/// Reads everything the application refers to into a fresh snapshot.
pub(crate) async fn gather(
    app: &Application,
    hub_client: &kube::Client,
    hub_as_user: &kube::Client,
) -> Result<Snapshot, GatherError> {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let mut spec = app.spec.clone();
    revision::name_anonymous_policies(&mut spec.policies);
    let mut workflow_ref = None;
    if let Some(name) = spec.workflow.as_ref().and_then(|w| w.reference.clone()) {
        let api: Api<Workflow> = Api::namespaced(hub_client.clone(), &namespace);
        if let Some(w) = api.get_opt(&name).await? {
            workflow_ref = Some(ApplicationWorkflow {
                reference: None,
                steps: w.steps,
                mode: w.mode,
            });
        }
    }
    let steps = workflow::effective_steps(
        &spec,
        workflow_ref.as_ref().map(|w| w.steps.as_slice()),
        &spec.policies,
    )
    .map_err(|e| GatherError::Spec(e.to_string()))?;
    let mut names = BTreeSet::new();
    collect_step_policies(&steps, &mut names);
    let mut policies = Vec::new();
    let policy_api: Api<Policy> = Api::namespaced(hub_client.clone(), &namespace);
    for name in names {
        if spec.policies.iter().any(|p| p.name == name) {
            continue;
        }
        if let Some(p) = policy_api.get_opt(&name).await? {
            policies.push(p.to_app_policy());
        }
    }
    let referred_objects = referred_objects(app, hub_as_user, &namespace).await?;
    Ok(Snapshot {
        spec,
        policies,
        workflow: workflow_ref,
        referred_objects,
    })
}

/// Stripped copies of the hub objects the `ref-objects` components name.
async fn referred_objects(
    app: &Application,
    hub_as_user: &kube::Client,
    namespace: &str,
) -> Result<Vec<Value>, GatherError> {
    let queries = render::ref_object_queries(&app.spec.components, namespace)
        .map_err(|e| GatherError::Spec(e.to_string()))?;
    let mut referred = Vec::new();
    for q in queries {
        let info = dispatch::KindInfo {
            plural: q.plural.clone(),
            namespaced: render::is_namespaced(&q.api_version, &q.kind),
        };
        let api = dispatch::api_for(hub_as_user, &q.api_version, &q.kind, &info, &q.namespace);
        let found: Result<Vec<Value>, kube::Error> = if let Some(name) = &q.name {
            api.get_opt(name)
                .await
                .map(|o| o.into_iter().map(to_value).collect())
        } else {
            let selector = q
                .label_selector
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            api.list(&ListParams::default().labels(&selector))
                .await
                .map(|list| list.items.into_iter().map(to_value).collect())
        };
        let found = match found {
            Ok(found) => found,
            Err(kube::Error::Api(s)) => {
                return Err(GatherError::Spec(format!("ref-objects: {}", s.message)));
            }
            Err(e) => return Err(e.into()),
        };
        referred.extend(found.iter().map(|o| {
            let mut copy = render::strip_for_copy(o);
            // kube's DynamicObject may drop apiVersion/kind on lists; restore them.
            copy["apiVersion"] = json!(q.api_version);
            copy["kind"] = json!(q.kind);
            copy
        }));
    }
    referred.sort_by_key(|o| o.to_string());
    referred.dedup();
    Ok(referred)
}

fn to_value<T: serde::Serialize>(o: T) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}
