//! Garbage collection by ownerReferences on the hub, driven by kubectl's `--cascade`:
//! background deletes dependents after the owner, foreground before it, orphan keeps them
//! and drops the reference; a dependent with another live owner survives; dependents of owners that vanished while
//! the hub was down are collected at the next start.

mod support;

use std::time::Duration;

use support::{Server, temp_dir, wait_for};

fn owned(dir: &std::path::Path, hub: &Server, name: &str, owners: &[(&str, String)]) {
    let refs: String = owners
        .iter()
        .map(|(o, uid)| format!("  - {{apiVersion: v1, kind: ConfigMap, name: {o}, uid: {uid}}}\n"))
        .collect();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n{refs}"
        ),
    )
    .unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

#[test]
fn owner_deletion_cascades_like_kubernetes() {
    let dir = temp_dir("hub-gc");
    let hub = Server::hub(&dir);
    let mut uid = std::collections::HashMap::new();
    for o in ["bg", "fg", "orphan", "other"] {
        hub.kubectl_ok(&["create", "configmap", o]);
        uid.insert(
            o,
            hub.kubectl_ok(&["get", "configmap", o, "-o", "jsonpath={.metadata.uid}"]),
        );
    }
    owned(&dir, &hub, "bg-child", &[("bg", uid["bg"].clone())]);
    owned(
        &dir,
        &hub,
        "shared-child",
        &[("bg", uid["bg"].clone()), ("other", uid["other"].clone())],
    );
    owned(&dir, &hub, "fg-child", &[("fg", uid["fg"].clone())]);
    owned(
        &dir,
        &hub,
        "orphan-child",
        &[("orphan", uid["orphan"].clone())],
    );

    let gone = |name: &str| !hub.kubectl(&["get", "configmap", name]).status.success();
    hub.kubectl_ok(&["delete", "configmap", "bg"]);
    wait_for("bg-child to be collected", Duration::from_secs(20), || {
        gone("bg-child").then_some(())
    });
    let refs = hub.kubectl_ok(&[
        "get",
        "configmap",
        "shared-child",
        "-o",
        "jsonpath={.metadata.ownerReferences[*].name}",
    ]);
    assert_eq!(
        refs, "other",
        "the live owner keeps its dependent; the dangling reference goes"
    );

    // Foreground: kubectl waits; the dependent is gone by the time the owner is.
    hub.kubectl_ok(&["delete", "configmap", "fg", "--cascade=foreground"]);
    assert!(gone("fg") && gone("fg-child"));

    hub.kubectl_ok(&["delete", "configmap", "orphan", "--cascade=orphan"]);
    assert!(gone("orphan"));
    let refs = hub.kubectl_ok(&[
        "get",
        "configmap",
        "orphan-child",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs, "", "orphaned dependents lose the reference");

    // A dependent whose owner is already gone (as after a crash between the owner's
    // delete and its collection) is collected by the sweep at the next start.
    owned(
        &dir,
        &hub,
        "dangling",
        &[("vanished", "00000000-0000-0000-0000-000000000000".into())],
    );
    drop(hub);
    let hub = Server::hub(&dir);
    wait_for(
        "the start-up sweep to collect the dangling dependent",
        Duration::from_secs(20),
        || {
            (!hub
                .kubectl(&["get", "configmap", "dangling"])
                .status
                .success())
            .then_some(())
        },
    );
    assert!(
        hub.kubectl(&["get", "configmap", "orphan-child"])
            .status
            .success()
    );
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
