//! Shared end-to-end test support: real `flotilla` processes on free ports, real `kubectl`.
#![allow(dead_code)] // each test binary uses a different part of this module

pub(crate) mod access;
pub(crate) mod etcd;
pub(crate) mod fleet;
pub(crate) mod git;
pub(crate) mod sturdy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listened on when asked, below the ephemeral range and not handed
/// out before by this test (`flotilla_storage::local_port`): a server can be stopped and
/// started again on it.
pub(crate) fn free_port() -> u16 {
    flotilla_storage::local_port::free_port().unwrap()
}

pub(crate) fn flotilla_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flotilla"))
}

/// The folder holding `kubectl.1.27` ... `kubectl.1.33` beside the real `kubectl`.
pub(crate) fn kubectl_dir() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "dirname \"$(readlink -f \"$(command -v kubectl)\")\""])
        .output()
        .expect("find kubectl");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Every kubectl version the spec supports, as (version, path).
pub(crate) fn kubectl_versions() -> Vec<(String, PathBuf)> {
    let dir = kubectl_dir();
    (27..=33)
        .map(|m| (format!("1.{m}"), dir.join(format!("kubectl.1.{m}"))))
        .filter(|(_, p)| p.exists())
        .collect()
}

/// A running `flotilla` server process, killed (and reaped) on drop.
pub(crate) struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `flotilla <args> --data-dir DIR` and waits until `/readyz` answers.
    pub(crate) fn start(args: &[&str], data_dir: &Path) -> Server {
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.join("server.log");
        let kubeconfig = data_dir.join("admin.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let child = Command::new(flotilla_bin())
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("spawn flotilla");
        let mut server = Server {
            child,
            data_dir: data_dir.to_path_buf(),
            kubeconfig,
            log,
        };
        server.wait_ready();
        server
    }

    pub(crate) fn hub(data_dir: &Path) -> Server {
        Server::start(&["hub", "--listen", "127.0.0.1:0"], data_dir)
    }

    /// A hub that probes its members every second (availability follows within a test).
    pub(crate) fn hub_probing_every_second(data_dir: &Path) -> Server {
        Server::start(
            &[
                "hub",
                "--listen",
                "127.0.0.1:0",
                "--cluster-probe-interval",
                "1s",
            ],
            data_dir,
        )
    }

    pub(crate) fn member(name: &str, data_dir: &Path) -> Server {
        Server::start(
            &["member", "--name", name, "--listen", "127.0.0.1:0"],
            data_dir,
        )
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "flotilla exited early ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if self.kubeconfig.exists() {
                let out = kubectl(&self.kubeconfig, &["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "flotilla did not become ready:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig, args)
    }

    /// Runs kubectl and returns stdout, panicking with stderr on failure.
    pub(crate) fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// On a hub: `flotilla cluster join <member's admin kubeconfig> --name <name>`, panicking
    /// with stderr unless it succeeds.
    pub(crate) fn join(&self, name: &str, member: &Server) {
        self.join_kubeconfig(name, &member.kubeconfig);
    }

    /// On a hub: `flotilla cluster join <kubeconfig> --name <name>`, panicking with stderr
    /// unless it succeeds.
    pub(crate) fn join_kubeconfig(&self, name: &str, kubeconfig: &Path) {
        let out = flotilla(
            &self.kubeconfig,
            &[
                "cluster",
                "join",
                kubeconfig.to_str().expect("UTF-8 kubeconfig path"),
                "--name",
                name,
            ],
        );
        assert!(out.status.success(), "join {name}: {}", stderr(&out));
    }

    /// Writes to `path` a kubeconfig for this server (its URL, and the CA data from its admin
    /// kubeconfig) that authenticates as `user` with the bearer `token`.
    pub(crate) fn write_token_kubeconfig(&self, path: &Path, user: &str, token: &str) {
        let admin = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
            .expect("CA data in the admin kubeconfig")
            .trim()
            .to_string();
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {}\ncontexts:\n- name: m\n  context:\n    cluster: m\n    user: {user}\ncurrent-context: m\n",
                self.url(),
                token.trim()
            ),
        )
        .unwrap();
    }

    /// A kube-rs client built from this server's admin kubeconfig.
    pub(crate) async fn kube_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Whether `kubectl get <kind> <name> -n <namespace>` succeeds on this server.
    pub(crate) fn exists(&self, kind: &str, name: &str, namespace: &str) -> bool {
        self.kubectl(&["get", kind, name, "-n", namespace])
            .status
            .success()
    }

    /// stdout of `kubectl get <kind> <name> -n <namespace> -o jsonpath=<path>` on this server
    /// (empty when the object is missing).
    pub(crate) fn jsonpath(&self, kind: &str, name: &str, namespace: &str, path: &str) -> String {
        stdout(&self.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            namespace,
            "-o",
            &format!("jsonpath={path}"),
        ]))
    }

    /// The sum of this server's `/metrics` samples named `name` whose line holds every one
    /// of `parts` (e.g. `verb="get"`, `resource="deployments"`).
    pub(crate) fn counter(&self, name: &str, parts: &[&str]) -> f64 {
        let text = self.kubectl_ok(&["get", "--raw", "/metrics"]);
        text.lines()
            .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// The server's URL as written in its admin kubeconfig.
    pub(crate) fn url(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("server:")
                    .map(|s| s.trim().to_string())
            })
            .expect("server: in kubeconfig")
    }
}

