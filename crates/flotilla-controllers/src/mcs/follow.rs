//! Which members take part, learnt from watches instead of reading every member each pass:
//! per followed member one task watches its ServiceExports and ServiceImports (two watches
//! on the member's shared connection) and keeps the names each holds. A pass reads only the
//! members that hold an export or an import, or whose watches reported a change since the
//! last pass (so a member's last export or import going, a member (re)joining and a hub
//! restart still get one cleaning pass); an idle member costs no request per pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Semaphore;

use super::observe::mcs_resource;

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
    client: &kube::Client,
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
    Export = 0,
    Import = 1,
}

async fn watch_member(
    cluster: String,
    client: kube::Client,
    board: Board,
    first_lists: Arc<Semaphore>,
) {
    let watch = |kind: Kind, resource: kube::api::ApiResource| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (kind, event))
    };
    let events = futures::stream::select(
        watch(
            Kind::Export,
            mcs_resource("ServiceExport", "serviceexports"),
        ),
        watch(
            Kind::Import,
            mcs_resource("ServiceImport", "serviceimports"),
        ),
    );
    let mut events = std::pin::pin!(events);
    let mut permit = first_lists.acquire_owned().await.ok();
    let mut listed = [false, false];
    let mut pending: [BTreeSet<String>; 2] = Default::default();
    while let Some((kind, event)) = events.next().await {
        match event {
            Ok(event) => {
                listed[kind as usize] |= matches!(event, watcher::Event::InitDone);
                record(&board, &cluster, kind, event, &mut pending[kind as usize]);
            }
            Err(e) => {
                tracing::debug!(cluster = %cluster, error = %e, "multi-cluster services watch");
                // A member that cannot be listed gives its turn to the next one.
                permit = None;
            }
        }
        if listed == [true, true] {
            permit = None;
        }
    }
    drop(permit);
}

/// Applies one watch event to the member's entry.
fn record(
    board: &Board,
    cluster: &str,
    kind: Kind,
    event: watcher::Event<DynamicObject>,
    pending: &mut BTreeSet<String>,
) {
    let key = |o: &DynamicObject| {
        format!(
            "{}/{}",
            o.metadata.namespace.as_deref().unwrap_or_default(),
            o.metadata.name.as_deref().unwrap_or_default()
        )
    };
    let mut board = lock(board);
    let Some(entry) = board.get_mut(cluster) else {
        return;
    };
    let names = match kind {
        Kind::Export => &mut entry.exports,
        Kind::Import => &mut entry.imports,
    };
    match event {
        watcher::Event::Init => pending.clear(),
        watcher::Event::InitApply(o) => {
            pending.insert(key(&o));
        }
        watcher::Event::InitDone => {
            *names = std::mem::take(pending);
            entry.changed = true;
        }
        watcher::Event::Apply(o) => {
            names.insert(key(&o));
            entry.changed = true;
        }
        watcher::Event::Delete(o) => {
            names.remove(&key(&o));
            entry.changed = true;
        }
    }
}
