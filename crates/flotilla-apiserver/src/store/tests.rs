//! The store's semantics without HTTP, over the embedded (redb) backend in a temporary
//! directory: compare-and-swap, finalizers holding a delete, dry-run, managedFields,
//! hooks, and garbage collection following the store's changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flotilla_core::user::UserInfo;
use serde_json::{Value, json};

use super::create::{create_if_absent, prepare_create};
use super::delete::{DeleteOptions, Deleted, FOREGROUND, delete_object};
use super::options::WriteOptions;
use super::update::update_with;
use super::{Store, Written};
use crate::objects::{finalizers, meta_str};
use crate::registry::ResourceInfo;
use crate::state::{ApiState, SharedState};

/// An API server's state over a fresh embedded store, with `default` created.
async fn state() -> (tempfile::TempDir, SharedState) {
    let dir = tempfile::tempdir().unwrap();
    let backend: flotilla_storage::SharedBackend =
        Arc::new(flotilla_storage::EmbeddedBackend::open(dir.path().join("db")).unwrap());
    let store = Store::new(backend);
    let pki = Arc::new(crate::pki::ClusterPki::load_or_create(dir.path()).unwrap());
    let auth = crate::auth::Auth::new(store.clone(), &pki, dir.path()).unwrap();
    let state = Arc::new(ApiState {
        namespaces: crate::namespace_cache::NamespaceCache::new(store.clone()),
        store: store.clone(),
        registry: crate::registry::Registry::new(),
        watches: crate::watch::WatchHub::new(store),
        metrics: crate::metrics::Metrics::new(),
        auth,
        pki,
        faults: Default::default(),
        in_flight: Default::default(),
        proxy: crate::handlers::proxy::ProxyState::new(None),
        git_version: "test".into(),
        cluster_gateway: None,
        webhook: None,
    });
    crate::crd::register_hooks(&state);
    create_if_absent(
        &state,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
    )
    .await
    .unwrap();
    (dir, state)
}

fn configmaps(state: &ApiState) -> Arc<ResourceInfo> {
    state
        .registry
        .snapshot()
        .lookup("", "v1", "configmaps")
        .unwrap()
}

fn opts() -> WriteOptions {
    WriteOptions::internal("store-test")
}

/// Creates a ConfigMap as POST does (strategy, admission, managedFields), then stores it.
async fn create(state: &ApiState, mut obj: Value) -> Value {
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("ConfigMap");
    let info = configmaps(state);
    let (prepared, _) = prepare_create(state, &info, "default", obj, &opts(), &UserInfo::default())
        .await
        .unwrap();
    state.store.create(&info, prepared).await.unwrap()
}

async fn get(state: &ApiState, name: &str) -> Option<Value> {
    let info = configmaps(state);
    state
        .store
        .get(&info, "default", name)
        .await
        .unwrap()
        .map(|(o, _)| o)
}

/// Updates `name` with `change` applied to the current object, through the store's loop.
async fn update(
    state: &ApiState,
    name: &str,
    opts: &WriteOptions,
    change: impl Fn(&mut Value),
) -> Result<super::update::Updated, flotilla_core::status::ApiError> {
    let info = configmaps(state);
    update_with(
        state,
        &info,
        "default",
        name,
        opts,
        "",
        &UserInfo::default(),
        false,
        |current| {
            let mut next = current.cloned().unwrap_or_default();
            change(&mut next);
            Ok(next)
        },
    )
    .await
}

#[tokio::test]
async fn a_write_on_a_stale_revision_is_a_conflict() {
    let (_dir, state) = state().await;
    let created = create(
        &state,
        json!({"metadata": {"name": "a"}, "data": {"k": "1"}}),
    )
    .await;
    let info = configmaps(&state);
    let old = crate::objects::resource_version(&created);
    update(&state, "a", &opts(), |o| o["data"]["k"] = json!("2"))
        .await
        .unwrap();
    // The store's compare-and-swap refuses a write based on the old revision...
    let err = state
        .store
        .update(&info, &created, old)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, 409);
    // ...and so does the update loop when the desired object pins it.
    let err = update(&state, "a", &opts(), |o| {
        o["metadata"]["resourceVersion"] = json!(old.to_string());
        o["data"]["k"] = json!("3");
    })
    .await
    .err()
    .unwrap();
    assert_eq!(err.code, 409);
    assert_eq!(get(&state, "a").await.unwrap()["data"]["k"], "2");
}

