//! Client commands against a real hub and members: `flotilla get` (and `kubectl amc get`)
//! reading members through the hub's credentials, `flotilla up`, `flotilla status`.

mod support;

use std::time::Duration;

use support::{
    Server, TestDir, flotilla, install_amc_plugin, kubectl_amc, stderr, stdout, wait_for,
};

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn get_reads_members_and_up_applies_to_the_hub() {
    let dir = TestDir::new("cli-get");
    let hub = Server::hub(&dir.path().join("hub"));
    let test = Server::member("test", &dir.path().join("test"));
    let prod = Server::member("prod", &dir.path().join("prod"));
    for (name, member) in [("test", &test), ("prod", &prod)] {
        hub.join(name, member);
    }
    test.kubectl_ok(&[
        "create",
        "deployment",
        "demo",
        "--image=nginx",
        "--replicas=1",
    ]);
    wait_for("demo ready on test", Duration::from_secs(60), || {
        (test.kubectl_ok(&[
            "get",
            "deployment",
            "demo",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]) == "1")
            .then_some(())
    });

    // One cluster: kubectl's table.
    let out = ok(
        flotilla(
            &hub.kubeconfig,
            &["get", "deployment", "demo", "-n", "default", "-m", "test"],
        ),
        "get -m test",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(
        lines[1].starts_with("demo") && lines[1].contains("1/1"),
        "{out}"
    );

    // Not there: kubectl's error, exit status 1.
    let out = flotilla(
        &hub.kubeconfig,
        &["get", "deployment", "demo", "-n", "default", "-m", "prod"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (NotFound): deployments.apps \"demo\" not found"
    );

    // All clusters: a CLUSTER column.
    let out = flotilla(&hub.kubeconfig, &["get", "deploy", "-M"]);
    let text = stdout(&out);
    assert!(
        text.lines().next().unwrap().starts_with("CLUSTER"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("test") && l.contains("demo")),
        "{text}"
    );

    // YAML of one object.
    let yaml = ok(
        flotilla(
            &hub.kubeconfig,
            &[
                "get",
                "deployments.apps",
                "demo",
                "-m",
                "test",
                "-o",
                "yaml",
            ],
        ),
        "get -o yaml",
    );
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("name: demo"),
        "{yaml}"
    );

    // Unknown kinds and clusters.
    let out = flotilla(&hub.kubeconfig, &["get", "frobnicators", "-m", "test"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the server doesn't have a resource type \"frobnicators\""));
    let out = flotilla(&hub.kubeconfig, &["get", "deploy", "-m", "nowhere"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nowhere"));

    // As a kubectl plugin.
    let bin_dir = dir.path().join("bin");
    install_amc_plugin(&bin_dir);
    let out = kubectl_amc(
        &bin_dir,
        &hub.kubeconfig,
        &["get", "deployment", "demo", "-n", "default", "-m", "test"],
    );
    assert!(out.status.success(), "kubectl amc get: {}", stderr(&out));
    assert!(stdout(&out).contains("demo"));
    let out = kubectl_amc(
        &bin_dir,
        &hub.kubeconfig,
        &["get", "deployment", "demo", "-n", "default", "-m", "prod"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Error from server (NotFound): deployments.apps \"demo\" not found"),
        "{}",
        stderr(&out)
    );

    // flotilla up: every document, created then unchanged/configured.
    let file = dir.path().join("objects.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n---\napiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: example-app\nspec:\n  components:\n  - name: hello\n    type: webservice\n    properties:\n      image: nginx\n",
    )
    .unwrap();
    let out = ok(
        flotilla(&hub.kubeconfig, &["up", "-f", file.to_str().unwrap()]),
        "up",
    );
    assert!(out.contains("configmap/settings created"), "{out}");
    assert!(
        out.contains("application.core.oam.dev/example-app created"),
        "{out}"
    );
    assert!(out.contains("flotilla status example-app"), "{out}");
    assert_eq!(
        hub.kubectl_ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.a}"]),
        "1"
    );
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"2\"\n",
    )
    .unwrap();
    let out = ok(
        flotilla(&hub.kubeconfig, &["up", "-f", file.to_str().unwrap()]),
        "up again",
    );
    assert!(out.contains("configmap/settings configured"), "{out}");
    // Like kubectl apply: a bad document fails, the others are still applied.
    let folder = dir.path().join("objects");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("1-good.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("2-bad.yaml"),
        "apiVersion: example.com/v1\nkind: Nope\nmetadata:\n  name: x\n",
    )
    .unwrap();
    let out = flotilla(&hub.kubeconfig, &["up", "-f", folder.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("configmap/other created"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("no matches for kind \"Nope\""),
        "{}",
        stderr(&out)
    );
    std::fs::write(&file, "kind: [\n").unwrap();
    let out = flotilla(&hub.kubeconfig, &["up", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());

    // flotilla status shows the About section for the application.
    let out = ok(
        flotilla(&hub.kubeconfig, &["status", "example-app"]),
        "status",
    );
    assert!(
        out.starts_with("About:\n  Name:         example-app\n  Namespace:    default\n"),
        "{out}"
    );
    let out = flotilla(&hub.kubeconfig, &["status", "missing-app"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}