/// Runs the default `kubectl` against a kubeconfig.
pub(crate) fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_with(Path::new("kubectl"), kubeconfig, args)
}

/// Runs a specific kubectl binary against a kubeconfig.
pub(crate) fn kubectl_with(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl")
}

/// Runs the flotilla CLI against a hub kubeconfig.
pub(crate) fn flotilla(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(flotilla_bin())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run flotilla")
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub(crate) fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh path under the system temp folder, `flotilla-<name>-<pid>-<nanos>`; not created
/// and not removed (the caller's servers create it and the test leaves it for inspection).
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("flotilla-{name}-{}-{nanos}", std::process::id()))
}

/// A scratch directory named like [`temp_dir`], created at once and removed on drop.
pub(crate) struct TestDir(pub PathBuf);

impl TestDir {
    pub(crate) fn new(name: &str) -> TestDir {
        let path = temp_dir(name);
        std::fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    /// Removes the directory, unless the test failed: then its logs stay for a post-mortem.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed; its files stay in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `flotilla kubeconfig create` against a hub's data folder for `user` in `groups`, written to
/// `path`; panics with stderr unless it succeeds.
pub(crate) fn create_user_kubeconfig(hub: &Server, user: &str, groups: &[&str], path: &Path) {
    let mut cmd = Command::new(flotilla_bin());
    cmd.args(["kubeconfig", "create", "--data-dir"])
        .arg(&hub.data_dir)
        .args(["--user", user, "-o"])
        .arg(path);
    for g in groups {
        cmd.args(["--group", g]);
    }
    let out = cmd.output().expect("run flotilla kubeconfig create");
    assert!(out.status.success(), "kubeconfig create: {}", stderr(&out));
}

/// [`create_user_kubeconfig`] into `<hub data dir>/<user>.kubeconfig`, also checking the file
/// is private (mode 0600) since it holds a private key.
pub(crate) fn user_kubeconfig(hub: &Server, user: &str, groups: &[&str]) -> PathBuf {
    let path = hub.data_dir.join(format!("{user}.kubeconfig"));
    create_user_kubeconfig(hub, user, groups, &path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a kubeconfig holds a private key");
    }
    path
}

/// A kubeconfig `<hub data dir>/<name>.kubeconfig` that trusts the hub's CA (by file) with
/// the given user section (inline YAML).
pub(crate) fn custom_kubeconfig(hub: &Server, name: &str, user_yaml: &str) -> PathBuf {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user: {user_yaml}\ncontexts:\n- name: c\n  context: {{cluster: hub, user: u}}\ncurrent-context: c\n",
        hub.url(),
        hub.data_dir.join("ca.crt").display()
    );
    let path = hub.data_dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The column names in the first line of a kubectl-style table (empty when there is none).
pub(crate) fn table_header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

/// Installs this `flotilla` binary as the kubectl plugin `kubectl-amc` in `dir` (created).
pub(crate) fn install_amc_plugin(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(flotilla_bin(), dir.join("kubectl-amc")).unwrap();
}

/// `kubectl amc ARGS` with `plugin_dir` (see [`install_amc_plugin`]) first on PATH and
/// `KUBECONFIG` pointing at `kubeconfig`.
pub(crate) fn kubectl_amc(plugin_dir: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("kubectl")
        .arg("amc")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run kubectl amc")
}

/// Joins `member` to `hub` as `name` with a credential that may only impersonate: a
/// ServiceAccount `vela-system/flotilla-hub` on the member bound to a ClusterRole with verb
/// `impersonate` on users, groups, serviceaccounts and (all of authentication.k8s.io) user
/// extras and uids (what the cluster gateway
/// and the grants controller need), its token written to `<dir>/<name>-hub.kubeconfig`.
pub(crate) fn join_impersonate_only(hub: &Server, name: &str, member: &Server, dir: &Path) {
    let rbac = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: flotilla-hub, namespace: vela-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: flotilla:hub-impersonator}
rules:
- apiGroups: [""]
  resources: [users, groups, serviceaccounts]
  verbs: [impersonate]
- apiGroups: [authentication.k8s.io]
  resources: ["*"]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: flotilla:hub-impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: flotilla:hub-impersonator}
subjects:
- {kind: ServiceAccount, name: flotilla-hub, namespace: vela-system}
"#;
    let file = dir.join(format!("{name}-hub-rbac.yaml"));
    std::fs::write(&file, rbac).unwrap();
    member.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let token = member.kubectl_ok(&[
        "create",
        "token",
        "flotilla-hub",
        "-n",
        "vela-system",
        "--duration=24h",
    ]);
    let path = dir.join(format!("{name}-hub.kubeconfig"));
    member.write_token_kubeconfig(&path, "flotilla-hub", &token);
    hub.join_kubeconfig(name, &path);
}
