//! The seed-multicluster-demo walkthrough (scenarios/README.md), verbatim: three members, the
//! user's YAML files unchanged, real kubectl and the flotilla CLI.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, stdout, table_header, wait_for};

const WAIT: Duration = Duration::from_secs(90);

fn scenario(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/seed-multicluster-demo")
        .join(file)
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", stderr(&out));
    stdout(&out)
}

/// `flotilla status APP` once it contains every needle (the last output on timeout).
fn status_with(hub: &Server, args: &[&str], needles: &[&str]) -> String {
    let mut last = String::new();
    let found = (0..(WAIT.as_millis() / 300)).find_map(|_| {
        let out = flotilla(&hub.kubeconfig, args);
        last = format!("{}{}", stdout(&out), stderr(&out));
        if needles.iter().all(|n| last.contains(n)) {
            return Some(last.clone());
        }
        std::thread::sleep(Duration::from_millis(300));
        None
    });
    found.unwrap_or_else(|| {
        let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
        let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        panic!("`flotilla {args:?}` never showed {needles:?}; last output:\n{last}\nhub log (reversed tail):\n{tail}")
    })
}

/// The service block of one cluster in `flotilla status` output.
fn service_block<'a>(status: &'a str, cluster: &str) -> &'a str {
    let marker = format!("Cluster: {cluster}  Namespace:");
    let start = status
        .find(&marker)
        .unwrap_or_else(|| panic!("no service for {cluster} in:\n{status}"));
    let rest = &status[start..];
    let end = rest[1..]
        .find("  - Name:")
        .map(|i| i + 1)
        .unwrap_or(rest.len());
    &rest[..end]
}

fn member_replicas(member: &Server, name: &str, namespace: &str) -> Option<String> {
    let out = member.kubectl(&[
        "get",
        "deployment",
        name,
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.replicas}/{.status.readyReplicas}",
    ]);
    out.status.success().then(|| stdout(&out))
}

