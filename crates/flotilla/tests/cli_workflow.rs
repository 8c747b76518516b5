//! `flotilla workflow` operations against the hub's application controller, as the CLI and as
//! the `kubectl amc` plugin.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{
    Server, TestDir, flotilla, flotilla_bin, install_amc_plugin, kubectl_amc, stderr, stdout,
    wait_for,
};

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: demo
  namespace: default
spec:
  components:
  - name: demo
    type: webservice
    properties:
      image: nginx
  policies:
  - name: target
    type: topology
    properties:
      clusters: ["m1"]
  workflow:
    steps:
    - name: deploy-m1
      type: deploy
      properties:
        policies: ["target"]
        auto: false
"#;

fn phase(hub: &Server) -> String {
    hub.kubectl_ok(&["get", "app", "demo", "-o", "jsonpath={.status.status}"])
}

#[test]
fn suspend_resume_and_refusals() {
    let dir = TestDir::new("cli-workflow");
    let hub = Server::hub(&dir.path().join("hub"));
    let member = Server::member("m1", &dir.path().join("m1"));
    hub.join("m1", &member);
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let out = flotilla(&hub.kubeconfig, &["up", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    wait_for(
        "the deploy step to wait for approval",
        Duration::from_secs(60),
        || (phase(&hub) == "workflowSuspending").then_some(()),
    );
    let status = stdout(&flotilla(&hub.kubeconfig, &["status", "demo"]));
    assert!(status.contains("  Suspend: true\n"), "{status}");
    assert!(status.contains("    phase: suspending\n"), "{status}");
    assert!(
        !member
            .kubectl(&["get", "deployment", "demo"])
            .status
            .success()
    );

    // `status --watch` follows the application from here on.
    let mut watch = Command::new(flotilla_bin())
        .args(["status", "demo", "--watch"])
        .env("KUBECONFIG", &hub.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watched = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let watched = watched.clone();
        let stdout = watch.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let mut w = watched.lock().unwrap();
                w.push_str(&line);
                w.push('\n');
            }
        })
    };

    // Resume through the kubectl plugin form.
    let bin_dir = dir.path().join("bin");
    install_amc_plugin(&bin_dir);
    let out = kubectl_amc(
        &bin_dir,
        &hub.kubeconfig,
        &["workflow", "resume", "demo", "-n", "default"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Successfully resume workflow: demo");

    wait_for("the application to run", Duration::from_secs(60), || {
        (phase(&hub) == "running").then_some(())
    });
    wait_for("the deployment on m1", Duration::from_secs(30), || {
        member
            .kubectl(&["get", "deployment", "demo"])
            .status
            .success()
            .then_some(())
    });

    wait_for(
        "status --watch to show the finished workflow",
        Duration::from_secs(30),
        || {
            let w = watched.lock().unwrap();
            (w.contains("  Suspend: true\n") && w.contains("  Status:       running\n"))
                .then_some(())
        },
    );
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();

    // Refusals: one line on stderr, non-zero exit.
    let out = flotilla(&hub.kubeconfig, &["workflow", "resume", "demo"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not suspended"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1);
    let out = flotilla(&hub.kubeconfig, &["workflow", "suspend", "nothere"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // Restart runs the workflow again: it waits for approval once more.
    let out = flotilla(&hub.kubeconfig, &["workflow", "restart", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Successfully restart workflow: demo");
    wait_for(
        "the restarted workflow to wait",
        Duration::from_secs(60),
        || (phase(&hub) == "workflowSuspending").then_some(()),
    );
    let out = flotilla(&hub.kubeconfig, &["workflow", "terminate", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "the workflow to be terminated",
        Duration::from_secs(30),
        || (phase(&hub) == "workflowTerminated").then_some(()),
    );
    let out = flotilla(&hub.kubeconfig, &["workflow", "resume", "demo"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("terminated"), "{}", stderr(&out));

    // Rollback returns to the last revision whose workflow succeeded.
    let rb = |image: &str| {
        format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: rb\n  namespace: default\nspec:\n  components:\n  - name: rb\n    type: webservice\n    properties:\n      image: {image}\n  policies:\n  - name: t\n    type: topology\n    properties:\n      clusters: [\"m1\"]\n"
        )
    };
    let rb_phase = || {
        hub.kubectl_ok(&[
            "get",
            "app",
            "rb",
            "-o",
            "jsonpath={.status.status}/{.status.latestRevision.name}",
        ])
    };
    for (image, revision) in [("nginx:1", "rb-v1"), ("nginx:2", "rb-v2")] {
        std::fs::write(&file, rb(image)).unwrap();
        let out = flotilla(&hub.kubeconfig, &["up", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        wait_for(
            &format!("rb running {image}"),
            Duration::from_secs(60),
            || (rb_phase() == format!("running/{revision}")).then_some(()),
        );
    }
    let out = flotilla(&hub.kubeconfig, &["workflow", "rollback", "rb"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Successfully rollback workflow: rb");
    wait_for(
        "the member to run the old image",
        Duration::from_secs(60),
        || {
            (member.kubectl_ok(&[
                "get",
                "deployment",
                "rb",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ]) == "nginx:1")
                .then_some(())
        },
    );
}
