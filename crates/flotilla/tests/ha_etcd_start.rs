//! A hub started before its etcd (issue 9), end to end: real `etcd` processes, a real
//! `flotilla hub --storage etcd`, real kubectl. While etcd does not answer, the hub already
//! listens: `/livez` is ok, `/readyz` fails naming etcd, API requests get a 503 Status and no
//! kubeconfig is written; once etcd is up the same process serves, without a restart.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::etcd::{EtcdCluster, WAIT, free_port};
use support::{Server, TestDir, stderr, wait_for};

/// `kubectl get --raw PATH` against `url` with a dummy token (so kubectl does not prompt),
/// not verifying the certificate (the waiting hub has no cluster CA yet).
fn raw(dir: &Path, url: &str, path: &str) -> Output {
    let empty = dir.join("empty.kubeconfig");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&empty)
        .args([
            "--server",
            url,
            "--insecure-skip-tls-verify",
            "--token",
            "probe",
            "--request-timeout=10s",
        ])
        .args(["get", "--raw", path])
        .output()
        .expect("run kubectl")
}

#[test]
fn hub_waiting_for_etcd_answers_probes_then_serves() {
    let dir = TestDir::new("ha-etcd-start");
    // Three members, all down: once they are up, the first request succeeded on one member's
    // channel while the others still held their connect errors from the outage, so the next
    // request failed and the hub gave up (2 runs of 4, before etcd.rs sent such requests again).
    let mut etcd = EtcdCluster::new(3, dir.path()).expect("etcd");
    let port = free_port();
    let data_dir = dir.path().join("hub-a");
    std::fs::create_dir_all(&data_dir).unwrap();
    let log = data_dir.join("server.log");
    let child = Command::new(support::flotilla_bin())
        .args(["hub", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--storage", "etcd", "--etcd-endpoints", &etcd.endpoints()])
        .args(["--id", "hub-a", "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .expect("spawn flotilla hub");
    // Killed on drop, whatever happens below.
    let mut hub = Server {
        child,
        kubeconfig: data_dir.join("admin.kubeconfig"),
        data_dir,
        log,
    };
    let url = format!("https://127.0.0.1:{port}");

    // etcd is not running: live, not ready, the API refused with a Status naming the cause.
    wait_for("the waiting hub to answer /livez", WAIT, || {
        raw(dir.path(), &url, "/livez")
            .status
            .success()
            .then_some(())
    });
    let ready = raw(dir.path(), &url, "/readyz");
    assert!(!ready.status.success(), "ready with no etcd");
    let message = stderr(&ready);
    assert!(
        message.contains("storage failed") && message.contains("etcd"),
        "{message}"
    );
    let api = raw(dir.path(), &url, "/api/v1/namespaces/default/configmaps");
    let message = stderr(&api);
    assert!(!api.status.success());
    assert!(
        message.contains("ServiceUnavailable") && message.contains("storage is unavailable"),
        "{message}"
    );
    assert!(
        !hub.kubeconfig.exists(),
        "a kubeconfig before the store answered"
    );
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub exited");

    // etcd comes up: the same process becomes ready and serves the API.
    etcd.start_all().expect("etcd");
    wait_for("the hub to be ready once etcd answers", WAIT, || {
        if hub.child.try_wait().unwrap().is_some() {
            let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
            panic!("the hub exited once etcd came up:\n{log}");
        }
        (hub.kubeconfig.exists() && hub.kubectl(&["get", "--raw", "/readyz"]).status.success())
            .then_some(())
    });
    hub.kubectl_ok(&["create", "configmap", "after-wait", "-n", "default"]);
    let name = hub.kubectl_ok(&[
        "get",
        "configmap",
        "after-wait",
        "-n",
        "default",
        "-o",
        "name",
    ]);
    assert_eq!(name.trim(), "configmap/after-wait");
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub restarted");
}