#[test]
fn seed_multicluster_demo() {
    let dir = TestDir::new("scenario-mc");
    let hub = Server::hub(&dir.0.join("hub"));
    let names = ["beijing-1", "beijing-2", "us-west-1"];
    let members: Vec<Server> = names
        .iter()
        .map(|n| Server::member(n, &dir.0.join(n)))
        .collect();

    // 1. join the three members; `cluster list` shows them.
    for (name, member) in names.iter().zip(&members) {
        hub.join(name, member);
    }
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    let header = table_header(&list);
    assert_eq!(
        header,
        ["CLUSTER", "TYPE", "ENDPOINT", "ACCEPTED", "LABELS"]
    );
    for (name, member) in names.iter().zip(&members) {
        let row = list
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{list}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells[1..4],
            ["X509Certificate", member.url().as_str(), "true"],
            "{row}"
        );
    }

    // 2. basic.yaml: beijing-1 and beijing-2 run 3 replicas behind a gateway; us-west-1 nothing.
    let basic = scenario("basic.yaml");
    ok(
        flotilla(&hub.kubeconfig, &["up", "-f", basic.to_str().unwrap()]),
        "up basic.yaml",
    );
    let status = status_with(
        &hub,
        &["status", "example-app"],
        &["Status:       running\n", "Cluster: beijing-2"],
    );
    assert!(status.contains("  Name:         example-app\n"), "{status}");
    assert!(status.contains("  Namespace:    default\n"), "{status}");
    assert!(status.contains("  mode: StepByStep-DAG\n"), "{status}");
    assert!(status.contains("  finished: true\n"), "{status}");
    assert!(
        status.contains(
            "    name: deploy-beijing-clusters\n    type: deploy\n    phase: succeeded\n"
        ),
        "{status}"
    );
    assert_eq!(status.matches("  - id: ").count(), 1, "one step:\n{status}");
    for cluster in ["beijing-1", "beijing-2"] {
        let block = service_block(&status, cluster);
        assert!(
            block.contains(&format!("Cluster: {cluster}  Namespace: default")),
            "{block}"
        );
        assert!(block.contains("Type: webservice"), "{block}");
        assert!(block.contains("Healthy Ready:3/3"), "{block}");
        assert!(block.contains("✅ scaler"), "{block}");
        assert!(
            block.contains("✅ gateway: Visiting URL: testsvc-mc.example.com, IP: "),
            "{block}"
        );
    }
    assert!(!status.contains("Cluster: us-west-1"), "{status}");
    let table = hub.kubectl_ok(&["get", "app", "example-app"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        ["example-app", "hello-world-server", "webservice", "running"],
        "{table}"
    );
    for member in &members[..2] {
        assert_eq!(
            member_replicas(member, "hello-world-server", "default").as_deref(),
            Some("3/3")
        );
        let labels = member.kubectl_ok(&[
            "get", "deployment", "hello-world-server", "-n", "default",
            "-o", "jsonpath={.metadata.labels.app\\.oam\\.dev/name}/{.metadata.labels.app\\.oam\\.dev/component}",
        ]);
        assert_eq!(labels, "example-app/hello-world-server");
        let ingress_host = member.kubectl_ok(&[
            "get",
            "ingress",
            "hello-world-server",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.rules[0].host}",
        ]);
        assert_eq!(ingress_host, "testsvc-mc.example.com");
    }
    let nothing = members[2].kubectl(&["get", "deployment", "hello-world-server", "-n", "default"]);
    assert!(!nothing.status.success());
    assert!(
        stderr(&nothing).contains("deployments.apps \"hello-world-server\" not found"),
        "{}",
        stderr(&nothing)
    );
    // The same through the hub: `flotilla get -m`.
    let remote = flotilla(
        &hub.kubeconfig,
        &[
            "get",
            "deployment",
            "hello-world-server",
            "-n",
            "default",
            "-m",
            "beijing-1",
        ],
    );
    let remote = ok(remote, "flotilla get -m beijing-1");
    assert!(
        remote
            .lines()
            .any(|l| l.starts_with("hello-world-server") && l.contains("3/3")),
        "{remote}"
    );

    // 4. label us-west-1; intermediate.yaml adds a label-selected topology.
    ok(
        flotilla(
            &hub.kubeconfig,
            &["cluster", "labels", "add", "us-west-1", "provider=AWS"],
        ),
        "labels add",
    );
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    let row = list.lines().find(|l| l.starts_with("us-west-1")).unwrap();
    assert!(row.contains("provider=AWS"), "{list}");
    let intermediate = scenario("intermediate.yaml");
    ok(
        flotilla(
            &hub.kubeconfig,
            &["up", "-f", intermediate.to_str().unwrap()],
        ),
        "up intermediate.yaml",
    );
    let status = status_with(
        &hub,
        &["status", "example-app"],
        &[
            "Status:       running\n",
            "Cluster: us-west-1",
            "name: deploy-topology-aws",
        ],
    );
    assert!(
        service_block(&status, "us-west-1").contains("Healthy Ready:3/3"),
        "{status}"
    );
    assert_eq!(
        member_replicas(&members[2], "hello-world-server", "default").as_deref(),
        Some("3/3")
    );

    // 5. advanced.yaml: deploy-beijing then deploy-aws with the override: us-west-1 runs 5.
    let advanced = scenario("advanced.yaml");
    ok(
        flotilla(&hub.kubeconfig, &["up", "-f", advanced.to_str().unwrap()]),
        "up advanced.yaml",
    );
    let status = status_with(
        &hub,
        &["status", "example-app"],
        &["Status:       running\n", "name: deploy-aws", "Ready:5/5"],
    );
    assert!(
        status.contains("    name: deploy-beijing\n    type: deploy\n    phase: succeeded\n"),
        "{status}"
    );
    assert!(
        status.contains("    name: deploy-aws\n    type: deploy\n    phase: succeeded\n"),
        "{status}"
    );
    assert!(
        service_block(&status, "us-west-1").contains("Healthy Ready:5/5"),
        "{status}"
    );
    assert!(
        service_block(&status, "beijing-1").contains("Healthy Ready:3/3"),
        "{status}"
    );
    assert!(
        service_block(&status, "beijing-2").contains("Healthy Ready:3/3"),
        "{status}"
    );
    assert_eq!(
        member_replicas(&members[2], "hello-world-server", "default").as_deref(),
        Some("5/5")
    );
    assert_eq!(
        member_replicas(&members[0], "hello-world-server", "default").as_deref(),
        Some("3/3")
    );

    // 3. (missing namespace) an application in a namespace the member lacks: the step fails
    // naming the cluster; creating the namespace there lets the retry succeed.
    hub.kubectl_ok(&["create", "namespace", "staging"]);
    let app = dir.0.join("staging.yaml");
    std::fs::write(
        &app,
        std::fs::read_to_string(&basic)
            .unwrap()
            .replace("namespace: default", "namespace: staging"),
    )
    .unwrap();
    ok(
        flotilla(&hub.kubeconfig, &["up", "-f", app.to_str().unwrap()]),
        "up staging",
    );
    let status = status_with(
        &hub,
        &["status", "example-app", "-n", "staging"],
        &[
            "Status:       workflowFailed",
            "namespaces \"staging\" not found",
        ],
    );
    assert!(status.contains("phase: failed"), "{status}");
    assert!(
        status.contains("beijing-1"),
        "the message names the cluster:\n{status}"
    );
    for member in &members[..2] {
        member.kubectl_ok(&["create", "namespace", "staging"]);
    }
    let status = status_with(
        &hub,
        &["status", "example-app", "-n", "staging"],
        &["Status:       running\n", "Cluster: beijing-2"],
    );
    assert!(
        service_block(&status, "beijing-1").contains("Healthy Ready:3/3"),
        "{status}"
    );

    // The documented opt-in: `flotilla.io/create-namespace: "true"` creates it in the member.
    hub.kubectl_ok(&["create", "namespace", "qa"]);
    let app = dir.0.join("qa.yaml");
    std::fs::write(
        &app,
        std::fs::read_to_string(&basic).unwrap().replace(
            "namespace: default\n",
            "namespace: qa\n  annotations:\n    flotilla.io/create-namespace: \"true\"\n",
        ),
    )
    .unwrap();
    ok(
        flotilla(&hub.kubeconfig, &["up", "-f", app.to_str().unwrap()]),
        "up qa",
    );
    let status = status_with(
        &hub,
        &["status", "example-app", "-n", "qa"],
        &["Status:       running\n", "Cluster: beijing-2"],
    );
    assert!(
        service_block(&status, "beijing-1").contains("Namespace: qa"),
        "{status}"
    );
    assert_eq!(
        member_replicas(&members[1], "hello-world-server", "qa").as_deref(),
        Some("3/3")
    );

    // Deleting the application deletes what it dispatched, everywhere.
    hub.kubectl_ok(&["delete", "application", "example-app", "-n", "default"]);
    wait_for("member objects deleted", WAIT, || {
        members
            .iter()
            .all(|m| member_replicas(m, "hello-world-server", "default").is_none())
            .then_some(())
    });
}
