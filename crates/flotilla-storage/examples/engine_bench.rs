//! Measures the storage engines on the API server's workload, so the choice of engine
//! rests on numbers from this machine (they are recorded in docs/storage.md).
//!
//! ```text
//! cargo run -p flotilla-storage --release --example engine_bench -- [--writes N] [--dir DIR] [--open-keys N]
//! ```
//!
//! 1. Engines alone, one writer: compare-and-swap writes of ~1 KiB JSON values, each its
//!    own durable transaction (fsync before the write counts as done): redb with
//!    `Durability::Immediate`, SQLite in WAL mode with `synchronous=FULL`, and SQLite with
//!    its rollback journal. Then range reads of a 500-key prefix from each file.
//! 2. The embedded backend through the `Backend` trait (what the hub really gets):
//!    concurrent writers with and without group commit, and ranges from its in-memory
//!    index. This is the "floor" a hub benchmark can compare against.
//! 3. Watch fan-out: the same writes with 0, 100 and 1,000 watchers attached.
//! 4. Start-up: opening a store of `--open-keys` keys (default 50,000).
//!
//! The files go to a temporary directory under `--dir` (default: the system temp dir),
//! which must be on the disk being measured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use flotilla_storage::throughput::{self, Workload};
use flotilla_storage::{Backend, EmbeddedBackend, EmbeddedOptions};
use futures::StreamExt;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{Connection, OptionalExtension, params};

const KEYS: usize = 500;
const PREFIX: &str = "/registry/core/configmaps/default/";
const RANGE_ROUNDS: usize = 200;

struct Args {
    writes: usize,
    dir: PathBuf,
    open_keys: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        writes: 2000,
        dir: std::env::temp_dir(),
        open_keys: 50_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--writes" => args.writes = value.parse().context("--writes")?,
            "--dir" => args.dir = PathBuf::from(value),
            "--open-keys" => args.open_keys = value.parse().context("--open-keys")?,
            other => bail!("unknown flag {other}; known: --writes N, --dir DIR, --open-keys N"),
        }
    }
    Ok(args)
}

