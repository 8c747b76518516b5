//! `flotilla dev`: comes up with every member joined, works, stops cleanly on SIGINT with no
//! process left behind, and comes back with the same state on the same data dir.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{TestDir, flotilla, flotilla_bin, stderr, stdout, wait_for};

/// A running `flotilla dev`, killed on drop if the test fails half-way.
struct Dev {
    child: Child,
    output: Vec<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        for pid in children(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn children(pid: u32) -> Vec<u32> {
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

fn start_dev(data_dir: &Path) -> Dev {
    let mut child = Command::new(flotilla_bin())
        .args(["dev", "--clusters", "alpha,beta", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut dev = Dev {
        child,
        output: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = reader.lines();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        let done = line.contains("Press Ctrl-C");
        dev.output.push(line);
        if done {
            // Keep reading so the dev process can print while it stops.
            std::thread::spawn(move || lines.for_each(drop));
            return dev;
        }
        assert!(
            Instant::now() < deadline,
            "dev did not come up:\n{}",
            dev.output.join("\n")
        );
    }
    panic!("dev exited early:\n{}", dev.output.join("\n"));
}

fn stop_dev(mut dev: Dev) {
    let pids = children(dev.child.id());
    assert_eq!(pids.len(), 3, "a hub and two members: {pids:?}");
    let status = Command::new("kill")
        .args(["-INT", &dev.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_for("dev to stop", Duration::from_secs(60), || {
        dev.child.try_wait().unwrap()
    });
    assert!(exit.success(), "dev exited with {exit}");
    for pid in pids {
        assert!(!alive(pid), "child {pid} outlived flotilla dev");
    }
}

#[test]
fn dev_comes_up_works_and_stops_cleanly() {
    let dir = TestDir::new("dev");
    let data_dir = dir.path().join("dev");
    let dev = start_dev(&data_dir);
    let hub_kubeconfig = data_dir.join("hub.kubeconfig");
    assert!(
        dev.output.iter().any(|l| l.contains("export KUBECONFIG=")),
        "{:?}",
        dev.output
    );
    assert!(data_dir.join("alpha.kubeconfig").exists());
    assert!(data_dir.join("beta.kubeconfig").exists());

    let out = flotilla(&hub_kubeconfig, &["cluster", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(
        list.lines()
            .any(|l| l.starts_with("alpha ") && l.contains("X509Certificate")),
        "{list}"
    );
    assert!(list.lines().any(|l| l.starts_with("beta ")), "{list}");
    flotilla(
        &hub_kubeconfig,
        &["cluster", "labels", "add", "beta", "env=staging"],
    );
    let first_list = stdout(&flotilla(&hub_kubeconfig, &["cluster", "list"]));

    // A second playground on the same data dir is refused and disturbs nothing.
    let second = Command::new(flotilla_bin())
        .args(["dev", "--clusters", "alpha,beta", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("another flotilla dev"),
        "{}",
        stderr(&second)
    );
    assert!(data_dir.join("hub").join("admin.kubeconfig").exists());

    // The member kubeconfigs work with kubectl.
    let out = support::kubectl(&data_dir.join("alpha.kubeconfig"), &["get", "namespaces"]);
    assert!(out.status.success(), "{}", stderr(&out));

    stop_dev(dev);

    // Same data dir: same clusters, same labels, same endpoints when the ports are free.
    let dev = start_dev(&data_dir);
    let out = flotilla(&hub_kubeconfig, &["cluster", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second_list = stdout(&out);
    assert!(second_list.contains("env=staging"), "{second_list}");
    assert_eq!(
        first_list.lines().count(),
        second_list.lines().count(),
        "{first_list}\n{second_list}"
    );
    stop_dev(dev);
}
