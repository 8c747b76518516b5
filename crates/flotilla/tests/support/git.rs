//! Real Git repositories for the GitOps tests: made with the `git` CLI, served on 127.0.0.1 by
//! `git daemon` (git://) or read in place (file://).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A work tree on branch `main`.
pub(crate) struct GitRepo {
    pub dir: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Flotilla Test",
            "-c",
            "user.email=test@flotilla.invalid",
        ])
        .args(args)
        .output()
        .expect("run git (install it: apt-get install git)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl GitRepo {
    /// `git init -b main DIR`.
    pub(crate) fn init(dir: &Path) -> GitRepo {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        GitRepo {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes `rel` (folders created).
    pub(crate) fn write(&self, rel: &str, content: &str) {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Deletes `rel`.
    pub(crate) fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.join(rel)).unwrap();
    }

    /// Commits everything; returns the commit SHA.
    pub(crate) fn commit(&self, message: &str) -> String {
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "-m", message]);
        git(&self.dir, &["rev-parse", "HEAD"])
    }

    /// Runs any git command in the work tree.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    /// `file:///...`
    pub(crate) fn file_url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

/// `git daemon` serving every repository under a folder, in a process group of its own
/// (`git daemon` runs `git-daemon`, which forks a child per connection); the whole group is
/// killed on drop, so no daemon outlives the test.
pub(crate) struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl GitDaemon {
    /// Serves `base` on a free 127.0.0.1 port.
    pub(crate) fn serve(base: &Path) -> GitDaemon {
        let port = super::free_port();
        use std::os::unix::process::CommandExt as _;
        let child = Command::new("git")
            .process_group(0)
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run git daemon");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, port }
    }

    /// `git://127.0.0.1:PORT/NAME`
    pub(crate) fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

/// POSTs a GitHub push payload for `repo_url` to the hub's webhook without credentials;
/// returns (HTTP code, body).
pub(crate) fn push_webhook(hub_url: &str, repo_url: &str) -> (String, String) {
    let body = format!(r#"{{"ref":"refs/heads/main","repository":{{"clone_url":"{repo_url}"}}}}"#);
    let out = Command::new("curl")
        .args(["-sk", "-X", "POST", "-H", "X-GitHub-Event: push"])
        .args(["-H", "Content-Type: application/json", "-d", &body])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("{hub_url}/api/webhook"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_string(), body.to_string())
}
