//! An Application whose workflow has finished is not passed over every 30 s any more (each
//! such pass read every object back from its members): the drift watch wakes it when one of
//! its objects stops being healthy or is deleted, and by itself it looks again only every
//! `--application-resync-period` (default 5 minutes). Left alone for 40 s it costs neither a
//! pass nor a member read; an object deleted on the member afterwards is still put back at
//! once, and the Application shows it unhealthy, then running again.

mod support;

use std::time::Duration;

use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(90);

/// A Deployment the member makes ready 8 s after it sees it, and a ConfigMap.
const APP: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: idle, namespace: default}
spec:
  components:
  - name: idle
    type: k8s-objects
    properties:
      objects:
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: idle
          annotations: {sim.flotilla.io/ready-delay: 8s}
        spec:
          replicas: 1
          selector: {matchLabels: {app: idle}}
          template:
            metadata: {labels: {app: idle}}
            spec: {containers: [{name: idle, image: "nginx:1.27"}]}
      - {apiVersion: v1, kind: ConfigMap, metadata: {name: idle}, data: {k: v}}
  policies:
  - {type: topology, name: m1, properties: {clusters: [m1]}}
"#;

/// GETs of the application's objects the member has served.
fn member_reads(member: &Server) -> f64 {
    ["deployments", "configmaps"]
        .iter()
        .map(|resource| {
            let resource = format!("resource=\"{resource}\"");
            member.counter("apiserver_request_total", &["verb=\"get\"", &resource])
        })
        .sum()
}

/// The application controller's passes so far.
fn passes(hub: &Server) -> f64 {
    hub.counter(
        "flotilla_controller_reconcile_duration_seconds_count",
        &["controller=\"application\""],
    )
}

fn wait_status(hub: &Server, want: &str) {
    wait_for(want, WAIT, || {
        (hub.jsonpath("app", "idle", "default", "{.status.status}") == want).then_some(())
    });
}

#[test]
fn a_finished_application_is_woken_by_its_objects_not_requeued() {
    let dir = TestDir::new("resync");
    let hub = Server::hub(&dir.0.join("hub"));
    let member = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &member);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_status(&hub, "running");
    // Whatever the last status write set off has run by now.
    std::thread::sleep(Duration::from_secs(3));

    let (passes_before, reads_before) = (passes(&hub), member_reads(&member));
    // Longer than the 30 s after which every finished application used to be passed over.
    std::thread::sleep(Duration::from_secs(40));
    let passes_idle = passes(&hub) - passes_before;
    let reads_idle = member_reads(&member) - reads_before;
    assert_eq!(
        (passes_idle, reads_idle),
        (0.0, 0.0),
        "passes and member reads of a finished application left alone for 40 s"
    );

    // Deleted on the member: put back by the drift watch, and the application, woken by it,
    // shows the new Deployment unhealthy until it is ready.
    let uid = member.jsonpath("deployment", "idle", "default", "{.metadata.uid}");
    member.kubectl_ok(&[
        "delete",
        "deployment",
        "idle",
        "-n",
        "default",
        "--wait=false",
    ]);
    wait_for("the Deployment put back", WAIT, || {
        let now = member.jsonpath("deployment", "idle", "default", "{.metadata.uid}");
        (!now.is_empty() && now != uid).then_some(())
    });
    wait_status(&hub, "unhealthy");
    wait_status(&hub, "running");
    assert!(passes(&hub) > passes_before, "woken by the drift watch");
}