#[tokio::test]
async fn finalizers_hold_a_delete_until_the_last_one_goes() {
    let (_dir, state) = state().await;
    create(
        &state,
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    let info = configmaps(&state);
    let deleted = delete_object(&state, &info, "default", "held", &DeleteOptions::default())
        .await
        .unwrap();
    let Deleted::Pending(pending) = deleted else {
        panic!("a finalizer must hold the delete");
    };
    assert!(!meta_str(&pending, "deletionTimestamp").is_empty());
    let still = get(&state, "held").await.expect("held by its finalizer");
    assert_eq!(finalizers(&still), ["example.com/hold"]);
    // No new finalizer while deleting.
    let err = update(&state, "held", &opts(), |o| {
        o["metadata"]["finalizers"] = json!(["example.com/hold", "example.com/more"]);
    })
    .await
    .err()
    .unwrap();
    assert_eq!(err.code, 422);
    // Removing the last finalizer removes the object.
    update(&state, "held", &opts(), |o| {
        o["metadata"]["finalizers"] = json!([]);
    })
    .await
    .unwrap();
    assert!(get(&state, "held").await.is_none());
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let (_dir, state) = state().await;
    let created = create(
        &state,
        json!({"metadata": {"name": "d"}, "data": {"k": "1"}}),
    )
    .await;
    let dry = WriteOptions {
        dry_run: true,
        ..opts()
    };
    let out = update(&state, "d", &dry, |o| o["data"]["k"] = json!("2"))
        .await
        .unwrap();
    assert_eq!(out.object["data"]["k"], "2");
    let info = configmaps(&state);
    let created_dry = update_with(
        &state,
        &info,
        "default",
        "new",
        &dry,
        "",
        &UserInfo::default(),
        true,
        |_| Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}})),
    )
    .await
    .unwrap();
    assert!(created_dry.created);
    let delete = DeleteOptions {
        dry_run: true,
        ..Default::default()
    };
    assert!(matches!(
        delete_object(&state, &info, "default", "d", &delete)
            .await
            .unwrap(),
        Deleted::Gone(_)
    ));
    assert_eq!(get(&state, "d").await.unwrap(), created);
    assert!(get(&state, "new").await.is_none());
}

#[tokio::test]
async fn managed_fields_record_each_manager() {
    let (_dir, state) = state().await;
    let created = create(
        &state,
        json!({"metadata": {"name": "m"}, "data": {"a": "1"}}),
    )
    .await;
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "store-test"
    );
    let other = WriteOptions::internal("other-manager");
    let out = update(&state, "m", &other, |o| o["data"]["b"] = json!("2"))
        .await
        .unwrap();
    let managers: Vec<&str> = out.object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"store-test") && managers.contains(&"other-manager"),
        "{managers:?}"
    );
    // An update that changes nothing writes nothing.
    let again = update(&state, "m", &other, |_| {}).await.unwrap();
    assert_eq!(
        again.object["metadata"]["resourceVersion"],
        out.object["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn hooks_run_after_create_update_and_delete() {
    let (_dir, state) = state().await;
    let counts: Arc<[AtomicUsize; 3]> = Arc::default();
    for (i, register) in [
        Store::after_create,
        Store::after_update,
        Store::after_delete,
    ]
    .into_iter()
    .enumerate()
    {
        let counts = counts.clone();
        register(
            &state.store,
            Arc::new(move |ev: &super::HookEvent<'_>| {
                if ev.resource.resource == "configmaps" && meta_str(ev.object, "name") == "h" {
                    counts[i].fetch_add(1, Ordering::SeqCst);
                }
            }),
        );
    }
    create(&state, json!({"metadata": {"name": "h"}})).await;
    update(&state, "h", &opts(), |o| o["data"] = json!({"x": "y"}))
        .await
        .unwrap();
    let info = configmaps(&state);
    delete_object(&state, &info, "default", "h", &DeleteOptions::default())
        .await
        .unwrap();
    let seen: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(seen, [1, 1, 1]);
    // The CRD hooks: a stored CRD is served at once, a removed one no longer.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    create_if_absent(&state, crd).await.unwrap();
    assert!(
        state
            .registry
            .snapshot()
            .lookup("example.com", "v1", "widgets")
            .is_some()
    );
    let crds = state
        .registry
        .snapshot()
        .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .unwrap();
    delete_object(
        &state,
        &crds,
        "",
        "widgets.example.com",
        &DeleteOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        state
            .registry
            .snapshot()
            .lookup("example.com", "v1", "widgets")
            .is_none()
    );
}

