//! The embedded backend: one redb file in the hub's data dir.
//!
//! # Layout on disk
//!
//! `DATA_DIR/store.redb` holds two tables:
//! - `kv`: key → `create_revision (i64 LE) ‖ mod_revision (i64 LE) ‖ value bytes`;
//! - `meta`: `revision` (the store revision, written by every committed write, deletes
//!   included, so it never goes backwards across restarts) and `format`.
//!
//! # Concurrency
//!
//! Reads never touch disk: the latest value of every key lives in an in-memory
//! [`BTreeMap`] behind a read-write lock, rebuilt from the file at [`EmbeddedBackend::open`].
//! Values are [`Bytes`], so a list clones reference counts, not objects.
//!
//! Writes go to one writer thread over a channel. It takes every write waiting in the queue
//! (up to [`EmbeddedOptions::max_batch`]), checks each precondition in arrival order
//! against the index plus the earlier writes of the same batch, and commits the accepted
//! ones in **one** redb transaction with [`redb::Durability::Immediate`] (group commit).
//! Each accepted write still gets its own revision. Only after the commit returns are the
//! index, the watch history and the watchers updated and the callers answered, so an
//! acknowledged write is on disk and visible to the next read.
//!
//! # Watch history
//!
//! The last [`EmbeddedOptions::history_capacity`] events (at most
//! [`EmbeddedOptions::history_max_bytes`] of them) are kept in memory, shared by every
//! watcher (see `history.rs`). History is not persisted: after a restart a watch can
//! only start at or after the revision the store opened at; anything older is
//! [`Error::Compacted`](crate::Error::Compacted), and Kubernetes clients re-list.

mod history;
mod writer;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};

pub(crate) use crate::check_precondition as check;
use crate::{Backend, Event, KeyValue, Precondition, RangeResult, Result, Revision, WatchStream};
use history::History;
use writer::{Op, Writer};

/// The file name of the store inside the data dir.
pub(crate) const FILE_NAME: &str = "store.redb";

/// The on-disk format this code writes (stored under `meta/format`).
const FORMAT: i64 = 1;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_FORMAT: &str = "format";

/// Errors of the embedded backend. They reach callers as
/// [`Error::Backend`](crate::Error::Backend).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The data directory could not be created.
    #[error("creating data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The redb file could not be opened (locked by another process, not a redb file).
    #[error("opening store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The file was written by a build with another record format.
    #[error("store {path} has format {found}; this build reads format {FORMAT}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format number it has.
        found: i64,
    },
    /// Reading the records into the in-memory index failed.
    #[error("loading the index: {0}")]
    Load(#[source] Box<redb::Error>),
    /// A record that does not decode.
    #[error("corrupt record for key {key:?}: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A write transaction failed; every write of its batch failed with it and none is
    /// visible.
    #[error("write failed: {0}")]
    Write(#[source] Arc<redb::Error>),
    /// The writer thread could not be started.
    #[error("starting the writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The store was dropped while the call waited.
    #[error("the store has shut down")]
    Closed,
    /// A compaction past the current revision.
    #[error("cannot compact at revision {requested}: the current revision is {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A write to the empty key.
    #[error("the empty key cannot be written")]
    EmptyKey,
}

impl From<EmbeddedError> for crate::Error {
    fn from(e: EmbeddedError) -> Self {
        crate::Error::Backend(Box::new(e))
    }
}

/// Tuning knobs of [`EmbeddedBackend`]; [`Default`] suits the hub.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How many recent events watches can replay; a watcher that falls further behind has
    /// its stream ended with [`Error::Compacted`](crate::Error::Compacted).
    pub history_capacity: usize,
    /// The most bytes (keys and values) the watch history may hold; the oldest events go
    /// first when either bound is passed.
    pub history_max_bytes: usize,
    /// The most writes committed in one redb transaction (group commit). 1 disables
    /// batching.
    pub max_batch: usize,
    /// The most events in one item of a watch stream.
    pub watch_batch: usize,
    /// Writes that may wait for the writer thread before callers wait to enqueue.
    pub queue_depth: usize,
    /// The most memory redb's page cache may hold. Reads are served from the in-memory
    /// index, so redb needs its cache only for the pages its commits touch; its own
    /// default (1 GiB) kept a copy of the whole database in memory, growing with every
    /// object. 2 MiB: at 8 MiB the hub held ~6 MB more after a 10,000-placement dispatch
    /// for no gain in writes per second or CPU per write (pages it misses are read from
    /// the kernel's page cache; docs/benchmarks.md, "redb's page cache").
    pub cache_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            history_capacity: 10_000,
            history_max_bytes: 256 << 20,
            max_batch: 256,
            watch_batch: 500,
            queue_depth: 4096,
            cache_bytes: 2 << 20,
        }
    }
}

