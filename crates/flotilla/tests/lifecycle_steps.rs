//! Issue 10, item 3 (the rest of workflow parity), with a real member and kubectl: a `suspend`
//! step with `duration` ends by itself; StepByStep holds later steps; a `step-group` runs its
//! sub-steps together; component `dependsOn` holds a component until its dependency is healthy;
//! `subSteps: StepByStep` runs them one after the other; `apply-component` applies one
//! component to one cluster and exports an output; a
//! `notification` step takes it as an input and POSTs Slack, DingTalk (URL from a Secret) and
//! Lark bodies to a listener on 127.0.0.1; a refused POST fails the step; a step's `if` over
//! its `inputs` (an earlier step's output) runs or skips it, and an unknown input fails it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(40);

type Posts = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver: records each POST's path and JSON body and answers as the services do
/// (`/fail` answers 500).
fn listener() -> (String, Posts) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let posts: Posts = Arc::default();
    let seen = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            seen.lock().unwrap().push((path.clone(), body));
            let (status, reply) = match path.as_str() {
                "/fail" => ("500 Internal Server Error", "boom"),
                "/ding" => ("200 OK", r#"{"errcode":0,"errmsg":"ok"}"#),
                "/lark" => ("200 OK", r#"{"code":0,"msg":"success"}"#),
                _ => ("200 OK", "ok"),
            };
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, posts)
}

fn app(url: &str, stuck: bool) -> String {
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{name: steps, namespace: default}}
spec:
  components:
    - name: db
      type: webservice
      properties: {{image: postgres:16}}
      traits:
        - {{type: annotations, properties: {{sim.flotilla.io/stuck: "{stuck}"}}}}
    - name: web
      type: webservice
      properties: {{image: nginx:1.25}}
      dependsOn: [db]
    - name: extra
      type: k8s-objects
      properties:
        objects: [{{apiVersion: v1, kind: ConfigMap, data: {{k: "v"}}}}]
  policies:
    - {{name: on-m1, type: topology, properties: {{clusters: ["m1"]}}}}
    - {{name: db-and-web, type: override, properties: {{selector: [db, web]}}}}
  workflow:
    steps:
      - {{name: pause, type: suspend, properties: {{duration: 3s}}}}
      - name: group
        type: step-group
        subSteps:
          - {{name: apps, type: deploy, properties: {{policies: [on-m1, db-and-web]}}}}
          - name: extra
            type: apply-component
            properties: {{component: extra, cluster: m1}}
            outputs: [{{name: extra-name, valueFrom: output.value.metadata.name}}]
      - name: notify
        type: notification
        inputs: [{{from: extra-name, parameterKey: slack.message.text}}]
        properties:
          slack: {{url: {{value: "{url}/slack"}}, message: {{text: placeholder}}}}
          dingding:
            url: {{secretRef: {{name: hooks, key: ding}}}}
            message: {{text: {{content: deployed}}}}
          lark:
            url: {{value: "{url}/lark"}}
            message: {{msg_type: text, content: '{{"text":"deployed"}}'}}
"#
    )
}

fn loud(url: &str) -> String {
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{name: loud, namespace: default}}
spec:
  components:
    - {{name: cfg, type: k8s-objects, properties: {{objects: [{{apiVersion: v1, kind: ConfigMap}}]}}}}
  workflow:
    steps:
      - name: notify
        type: notification
        properties: {{slack: {{url: {{value: "{url}/fail"}}, message: {{text: hello}}}}}}
"#
    )
}

/// `subSteps: StepByStep`: the second sub-step waits for the first (whose db never gets ready).
const ORDERED: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: ordered, namespace: default}
spec:
  components:
    - name: slow-db
      type: webservice
      properties: {image: postgres:16}
      traits:
        - {type: annotations, properties: {sim.flotilla.io/stuck: "true"}}
    - name: after
      type: k8s-objects
      properties:
        objects: [{apiVersion: v1, kind: ConfigMap, data: {k: "v"}}]
  workflow:
    mode: {subSteps: StepByStep}
    steps:
      - name: group
        type: step-group
        subSteps:
          - {name: first, type: apply-component, properties: {component: slow-db, cluster: m1}}
          - {name: second, type: apply-component, properties: {component: after, cluster: m1}}
"#;

/// `read` exports the ConfigMap's `data.mode` ("fast"); the next steps' `if` test it as an input.
const GATED: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: gated, namespace: default}
spec:
  components:
    - {name: src, type: k8s-objects, properties: {objects: [{apiVersion: v1, kind: ConfigMap, data: {mode: fast}}]}}
    - {name: fast, type: k8s-objects, properties: {objects: [{apiVersion: v1, kind: ConfigMap}]}}
    - {name: slow, type: k8s-objects, properties: {objects: [{apiVersion: v1, kind: ConfigMap}]}}
  workflow:
    steps:
      - name: read
        type: apply-component
        properties: {component: src, cluster: m1}
        outputs: [{name: mode, valueFrom: output.value.data.mode}]
      - name: go-fast
        type: apply-component
        properties: {component: fast, cluster: m1}
        inputs: [{from: mode, parameterKey: mode}]
        if: 'inputs.mode == "fast"'
      - name: go-slow
        type: apply-component
        properties: {component: slow, cluster: m1}
        inputs: [{from: mode, parameterKey: mode}]
        if: 'inputs["mode"] != "fast"'
      - name: typo
        type: apply-component
        properties: {component: slow, cluster: m1}
        inputs: [{from: mode, parameterKey: mode}]
        if: 'inputs.mood == "fast"'