/// Polls until `done` holds (generous deadline, no timing asserted).
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn garbage_collection_follows_deletes_in_the_store() {
    let (_dir, state) = state().await;
    let tasks = tokio::spawn(crate::leader_tasks::run(state.clone()));
    let owner = create(&state, json!({"metadata": {"name": "owner"}})).await;
    let reference = |owner: &Value| {
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": meta_str(owner, "name"),
            "uid": meta_str(owner, "uid")}])
    };
    create(
        &state,
        json!({"metadata": {"name": "dep", "ownerReferences": reference(&owner)}}),
    )
    .await;
    let info = configmaps(&state);
    delete_object(&state, &info, "default", "owner", &DeleteOptions::default())
        .await
        .unwrap();
    eventually("the dependent to be collected", async || {
        get(&state, "dep").await.is_none()
    })
    .await;

    // Foreground: the owner waits (with its finalizer) until its dependents are gone.
    let owner = create(&state, json!({"metadata": {"name": "fg"}})).await;
    create(
        &state,
        json!({"metadata": {"name": "fg-dep", "ownerReferences": reference(&owner)}}),
    )
    .await;
    let foreground = DeleteOptions {
        propagation: Some("Foreground".into()),
        ..Default::default()
    };
    let Deleted::Pending(pending) = delete_object(&state, &info, "default", "fg", &foreground)
        .await
        .unwrap()
    else {
        panic!("a foreground delete waits for dependents");
    };
    assert!(finalizers(&pending).iter().any(|f| f == FOREGROUND));
    eventually("the foreground owner to go", async || {
        get(&state, "fg").await.is_none() && get(&state, "fg-dep").await.is_none()
    })
    .await;
    tasks.abort();
}

#[tokio::test]
async fn deleting_and_keeping_are_told_apart() {
    let (_dir, state) = state().await;
    let created = create(
        &state,
        json!({"metadata": {"name": "w", "finalizers": ["x/y"]}}),
    )
    .await;
    let info = configmaps(&state);
    let mut deleting = created.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let rev = crate::objects::resource_version(&created);
    let Written::Stored(kept) = state.store.update(&info, &deleting, rev).await.unwrap() else {
        panic!("a finalizer keeps the object");
    };
    deleting["metadata"]["finalizers"] = json!([]);
    let rev = crate::objects::resource_version(&kept);
    assert!(matches!(
        state.store.update(&info, &deleting, rev).await.unwrap(),
        Written::Deleted(_)
    ));
    assert!(get(&state, "w").await.is_none());
}

/// A RoleBinding of `role` for alice in `team`.
fn binding(name: &str, role: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]})
}

