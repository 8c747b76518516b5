//! A hub restarted with nothing changed writes nothing to its members: its first pass after
//! the restart re-asserts every object, comparing each live object with its desired state and
//! writing only what drifted (counted from the member's own `apiserver_request_total`). An
//! object edited on a member while the hub was down is still put back after the restart.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(90);

const APP: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: resync, namespace: default}
spec:
  components:
  - name: resync
    type: k8s-objects
    properties:
      objects:
      - {apiVersion: v1, kind: ConfigMap, metadata: {name: kept}, data: {k: desired}}
      - {apiVersion: v1, kind: ConfigMap, metadata: {name: edited}, data: {k: desired}}
  policies:
  - {type: topology, name: m1, properties: {clusters: [m1]}}
"#;

/// Mutating requests on ConfigMaps the member has served.
fn configmap_writes(member: &Server) -> f64 {
    ["create", "update", "patch", "delete"]
        .iter()
        .map(|verb| {
            let verb = format!("verb=\"{verb}\"");
            member.counter(
                "apiserver_request_total",
                &[&verb, "resource=\"configmaps\""],
            )
        })
        .sum()
}

/// Waits until the hub has finished one application reconcile since it started.
fn wait_reconciled(hub: &Server) {
    wait_for("a reconcile after the restart", WAIT, || {
        let done = hub.counter(
            "flotilla_controller_reconcile_duration_seconds_count",
            &["controller=\"application\"", "outcome=\"ok\""],
        );
        (done >= 1.0).then_some(())
    });
}

fn value(member: &Server, name: &str) -> String {
    member.jsonpath("configmap", name, "default", "{.data.k}")
}

fn restart(hub: Server, dir: &Path) -> Server {
    drop(hub);
    Server::hub(dir)
}

#[test]
fn restart_writes_nothing_and_still_corrects_drift() {
    let dir = TestDir::new("hub-restart-resync");
    let hub_dir = dir.0.join("hub");
    let mut hub = Server::hub(&hub_dir);
    let member = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &member);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for("running", WAIT, || {
        (hub.jsonpath("app", "resync", "default", "{.status.status}") == "running").then_some(())
    });
    assert_eq!(value(&member, "kept"), "desired");

    // Nothing changed: the first pass after the restart reads both objects and writes neither.
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    let writes = configmap_writes(&member);
    hub = restart(hub, &hub_dir);
    wait_reconciled(&hub);
    assert_eq!(
        configmap_writes(&member),
        writes,
        "writes to the member after a restart with nothing changed"
    );

    // Edited while the hub is down: put back after the restart; the other object untouched.
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    member.kubectl_ok(&[
        "patch",
        "configmap",
        "edited",
        "-n",
        "default",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"edited"}}"#,
    ]);
    let kept_version = member.jsonpath(
        "configmap",
        "kept",
        "default",
        "{.metadata.resourceVersion}",
    );
    let hub = restart(hub, &hub_dir);
    wait_for("the edit put back", WAIT, || {
        (value(&member, "edited") == "desired").then_some(())
    });
    wait_reconciled(&hub);
    assert_eq!(
        member.jsonpath(
            "configmap",
            "kept",
            "default",
            "{.metadata.resourceVersion}"
        ),
        kept_version
    );
}
