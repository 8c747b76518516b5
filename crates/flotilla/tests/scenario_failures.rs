//! Errors go where users look (SPEC 4.2, 4.3, 4.6): a down member delays only its own
//! placements and never blocks deletion; unknown clusters, policies and component types, and
//! objects owned by nobody or by another application, are named on the Application.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// An application deploying ConfigMap `configmap` of component `component` with `policies`
/// (YAML list items) and deploy-step policy names `steps`.
fn app(name: &str, component_type: &str, configmap: &str, policies: &str, steps: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  namespace: default
spec:
  components:
    - name: {name}
      type: {component_type}
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {configmap}
            data:
              owner: {name}
  policies:
{policies}
  workflow:
    steps:
      - type: deploy
        name: deploy
        properties:
          policies: {steps}
"#
    )
}

fn clusters(names: &str) -> String {
    format!(
        "    - type: topology\n      name: where\n      properties:\n        clusters: {names}\n"
    )
}

fn apply(hub: &Server, dir: &TestDir, yaml: &str) {
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

fn get(hub: &Server, app: &str, jsonpath: &str) -> String {
    hub.jsonpath("app", app, "default", jsonpath)
}

/// Waits until the first step's message contains `needle`; returns (phase, message).
fn step_message(hub: &Server, app: &str, needle: &str) -> (String, String) {
    let mut last = String::new();
    for _ in 0..(WAIT.as_millis() / 200) {
        last = get(hub, app, "{.status.workflow.steps[0].message}");
        if last.contains(needle) {
            return (get(hub, app, "{.status.status}"), last);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "step of {app} never said {needle:?} (last {last:?}):\n{}",
        stdout(&hub.kubectl(&["get", "app", app, "-n", "default", "-o", "yaml"]))
    );
}

#[test]
fn errors_are_named_and_contained() {
    let dir = TestDir::new("failures");
    let hub = Server::hub(&dir.0.join("hub"));
    let alive = Server::member("alive", &dir.0.join("alive"));
    let doomed = Server::member("down", &dir.0.join("down"));
    for (name, member) in [("alive", &alive), ("down", &doomed)] {
        hub.join(name, member);
    }
    let flaky = Server::member("flaky", &dir.0.join("flaky"));
    hub.join("flaky", &flaky);
    drop(doomed);

    // A down member delays only its own placement.
    apply(
        &hub,
        &dir,
        &app(
            "spread",
            "k8s-objects",
            "spread",
            &clusters(r#"["alive", "down"]"#),
            r#"["where"]"#,
        ),
    );
    let (phase, message) = step_message(&hub, "spread", "cluster down is unreachable");
    assert_eq!(phase, "runningWorkflow", "{message}");
    wait_for("the live member got its ConfigMap", WAIT, || {
        alive
            .kubectl(&["get", "configmap", "spread", "-n", "default"])
            .status
            .success()
            .then_some(())
    });
    assert_eq!(
        get(&hub, "spread", "{.status.services[0].cluster}"),
        "alive"
    );

    // Unknown cluster, unknown policy, unknown component type.
    apply(
        &hub,
        &dir,
        &app(
            "mars",
            "k8s-objects",
            "mars",
            &clusters(r#"["alive", "mars"]"#),
            r#"["where"]"#,
        ),
    );
    let (phase, _) = step_message(&hub, "mars", "failed to get cluster mars");
    assert_eq!(phase, "workflowFailed");
    apply(
        &hub,
        &dir,
        &app(
            "nopolicy",
            "k8s-objects",
            "nopolicy",
            &clusters(r#"["alive"]"#),
            r#"["nope"]"#,
        ),
    );
    step_message(&hub, "nopolicy", "policy nope not found");
    apply(
        &hub,
        &dir,
        &app(
            "helm",
            "helm-chart",
            "helm",
            &clusters(r#"["alive"]"#),
            r#"["where"]"#,
        ),
    );
    step_message(&hub, "helm", "unknown component type \"helm-chart\"");

    // A spec that cannot work at all: the error shows in `flotilla status`.
    let both = app(
        "both",
        "k8s-objects",
        "both",
        &clusters(r#"["alive"]"#),
        r#"["where"]"#,
    )
    .replace("  workflow:\n", "  workflow:\n    ref: elsewhere\n");
    apply(&hub, &dir, &both);
    wait_for("the spec error is shown", WAIT, || {
        let out = flotilla(&hub.kubeconfig, &["status", "both"]);
        let text = stdout(&out);
        (text.contains("Status:       rendering")
            && text.contains("message: workflow.ref and workflow.steps cannot be set together"))
        .then_some(())
    });

    // Ownership: an object nobody manages, and one another application manages.
    alive.kubectl_ok(&["create", "configmap", "handmade", "-n", "default"]);
    apply(
        &hub,
        &dir,
        &app(
            "grab",
            "k8s-objects",
            "handmade",
            &clusters(r#"["alive"]"#),
            r#"["where"]"#,
        ),
    );
    let (_, message) = step_message(
        &hub,
        "grab",
        "exists but not managed by any application now",
    );
    assert!(message.contains("ConfigMap default/handmade"), "{message}");
    assert!(message.contains("alive"), "{message}");
    apply(
        &hub,
        &dir,
        &app(
            "steal",
            "k8s-objects",
            "spread",
            &clusters(r#"["alive"]"#),
            r#"["where"]"#,
        ),
    );
    step_message(
        &hub,
        "steal",
        "is managed by other application default/spread",
    );
    let owner = stdout(&alive.kubectl(&[
        "get",
        "configmap",
        "spread",
        "-n",
        "default",
        "-o",
        "jsonpath={.data.owner}",
    ]));
    assert_eq!(
        owner, "spread",
        "the other application's object is untouched"
    );

    // A member that goes down after the rollout: the application shows it unhealthy.
    apply(
        &hub,
        &dir,
        &app(
            "steady",
            "k8s-objects",
            "steady",
            &clusters(r#"["flaky"]"#),
            r#"["where"]"#,
        ),
    );
    wait_for("steady runs", WAIT, || {
        (get(&hub, "steady", "{.status.status}") == "running").then_some(())
    });
    drop(flaky);
    wait_for("steady is unhealthy", WAIT, || {
        let seen = get(
            &hub,
            "steady",
            "{.status.status} {.status.services[0].message}",
        );
        (seen == "unhealthy cluster flaky is unreachable").then_some(())
    });

    // Deleting an application is not blocked by the down member.
    hub.kubectl_ok(&["delete", "app", "spread", "-n", "default", "--timeout=60s"]);
    assert!(
        !hub.kubectl(&["get", "app", "spread", "-n", "default"])
            .status
            .success()
    );
    assert!(
        !alive
            .kubectl(&["get", "configmap", "spread", "-n", "default"])
            .status
            .success()
    );
}
