//! The API server's background work that must run on exactly one server per store: garbage
//! collection ([`crate::gc`]), the namespace lifecycle ([`crate::namespace`]) and history
//! compaction ([`crate::compaction`]). With several hubs over one etcd, the hub holding the
//! controllers' Lease runs it (the binary starts [`run`] beside the controllers); a simulated
//! member, alone on its store, runs it always.
//!
//! Work comes from one storage watch over every object, so changes made through any hub are
//! seen: a delete may leave dependents to collect, a `deletionTimestamp` with a GC finalizer
//! needs its dependents handled first, a namespace turning Terminating must be emptied.

use futures::StreamExt;
use tokio::sync::mpsc;

use flotilla_core::status::ApiError;

use crate::error::storage_error;
use crate::gc::GcEvent;
use crate::state::SharedState;

/// Runs GC, the namespace lifecycle and compaction until dropped, or until the storage watch
/// ends (e.g. etcd lost quorum): then it returns the error and the caller starts it again,
/// which sweeps for anything missed meanwhile.
pub async fn run(state: SharedState) -> Result<(), ApiError> {
    let start = state.store.current_revision().await?;
    // Watching from before the start-up sweeps: nothing falls between them and the watch.
    let mut changes = state.store.watch_all(start).await?;
    let (gc_tx, gc_rx) = mpsc::unbounded_channel();
    let (ns_tx, ns_rx) = mpsc::unbounded_channel();
    let follow = async {
        while let Some(batch) = changes.next().await {
            for change in &batch.map_err(storage_error)? {
                if let Some(work) = GcEvent::from_change(change) {
                    let _ = gc_tx.send(work);
                }
                if let Some(namespace) = crate::namespace::terminating_in(change) {
                    let _ = ns_tx.send(namespace);
                }
            }
        }
        Err(ApiError::service_unavailable("the storage watch ended"))
    };
    tokio::select! {
        r = follow => r,
        () = crate::gc::run(state.clone(), gc_rx) => Ok(()),
        () = crate::namespace::run(state.clone(), ns_rx) => Ok(()),
        () = crate::compaction::run(state.clone()) => Ok(()),
    }
}
