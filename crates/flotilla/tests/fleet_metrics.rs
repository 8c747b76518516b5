//! Global monitoring: members expose kube-state-metrics-named series, the hub serves every
//! available member's at `/metrics/clusters` with a `cluster` label, a stopped member's series
//! disappear, and `flotilla top clusters|apps` print the same as tables.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(90);

fn fleet_metrics(hub: &Server) -> String {
    let out = hub.kubectl(&["get", "--raw", "/metrics/clusters"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn member_with_web(hub: &Server, name: &str, dir: &TestDir, replicas: &str) -> Server {
    let member = Server::member(name, &dir.0.join(name));
    hub.join(name, &member);
    member.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        &format!("--replicas={replicas}"),
    ]);
    member.kubectl_ok(&["run", "probe", "--image=busybox"]);
    member
}

#[test]
fn fleet_metrics_and_top() {
    let dir = TestDir::new("fleet-metrics");
    let hub = Server::hub_probing_every_second(&dir.0.join("hub"));
    let east = member_with_web(&hub, "east", &dir, "2");
    let mut west = member_with_web(&hub, "west", &dir, "3");

    // Both members' series, each with its cluster label.
    let text = wait_for("both members' ready replicas", WAIT, || {
        let text = fleet_metrics(&hub);
        (text.contains(
            r#"kube_deployment_status_replicas_ready{cluster="east",namespace="default",deployment="web"} 2"#,
        ) && text.contains(
            r#"kube_deployment_status_replicas_ready{cluster="west",namespace="default",deployment="web"} 3"#,
        ) && text.contains(
            r#"kube_pod_status_phase{cluster="east",namespace="default",pod="probe",phase="Running"} 1"#,
        ))
        .then_some(text)
    });
    for expected in [
        "# TYPE kube_deployment_status_replicas gauge",
        r#"kube_deployment_status_replicas{cluster="east",namespace="default",deployment="web"} 2"#,
        r#"kube_deployment_spec_replicas{cluster="west",namespace="default",deployment="web"} 3"#,
        r#"kube_pod_status_phase{cluster="east",namespace="default",pod="probe",phase="Pending"} 0"#,
        r#"kube_node_info{cluster="west",node="west",kubelet_version="v1.33.0"#,
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    assert_eq!(
        text.matches("# TYPE kube_node_info gauge").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("apiserver_request"), "{text}");

    // The same as tables.
    let top = flotilla(&hub.kubeconfig, &["top", "clusters"]);
    assert!(top.status.success(), "{}", stderr(&top));
    let top = stdout(&top);
    let header: Vec<&str> = top
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "CLUSTER",
            "AVAILABLE",
            "VERSION",
            "DEPLOYMENTS",
            "READY",
            "PODS"
        ],
        "{top}"
    );
    let east_row: Vec<&str> = top
        .lines()
        .find(|l| l.starts_with("east "))
        .unwrap_or_else(|| panic!("no east row:\n{top}"))
        .split_whitespace()
        .collect();
    assert_eq!(east_row[..2], ["east", "True"], "{top}");
    assert!(east_row[2].starts_with("v1.33.0"), "{top}");
    assert_eq!(east_row[3..5], ["1", "2/2"], "{top}");
    // The probe Pod and the Deployment's two simulated Pods, all running.
    let (running, pods) = east_row[5].split_once('/').unwrap();
    assert_eq!(running, pods, "{top}");
    assert!(pods.parse::<u32>().unwrap() >= 3, "{top}");

    // A stopped member's series disappear.
    let _ = west.child.kill();
    let _ = west.child.wait();
    wait_for("west's series gone", WAIT, || {
        let text = fleet_metrics(&hub);
        (!text.contains(r#"cluster="west""#) && text.contains(r#"cluster="east""#)).then_some(())
    });
    drop(east);
}
