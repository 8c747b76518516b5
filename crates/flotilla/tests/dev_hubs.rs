//! `flotilla dev --hubs N`: a 3-member etcd cluster from the `etcd` on PATH, N hubs over it,
//! `DIR/hub-<i>.kubeconfig` for each; without an `etcd` binary, an error naming the package.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{TestDir, flotilla_bin, kubectl, stderr, stdout, wait_for};

/// A running `flotilla dev`; its process group is killed on drop if the test fails half-way.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dev_with_two_hubs_runs_them_over_etcd() {
    let dir = TestDir::new("dev-hubs");
    let data_dir = dir.path().join("dev");
    let mut child = Command::new(flotilla_bin())
        .args(["dev", "--hubs", "2", "--clusters", "alpha", "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dev = Dev(child);
    let mut output = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Press Ctrl-C");
        output.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let text = output.join("\n");
    assert!(
        text.contains("Press Ctrl-C"),
        "dev did not come up:\n{text}"
    );
    for i in 1..=3 {
        assert!(text.contains(&format!("etcd-{i}")), "{text}");
    }

    // Both hubs serve the same fleet: alpha was joined through the first.
    let first = data_dir.join("hub-1.kubeconfig");
    let second = data_dir.join("hub-2.kubeconfig");
    assert_eq!(
        std::fs::read(data_dir.join("hub.kubeconfig")).unwrap(),
        std::fs::read(&first).unwrap()
    );
    let clusters = stdout(&kubectl(&second, &["get", "managedclusters", "-o", "name"]));
    assert!(clusters.contains("alpha"), "{clusters}");
    let holder = wait_for("a Lease holder", Duration::from_secs(60), || {
        let out = kubectl(
            &second,
            &[
                "get",
                "lease",
                "flotilla-controllers",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        Some(stdout(&out)).filter(|h| !h.is_empty())
    });
    assert!(holder == "hub" || holder == "hub-2", "{holder}");

    Command::new("kill")
        .args(["-INT", &dev.0.id().to_string()])
        .status()
        .unwrap();
    let exit = wait_for("dev to stop", Duration::from_secs(60), || {
        dev.0.try_wait().unwrap()
    });
    assert!(exit.success(), "dev exited with {exit}");
}

#[test]
fn dev_hubs_without_etcd_names_the_package() {
    let dir = TestDir::new("dev-hubs-no-etcd");
    let out = Command::new(flotilla_bin())
        .args(["dev", "--hubs", "3", "--data-dir"])
        .arg(dir.path().join("dev"))
        .env("PATH", dir.path())
        .env_remove("FLOTILLA_ETCD_BIN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("etcd-server") && message.contains("apt-get install -y etcd-server"),
        "{message}"
    );
}
