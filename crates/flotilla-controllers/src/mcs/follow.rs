//! Which members take part, learnt from watches instead of reading every member each pass:
//! per followed member one task watches its ServiceExports and ServiceImports (two watches
//! on the member's shared connection, [`name_watch`]) and keeps the names each holds. A pass reads only the
//! members that hold an export or an import, or whose watches reported a change since the
//! last pass (so a member's last export or import going, a member (re)joining and a hub
//! restart still get one cleaning pass); an idle member costs no request per pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Semaphore;

use super::name_watch::{self, Update};
use super::observe::mcs_resource;
use crate::multiplexed_client::PlainClient;

/// What the watches know of each followed member, shared by its task and the passes.
pub(crate) type Board = Arc<Mutex<HashMap<String, Participation>>>;

/// Locks the board (a panic while holding it cannot leave an entry half-written).
pub(crate) fn lock(board: &Board) -> MutexGuard<'_, HashMap<String, Participation>> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One member's ServiceExports and ServiceImports (`namespace/name`).
#[derive(Debug, Default)]
pub(crate) struct Participation {
    exports: BTreeSet<String>,
    imports: BTreeSet<String>,
    /// A watch reported something since a pass last took the member.
    pub changed: bool,
}

impl Participation {
    /// Whether the member exports or imports anything.
    pub(crate) fn takes_part(&self) -> bool {
        !self.exports.is_empty() || !self.imports.is_empty()
    }
}

/// A member's watching task; stops when dropped.
pub(crate) struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts watching `cluster` (its entry on the board is created here). Its first lists wait
/// for a permit of `first_lists`, so a hub start or a mass join lists a bounded number of
/// members at once.
pub(crate) fn follow(
    cluster: &str,
    client: &PlainClient,
    board: &Board,
    first_lists: &Arc<Semaphore>,
) -> Follower {
    lock(board).insert(cluster.to_string(), Participation::default());
    let task = watch_member(
        cluster.to_string(),
        client.clone(),
        board.clone(),
        first_lists.clone(),
    );
    Follower(tokio::spawn(task))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Export,
    Import,
}

impl Kind {
    fn resource(self) -> kube::api::ApiResource {
        match self {
            Kind::Export => mcs_resource("ServiceExport", "serviceexports"),
            Kind::Import => mcs_resource("ServiceImport", "serviceimports"),
        }
    }
}

/// Lists the member's exports and imports (holding a permit of `first_lists` meanwhile, given
/// back as soon as both lists are done or one failed), then follows both until dropped.
async fn watch_member(
    cluster: String,
    client: PlainClient,
    board: Board,
    first_lists: Arc<Semaphore>,
) {
    let (exports, imports) = (Kind::Export.resource(), Kind::Import.resource());
    let permit = first_lists.acquire_owned().await.ok();
    // Boxed: the lists' futures live only while they run, not in the task for its life.
    let first = Box::pin(async {
        futures::join!(
            name_watch::list(&client, &exports),
            name_watch::list(&client, &imports)
        )
    })
    .await;
    drop(permit);
    let (cluster, board) = (&cluster, &board);
    futures::join!(
        name_watch::follow(&client, &exports, first.0, |update| {
            record(board, cluster, Kind::Export, update);
        }),
        name_watch::follow(&client, &imports, first.1, |update| {
            record(board, cluster, Kind::Import, update);
        }),
    );
}

/// Applies one update of a member's watch to its entry.
fn record(board: &Board, cluster: &str, kind: Kind, update: Update) {
    let mut board = lock(board);
    let Some(entry) = board.get_mut(cluster) else {
        return;
    };
    let names = match kind {
        Kind::Export => &mut entry.exports,
        Kind::Import => &mut entry.imports,
    };
    match update {
        Update::Listed(listed) => *names = listed,
        Update::Applied(name) => {
            names.insert(name);
        }
        Update::Deleted(name) => {
            names.remove(&name);
        }
    }
    entry.changed = true;
}
