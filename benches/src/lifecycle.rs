//! `drift` and `cleanup-on-return`: how fast the hub puts back an object edited on a member,
//! and how fast it deletes what an Application left on a member that was down when the
//! Application was deleted, measured from the member's return.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};

use crate::dispatch::{application_resource, join};
use crate::hub::{self, Flotilla};
use crate::stats::Summary;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Edits (drift) or member restarts (cleanup-on-return) to time.
    #[arg(long, default_value_t = 100)]
    pub rounds: usize,
    /// The `flotilla` binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

/// A member process with a fixed data dir, so that it can be stopped and started again on the
/// same address with the same data.
struct Member {
    child: Option<Child>,
    data_dir: PathBuf,
    binary: PathBuf,
}

impl Member {
    fn start(&mut self, listen: &str) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("member.log"))?;
        let child = Command::new(&self.binary)
            .args([
                "member",
                "--name",
                "m1",
                "--listen",
                listen,
                "--ready-delay",
                "0s",
            ])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning the member")?;
        self.child = Some(child);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }

    /// Waits until `/readyz` answers (a fresh kubeconfig each start).
    async fn ready(&self) -> anyhow::Result<kube::Client> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.kubeconfig().exists()
                && let Ok(client) = hub::client_for(&self.kubeconfig()).await
                && let Ok(text) = client
                    .request_text(http::Request::get("/readyz").body(Vec::new())?)
                    .await
                && text.trim() == "ok"
            {
                return Ok(client);
            }
            if Instant::now() > deadline {
                bail!("the member did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT` from its kubeconfig.
    fn address(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(self.kubeconfig())?;
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .context("no server in the member kubeconfig")?;
        Ok(server.trim_start_matches("https://").to_string())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

fn application(name: &str) -> anyhow::Result<DynamicObject> {
    crate::dispatch::config_map_application(name, &["m1".to_string()])
}

async fn poll<F, Fut>(what: &str, check: F) -> anyhow::Result<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{what}: not after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}

async fn value(api: &Api<ConfigMap>, name: &str) -> Option<String> {
    let cm = api.get_opt(name).await.ok()??;
    cm.data?.get("k").cloned()
}

struct Setup {
    _hub: Flotilla,
    hub_client: kube::Client,
    member: Member,
    _dir: tempfile::TempDir,
}

async fn setup(binary: &Path) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let mut member = Member {
        child: None,
        data_dir: dir.path().join("m1"),
        binary: binary.to_path_buf(),
    };
    std::fs::create_dir_all(&member.data_dir)?;
    member.start("127.0.0.1:0")?;
    member.ready().await?;
    let (hub, hub_client) = Flotilla::hub(binary).await?;
    join(
        binary,
        &hub.data_dir().join("admin.kubeconfig"),
        &member.kubeconfig(),
        "m1",
    )?;
    Ok(Setup {
        _hub: hub,
        hub_client,
        member,
        _dir: dir,
    })
}

/// Edits a dispatched ConfigMap on the member `rounds` times; each time, how long until the
/// hub has put the desired value back.
pub(crate) async fn drift(args: Args) -> anyhow::Result<()> {
    let s = setup(&args.flotilla).await?;
    let apps: Api<DynamicObject> =
        Api::namespaced_with(s.hub_client.clone(), "default", &application_resource());
    apps.create(&PostParams::default(), &application("held")?)
        .await?;
    let member_api: Api<ConfigMap> = Api::namespaced(s.member.ready().await?, "default");
    poll("dispatched", || async {
        value(&member_api, "held").await.as_deref() == Some("desired")
    })
    .await?;
    let mut samples = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        let patch = serde_json::json!({"data": {"k": format!("edit-{i}")}});
        member_api
            .patch("held", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        samples.push(
            poll("corrected", || async {
                value(&member_api, "held").await.as_deref() == Some("desired")
            })
            .await?,
        );
    }
    println!(
        "drift: {} edits of a dispatched ConfigMap on the member (merge patch), time until the desired value is back",
        args.rounds
    );
    println!("  {}", Summary::of(&mut samples));
    Ok(())
}

/// `rounds` times: an Application is deleted while its member is down; the member comes back
/// on the same address; how long from its `/readyz` until the leftover is deleted.
pub(crate) async fn cleanup_on_return(args: Args) -> anyhow::Result<()> {
    let mut s = setup(&args.flotilla).await?;
    let address = s.member.address()?;
    let apps: Api<DynamicObject> =
        Api::namespaced_with(s.hub_client.clone(), "default", &application_resource());
    let mut samples = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        let name = format!("gone-{i}");
        apps.create(&PostParams::default(), &application(&name)?)
            .await?;
        let member_api: Api<ConfigMap> = Api::namespaced(s.member.ready().await?, "default");
        poll("dispatched", || async {
            value(&member_api, &name).await.is_some()
        })
        .await?;
        s.member.stop();
        apps.delete(&name, &DeleteParams::default()).await?;
        poll("application deleted", || async {
            apps.get_opt(&name).await.ok().flatten().is_none()
        })
        .await?;
        s.member.start(&address)?;
        let member_api: Api<ConfigMap> = Api::namespaced(s.member.ready().await?, "default");
        samples.push(
            poll("leftover deleted", || async {
                member_api.get_opt(&name).await.ok().flatten().is_none()
            })
            .await?,
        );
    }
    println!(
        "cleanup-on-return: {} Applications deleted while their member was down; time from the member's /readyz until the leftover ConfigMap is gone",
        args.rounds
    );
    println!("  {}", Summary::of(&mut samples));
    Ok(())
}
