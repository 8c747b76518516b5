//! Storage history compaction, as kube-apiserver does it: every [`INTERVAL`], compact to the
//! revision seen one interval earlier, so watchers always have at least that much history.
//! It runs inside [`crate::leader_tasks`], so hubs sharing an etcd do not each compact.

use std::time::Duration;

use flotilla_storage::Revision;

use crate::state::SharedState;

/// How often history is compacted (kube-apiserver's `--etcd-compaction-interval` default).
pub(crate) const INTERVAL: Duration = Duration::from_secs(300);

/// Compacts every [`INTERVAL`] until dropped; failures are logged and retried next time.
pub(crate) async fn run(state: SharedState) {
    let mut previous: Option<Revision> = None;
    loop {
        tokio::time::sleep(INTERVAL).await;
        let current = match state.store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "compaction: reading the revision failed");
                continue;
            }
        };
        if let Some(revision) = previous.filter(|&r| r > 0) {
            match state.store.compact(revision).await {
                Ok(()) => tracing::info!(revision, "compacted storage history"),
                Err(e) => tracing::warn!(revision, error = %e, "compaction failed"),
            }
        }
        previous = Some(current);
    }
}
