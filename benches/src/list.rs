//! `list`: latency of listing many ConfigMaps in one namespace, whole and paginated, with
//! the hub's memory, against the embedded engine's range read of as many keys.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

use crate::hub::{self, Flotilla};
use crate::stats::Summary;

/// Flags of `list`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// ConfigMaps in the namespace.
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    /// Page size of the paginated list.
    #[arg(long, default_value_t = 500)]
    pub limit: u32,
    /// Times each list is repeated.
    #[arg(long, default_value_t = 10)]
    pub repeat: usize,
    /// Approximate size of each object in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

const WRITERS: usize = 16;

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let per_writer = args.objects.div_ceil(WRITERS);
    let objects = per_writer * WRITERS;
    println!(
        "list: {objects} ConfigMaps of ~{} B in one namespace, {} repeats, page size {}",
        args.size, args.repeat, args.limit
    );

    // Floor: a range read of as many keys of the same size from the embedded engine.
    let floor_dir = tempfile::tempdir()?;
    let backend = {
        let dir = floor_dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || flotilla_storage::EmbeddedBackend::open(dir)).await??
    };
    let backend: Arc<dyn flotilla_storage::Backend> = Arc::new(backend);
    let prefix = "/registry/configmaps/list/";
    flotilla_storage::throughput::measure_writes(
        backend.clone(),
        &flotilla_storage::throughput::Workload {
            writers: WRITERS,
            writes_per_writer: per_writer,
            keys_per_writer: per_writer,
            value: flotilla_storage::throughput::json_value(args.size),
            prefix: prefix.into(),
        },
    )
    .await?;
    let mut floor = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let t = Instant::now();
        let r = backend.range(prefix, None, 0).await?;
        floor.push(t.elapsed());
        if r.kvs.len() != objects {
            bail!("floor range returned {} keys, not {objects}", r.kvs.len());
        }
    }
    drop(backend);
    println!(
        "  floor (embedded engine range of {objects} keys, in-process): {}",
        Summary::of(&mut floor)
    );

    let (hub, client) = Flotilla::hub(&args.flotilla).await?;
    crate::write::ensure_namespace(&client, "list").await?;
    let rss_empty = hub.rss_kib()?;
    let fill =
        crate::write::create_config_maps(&client, "list", WRITERS, per_writer, args.size).await?;
    println!(
        "  filled in {:.2?} ({:.0} creates/s)",
        fill.elapsed,
        fill.per_sec()
    );
    let rss_filled = hub.rss_kib()?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "list");

    let mut full = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let t = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        full.push(t.elapsed());
        if list.items.len() != objects {
            bail!(
                "full list returned {} items, not {objects}",
                list.items.len()
            );
        }
    }
    // The same list as bytes: the hub's part (read, encode, TLS) and the transfer, without
    // the client's decoding into typed objects.
    let mut full_bytes = Vec::with_capacity(args.repeat);
    let mut body_len = 0;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let body = client
            .request_text(
                http::Request::get("/api/v1/namespaces/list/configmaps").body(Vec::new())?,
            )
            .await?;
        full_bytes.push(t.elapsed());
        body_len = body.len();
        if !body.contains("\"items\":[") {
            bail!("full list (bytes) returned no items");
        }
    }
    let rss_full = hub.rss_kib()?;
    // A label selector none of them satisfies (every object carries the key `app`): the hub
    // reads the whole namespace to answer, as a controller looking up one owner's objects does.
    let mut selected = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let t = Instant::now();
        let list = api.list(&ListParams::default().labels("app=other")).await?;
        selected.push(t.elapsed());
        if !list.items.is_empty() {
            bail!("labelled list returned {} items, not 0", list.items.len());
        }
    }

    let mut walks = Vec::with_capacity(args.repeat);
    let mut pages: Vec<Duration> = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        let mut seen = 0;
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(args.limit);
            if let Some(c) = &token {
                lp = lp.continue_token(c);
            }
            let p = Instant::now();
            let page = api.list(&lp).await?;
            pages.push(p.elapsed());
            seen += page.items.len();
            token = page.metadata.continue_.filter(|c| !c.is_empty());
            if token.is_none() {
                break;
            }
        }
        walks.push(t.elapsed());
        if seen != objects {
            bail!("paginated list returned {seen} items, not {objects}");
        }
    }
    let rss_paged = hub.rss_kib()?;
    println!("  full list (kube-rs, typed): {}", Summary::of(&mut full));
    println!(
        "  full list (bytes, {:.1} MiB, not decoded): {}",
        body_len as f64 / 1048576.0,
        Summary::of(&mut full_bytes)
    );
    println!(
        "  labelled list (app=other, matches none of {objects}): {}",
        Summary::of(&mut selected)
    );
    println!(
        "  paginated (limit={}), whole walk: {}",
        args.limit,
        Summary::of(&mut walks)
    );
    println!(
        "  paginated (limit={}), one page: {}",
        args.limit,
        Summary::of(&mut pages)
    );
    println!(
        "  hub RSS: {} empty, {} filled, {} after full lists, {} after paginated lists",
        hub::mib(rss_empty),
        hub::mib(rss_filled),
        hub::mib(rss_full),
        hub::mib(rss_paged)
    );
    Ok(())
}
