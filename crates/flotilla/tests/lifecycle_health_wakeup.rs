//! An Application waiting for its workload to become healthy is not polled: the drift watch
//! on the objects it dispatched wakes it when they are all healthy, or when one stops being
//! so. The hub here looks again by itself only every 300 s (`--application-health-recheck`),
//! so every step below happens only through those wake-ups, and the member serves a bounded
//! number of reads of the Deployment however long it takes to become ready (a poll every
//! 2 s read it about once per 2 s). The pass a wake-up starts does not read the Deployment
//! again: the event that woke it showed it as dispatched and ready, and the watch has run
//! since. A Deployment deleted on the member is still put back at once (the drift watch), the
//! Application shows it unhealthy, and running again once the new one is ready.

mod support;

use std::time::Duration;

use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(90);

/// One Deployment that the member's simulator makes ready only 20 s after it sees it.
const APP: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: slow, namespace: default}
spec:
  components:
  - name: slow
    type: k8s-objects
    properties:
      objects:
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: slow
          annotations: {sim.flotilla.io/ready-delay: 20s}
        spec:
          replicas: 1
          selector: {matchLabels: {app: slow}}
          template:
            metadata: {labels: {app: slow}}
            spec: {containers: [{name: slow, image: "nginx:1.27"}]}
  policies:
  - {type: topology, name: m1, properties: {clusters: [m1]}}
"#;

/// Requests on Deployments the member has served with `verb`.
fn deployment_requests(member: &Server, verb: &str) -> f64 {
    let verb = format!("verb=\"{verb}\"");
    member.counter(
        "apiserver_request_total",
        &[&verb, "resource=\"deployments\""],
    )
}

fn app_status(hub: &Server) -> String {
    hub.jsonpath("app", "slow", "default", "{.status.status}")
}

fn wait_status(hub: &Server, want: &str) {
    wait_for(want, WAIT, || (app_status(hub) == want).then_some(()));
}

#[test]
fn a_waiting_application_is_woken_by_its_objects_not_polled() {
    let dir = TestDir::new("health-wakeup");
    let hub = Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--application-health-recheck",
            "300s",
        ],
        &dir.0.join("hub"),
    );
    let member = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &member);
    // Only an available cluster's objects are taken from the watch.
    wait_for("m1 available", WAIT, || {
        let path = "{.status.conditions[?(@.type==\"ManagedClusterConditionAvailable\")].status}";
        (hub.jsonpath("managedcluster", "m1", "", path) == "True").then_some(())
    });
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let reads_before = deployment_requests(&member, "get");
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);

    // Running only once the Deployment is ready (20 s), found out through the wake-up.
    wait_for("the application waits for its Deployment", WAIT, || {
        (app_status(&hub) == "runningWorkflow").then_some(())
    });
    wait_status(&hub, "running");
    let reads = deployment_requests(&member, "get") - reads_before;
    // The first pass reads it once, before its apply (the write's answer is judged; the
    // drift watch reports what the member does next), the wake-up's pass not at all (the
    // event that woke it showed it), and the watch events of the controller's own status
    // writes start no pass (`own_writes`). One more read is allowed: a pass started by
    // anything else before the watch has shown the Deployment reads it. The old 2 s poll
    // read it 4 times, a 2 s poll without
    // wake-ups ten times more.
    assert!(
        reads <= 2.0,
        "the member served {reads} reads of the Deployment while the application waited"
    );
    let uid = member.jsonpath("deployment", "slow", "default", "{.metadata.uid}");

    // Deleted on the member: put back at once; the application shows it unhealthy until the
    // new Deployment is ready, then running again (both through wake-ups).
    member.kubectl_ok(&[
        "delete",
        "deployment",
        "slow",
        "-n",
        "default",
        "--wait=false",
    ]);
    wait_for("the Deployment put back", WAIT, || {
        let now = member.jsonpath("deployment", "slow", "default", "{.metadata.uid}");
        (!now.is_empty() && now != uid).then_some(())
    });
    wait_status(&hub, "unhealthy");
    wait_status(&hub, "running");
}
