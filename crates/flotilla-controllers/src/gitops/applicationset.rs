//! The ApplicationSet controller: generators → parameter sets → one Argo CD Application per
//! set (owned by the ApplicationSet, written as the user who last changed it), Applications no
//! longer generated deleted. Cluster joins and label changes re-run every ApplicationSet.

use crate::error_backoff::ErrorBackoff;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use flotilla_apis::{
    ApplicationSet, ApplicationSetStatus, ArgoApplication, Condition, ManagedCluster,
};
use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::generators;
use crate::application::member_clients::{Identity, impersonating};

/// The field manager of generated Applications.
pub(crate) const FIELD_MANAGER: &str = "applicationset-controller";

/// Errors that make a reconcile retry with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The hub API failed.
    #[error("hub API: {0}")]
    Hub(#[source] Box<kube::Error>),
}

fn hub(e: kube::Error) -> Error {
    Error::Hub(Box::new(e))
}

struct Context {
    hub_client: kube::Client,
}

/// The Application `params` renders to, owned by `set`.
fn application(set: &ApplicationSet, params: &generators::Params) -> Result<Value, String> {
    let rendered = generators::render(&set.spec.template, params);
    let name = rendered["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() || name.contains("{{") {
        return Err(format!("template metadata.name renders to {name:?}"));
    }
    let mut metadata = json!({
        "name": name,
        "namespace": set.metadata.namespace,
        "ownerReferences": [{
            "apiVersion": ApplicationSet::API_VERSION,
            "kind": ApplicationSet::KIND,
            "name": set.metadata.name,
            "uid": set.metadata.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    for key in ["labels", "annotations", "finalizers"] {
        if let Some(v) = rendered["metadata"].get(key) {
            metadata[key] = v.clone();
        }
    }
    Ok(json!({
        "apiVersion": ArgoApplication::API_VERSION,
        "kind": ArgoApplication::KIND,
        "metadata": metadata,
        "spec": rendered.get("spec").cloned().unwrap_or(json!({})),
    }))
}

fn owned_by(app: &ArgoApplication, set: &ApplicationSet) -> bool {
    app.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == set.metadata.uid.as_ref())
}

async fn generate(ctx: &Context, set: &ApplicationSet) -> Result<Vec<Value>, String> {
    let joined = Api::<ManagedCluster>::all(ctx.hub_client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing clusters: {e}"))?
        .items;
    let params = generators::generate(&set.spec.generators, &joined)?;
    let apps = params
        .iter()
        .map(|p| application(set, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    for app in &apps {
        let name = app["metadata"]["name"].as_str().unwrap_or_default();
        if !names.insert(name.to_string()) {
            return Err(format!("two generated Applications are named {name:?}"));
        }
    }
    Ok(apps)
}

/// Creates or updates the generated Applications and deletes the ones no longer generated.
async fn converge(
    client: &kube::Client,
    set: &ApplicationSet,
    wanted: &[Value],
) -> Result<Vec<String>, String> {
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ArgoApplication> = Api::namespaced(client.clone(), &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for app in wanted {
        let name = app["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.patch(&name, &params, &Patch::Apply(app))
            .await
            .map_err(|e| {
                format!(
                    "Application {name}: {}",
                    crate::cluster::describe_kube_error(&e)
                )
            })?;
        names.push(name);
    }
    let existing = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing Applications: {e}"))?;
    for app in existing.items.iter().filter(|a| owned_by(a, set)) {
        let name = app.metadata.name.clone().unwrap_or_default();
        if !names.contains(&name) {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(format!("deleting Application {name}: {e}")),
            }
        }
    }
    Ok(names)
}

async fn reconcile(set: Arc<ApplicationSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let identity = Identity::of(set.metadata.annotations.as_ref());
    let client = impersonating(ctx.hub_client.clone(), &identity);
    let outcome = match generate(&ctx, &set).await {
        Ok(apps) => converge(&client, &set, &apps).await,
        Err(e) => Err(e),
    };
    let previous = set.status.clone().unwrap_or_default();
    let (condition, resources) = match outcome {
        Ok(names) => (
            (
                "ResourcesUpToDate",
                "True",
                "ApplicationSetUpToDate",
                "All applications have been generated successfully".to_string(),
            ),
            names,
        ),
        Err(message) => (
            (
                "ErrorOccurred",
                "True",
                "ApplicationGenerationError",
                message,
            ),
            previous.resources.clone(),
        ),
    };
    let (kind, state, reason, message) = condition;
    let same = previous.conditions.first().is_some_and(|c| {
        c.condition_type == kind && c.message.as_deref() == Some(message.as_str())
    }) && previous.resources == resources;
    if !same {
        let status = ApplicationSetStatus {
            conditions: vec![Condition {
                condition_type: kind.into(),
                status: state.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(
                    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            }],
            resources,
        };
        let api: Api<ApplicationSet> = Api::namespaced(
            ctx.hub_client.clone(),
            set.metadata.namespace.as_deref().unwrap_or_default(),
        );
        api.patch_status(
            set.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .map_err(hub)?;
    }
    Ok(Action::requeue(Duration::from_secs(180)))
}

/// Runs the ApplicationSet controller against the hub.
pub(crate) async fn run(hub_client: kube::Client) {
    let ctx = Arc::new(Context {
        hub_client: hub_client.clone(),
    });
    let sets: Api<ApplicationSet> = Api::all(hub_client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let backoff = ErrorBackoff::shared();
    let store = controller.store();
    controller
        .owns(
            Api::<ArgoApplication>::all(hub_client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<ManagedCluster>::all(hub_client),
            watcher::Config::default(),
            move |_: ManagedCluster| {
                store
                    .state()
                    .iter()
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile, backoff.policy("applicationset"), ctx)
        .for_each(|result| {
            backoff.observe(&result);
            async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "applicationset reconcile");
                }
            }
        })
        .await;
}
