//! The service proxy of a simulated member answers as its Pods would: round-robin over the
//! Service's ready Pods, faults from the Deployment's annotations, 503 with no ready Pod, the
//! pod proxy form, and RBAC on `services/proxy`.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Server, TestDir, stderr, stdout};

fn apply(member: &Server, yaml: &str) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&member.kubeconfig)
        .args(["apply", "-f", "-"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(yaml.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

/// A Deployment that owns no Pods of its own (the proxy finds it by its selector), a Service
/// and two bare Pods the member's kubelet keeps from starting (`sim.flotilla.io/stuck`) until
/// the test lets them.
const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 0
  selector: {matchLabels: {app: echo-hand}}
  template:
    metadata: {labels: {app: echo-hand}}
    spec: {containers: [{name: echo, image: echo:1}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo-hand}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-a
  namespace: default
  labels: {app: echo-hand}
  annotations: {sim.flotilla.io/stuck: "true"}
spec: {containers: [{name: echo, image: echo:1}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-b
  namespace: default
  labels: {app: echo-hand}
  annotations: {sim.flotilla.io/stuck: "true"}
spec: {containers: [{name: echo, image: echo:1}]}
"#;

/// Lets the member's kubelet run the Pod (or stops it), then waits until its Ready condition
/// says so.
fn set_pod_ready(member: &Server, pod: &str, ready: bool) {
    let stuck = format!("sim.flotilla.io/stuck={}", !ready);
    member.kubectl_ok(&[
        "annotate",
        "pod",
        pod,
        "-n",
        "default",
        "--overwrite",
        &stuck,
    ]);
    let want = if ready { "True" } else { "False" };
    support::wait_for(
        &format!("{pod} Ready={want}"),
        std::time::Duration::from_secs(60),
        || {
            let v = member.jsonpath(
                "pod",
                pod,
                "default",
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            (v == want).then_some(())
        },
    );
}

fn raw_get(member: &Server, path: &str) -> Result<Value, String> {
    let out = member.kubectl(&["get", "--raw", path]);
    if out.status.success() {
        Ok(serde_json::from_str(&stdout(&out)).expect("JSON answer"))
    } else {
        Err(stderr(&out))
    }
}

#[test]
fn service_proxy_answers_as_the_pods() {
    let dir = TestDir::new("svc-proxy");
    let member = Server::member("proxy-1", &dir.path().join("m"));
    apply(&member, OBJECTS);
    let svc = "/api/v1/namespaces/default/services/echo:http/proxy/hello/world?x=1";

    // No ready Pod yet: 503 as kube-apiserver words it.
    let err = raw_get(&member, svc).unwrap_err();
    assert!(
        err.contains("no endpoints available for service \"echo:http\""),
        "{err}"
    );

    set_pod_ready(&member, "echo-a", true);
    set_pod_ready(&member, "echo-b", true);
    let mut pods = Vec::new();
    for _ in 0..4 {
        let body = raw_get(&member, svc).unwrap();
        assert_eq!(body["cluster"], "proxy-1");
        assert_eq!(body["namespace"], "default");
        assert_eq!(body["method"], "GET");
        assert_eq!(body["path"], "/hello/world");
        assert!(body["headers"]["user-agent"].is_string(), "{body}");
        pods.push(body["pod"].as_str().unwrap().to_string());
    }
    pods.sort();
    assert_eq!(
        pods,
        ["echo-a", "echo-a", "echo-b", "echo-b"],
        "round-robin"
    );

    // An unready Pod drops out.
    set_pod_ready(&member, "echo-b", false);
    for _ in 0..3 {
        assert_eq!(raw_get(&member, svc).unwrap()["pod"], "echo-a");
    }

    // The pod proxy form answers for that Pod.
    let body = raw_get(
        &member,
        "/api/v1/namespaces/default/pods/echo-b:8080/proxy/",
    )
    .unwrap();
    assert_eq!(
        (body["pod"].as_str(), body["path"].as_str()),
        (Some("echo-b"), Some("/"))
    );

    // POST through the proxy is a create on services/proxy.
    let out = member.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/services/echo/proxy/submit",
        "-f",
        "-",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"method\":\"POST\""),
        "{}",
        stdout(&out)
    );

    // Faults from the Deployment's annotations.
    member.kubectl_ok(&[
        "annotate",
        "deployment",
        "echo",
        "-n",
        "default",
        "sim.flotilla.io/http-status=503",
        "sim.flotilla.io/http-latency=50ms",
    ]);
    let err = raw_get(&member, svc).unwrap_err();
    assert!(err.contains("ServiceUnavailable"), "{err}");

    // A missing Service is NotFound.
    let err = raw_get(&member, "/api/v1/namespaces/default/services/nope/proxy/").unwrap_err();
    assert!(err.contains("services \"nope\" not found"), "{err}");
}

#[test]
fn proxy_needs_the_proxy_subresource_permission() {
    let dir = TestDir::new("svc-proxy-rbac");
    let member = Server::member("proxy-2", &dir.path().join("m"));
    apply(&member, OBJECTS);
    set_pod_ready(&member, "echo-a", true);
    let can = |verb: &str, resource: &str, user: &str| {
        stdout(&member.kubectl(&[
            "auth",
            "can-i",
            verb,
            resource,
            "--subresource=proxy",
            "--as",
            user,
            "-n",
            "default",
        ]))
        .trim()
        .to_string()
    };
    member.kubectl_ok(&[
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        "--user=viewer",
        "-n",
        "default",
    ]);
    member.kubectl_ok(&[
        "create",
        "rolebinding",
        "editor",
        "--clusterrole=edit",
        "--user=editor",
        "-n",
        "default",
    ]);
    assert_eq!(can("get", "services", "viewer"), "no");
    assert_eq!(can("get", "services", "editor"), "yes");
    let path = "/api/v1/namespaces/default/services/echo/proxy/";
    let out = member.kubectl(&["get", "--raw", path, "--as", "viewer"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot get resource \"services/proxy\""),
        "{}",
        stderr(&out)
    );
    let out = member.kubectl(&["get", "--raw", path, "--as", "editor"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
