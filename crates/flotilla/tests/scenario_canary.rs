//! The seed-canary walkthrough (scenarios/README.md), verbatim: two members, a hub-side
//! Deployment distributed by `ref-objects`, a standalone topology Policy per cluster and a
//! standalone Workflow whose prod step waits for `workflow resume`; `publishVersion` gating.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::{
    Server, TestDir, flotilla, install_amc_plugin, kubectl_amc, stderr, stdout, table_header,
    wait_for,
};

const WAIT: Duration = Duration::from_secs(90);

fn scenario(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/seed-canary")
        .join(file)
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", stderr(&out));
    stdout(&out)
}

fn member_deployment(member: &Server) -> Option<(String, String)> {
    let out = member.kubectl(&[
        "get",
        "deployment",
        "demo",
        "-n",
        "demo",
        "-o",
        "jsonpath={.status.readyReplicas}/{.spec.replicas} {.spec.template.spec.containers[0].image}",
    ]);
    if !out.status.success() {
        return None;
    }
    let text = stdout(&out);
    let (ready, image) = text.split_once(' ')?;
    Some((ready.to_string(), image.to_string()))
}

/// The row of `kubectl get app demo -n demo` once it starts with `prefix`.
fn app_row(hub: &Server, prefix: &[&str]) -> Vec<String> {
    let mut last = String::new();
    let found = (0..(WAIT.as_millis() / 300)).find_map(|_| {
        let out = hub.kubectl(&["get", "app", "demo", "-n", "demo"]);
        last = format!("{}{}", stdout(&out), stderr(&out));
        let row: Vec<String> = last
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        if row.len() >= prefix.len() && row.iter().zip(prefix).all(|(a, b)| a == b) {
            return Some(row);
        }
        std::thread::sleep(Duration::from_millis(300));
        None
    });
    found.unwrap_or_else(|| {
        let status = hub.kubectl(&["get", "app", "demo", "-n", "demo", "-o", "yaml"]);
        panic!(
            "kubectl get app never showed {prefix:?}; last:\n{last}\n{}",
            stdout(&status)
        )
    })
}

