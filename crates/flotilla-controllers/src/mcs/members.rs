//! The members the controller follows: every ManagedCluster whose condition
//! `ManagedClusterConditionAvailable` is True (known from a watch of the hub's
//! ManagedClusters, not a list per pass), each with a [`PlainClient`] and a [`Follower`]
//! watching its exports and imports. A pass's typed reads and writes need a [`kube::Client`]
//! (a tower `Buffer`, a task and a channel block each, ~18 KiB per member on the hub): one is
//! built over the same connection for a member a pass reads, and kept only while the member
//! takes part, so an idle member costs its watches alone. A member that stops being available
//! (or leaves) is no longer followed; when it is available again its first lists mark it
//! changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::api::DynamicObject;
use kube::runtime::watcher;
use tokio::sync::Semaphore;

use super::MEMBER_TIMEOUT;
use super::follow::{self, Board, Follower};
use crate::application::member_clients::Identity;
use crate::cluster::{credentials, managed_cluster};
use crate::multiplexed_client::{PlainClient, plain_client};

/// A followed member.
struct Followed {
    client: PlainClient,
    /// Built when a pass reads the member; dropped once it takes no part.
    typed: Option<kube::Client>,
    _follower: Follower,
}

/// The available members, their clients and what their watches know.
pub(crate) struct Members {
    hub_client: kube::Client,
    /// Available members, from the hub's ManagedCluster watch.
    available: BTreeSet<String>,
    /// The same during the watch's (re)list.
    pending: BTreeSet<String>,
    followed: BTreeMap<String, Followed>,
    board: Board,
    first_lists: Arc<Semaphore>,
}

impl Members {
    /// No member yet; at most `concurrency` members' first lists run at once.
    pub(crate) fn new(hub_client: kube::Client, concurrency: usize) -> Members {
        Members {
            hub_client,
            available: BTreeSet::new(),
            pending: BTreeSet::new(),
            followed: BTreeMap::new(),
            board: Board::default(),
            first_lists: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Takes one event of the hub's ManagedCluster watch.
    pub(crate) fn observe(&mut self, event: watcher::Event<DynamicObject>) {
        let available = managed_cluster::is_available;
        match event {
            watcher::Event::Init => self.pending.clear(),
            watcher::Event::InitApply(c) => {
                if let Some(name) = c.metadata.name.clone().filter(|_| available(&c)) {
                    self.pending.insert(name);
                }
            }
            watcher::Event::InitDone => self.available = std::mem::take(&mut self.pending),
            watcher::Event::Apply(c) => {
                let name = c.metadata.name.clone().unwrap_or_default();
                if available(&c) {
                    self.available.insert(name);
                } else {
                    self.available.remove(&name);
                }
            }
            watcher::Event::Delete(c) => {
                self.available
                    .remove(c.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }

    /// Starts following the members that became available, stops following the others.
    pub(crate) async fn sync(&mut self) {
        self.followed
            .retain(|name, _| self.available.contains(name));
        follow::lock(&self.board).retain(|name, _| self.available.contains(name));
        let new: Vec<String> = (self.available.iter())
            .filter(|name| !self.followed.contains_key(*name))
            .cloned()
            .collect();
        for name in new {
            match member_client(&self.hub_client, &name).await {
                Ok(client) => {
                    let follower = follow::follow(&name, &client, &self.board, &self.first_lists);
                    let followed = Followed {
                        client,
                        typed: None,
                        _follower: follower,
                    };
                    self.followed.insert(name, followed);
                }
                Err(e) => tracing::warn!(cluster = %name, error = %e, "no client for member"),
            }
        }
    }

    /// The members a pass reads: those that export or import, and those whose watches
    /// reported a change since the last pass (the mark is cleared here). A member that takes
    /// no part keeps no typed client after the pass.
    pub(crate) fn take_for_pass(&mut self) -> BTreeMap<String, kube::Client> {
        let mut board = follow::lock(&self.board);
        let mut out = BTreeMap::new();
        for (name, followed) in &mut self.followed {
            let Some(entry) = board.get_mut(name) else {
                continue;
            };
            if entry.changed || entry.takes_part() {
                entry.changed = false;
                let typed = (followed.typed)
                    .get_or_insert_with(|| followed.client.kube_client())
                    .clone();
                out.insert(name.clone(), typed);
            }
            if !entry.takes_part() {
                followed.typed = None;
            }
        }
        out
    }

    /// A member whose read failed is read again next pass even if it then holds nothing.
    pub(crate) fn read_again(&self, name: &str) {
        if let Some(entry) = follow::lock(&self.board).get_mut(name) {
            entry.changed = true;
        }
    }
}

async fn member_client(
    hub_client: &kube::Client,
    name: &str,
) -> Result<PlainClient, credentials::Error> {
    let mut config = credentials::read(hub_client, name)
        .await?
        .to_config(name, Some(MEMBER_TIMEOUT))
        .await?;
    // The hub's stored credential only impersonates: the controller writes Services, slices,
    // export conditions and peer credentials as its own identity, which members' audit logs
    // name (set on the config: its headers go on every request of the one client).
    let controller = Identity::hub_component("mcs-controller", &["system:masters"]);
    config.auth_info.impersonate = controller.user;
    config.auth_info.impersonate_groups = Some(controller.groups);
    plain_client(config).map_err(|e| credentials::Error::Config {
        cluster_name: name.to_string(),
        cause: Box::new(e),
    })
}