/// Latency percentiles of one engine run.
struct Stats {
    writes_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Stats {
        writes_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

fn key(n: usize) -> String {
    format!("{PREFIX}cm-{:04}", n % KEYS)
}

/// Runs `writes` CAS writes through `cas(key, expected_mod_revision, new_revision)`,
/// timing each.
fn drive(
    writes: usize,
    mut cas: impl FnMut(&str, Option<i64>, i64) -> anyhow::Result<()>,
) -> anyhow::Result<Stats> {
    let mut last: Vec<Option<i64>> = vec![None; KEYS];
    let mut latencies = Vec::with_capacity(writes);
    let started = Instant::now();
    for n in 0..writes {
        let revision = n as i64 + 2;
        let t = Instant::now();
        cas(&key(n), last[n % KEYS], revision)?;
        latencies.push(t.elapsed());
        last[n % KEYS] = Some(revision);
    }
    Ok(stats(latencies, started.elapsed()))
}

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

fn record(create: i64, modified: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn bench_redb(dir: &Path, writes: usize, value: &[u8]) -> anyhow::Result<(Stats, f64)> {
    let db = Database::create(dir.join("bench.redb"))?;
    let write = drive(writes, |key, expected, revision| {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut kv = txn.open_table(KV)?;
            let current = kv.get(key)?.map(|v| {
                let bytes = v.value();
                let create = i64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
                let modified = i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
                (create, modified)
            });
            if current.map(|c| c.1) != expected {
                bail!("CAS failed on {key}");
            }
            let create = current.map_or(revision, |c| c.0);
            kv.insert(key, record(create, revision, value).as_slice())?;
            txn.open_table(META)?.insert("revision", revision)?;
        }
        txn.commit()?;
        Ok(())
    })?;
    let reads = time_ranges(|| {
        let txn = db.begin_read()?;
        let kv = txn.open_table(KV)?;
        let mut n = 0;
        for entry in kv.range(PREFIX..)? {
            let (k, v) = entry?;
            if !k.value().starts_with(PREFIX) || n == KEYS {
                break;
            }
            std::hint::black_box(Bytes::copy_from_slice(&v.value()[16..]));
            n += 1;
        }
        Ok(n)
    })?;
    Ok((write, reads))
}

fn bench_sqlite(
    dir: &Path,
    journal: &str,
    writes: usize,
    value: &[u8],
) -> anyhow::Result<(Stats, f64)> {
    let conn = Connection::open(dir.join(format!("bench-{journal}.sqlite")))?;
    conn.pragma_update(None, "journal_mode", journal)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, create_rev INTEGER NOT NULL,
                          mod_rev INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
         INSERT INTO meta VALUES ('revision', 1);",
    )?;
    let write = drive(writes, |key, expected, revision| {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let current: Option<i64> = conn
            .prepare_cached("SELECT mod_rev FROM kv WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?;
        if current != expected {
            conn.execute_batch("ROLLBACK")?;
            bail!("CAS failed on {key}");
        }
        if current.is_some() {
            conn.prepare_cached("UPDATE kv SET mod_rev = ?2, value = ?3 WHERE key = ?1")?
                .execute(params![key, revision, value])?;
        } else {
            conn.prepare_cached("INSERT INTO kv VALUES (?1, ?2, ?2, ?3)")?
                .execute(params![key, revision, value])?;
        }
        conn.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
            .execute(params![revision])?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    })?;
    let end = format!("{}0", &PREFIX[..PREFIX.len() - 1]); // '0' sorts right after '/'
    let reads = time_ranges(|| {
        let mut stmt = conn.prepare_cached(
            "SELECT key, create_rev, mod_rev, value FROM kv
             WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![PREFIX, end, KEYS as i64])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let value: Vec<u8> = row.get(3)?;
            std::hint::black_box((key, Bytes::from(value)));
            n += 1;
        }
        Ok(n)
    })?;
    Ok((write, reads))
}

/// Ranges of the whole prefix per second.
fn time_ranges(mut range: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..RANGE_ROUNDS {
        let n = range()?;
        if n != KEYS {
            bail!("range returned {n} keys, expected {KEYS}");
        }
    }
    Ok(RANGE_ROUNDS as f64 / started.elapsed().as_secs_f64())
}

async fn bench_backend(
    dir: &Path,
    name: &str,
    options: EmbeddedOptions,
    writers: usize,
    writes: usize,
    value: &Bytes,
) -> anyhow::Result<()> {
    let store = Arc::new(EmbeddedBackend::open_with_options(dir.join(name), options)?);
    let workload = Workload {
        writers,
        writes_per_writer: writes / writers,
        keys_per_writer: (KEYS / writers).max(1),
        value: value.clone(),
        prefix: PREFIX.to_owned(),
    };
    let report = throughput::measure_writes(store.clone(), &workload).await?;
    println!(
        "| embedded backend, {writers} writer(s), {name} | {:.0} | {:.2?} | {:.2?} |",
        report.writes_per_sec, report.p50, report.p99
    );
    let started = Instant::now();
    for _ in 0..RANGE_ROUNDS {
        let r = store.range(PREFIX, None, KEYS).await?;
        std::hint::black_box(&r);
    }
    let per_sec = RANGE_ROUNDS as f64 / started.elapsed().as_secs_f64();
    println!("|   range of {KEYS} keys from the in-memory index: {per_sec:.0}/s | | | |");
    Ok(())
}

/// Write throughput with `watchers` watchers attached (one per namespace prefix, 10
/// namespaces), and how long after the last acknowledged write the last watcher has seen
/// every event of its prefix.
async fn bench_watchers(
    dir: &Path,
    watchers: usize,
    writes: usize,
    value: &Bytes,
) -> anyhow::Result<()> {
    const NAMESPACES: usize = 10;
    const WRITERS: usize = 16;
    let store = Arc::new(EmbeddedBackend::open(
        dir.join(format!("watchers-{watchers}")),
    )?);
    let start = store.current_revision().await?;
    let writes_per_writer = writes / WRITERS;
    let per_namespace = writes_per_writer * WRITERS / NAMESPACES;
    let mut tasks = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let prefix = format!("/registry/core/configmaps/ns{}/", i % NAMESPACES);
        let mut stream = store.watch(&prefix, start).await?;
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < per_namespace {
                match stream.next().await {
                    Some(Ok(batch)) => seen += batch.len(),
                    Some(Err(e)) => return Err(anyhow::anyhow!("watch failed: {e}")),
                    None => return Err(anyhow::anyhow!("watch ended early")),
                }
            }
            Ok(Instant::now())
        }));
    }
    let started = Instant::now();
    let mut writers = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        let value = value.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..writes_per_writer {
                // Writer w spreads its keys over the namespaces evenly.
                let i = w * writes_per_writer + n;
                let key = format!("/registry/core/configmaps/ns{}/w{w}-{n}", i % NAMESPACES);
                store
                    .put(&key, value.clone(), flotilla_storage::Precondition::Absent)
                    .await?;
            }
            Ok::<_, flotilla_storage::Error>(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let written = started.elapsed();
    let mut last = Instant::now();
    for t in tasks {
        last = last.max(t.await??);
    }
    let total = writes_per_writer * WRITERS;
    let lag = if watchers == 0 {
        "-".to_owned()
    } else {
        format!("{:.2?}", last.saturating_duration_since(started + written))
    };
    println!(
        "| {watchers} | {:.0} | {lag} | {} |",
        total as f64 / written.as_secs_f64(),
        watchers * per_namespace,
    );
    Ok(())
}