#[test]
fn seed_canary() {
    let dir = TestDir::new("scenario-canary");
    let hub = Server::hub(&dir.0.join("hub"));
    let test_member = Server::member("test", &dir.0.join("test"));
    let prod_member = Server::member("prod", &dir.0.join("prod"));
    for (name, member) in [("test", &test_member), ("prod", &prod_member)] {
        hub.join(name, member);
    }

    // 1. the cluster ids come from `kubectl get managedclusters`.
    let clusters = hub.kubectl_ok(&["get", "managedclusters"]);
    let header = table_header(&clusters);
    assert_eq!(
        header,
        [
            "NAME",
            "HUB",
            "ACCEPTED",
            "MANAGED",
            "CLUSTER",
            "URLS",
            "JOINED",
            "AVAILABLE",
            "AGE"
        ]
    );
    let ids: Vec<&str> = clusters
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["prod", "test"], "{clusters}");
    for line in clusters.lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], "true", "{clusters}");
        assert!(cells[2].starts_with("https://127.0.0.1:"), "{clusters}");
    }
    let topology = std::fs::read_to_string(scenario("policy-topology.yaml"))
        .unwrap()
        .replace("<clusterid1>", "test")
        .replace("<clusterid2>", "prod");
    let topology_file = dir.0.join("policy-topology.yaml");
    std::fs::write(&topology_file, topology).unwrap();

    // 2. namespace demo everywhere; the hub stores the Deployment and runs nothing.
    for server in [&hub, &test_member, &prod_member] {
        server.kubectl_ok(&["create", "namespace", "demo"]);
    }
    let meta = scenario("app-meta.yaml");
    hub.kubectl_ok(&["apply", "-f", meta.to_str().unwrap()]);
    let on_hub = hub.kubectl_ok(&[
        "get",
        "deployment",
        "demo",
        "-n",
        "demo",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(on_hub, "", "the hub runs nothing");

    // 3. policies, workflow, application.
    hub.kubectl_ok(&["apply", "-f", topology_file.to_str().unwrap()]);
    hub.kubectl_ok(&["apply", "-f", scenario("workflow.yaml").to_str().unwrap()]);
    hub.kubectl_ok(&["apply", "-f", scenario("app.yaml").to_str().unwrap()]);

    // 4. deploy-test done, deploy-prod waiting for approval.
    let header = hub.kubectl_ok(&["get", "app", "demo", "-n", "demo"]);
    let header = table_header(&header);
    assert_eq!(
        header,
        [
            "NAME",
            "COMPONENT",
            "TYPE",
            "PHASE",
            "HEALTHY",
            "STATUS",
            "AGE"
        ]
    );
    app_row(
        &hub,
        &["demo", "demo", "ref-objects", "workflowSuspending", "true"],
    );
    let step = hub.kubectl_ok(&[
        "get",
        "app",
        "demo",
        "-n",
        "demo",
        "-o",
        "jsonpath={.status.workflow.steps[1].phase}: {.status.workflow.steps[1].message}",
    ]);
    assert_eq!(
        step,
        "suspending: Waiting approval to the deploy step \"deploy-prod\""
    );

    // 5. test runs the Deployment 1/1; prod has none — through flotilla get and kubectl amc.
    wait_for("test member Deployment ready", WAIT, || {
        (member_deployment(&test_member)?.0 == "1/1").then_some(())
    });
    let got = ok(
        flotilla(
            &hub.kubeconfig,
            &["get", "deployment", "demo", "-n", "demo", "-m", "test"],
        ),
        "flotilla get -m test",
    );
    assert!(
        got.lines().next().unwrap_or("").starts_with("NAME"),
        "{got}"
    );
    assert!(
        got.lines()
            .any(|l| l.starts_with("demo") && l.contains("1/1")),
        "{got}"
    );
    let missing = flotilla(
        &hub.kubeconfig,
        &["get", "deployment", "demo", "-n", "demo", "-m", "prod"],
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing)
            .contains("Error from server (NotFound): deployments.apps \"demo\" not found"),
        "{}",
        stderr(&missing)
    );
    let plugin_dir = dir.0.join("plugins");
    install_amc_plugin(&plugin_dir);
    let got = ok(
        kubectl_amc(
            &plugin_dir,
            &hub.kubeconfig,
            &["get", "deployment", "demo", "-n", "demo", "-m", "test"],
        ),
        "kubectl amc get -m test",
    );
    assert!(
        got.lines()
            .any(|l| l.starts_with("demo") && l.contains("1/1")),
        "{got}"
    );
    let missing = kubectl_amc(
        &plugin_dir,
        &hub.kubeconfig,
        &["get", "deployment", "demo", "-n", "demo", "-m", "prod"],
    );
    assert!(
        stderr(&missing)
            .contains("Error from server (NotFound): deployments.apps \"demo\" not found"),
        "{}",
        stderr(&missing)
    );

    // 6. resume: prod gets the Deployment and the application runs.
    let resumed = ok(
        flotilla(
            &hub.kubeconfig,
            &["workflow", "resume", "demo", "-n", "demo"],
        ),
        "workflow resume",
    );
    assert_eq!(resumed.trim(), "Successfully resume workflow: demo");
    app_row(&hub, &["demo", "demo", "ref-objects", "running"]);
    wait_for("prod member Deployment ready", WAIT, || {
        (member_deployment(&prod_member)?.0 == "1/1").then_some(())
    });
    let again = flotilla(
        &hub.kubeconfig,
        &["workflow", "resume", "demo", "-n", "demo"],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not suspended"),
        "{}",
        stderr(&again)
    );

    // 7. editing app-meta.yaml without bumping publishVersion redistributes nothing...
    let blue = std::fs::read_to_string(&meta)
        .unwrap()
        .replace(":red", ":blue");
    let blue_file = dir.0.join("app-meta-blue.yaml");
    std::fs::write(&blue_file, blue).unwrap();
    hub.kubectl_ok(&["apply", "-f", blue_file.to_str().unwrap()]);
    // Make the controller look at the application again (a label is not a spec change).
    hub.kubectl_ok(&["label", "app", "demo", "-n", "demo", "touched=1"]);
    std::thread::sleep(Duration::from_secs(4));
    app_row(&hub, &["demo", "demo", "ref-objects", "running"]);
    for member in [&test_member, &prod_member] {
        let (_, image) = member_deployment(member).unwrap();
        assert!(
            image.ends_with(":red"),
            "redistributed without a publishVersion bump: {image}"
        );
    }
    // ...bumping it does: test first, prod after approval (through `kubectl amc`).
    hub.kubectl_ok(&[
        "annotate",
        "app",
        "demo",
        "-n",
        "demo",
        "--overwrite",
        "app.oam.dev/publishVersion=version2",
    ]);
    wait_for("test member runs :blue", WAIT, || {
        member_deployment(&test_member)?
            .1
            .ends_with(":blue")
            .then_some(())
    });
    app_row(&hub, &["demo", "demo", "ref-objects", "workflowSuspending"]);
    assert!(member_deployment(&prod_member).unwrap().1.ends_with(":red"));
    let resumed = ok(
        kubectl_amc(
            &plugin_dir,
            &hub.kubeconfig,
            &["workflow", "resume", "demo", "-n", "demo"],
        ),
        "kubectl amc workflow resume",
    );
    assert_eq!(resumed.trim(), "Successfully resume workflow: demo");
    wait_for("prod member runs :blue", WAIT, || {
        let (ready, image) = member_deployment(&prod_member)?;
        (image.ends_with(":blue") && ready == "1/1").then_some(())
    });
    app_row(&hub, &["demo", "demo", "ref-objects", "running"]);
    let revisions = hub.kubectl_ok(&["get", "apprev", "-n", "demo", "-o", "name"]);
    assert!(
        revisions.contains("demo-v1") && revisions.contains("demo-v2"),
        "{revisions}"
    );
}
