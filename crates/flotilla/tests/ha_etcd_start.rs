//! A hub started before its etcd (issue 9), end to end: real `etcd` processes, a real
//! `flotilla hub --storage etcd`, real kubectl. While etcd does not answer, the hub already
//! listens: `/livez` is ok, `/readyz` fails naming etcd, API requests get a 503 Status and no
//! kubeconfig is written; once etcd is up the same process serves, without a restart. Likewise
//! when etcd answers but has lost quorum, so the start-up after that first answer fails.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::etcd::{EtcdCluster, WAIT};
use support::{Server, TestDir, free_port, stderr, wait_for};

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

/// Starts `flotilla hub --storage etcd` on `port` without waiting for it (killed on drop).
fn spawn_hub(dir: &Path, etcd: &EtcdCluster, port: u16) -> Server {
    let data_dir = dir.join("hub-a");
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
    Server {
        child,
        kubeconfig: data_dir.join("admin.kubeconfig"),
        data_dir,
        log,
    }
}

/// `/readyz` fails naming every one of `causes`, and no kubeconfig is written yet.
fn assert_not_ready(hub: &Server, dir: &Path, url: &str, causes: &[&str]) {
    let ready = raw(dir, url, "/readyz");
    assert!(!ready.status.success(), "ready before the start-up ended");
    let message = stderr(&ready);
    assert!(causes.iter().all(|c| message.contains(c)), "{message}");
    assert!(
        !hub.kubeconfig.exists(),
        "a kubeconfig before the start-up ended"
    );
}

/// Waits until `hub` is ready and serves the API, failing at once if it exits.
fn wait_serving(hub: &mut Server, name: &str) {
    wait_for("the hub to be ready once etcd answers", WAIT, || {
        if hub.child.try_wait().unwrap().is_some() {
            let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
            panic!("the hub exited:\n{log}");
        }
        (hub.kubeconfig.exists() && hub.kubectl(&["get", "--raw", "/readyz"]).status.success())
            .then_some(())
    });
    hub.kubectl_ok(&["create", "configmap", name, "-n", "default"]);
    let got = hub.kubectl_ok(&["get", "configmap", name, "-n", "default", "-o", "name"]);
    assert_eq!(got.trim(), format!("configmap/{name}"));
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub restarted");
}

#[test]
fn hub_waiting_for_etcd_answers_probes_then_serves() {
    let dir = TestDir::new("ha-etcd-start");
    // Three members, all down: once they are up, the first request succeeded on one member's
    // channel while the others still held their connect errors from the outage, so the next
    // request failed and the hub gave up (2 runs of 4, before etcd.rs sent such requests again).
    let mut etcd = EtcdCluster::new(3, dir.path()).expect("etcd");
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), &etcd, port);
    let url = format!("https://127.0.0.1:{port}");

    // etcd is not running: live, not ready, the API refused with a Status naming the cause.
    wait_for("the waiting hub to answer /livez", WAIT, || {
        raw(dir.path(), &url, "/livez")
            .status
            .success()
            .then_some(())
    });
    assert_not_ready(&hub, dir.path(), &url, &["storage failed", "etcd"]);
    let api = raw(dir.path(), &url, "/api/v1/namespaces/default/configmaps");
    let message = stderr(&api);
    assert!(!api.status.success());
    assert!(
        message.contains("ServiceUnavailable") && message.contains("storage is unavailable"),
        "{message}"
    );
    assert!(hub.child.try_wait().unwrap().is_none(), "the hub exited");

    // etcd comes up: the same process becomes ready and serves the API.
    etcd.start_all().expect("etcd");
    wait_serving(&mut hub, "after-wait");
}

/// etcd answers the hub's first question but has lost quorum (two of three members killed:
/// the third still answers serializable reads from its own copy, nothing that needs the
/// cluster), so the start-up after it (reading the shared CA) fails as the store being
/// unavailable. The hub retries its start-up in-process, not ready meanwhile, and serves once
/// quorum is back.
#[test]
fn hub_starting_while_etcd_has_no_quorum_retries_then_serves() {
    let dir = TestDir::new("ha-etcd-no-quorum");
    let mut etcd = EtcdCluster::start(3, dir.path()).expect("etcd");
    etcd.kill(1);
    etcd.kill(2);
    let port = free_port();
    let mut hub = spawn_hub(dir.path(), &etcd, port);
    let url = format!("https://127.0.0.1:{port}");

    wait_for("the hub to retry its start-up", WAIT, || {
        if let Ok(Some(status)) = hub.child.try_wait() {
            let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
            panic!("the hub exited ({status}) instead of retrying:\n{log}");
        }
        let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
        log.contains("the store failed the start-up (reading the shared CA); retrying it")
            .then_some(())
    });
    let log = std::fs::read_to_string(&hub.log).unwrap();
    assert!(
        log.contains("connected to etcd"),
        "past the first wait:\n{log}"
    );
    assert_not_ready(
        &hub,
        dir.path(),
        &url,
        &["reading the shared CA", "storage unavailable"],
    );

    // Quorum back: the same process finishes its start-up and serves.
    etcd.start_member(1).expect("etcd");
    etcd.start_member(2).expect("etcd");
    wait_serving(&mut hub, "after-quorum");
}
