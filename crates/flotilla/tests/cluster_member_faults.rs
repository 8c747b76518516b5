//! `flotilla member` test knobs: `--count` serves several members from one process, and the
//! fault flags make a member refuse requests or never finish a rollout.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Server, TestDir, flotilla, flotilla_bin, kubectl, wait_for};

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn many_members_in_one_process_and_injected_faults() {
    let dir = TestDir::new("member-faults");
    let hub = Server::hub(&dir.path().join("hub"));

    // --count: fleet-1 and fleet-2, each with its own data dir, CA and port.
    let fleet_dir = dir.path().join("fleet");
    let log = std::fs::File::create(dir.path().join("fleet.log")).unwrap();
    let mut fleet = Running(
        Command::new(flotilla_bin())
            .args([
                "member",
                "--name",
                "fleet",
                "--count",
                "2",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&fleet_dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let mut urls = Vec::new();
    for name in ["fleet-1", "fleet-2"] {
        let kubeconfig = fleet_dir.join(name).join("admin.kubeconfig");
        wait_for(&format!("{name} ready"), Duration::from_secs(60), || {
            assert!(
                fleet.0.try_wait().unwrap().is_none(),
                "member --count exited"
            );
            (kubeconfig.exists()
                && kubectl(&kubeconfig, &["get", "--raw", "/readyz"])
                    .status
                    .success())
            .then_some(())
        });
        hub.join_kubeconfig(name, &kubeconfig);
        let ca = std::fs::read(fleet_dir.join(name).join("ca.crt")).unwrap();
        urls.push((
            std::fs::read_to_string(&kubeconfig)
                .unwrap()
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("server:")
                        .map(|s| s.trim().to_string())
                })
                .unwrap(),
            ca,
        ));
    }
    assert_ne!(urls[0].0, urls[1].0, "members share a port");
    assert_ne!(urls[0].1, urls[1].1, "members share a CA");
    let list = flotilla(&hub.kubeconfig, &["cluster", "list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("fleet-1") && list.contains("fleet-2"),
        "{list}"
    );

    // --fault-refuse all: the member answers health checks but refuses the API, so joining it
    // fails and stores nothing.
    let refusing = Server::start(
        &[
            "member",
            "--name",
            "refusing",
            "--listen",
            "127.0.0.1:0",
            "--fault-refuse",
            "all",
        ],
        &dir.path().join("refusing"),
    );
    let out = flotilla(
        &hub.kubeconfig,
        &[
            "cluster",
            "join",
            refusing.kubeconfig.to_str().unwrap(),
            "--name",
            "refusing",
        ],
    );
    assert!(
        !out.status.success(),
        "joined a member that refuses every request"
    );
    assert!(
        !hub.kubectl(&["get", "managedcluster", "refusing"])
            .status
            .success()
    );

    // --fault-stuck: rollouts are observed but never ready.
    let stuck = Server::start(
        &[
            "member",
            "--name",
            "stuck",
            "--listen",
            "127.0.0.1:0",
            "--fault-stuck",
        ],
        &dir.path().join("stuck"),
    );
    stuck.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    wait_for(
        "the rollout to be observed",
        Duration::from_secs(30),
        || {
            (!stuck
                .kubectl_ok(&[
                    "get",
                    "deployment",
                    "web",
                    "-o",
                    "jsonpath={.status.observedGeneration}",
                ])
                .is_empty())
            .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        stuck.kubectl_ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}"
        ]),
        ""
    );
}
