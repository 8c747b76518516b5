//! The application's `ResourceTracker` on the hub: every object dispatched anywhere is
//! recorded here before it is applied, so that gc and cleanup can find it.

use std::collections::BTreeMap;

use flotilla_apis::{AppliedResource, ResourceTracker, labels, resource_tracker_name};
use kube::api::{Api, Patch, PatchParams};

use super::super::controller::{Context, Error, hub};
use super::super::dispatch;

/// Identity of a tracked object (component and trait are not part of it).
pub(crate) type ResourceKey = (String, String, String, String, String);

/// Identity of a tracked object (component and trait are not part of it).
pub(crate) fn resource_key(r: &AppliedResource) -> ResourceKey {
    (
        r.cluster.clone(),
        r.api_version.clone(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

/// Adds or updates `entries` in `tracker`; true when something changed.
pub(crate) fn merge(tracker: &mut ResourceTracker, entries: &[AppliedResource]) -> bool {
    let mut changed = false;
    for entry in entries {
        match tracker
            .spec
            .managed_resources
            .iter_mut()
            .find(|r| resource_key(r) == resource_key(entry))
        {
            Some(existing) if existing == entry => {}
            Some(existing) => {
                *existing = entry.clone();
                changed = true;
            }
            None => {
                tracker.spec.managed_resources.push(entry.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Writes the tracker (server-side apply, sorted entries).
pub(crate) async fn write(ctx: &Context, tracker: &mut ResourceTracker) -> Result<(), Error> {
    tracker.spec.managed_resources.sort();
    let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
    let name = tracker.metadata.name.clone().unwrap_or_default();
    let mut object = tracker.clone();
    object.api_version = ResourceTracker::API_VERSION.into();
    object.kind = ResourceTracker::KIND.into();
    object.metadata.resource_version = None;
    object.metadata.managed_fields = None;
    object.metadata.uid = None;
    object.metadata.creation_timestamp = None;
    api.patch(
        &name,
        &PatchParams::apply(dispatch::FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(hub)?;
    Ok(())
}

/// Reads the application's tracker (an empty one when there is none yet).
pub(crate) async fn read(
    ctx: &Context,
    app_name: &str,
    app_namespace: &str,
) -> Result<ResourceTracker, Error> {
    let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
    let name = resource_tracker_name(app_name, app_namespace);
    Ok(match api.get_opt(&name).await.map_err(hub)? {
        Some(t) => t,
        None => {
            let mut t = ResourceTracker::default();
            t.metadata.name = Some(name);
            t.metadata.labels = Some(BTreeMap::from([
                (labels::APP_NAME.to_string(), app_name.to_string()),
                (labels::APP_NAMESPACE.to_string(), app_namespace.to_string()),
            ]));
            t.spec.tracker_type = "root".into();
            t
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_resources_are_identified_without_component_or_trait() {
        let a = AppliedResource {
            cluster: "a".into(),
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: "default".into(),
            name: "web".into(),
            component: "web".into(),
            trait_type: "gateway".into(),
        };
        let mut b = a.clone();
        b.trait_type = "expose".into();
        assert_eq!(resource_key(&a), resource_key(&b));
        b.cluster = "b".into();
        assert_ne!(resource_key(&a), resource_key(&b));
    }
}
