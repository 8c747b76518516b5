//! Issue 10, item 3 (workflow parity, the part built so far): a step `timeout` fails the step
//! with a message; steps after it are skipped unless their `if` asks for it
//! (`status.<step>.timeout`, `status["<step-name>"]…`, `always`); `workflow.mode.steps: DAG`
//! runs independent steps at once and holds `dependsOn` steps until their dependencies are
//! done. Real members: `slow` never gets its rollouts ready (`--fault-stuck`).

mod support;

use std::time::Duration;

use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(60);

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: flow
  namespace: default
spec:
  components:
    - name: web
      type: webservice
      properties:
        image: nginx:1.25
  policies:
    - {type: topology, name: on-slow, properties: {clusters: ["slow"]}}
    - {type: topology, name: on-m1, properties: {clusters: ["m1"]}}
  workflow:
    mode:
      steps: DAG
    steps:
      - {name: stuck, type: deploy, timeout: 5s, properties: {policies: ["on-slow"]}}
      - {name: side, type: deploy, properties: {policies: ["on-m1"]}}
      - {name: after-stuck, type: deploy, dependsOn: ["stuck"], properties: {policies: ["on-m1"]}}
      - name: rescue
        type: deploy
        dependsOn: ["stuck"]
        if: status.stuck.timeout && status["side"].succeeded
        properties: {policies: ["on-m1"]}
      - {name: last, type: deploy, dependsOn: ["rescue"], if: always, properties: {policies: ["on-m1"]}}
"#;

fn phases(hub: &Server) -> String {
    hub.jsonpath(
        "app",
        "flow",
        "default",
        "{range .status.workflow.steps[*]}{.name}={.phase} {end}",
    )
}

#[test]
fn timeout_if_and_dag() {
    let dir = TestDir::new("lifecycle-workflow");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let slow = Server::start(
        &[
            "member",
            "--name",
            "slow",
            "--listen",
            "127.0.0.1:0",
            "--fault-stuck",
        ],
        &dir.0.join("slow"),
    );
    hub.join("m1", &m1);
    hub.join("slow", &slow);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);

    // DAG: `side` finishes while `stuck` still waits; `after-stuck` waits for it.
    wait_for("side succeeds beside the running stuck step", WAIT, || {
        let p = phases(&hub);
        (p.contains("side=succeeded") && p.contains("stuck=running")).then_some(())
    });
    assert!(
        phases(&hub).contains("after-stuck=pending"),
        "{}",
        phases(&hub)
    );
    assert_eq!(
        hub.jsonpath("app", "flow", "default", "{.status.workflow.mode}"),
        "DAG-DAG"
    );

    // The timeout fails `stuck` for good, with a message; `if` decides the rest.
    wait_for("the workflow ends", WAIT, || {
        phases(&hub).contains("last=succeeded").then_some(())
    });
    assert_eq!(
        phases(&hub).trim(),
        "stuck=failed side=succeeded after-stuck=skipped rescue=succeeded last=succeeded"
    );
    let stuck = |field: &str| {
        hub.jsonpath(
            "app",
            "flow",
            "default",
            &format!("{{.status.workflow.steps[0].{field}}}"),
        )
    };
    assert_eq!(stuck("reason"), "Timeout");
    assert_eq!(stuck("message"), "step stuck timed out after 5s");
    assert_eq!(
        hub.jsonpath("app", "flow", "default", "{.status.status}"),
        "workflowFailed"
    );
    assert!(m1.exists("deployment", "web", "default"));
}