/// How long opening a store of `keys` 1 KiB values takes (redb's check plus loading the
/// in-memory index), and how much the file weighs.
async fn bench_open(dir: &Path, keys: usize, value: &Bytes) -> anyhow::Result<()> {
    const WRITERS: usize = 64;
    let path = dir.join(format!("open-{keys}"));
    {
        let store = Arc::new(EmbeddedBackend::open(&path)?);
        let mut tasks = Vec::with_capacity(WRITERS);
        for w in 0..WRITERS {
            let store = Arc::clone(&store);
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                for n in (w..keys).step_by(WRITERS) {
                    let key = format!("/registry/core/configmaps/ns{}/cm-{n}", n % 100);
                    store
                        .put(&key, value.clone(), flotilla_storage::Precondition::Absent)
                        .await?;
                }
                Ok::<_, flotilla_storage::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    let started = Instant::now();
    let store = EmbeddedBackend::open(&path)?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        store.len() == keys,
        "reopened store has {} keys",
        store.len()
    );
    let size = std::fs::metadata(store.path())?.len();
    println!(
        "| {keys} | {:.2?} | {:.0} | {:.1} MiB |",
        elapsed,
        keys as f64 / elapsed.as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir_in(&args.dir)?;
    let value = throughput::json_value(1024);
    println!(
        "{} writes of {} B JSON values over {KEYS} keys, files in {}",
        args.writes,
        value.len(),
        dir.path().display()
    );
    println!(
        "| engine (one durable transaction per write) | writes/s | p50 | p99 | ranges of {KEYS} keys/s |"
    );
    println!("|---|---|---|---|---|");
    let (w, r) = bench_redb(dir.path(), args.writes, &value)?;
    println!(
        "| redb 4, Durability::Immediate | {:.0} | {:.2?} | {:.2?} | {r:.0} |",
        w.writes_per_sec, w.p50, w.p99
    );
    for journal in ["WAL", "DELETE"] {
        let (w, r) = bench_sqlite(dir.path(), journal, args.writes, &value)?;
        println!(
            "| SQLite {}, journal_mode={journal}, synchronous=FULL | {:.0} | {:.2?} | {:.2?} | {r:.0} |",
            rusqlite::version(),
            w.writes_per_sec,
            w.p50,
            w.p99
        );
    }

    println!();
    println!("| embedded backend (through the Backend trait) | writes/s | p50 | p99 |");
    println!("|---|---|---|---|");
    let no_batching = EmbeddedOptions {
        max_batch: 1,
        ..EmbeddedOptions::default()
    };
    bench_backend(
        dir.path(),
        "group-commit",
        EmbeddedOptions::default(),
        1,
        args.writes,
        &value,
    )
    .await?;
    for writers in [16, 64] {
        bench_backend(
            dir.path(),
            &format!("no-batching-{writers}"),
            no_batching.clone(),
            writers,
            args.writes,
            &value,
        )
        .await?;
        bench_backend(
            dir.path(),
            &format!("group-commit-{writers}"),
            EmbeddedOptions::default(),
            writers,
            args.writes,
            &value,
        )
        .await?;
    }

    println!();
    println!(
        "| watchers (16 writers, 10 namespaces) | writes/s | last watcher caught up after the last write | events delivered |"
    );
    println!("|---|---|---|---|");
    for watchers in [0, 100, 1000] {
        bench_watchers(dir.path(), watchers, args.writes, &value).await?;
    }

    println!();
    println!("| keys of ~1 KiB | open (check + load index) | keys/s | file size |");
    println!("|---|---|---|---|");
    bench_open(dir.path(), args.open_keys, &value).await?;
    Ok(())
}
