//! Cleanup records: objects an application no longer wants (deleted application, cluster
//! dropped from the placement, component removed) on a cluster that could not be reached.
//! The deletion finishes for the user at once; what is left is a durable record on the hub, a
//! `ResourceTracker` of type `cleanup` named `<app>-<namespace>-cleanup-<cluster>` and labelled
//! `app.oam.dev/pending-cleanup-cluster: <cluster>`, carrying the acting user. A loop retries
//! every record every [`RETRY_INTERVAL`] (shorter than the cluster probe interval), so a member
//! that comes back is cleaned within one probe interval; the record goes when it is empty.
//! Detaching the cluster drops its records (`flotilla cluster detach` lists what stays).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_apis::{AppliedResource, ResourceTracker, labels, resource_tracker_name};
use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, ListParams};

use super::controller::{Context, Error, hub};
use super::member_clients::Identity;
use super::reconcile::gc::delete_tracked;
use super::reconcile::tracker;

/// How often pending cleanups are retried.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// The tracker type of a cleanup record.
pub(crate) const CLEANUP_TRACKER_TYPE: &str = "cleanup";

fn record_name(app_name: &str, app_namespace: &str, cluster: &str) -> String {
    format!(
        "{}-cleanup-{cluster}",
        resource_tracker_name(app_name, app_namespace)
    )
}

/// Adds `entries` (objects that could not be deleted) to the application's cleanup records.
pub(crate) async fn record(
    ctx: &Context,
    app_name: &str,
    app_namespace: &str,
    identity: &Identity,
    entries: &[AppliedResource],
) -> Result<(), Error> {
    let mut by_cluster: BTreeMap<&str, Vec<AppliedResource>> = BTreeMap::new();
    for e in entries {
        by_cluster.entry(&e.cluster).or_default().push(e.clone());
    }
    let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
    for (cluster, entries) in by_cluster {
        let name = record_name(app_name, app_namespace, cluster);
        let mut record = match api.get_opt(&name).await.map_err(hub)? {
            Some(r) => r,
            None => new_record(&name, app_name, app_namespace, cluster, identity),
        };
        if tracker::merge(&mut record, &entries) {
            tracker::write(ctx, &mut record).await?;
        }
        tracing::info!(%cluster, app = %app_name, count = entries.len(),
            "cluster unreachable; cleanup recorded");
    }
    Ok(())
}

fn new_record(
    name: &str,
    app_name: &str,
    app_namespace: &str,
    cluster: &str,
    identity: &Identity,
) -> ResourceTracker {
    let mut t = ResourceTracker::default();
    t.metadata.name = Some(name.to_string());
    t.metadata.labels = Some(BTreeMap::from([
        (labels::APP_NAME.to_string(), app_name.to_string()),
        (labels::APP_NAMESPACE.to_string(), app_namespace.to_string()),
        (labels::PENDING_CLEANUP.to_string(), cluster.to_string()),
    ]));
    let mut annotations = BTreeMap::new();
    if let Some(user) = &identity.user {
        annotations.insert(labels::USERNAME.to_string(), user.clone());
    }
    if !identity.groups.is_empty() {
        annotations.insert(labels::GROUP.to_string(), identity.groups.join(","));
    }
    t.metadata.annotations = Some(annotations);
    t.spec.tracker_type = CLEANUP_TRACKER_TYPE.into();
    t
}

/// Retries every cleanup record until the future is dropped.
pub(crate) async fn run(ctx: Arc<Context>) {
    let mut ticker = tokio::time::interval(RETRY_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
        let records = match api
            .list(&ListParams::default().labels(labels::PENDING_CLEANUP))
            .await
        {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list cleanup records");
                continue;
            }
        };
        futures::stream::iter(0..records.len())
            .for_each_concurrent(8, |i| {
                let (ctx, records) = (&ctx, &records);
                async move {
                    if let Err(e) = retry(ctx, records[i].clone()).await {
                        tracing::debug!(error = %e, "cleanup retry");
                    }
                }
            })
            .await;
    }
}

/// Deletes what it can of one record (stopping at the first failure: the cluster is still
/// away) and writes back or deletes the record.
async fn retry(ctx: &Context, mut record: ResourceTracker) -> Result<(), Error> {
    let labels = record.metadata.labels.clone().unwrap_or_default();
    let app_name = labels.get(labels::APP_NAME).cloned().unwrap_or_default();
    let app_namespace = labels
        .get(labels::APP_NAMESPACE)
        .cloned()
        .unwrap_or_default();
    let identity = Identity::of(record.metadata.annotations.as_ref());
    let before = record.spec.managed_resources.len();
    let mut remaining = Vec::new();
    let mut blocked = false;
    for r in std::mem::take(&mut record.spec.managed_resources) {
        if blocked
            || !delete_tracked(
                ctx,
                &identity,
                &r,
                &app_name,
                &app_namespace,
                Default::default(),
            )
            .await
        {
            blocked = true;
            remaining.push(r);
        }
    }
    let name = record.metadata.name.clone().unwrap_or_default();
    if remaining.is_empty() {
        tracing::info!(record = %name, "pending cleanup done");
        let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
        return match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(hub(e)),
        };
    }
    if remaining.len() != before {
        record.spec.managed_resources = remaining;
        tracker::write(ctx, &mut record).await?;
    }
    Ok(())
}