/// The latest value of every key and the store revision, always updated together.
#[derive(Debug, Default)]
struct Index {
    kvs: BTreeMap<String, KeyValue>,
    revision: Revision,
}

/// What the backend, its writer thread and its watch streams share.
#[derive(Debug)]
struct Shared {
    index: RwLock<Index>,
    history: RwLock<History>,
    watch_batch: usize,
}

/// The embedded, crash-safe, single-file store (see the module docs).
///
/// Dropping it stops the writer thread after the writes already queued, closes the file
/// and ends every watch stream.
pub struct EmbeddedBackend {
    shared: Arc<Shared>,
    path: PathBuf,
    /// Taken in `Drop` to let the writer thread finish.
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Wakes watchers; the writer holds the sender.
    notify: watch::Receiver<Revision>,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBackend {
    /// Opens (creating when missing) the store in `data_dir` with default options.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, EmbeddedError> {
        Self::open_with_options(data_dir, EmbeddedOptions::default())
    }

    /// Opens (creating when missing) the store in `data_dir`.
    ///
    /// Blocks while redb checks the file (and repairs it after an unclean shutdown) and
    /// while the index is loaded; call it before serving, or from `spawn_blocking`.
    pub fn open_with_options(
        data_dir: impl AsRef<Path>,
        options: EmbeddedOptions,
    ) -> Result<Self, EmbeddedError> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| EmbeddedError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let open_err = |e: redb::Error| EmbeddedError::Open {
            path: path.clone(),
            source: Box::new(e),
        };
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|e| open_err(e.into()))?;
        let revision = init_meta(&db).map_err(|e| match e {
            InitError::Redb(e) => open_err(e),
            InitError::Format(found) => EmbeddedError::Format {
                path: path.clone(),
                found,
            },
        })?;
        let kvs = load_index(&db, revision)?;
        tracing::info!(
            path = %path.display(),
            revision,
            keys = kvs.len(),
            "opened embedded store"
        );

        let shared = Arc::new(Shared {
            index: RwLock::new(Index { kvs, revision }),
            history: RwLock::new(History::new(
                options.history_capacity.max(1),
                options.history_max_bytes,
                // Revision 1 of a fresh store has no event, so a watch from 0 misses nothing.
                if revision <= 1 { 0 } else { revision },
            )),
            watch_batch: options.watch_batch.max(1),
        });
        let (ops_tx, ops_rx) = mpsc::channel(options.queue_depth.max(1));
        let (notify_tx, notify_rx) = watch::channel(revision);
        let writer = Writer {
            db,
            shared: Arc::clone(&shared),
            ops: ops_rx,
            notify: notify_tx,
            max_batch: options.max_batch.max(1),
        };
        let handle = std::thread::Builder::new()
            .name("flotilla-storage-writer".into())
            .spawn(move || writer.run())
            .map_err(EmbeddedError::Spawn)?;
        Ok(Self {
            shared,
            path,
            ops: Some(ops_tx),
            writer: Some(handle),
            notify: notify_rx,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.shared.index.read().kvs.len()
    }

    /// True when no key exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let ops = self.ops.as_ref().ok_or(EmbeddedError::Closed)?;
        let (tx, rx) = oneshot::channel();
        ops.send(make(tx))
            .await
            .map_err(|_| EmbeddedError::Closed)?;
        rx.await.map_err(|_| EmbeddedError::Closed)?
    }
}