"#;

fn apply(hub: &Server, dir: &TestDir, name: &str, yaml: &str) {
    let file = dir.0.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

fn field(hub: &Server, app: &str, path: &str) -> String {
    hub.jsonpath("app", app, "default", path)
}

fn phases(hub: &Server) -> String {
    field(
        hub,
        "steps",
        "{range .status.workflow.steps[*]}{.name}={.phase}[{range .subSteps[*]}{.name}={.phase} {end}] {end}",
    )
}

#[test]
fn workflow_steps() {
    let dir = TestDir::new("lifecycle-steps");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &m1);
    let (url, posts) = listener();
    hub.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "hooks",
        "-n",
        "default",
        &format!("--from-literal=ding={url}/ding"),
    ]);
    apply(&hub, &dir, "steps", &app(&url, true));

    // A timed suspend waits, then ends by itself.
    wait_for("pause suspends", WAIT, || {
        phases(&hub).starts_with("pause=suspending").then_some(())
    });
    // The group's sub-steps run together: `extra` finishes while `apps` waits for db.
    wait_for("extra succeeds beside the waiting apps", WAIT, || {
        phases(&hub)
            .contains("group=running[apps=running extra=succeeded ]")
            .then_some(())
    });
    assert!(
        phases(&hub).starts_with("pause=succeeded"),
        "{}",
        phases(&hub)
    );
    assert!(
        phases(&hub).ends_with("notify=pending[] "),
        "{}",
        phases(&hub)
    );
    assert_eq!(
        field(&hub, "steps", "{.status.workflow.mode}"),
        "StepByStep-DAG"
    );
    wait_for("web waits for db", WAIT, || {
        field(
            &hub,
            "steps",
            "{.status.workflow.steps[1].subSteps[0].message}",
        )
        .contains("component web waits for db (dependsOn)")
        .then_some(())
    });
    assert!(m1.exists("deployment", "db", "default"));
    assert!(!m1.exists("deployment", "web", "default"));
    assert_eq!(m1.jsonpath("cm", "extra", "default", "{.data.k}"), "v");
    assert!(posts.lock().unwrap().is_empty());

    // db healthy: web follows, then the notification goes out with the output as its text.
    apply(&hub, &dir, "steps", &app(&url, false));
    wait_for("the workflow finishes", WAIT, || {
        (field(&hub, "steps", "{.status.status}") == "running").then_some(())
    });
    assert!(m1.exists("deployment", "web", "default"));
    let posted = posts.lock().unwrap().clone();
    let body = |path: &str| {
        posted
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("no POST to {path}: {posted:?}"))
    };
    assert_eq!(body("/slack"), json!({"text": "extra"}));
    assert_eq!(
        body("/ding"),
        json!({"msgtype": "text", "text": {"content": "deployed"}})
    );
    assert_eq!(
        body("/lark"),
        json!({"msg_type": "text", "content": {"text": "deployed"}})
    );
    assert_eq!(
        field(&hub, "steps", "{.status.workflow.outputs.extra-name}"),
        "extra"
    );
    // Converge keeps what apply-component applied.
    assert!(m1.exists("cm", "extra", "default"));

    // subSteps: StepByStep holds the second sub-step while the first waits.
    apply(&hub, &dir, "ordered", ORDERED);
    wait_for("the first sub-step waits for its workload", WAIT, || {
        field(
            &hub,
            "ordered",
            "{.status.workflow.steps[0].subSteps[0].message}",
        )
        .contains("is not healthy")
        .then_some(())
    });
    assert_eq!(
        field(
            &hub,
            "ordered",
            "{.status.workflow.mode} {.status.workflow.steps[0].subSteps[1].phase}"
        ),
        "StepByStep-StepByStep pending"
    );
    assert!(!m1.exists("cm", "after", "default"));

    // A refused POST fails the step.
    apply(&hub, &dir, "loud", &loud(&url));
    wait_for("the notification step fails", WAIT, || {
        let step = field(
            &hub,
            "loud",
            "{.status.workflow.steps[0].phase} {.status.workflow.steps[0].message}",
        );
        (step.starts_with("failed ") && step.contains("slack answered 500: boom")).then_some(())
    });
    assert!(m1.exists("cm", "extra", "default"));

    // `if` over inputs: go-fast runs, go-slow is skipped, an unknown input fails the step.
    apply(&hub, &dir, "gated", GATED);
    let steps = "{range .status.workflow.steps[*]}{.name}={.phase} {end}";
    wait_for("the gated steps are done", WAIT, || {
        let got = field(&hub, "gated", steps);
        got.contains("typo=failed").then_some(())
    });
    assert_eq!(
        field(&hub, "gated", steps),
        "read=succeeded go-fast=succeeded go-slow=skipped typo=failed "
    );
    let typo = field(&hub, "gated", "{.status.workflow.steps[3].message}");
    assert!(typo.contains(r#"unknown input "mood""#), "{typo}");
    assert!(m1.exists("cm", "fast", "default"));
    assert!(!m1.exists("cm", "slow", "default"));
}
