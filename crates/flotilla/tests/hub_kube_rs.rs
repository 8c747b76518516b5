//! kube-rs against the hub: discovery (legacy and aggregated), paginated lists, a
//! watcher/reflector that sees every change, a metadata watcher, server-side apply with
//! `Patch::Apply`, and a `Controller` using kube-runtime's finalizer helper.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use support::{Server, temp_dir};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"suite": "kube-rs"}},
        "data": {"v": value},
    }))
    .unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_clients_work_against_the_hub() {
    let dir = temp_dir("hub-kube-rs");
    let hub = Server::hub(&dir);
    let client = hub.kube_client().await;

    // Discovery, both ways.
    let legacy = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let aggregated = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    for d in [&legacy, &aggregated] {
        let groups: Vec<String> = d.groups().map(|g| g.name().to_string()).collect();
        assert!(
            groups.contains(&"apps".to_string()) && groups.contains(&"".to_string()),
            "{groups:?}"
        );
        let (ar, caps) = d
            .groups()
            .find(|g| g.name() == "apps")
            .unwrap()
            .recommended_resources()
            .into_iter()
            .find(|(ar, _)| ar.kind == "Deployment")
            .unwrap();
        assert_eq!(ar.plural, "deployments");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        assert!(
            caps.subresources.iter().any(|(s, _)| s.plural == "scale"),
            "{caps:?}"
        );
    }
    let autoscaling = aggregated.get("autoscaling").unwrap();
    assert_eq!(autoscaling.preferred_version_or_latest(), "v2");

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A reflector started before the writes sees every change.
    let (reader, writer) = reflector::store();
    let seen_events = Arc::new(AtomicUsize::new(0));
    let counter = seen_events.clone();
    let reflect = tokio::spawn(
        reflector(
            writer,
            watcher(
                api.clone(),
                watcher::Config::default().labels("suite=kube-rs"),
            ),
        )
        .applied_objects()
        .for_each(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            futures::future::ready(())
        }),
    );
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "default");
    let meta_seen = Arc::new(AtomicUsize::new(0));
    let meta_counter = meta_seen.clone();
    let meta = tokio::spawn(
        watcher(meta_api, watcher::Config::default().labels("suite=kube-rs"))
            .applied_objects()
            .for_each(move |o| {
                if o.is_ok() {
                    meta_counter.fetch_add(1, Ordering::SeqCst);
                }
                futures::future::ready(())
            }),
    );
    reader.wait_until_ready().await.unwrap();

    for i in 0..25 {
        api.create(&PostParams::default(), &cm(&format!("page-{i:02}"), "0"))
            .await
            .unwrap();
    }
    api.patch(
        "page-03",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "3"}})),
    )
    .await
    .unwrap();
    api.delete("page-07", &DeleteParams::default())
        .await
        .unwrap();

    eventually("the reflector to hold 24 objects with the patch", || {
        let reader = reader.clone();
        async move {
            reader.state().len() == 24
                && reader.state().iter().any(|c| {
                    c.metadata.name.as_deref() == Some("page-03")
                        && c.data.as_ref().unwrap()["v"] == "3"
                })
        }
    })
    .await;
    assert!(seen_events.load(Ordering::SeqCst) >= 26);
    eventually("the metadata watcher to see the objects", || {
        let n = meta_seen.load(Ordering::SeqCst);
        async move { n >= 25 }
    })
    .await;

    // Paginated lists.
    let mut names = Vec::new();
    let mut params = ListParams::default().labels("suite=kube-rs").limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        assert!(page.metadata.resource_version.is_some());
        pages += 1;
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 24);
    assert!(!names.contains(&"page-07".to_string()));

    // Server-side apply with Patch::Apply.
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}});
    let out = api
        .patch(
            "applied",
            &PatchParams::apply("kube-rs-test"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "v");
    let managers: Vec<String> = out
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"kube-rs-test".to_string()),
        "{managers:?}"
    );

    // A Controller with the finalizer helper: Apply adds the finalizer and marks the
    // object; deleting it runs Cleanup before it goes.
    let cleaned = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new((api.clone(), cleaned.clone()));
    let controller = tokio::spawn(
        Controller::new(
            api.clone(),
            watcher::Config::default().labels("role=finalized"),
        )
        .run(
            |obj: Arc<ConfigMap>, ctx: Arc<(Api<ConfigMap>, Arc<AtomicUsize>)>| async move {
                let (api, cleaned) = (&ctx.0, &ctx.1);
                finalizer(api, "example.com/cleanup", obj, |event| async move {
                    match event {
                        Finalizer::Apply(o) => {
                            let name = o.metadata.name.clone().unwrap();
                            api.patch(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(
                                    json!({"metadata": {"annotations": {"reconciled": "yes"}}}),
                                ),
                            )
                            .await?;
                            Ok(Action::await_change())
                        }
                        Finalizer::Cleanup(_) => {
                            cleaned.fetch_add(1, Ordering::SeqCst);
                            Ok(Action::await_change())
                        }
                    }
                })
                .await
            },
            |_obj, _err: &kube::runtime::finalizer::Error<kube::Error>, _ctx| {
                Action::requeue(Duration::from_millis(200))
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(())),
    );
    let mut target = cm("finalized", "x");
    target
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("role".into(), "finalized".into());
    api.create(&PostParams::default(), &target).await.unwrap();
    eventually(
        "the controller to add its finalizer and mark the object",
        || {
            let api = api.clone();
            async move {
                let o = api.get("finalized").await.unwrap();
                o.metadata
                    .finalizers
                    .unwrap_or_default()
                    .contains(&"example.com/cleanup".to_string())
                    && o.metadata
                        .annotations
                        .unwrap_or_default()
                        .get("reconciled")
                        .map(String::as_str)
                        == Some("yes")
            }
        },
    )
    .await;
    api.delete("finalized", &DeleteParams::default())
        .await
        .unwrap();
    eventually("cleanup to run and the object to go", || {
        let api = api.clone();
        let cleaned = cleaned.clone();
        async move {
            cleaned.load(Ordering::SeqCst) >= 1 && api.get_opt("finalized").await.unwrap().is_none()
        }
    })
    .await;

    controller.abort();
    reflect.abort();
    meta.abort();
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
