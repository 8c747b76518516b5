//! The etcd-shaped storage layer.
//!
//! One global, monotonically increasing revision; every key carries the revision that
//! created it and the one that last modified it (the latter is the Kubernetes
//! `resourceVersion`). Writes are compare-and-swap on the modification revision, reads are
//! at the latest revision, watches start from any revision still in history, and history
//! older than the compacted revision is gone (a watch from there gets [`Error::Compacted`]).
//!
//! Nothing above this crate knows which backend runs: the API server holds an
//! `Arc<dyn Backend>` ([`SharedBackend`]).
//!
//! Backends:
//! - [`EmbeddedBackend`] (the default): one crash-safe redb file in the data dir, an
//!   in-memory index for reads and an in-memory watch history. See `docs/storage.md`.
//! - [`etcd::EtcdBackend`]: the same trait over `etcd-client`, so
//!   several hubs can share one etcd cluster. Revisions, CAS on the modification revision,
//!   watch-from-revision and compaction map one to one onto etcd's own, which is why the
//!   trait is shaped like it.
//!
//! [`throughput`] measures raw write throughput of any backend: the floor for the hub's
//! own benchmarks. [`local_port`] picks loopback ports for local etcd members.

pub mod embedded;
pub mod etcd;
#[cfg(feature = "test-support")]
pub mod etcd_process;
pub mod local_port;
pub mod throughput;

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use embedded::{EmbeddedBackend, EmbeddedError, EmbeddedOptions};

/// A store-wide revision. Starts at 1 for an empty store; each write adds one.
pub type Revision = i64;

/// A stored key with its value and revisions, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/apps/deployments/ns/name`.
    pub key: String,
    /// The stored bytes (the API server's JSON).
    pub value: Bytes,
    /// The revision that created the key (kept across updates).
    pub create_revision: Revision,
    /// The revision of the last write (the Kubernetes `resourceVersion`).
    pub mod_revision: Revision,
}

/// One change, as a watch delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A create (when `prev` is `None`) or an update.
    Put {
        /// The value written.
        kv: KeyValue,
        /// The value before, if the key existed.
        prev: Option<KeyValue>,
    },
    /// A delete at `revision`; `prev` is the value that was removed.
    Delete {
        /// The value removed.
        prev: KeyValue,
        /// The revision of the delete.
        revision: Revision,
    },
}

impl Event {
    /// The revision the change happened at.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// The result of a range read.
#[derive(Debug, Clone, Default)]
pub struct RangeResult {
    /// The keys found, in byte order.
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result short.
    pub more: bool,
    /// The store revision the read was served at.
    pub revision: Revision,
}

/// What a conditional write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The key must not exist (create).
    Absent,
    /// The key must exist with exactly this modification revision.
    ModRevision(Revision),
    /// The key must exist, any revision.
    Exists,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A precondition wanted the key to exist and it does not.
    #[error("key {0} not found")]
    NotFound(String),
    /// A create ([`Precondition::Absent`]) found the key.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// A compare-and-swap lost: the key was written since it was read.
    #[error("key {key}: expected modification revision {expected}, found {actual}")]
    RevisionMismatch {
        /// The key.
        key: String,
        /// The modification revision the caller expected.
        expected: Revision,
        /// The one it has.
        actual: Revision,
    },
    /// A watch asked to start before the oldest revision still in history.
    #[error("revision {requested} has been compacted; oldest available is {compacted}")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compacted revision.
        compacted: Revision,
    },
    /// The store cannot be reached or cannot serve now (e.g. etcd lost quorum); the same
    /// request may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other failure of the backend ([`EmbeddedError`], [`etcd::EtcdError`]).
    #[error("storage backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A result whose error is a storage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stream of batches of events in revision order. It ends when the store shuts down or
/// the watcher falls too far behind (the caller then re-lists, as Kubernetes clients do).
pub type WatchStream = BoxStream<'static, Result<Vec<Event>>>;

/// The etcd-shaped store.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// The oldest revision a watch may start after.
    async fn compacted_revision(&self) -> Result<Revision>;

    /// One key at the latest revision, `None` if absent.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix` in byte order, strictly after `start_after` when given,
    /// at most `limit` of them when `limit > 0`.
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<RangeResult>;

    /// Writes `value` at `key` if `precondition` holds. Returns the new key-value.
    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<KeyValue>;

    /// Deletes `key` if `precondition` holds (`Absent` is meaningless here). Returns the
    /// deleted key-value and the revision of the delete.
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<(KeyValue, Revision)>;

    /// Every event on keys starting with `prefix` with revision strictly greater than
    /// `after`. Fails with [`Error::Compacted`] if `after` is older than history.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets history at and before `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// The backend as the API server holds it, whichever it is.
pub type SharedBackend = Arc<dyn Backend>;

/// Checks `precondition` against the current value of a key.
pub(crate) fn check_precondition(
    key: &str,
    current: Option<&KeyValue>,
    precondition: Precondition,
) -> Result<()> {
    match (precondition, current) {
        (Precondition::Absent, None) => Ok(()),
        (Precondition::Absent, Some(_)) => Err(Error::AlreadyExists(key.to_owned())),
        (Precondition::Exists | Precondition::ModRevision(_), None) => {
            Err(Error::NotFound(key.to_owned()))
        }
        (Precondition::Exists, Some(_)) => Ok(()),
        (Precondition::ModRevision(expected), Some(kv)) if kv.mod_revision == expected => Ok(()),
        (Precondition::ModRevision(expected), Some(kv)) => Err(Error::RevisionMismatch {
            key: key.to_owned(),
            expected,
            actual: kv.mod_revision,
        }),
    }
}