#[tokio::test]
async fn the_escalation_hook_judges_the_final_object() {
    let (_dir, state) = state().await;
    for obj in crate::auth::Auth::bootstrap_objects() {
        create_if_absent(&state, obj).await.unwrap();
    }
    create_if_absent(
        &state,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .await
    .unwrap();
    create_if_absent(&state, binding("alice-admin", "admin"))
        .await
        .unwrap();
    let snapshot = state.registry.snapshot();
    let group = "rbac.authorization.k8s.io";
    let bindings = snapshot.lookup(group, "v1", "rolebindings").unwrap();
    let roles = snapshot.lookup(group, "v1", "roles").unwrap();
    let alice = UserInfo::new("alice", vec!["system:authenticated".into()]);
    let create_as = async |info: &ResourceInfo, obj: Value| {
        prepare_create(&state, info, "team", obj, &opts(), &alice).await
    };
    let e = create_as(&bindings, binding("x", "cluster-admin"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 403);
    assert!(
        e.message
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        e.message
    );
    // Dry-run is judged too, and server-internal writes are not.
    let (prepared, _) = create_as(&bindings, binding("x", "edit")).await.unwrap();
    state.store.create(&bindings, prepared).await.unwrap();

    // An update is judged by its result.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "small", "namespace": "team"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
    create_if_absent(&state, role).await.unwrap();
    let set_rules = |resource: &'static str| {
        move |current: Option<&Value>| {
            let mut next = current.cloned().unwrap_or_default();
            next["rules"] = json!([{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]);
            Ok(next)
        }
    };
    let update_as = async |resource: &'static str| {
        update_with(
            &state,
            &roles,
            "team",
            "small",
            &opts(),
            "",
            &alice,
            false,
            set_rules(resource),
        )
        .await
    };
    assert_eq!(update_as("nodes").await.err().unwrap().code, 403);
    update_as("secrets").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_loop_retries_when_another_writer_got_in_between() {
    let (_dir, state) = state().await;
    create(
        &state,
        json!({"metadata": {"name": "race"}, "data": {"a": "1"}}),
    )
    .await;
    let info = configmaps(&state);
    let calls = AtomicUsize::new(0);
    let out = update_with(
        &state,
        &info,
        "default",
        "race",
        &opts(),
        "",
        &UserInfo::default(),
        false,
        |current| {
            let mut next = current.cloned().unwrap_or_default();
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // Another writer changes the object between this read and its write.
                let (mut other, rev) = (next.clone(), crate::objects::resource_version(&next));
                other["data"]["b"] = json!("2");
                let handle = tokio::runtime::Handle::current();
                tokio::task::block_in_place(|| {
                    handle.block_on(state.store.update(&info, &other, rev))
                })
                .unwrap();
            }
            // Not pinned to the version read: the loop may retry on a conflict.
            crate::objects::meta_mut(&mut next).remove("resourceVersion");
            next["data"]["c"] = json!("3");
            Ok(next)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the loop read again after the conflict"
    );
    assert_eq!(out.object["data"], json!({"a": "1", "b": "2", "c": "3"}));
    assert_eq!(
        get(&state, "race").await.unwrap()["data"],
        out.object["data"]
    );
}

#[tokio::test]
async fn deleting_a_namespace_empties_it_through_the_store() {
    let (_dir, state) = state().await;
    let tasks = tokio::spawn(crate::leader_tasks::run(state.clone()));
    create_if_absent(
        &state,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}}),
    )
    .await
    .unwrap();
    let info = configmaps(&state);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "gone"}});
    let (prepared, _) = prepare_create(&state, &info, "gone", cm, &opts(), &UserInfo::default())
        .await
        .unwrap();
    state.store.create(&info, prepared).await.unwrap();
    let namespaces = state
        .registry
        .snapshot()
        .lookup("", "v1", "namespaces")
        .unwrap();
    let Deleted::Pending(ns) =
        delete_object(&state, &namespaces, "", "gone", &DeleteOptions::default())
            .await
            .unwrap()
    else {
        panic!("a namespace waits for its contents");
    };
    assert_eq!(ns["status"]["phase"], "Terminating");
    // Nothing new may be created in it meanwhile.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": "gone"}});
    let refused = prepare_create(&state, &info, "gone", cm, &opts(), &UserInfo::default()).await;
    assert!(refused.is_err());
    eventually("the namespace and its contents to go", async || {
        state
            .store
            .get(&namespaces, "", "gone")
            .await
            .unwrap()
            .is_none()
            && state.store.get(&info, "gone", "c").await.unwrap().is_none()
    })
    .await;
    tasks.abort();
}
