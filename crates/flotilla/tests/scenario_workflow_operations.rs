//! SPEC 4.5 end to end on the hub itself (`local`): suspend steps, resume, restart, terminate
//! and rollback through `flotilla workflow`, observed with kubectl.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn app(color: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: ops
  namespace: default
spec:
  components:
    - name: cfg
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: cfg
            data:
              color: {color}
  policies:
    - type: override
      name: shout
      properties:
        components:
          - name: cfg
            properties:
              objects:
                - apiVersion: v1
                  kind: ConfigMap
                  metadata:
                    name: cfg
                  data:
                    color: {color}-loud
  workflow:
    steps:
      - type: deploy
        name: first
      - type: suspend
        name: hold
      - type: deploy
        name: second
        properties:
          policies: ["shout"]
"#
    )
}

fn get(hub: &Server, jsonpath: &str) -> String {
    hub.jsonpath("app", "ops", "default", jsonpath)
}

fn wait_phase(hub: &Server, phase: &str) {
    let mut last = String::new();
    let found = (0..(WAIT.as_millis() / 200)).any(|_| {
        last = get(hub, "{.status.status}");
        if last == phase {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
        false
    });
    assert!(
        found,
        "phase never became {phase} (last {last}):\n{}",
        stdout(&hub.kubectl(&["get", "app", "ops", "-n", "default", "-o", "yaml"]))
    );
}

fn color(hub: &Server) -> String {
    hub.jsonpath("configmap", "cfg", "default", "{.data.color}")
}

fn workflow(hub: &Server, op: &str) -> std::process::Output {
    flotilla(&hub.kubeconfig, &["workflow", op, "ops", "-n", "default"])
}

#[test]
fn workflow_operations() {
    let dir = TestDir::new("workflow-ops");
    let hub = Server::hub(&dir.0.join("hub"));
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, app("red")).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);

    // The suspend step holds the workflow after the first deploy (to the hub itself).
    wait_phase(&hub, "workflowSuspending");
    assert_eq!(color(&hub), "red");
    assert_eq!(get(&hub, "{.status.workflow.steps[1].phase}"), "suspending");
    assert_eq!(get(&hub, "{.status.workflow.suspend}"), "true");
    let labels = hub.jsonpath(
        "configmap",
        "cfg",
        "default",
        "{.metadata.labels.app\\.oam\\.dev/cluster}",
    );
    assert_eq!(labels, "local");

    // resume: the second step deploys the override; resuming again is refused.
    let out = workflow(&hub, "resume");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Successfully resume workflow: ops");
    wait_phase(&hub, "running");
    assert_eq!(color(&hub), "red-loud");
    assert_eq!(get(&hub, "{.status.workflow.finished}"), "true");
    let out = workflow(&hub, "resume");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not suspended"),
        "{}",
        stderr(&out)
    );

    // restart: from the first step again, up to the suspend.
    let out = workflow(&hub, "restart");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_phase(&hub, "workflowSuspending");
    assert_eq!(color(&hub), "red");

    // terminate: the waiting step fails with reason Terminate; resume is refused.
    let out = workflow(&hub, "terminate");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_phase(&hub, "workflowTerminated");
    assert_eq!(get(&hub, "{.status.workflow.steps[1].phase}"), "failed");
    assert_eq!(get(&hub, "{.status.workflow.steps[1].reason}"), "Terminate");
    assert_eq!(get(&hub, "{.status.workflow.terminated}"), "true");
    let out = workflow(&hub, "resume");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("terminated"), "{}", stderr(&out));

    // A new spec is a new revision and a new run.
    std::fs::write(&file, app("green")).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for("green deployed", WAIT, || {
        (color(&hub) == "green").then_some(())
    });
    wait_phase(&hub, "workflowSuspending");
    assert_eq!(get(&hub, "{.status.latestRevision.name}"), "ops-v2");

    // rollback: back to the last revision whose workflow succeeded (ops-v1, red).
    let out = workflow(&hub, "rollback");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("red again", WAIT, || (color(&hub) == "red").then_some(()));
    assert_eq!(
        get(
            &hub,
            "{.spec.components[0].properties.objects[0].data.color}"
        ),
        "red"
    );
    wait_phase(&hub, "workflowSuspending");
    let out = workflow(&hub, "resume");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_phase(&hub, "running");
    assert_eq!(color(&hub), "red-loud");

    // Deleting the application deletes what it dispatched.
    hub.kubectl_ok(&["delete", "app", "ops", "-n", "default"]);
    wait_for("configmap gone", WAIT, || {
        (!hub
            .kubectl(&["get", "configmap", "cfg", "-n", "default"])
            .status
            .success())
        .then_some(())
    });
}

const GADGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgetries.example.com
spec:
  group: example.com
  scope: Cluster
  names:
    kind: Gadget
    listKind: GadgetList
    plural: gadgetries
    singular: gadget
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

const GADGET_APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: gadgets
  namespace: default
spec:
  components:
    - name: gadgets
      type: k8s-objects
      properties:
        objects:
          - apiVersion: example.com/v1
            kind: Gadget
            metadata:
              name: g1
            spec:
              size: 3
"#;

/// `k8s-objects` of a custom, cluster-scoped kind with an irregular plural: the cluster's
/// discovery decides where it goes, for dispatch and for deletion.
#[test]
fn custom_kinds_follow_discovery() {
    let dir = TestDir::new("custom-kinds");
    let hub = Server::hub(&dir.0.join("hub"));
    let crd = dir.0.join("crd.yaml");
    std::fs::write(&crd, GADGET_CRD).unwrap();
    hub.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()]);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, GADGET_APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let mut gadget = String::new();
    for _ in 0..(WAIT.as_millis() / 200) {
        let out = hub.kubectl(&[
            "get",
            "gadgetries",
            "g1",
            "-o",
            "jsonpath={.spec.size} {.metadata.labels.app\\.oam\\.dev/name} {.metadata.namespace}",
        ]);
        if out.status.success() {
            gadget = stdout(&out);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !gadget.is_empty(),
        "no gadget; application:\n{}\nhub log:\n{}",
        stdout(&hub.kubectl(&["get", "app", "gadgets", "-n", "default", "-o", "yaml"])),
        std::fs::read_to_string(&hub.log).unwrap_or_default()
    );
    assert_eq!(gadget.trim(), "3 gadgets");
    wait_for("running", WAIT, || {
        (hub.jsonpath("app", "gadgets", "default", "{.status.status}") == "running").then_some(())
    });
    hub.kubectl_ok(&["delete", "app", "gadgets", "-n", "default"]);
    wait_for("gadget gone", WAIT, || {
        (!hub.kubectl(&["get", "gadgetries", "g1"]).status.success()).then_some(())
    });
}