impl Drop for EmbeddedBackend {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit; joining it
        // means the file is closed (and may be reopened) once the drop returns.
        self.ops.take();
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("the storage writer thread panicked");
        }
    }
}

#[async_trait::async_trait]
impl Backend for EmbeddedBackend {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.index.read().revision)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.history.read().floor())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.shared.index.read().kvs.get(key).cloned())
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<RangeResult> {
        let index = self.shared.index.read();
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = index
            .kvs
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv);
        let kvs: Vec<KeyValue> = if limit > 0 {
            matching.by_ref().take(limit).cloned().collect()
        } else {
            matching.by_ref().cloned().collect()
        };
        let more = limit > 0 && matching.next().is_some();
        Ok(RangeResult {
            kvs,
            more,
            revision: index.revision,
        })
    }

    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<KeyValue> {
        if key.is_empty() {
            return Err(EmbeddedError::EmptyKey.into());
        }
        self.submit(|reply| Op::Put {
            key: key.to_owned(),
            value,
            precondition,
            reply,
        })
        .await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<(KeyValue, Revision)> {
        self.submit(|reply| Op::Delete {
            key: key.to_owned(),
            precondition,
            reply,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        history::watch(
            Arc::clone(&self.shared),
            self.notify.clone(),
            prefix.to_owned(),
            after,
        )
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.shared.index.read().revision;
        if revision > current {
            return Err(EmbeddedError::FutureRevision {
                requested: revision,
                current,
            }
            .into());
        }
        self.shared.history.write().compact(revision);
        Ok(())
    }
}

enum InitError {
    Redb(redb::Error),
    Format(i64),
}

impl<E: Into<redb::Error>> From<E> for InitError {
    fn from(e: E) -> Self {
        InitError::Redb(e.into())
    }
}

/// Creates the tables of a new store and returns the stored revision.
fn init_meta(db: &Database) -> Result<Revision, InitError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    let revision = {
        txn.open_table(KV)?;
        let mut meta = txn.open_table(META)?;
        let format = meta.get(META_FORMAT)?.map(|v| v.value());
        match format {
            Some(FORMAT) => {}
            Some(found) => return Err(InitError::Format(found)),
            None => {
                meta.insert(META_FORMAT, FORMAT)?;
            }
        }
        let stored = meta.get(META_REVISION)?.map(|v| v.value());
        match stored {
            Some(revision) => revision,
            None => {
                meta.insert(META_REVISION, 1)?;
                1
            }
        }
    };
    txn.commit()?;
    Ok(revision)
}

fn load_index(
    db: &Database,
    revision: Revision,
) -> Result<BTreeMap<String, KeyValue>, EmbeddedError> {
    let redb_err = |e: redb::Error| EmbeddedError::Load(Box::new(e));
    let txn = db.begin_read().map_err(|e| redb_err(e.into()))?;
    let table = txn.open_table(KV).map_err(|e| redb_err(e.into()))?;
    let mut kvs = BTreeMap::new();
    for entry in table.iter().map_err(|e| redb_err(e.into()))? {
        let (key, value) = entry.map_err(|e| redb_err(e.into()))?;
        let kv = decode(key.value(), value.value())?;
        if kv.mod_revision > revision {
            return Err(EmbeddedError::Corrupt {
                key: kv.key,
                reason: format!(
                    "modification revision {} is after the store revision {revision}",
                    kv.mod_revision
                ),
            });
        }
        kvs.insert(kv.key.clone(), kv);
    }
    Ok(kvs)
}

const HEADER: usize = 16;

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue, EmbeddedError> {
    let corrupt = |reason: &str| EmbeddedError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let (create, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("record shorter than its header"))?;
    let (modified, value) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("record shorter than its header"))?;
    let create_revision = i64::from_le_bytes(*create);
    let mod_revision = i64::from_le_bytes(*modified);
    if create_revision < 1 || mod_revision < create_revision {
        return Err(corrupt("revisions out of order"));
    }
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(value),
        create_revision,
        mod_revision,
    })
}

/// Which events a watcher wants.
fn matches(event: &Event, prefix: &str) -> bool {
    event.key().starts_with(prefix)
}

#[cfg(test)]
mod tests;
