//! `watch-fanout`: many concurrent watches of one ConfigMap; the time from one write until
//! every watcher has received it, and the hub's memory with that many watches open.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use tokio::sync::mpsc;

use crate::hub::{self, Flotilla};
use crate::stats::Summary;

/// Flags of `watch-fanout`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Concurrent watchers (each its own HTTPS watch request).
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Measured writes (after one warm-up write that every watcher must see first).
    #[arg(long, default_value_t = 20)]
    pub writes: usize,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

const NAME: &str = "fanout-target";

fn seq_of(cm: &ConfigMap) -> Option<usize> {
    cm.data.as_ref()?.get("seq")?.parse().ok()
}

/// Waits until `watchers` deliveries of `seq` arrived; returns when each arrived.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<anyhow::Result<(usize, Instant)>>,
    seq: usize,
    watchers: usize,
) -> anyhow::Result<Vec<Instant>> {
    let mut arrivals = Vec::with_capacity(watchers);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while arrivals.len() < watchers {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!(
                "only {} of {watchers} watchers saw write {seq} within 120s",
                arrivals.len()
            ),
            Ok(None) => bail!("all watchers ended"),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok((s, at)))) if s == seq => arrivals.push(at),
            Ok(Some(Ok((s, _)))) => bail!("a watcher saw write {s} while waiting for {seq}"),
        }
    }
    Ok(arrivals)
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "watch-fanout: {} watchers of one ConfigMap, {} measured writes",
        args.watchers, args.writes
    );
    let (hub, client) = Flotilla::hub(&args.flotilla).await?;
    crate::write::ensure_namespace(&client, "bench").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");
    let mut cm = crate::write::config_map("bench", NAME, 1024);
    cm.data
        .get_or_insert_default()
        .insert("seq".into(), "0".into());
    let created = api.create(&PostParams::default(), &cm).await?;
    let rv = created
        .metadata
        .resource_version
        .context("created object has no resourceVersion")?;
    let rss_idle = hub.rss_kib()?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={NAME}"))
        .timeout(290);
    let connect_started = Instant::now();
    for _ in 0..args.watchers {
        let api = api.clone();
        let tx = tx.clone();
        let wp = wp.clone();
        let rv = rv.clone();
        tokio::spawn(async move {
            let stream = match api.watch(&wp, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::Error::from(e).context("starting a watch")));
                    return;
                }
            };
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let item = match event {
                    Ok(WatchEvent::Modified(cm)) => match seq_of(&cm) {
                        Some(seq) => Ok((seq, Instant::now())),
                        None => Err(anyhow::anyhow!("modified object without seq")),
                    },
                    Ok(WatchEvent::Bookmark(_)) => continue,
                    Ok(other) => Err(anyhow::anyhow!("unexpected watch event {other:?}")),
                    Err(e) => Err(anyhow::Error::from(e).context("watch stream")),
                };
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        });
    }
    drop(tx);

    let set_seq = |seq: usize| {
        let api = api.clone();
        async move {
            api.patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {"seq": seq.to_string()}})),
            )
            .await
        }
    };

    // Warm-up: every watcher must be connected and see write 1.
    set_seq(1).await?;
    collect(&mut rx, 1, args.watchers).await?;
    let connected_in = connect_started.elapsed();
    let rss_watching = hub.rss_kib()?;
    println!(
        "  {} watches opened and saw the warm-up write in {:.2?}",
        args.watchers, connected_in
    );

    let mut all_seen = Vec::with_capacity(args.writes);
    let mut deliveries = Vec::with_capacity(args.writes * args.watchers);
    for seq in 2..args.writes + 2 {
        let t0 = Instant::now();
        set_seq(seq).await?;
        let arrivals = collect(&mut rx, seq, args.watchers).await?;
        let last = arrivals.iter().max().copied().unwrap_or(t0);
        all_seen.push(last - t0);
        deliveries.extend(arrivals.iter().map(|a| *a - t0));
    }
    let rss_after = hub.rss_kib()?;
    println!(
        "  write -> all {} watchers saw it: {}",
        args.watchers,
        Summary::of(&mut all_seen)
    );
    println!(
        "  write -> one watcher saw it (every delivery): {}",
        Summary::of(&mut deliveries)
    );
    println!(
        "  hub RSS: {} idle, {} with {} watches open, {} after the writes",
        hub::mib(rss_idle),
        hub::mib(rss_watching),
        args.watchers,
        hub::mib(rss_after)
    );
    Ok(())
}
