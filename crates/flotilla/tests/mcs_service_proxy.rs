//! The service proxy of a simulated member answers as its Pods would: round-robin over the
//! Service's ready Pods, faults from the Deployment's annotations, 503 with no ready Pod, the
//! pod proxy form, and RBAC on `services/proxy`.

mod support;

use serde_json::Value;
use support::fleet::{echo_workload, wait_ready_pods};
use support::{Server, TestDir, stderr, stdout};

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
    echo_workload(&member, "default", "echo", 0);
    let svc = "/api/v1/namespaces/default/services/echo:http/proxy/hello/world?x=1";

    // No ready Pod: 503 as kube-apiserver words it.
    let err = raw_get(&member, svc).unwrap_err();
    assert!(
        err.contains("no endpoints available for service \"echo:http\""),
        "{err}"
    );

    member.kubectl_ok(&[
        "scale",
        "deployment",
        "echo",
        "-n",
        "default",
        "--replicas=2",
    ]);
    let ready = wait_ready_pods(&member, "default", "echo", 2);
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
    let (a, b) = (ready[0].0.clone(), ready[1].0.clone());
    assert_eq!(pods, [a.clone(), a, b.clone(), b.clone()], "round-robin");

    // The pod proxy form answers for that Pod.
    let body = raw_get(
        &member,
        &format!("/api/v1/namespaces/default/pods/{b}:8080/proxy/"),
    )
    .unwrap();
    assert_eq!(
        (body["pod"].as_str(), body["path"].as_str()),
        (Some(b.as_str()), Some("/"))
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
    echo_workload(&member, "default", "echo", 1);
    wait_ready_pods(&member, "default", "echo", 1);
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
