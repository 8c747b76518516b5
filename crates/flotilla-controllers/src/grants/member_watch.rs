//! Watches of the grant bindings (labelled [`GRANT_LABEL`]) on the members that hold some: a
//! binding deleted there by anyone but a pass starts a pass at once, instead of at the next
//! resync. One RoleBinding and one ClusterRoleBinding watch per such member, on the member's
//! shared fleet connection; a watch that had to list again (it was away, and may have missed
//! a deletion) starts a pass too.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;

use super::{GRANT_LABEL, member_identity};
use crate::application::member_clients::MemberClients;

/// The running watches, by cluster; each signals `changed` when a pass is due.
pub(super) struct MemberWatches {
    members: MemberClients,
    changed: Sender<()>,
    running: BTreeMap<String, JoinHandle<()>>,
}

impl MemberWatches {
    pub(super) fn new(members: MemberClients, changed: Sender<()>) -> Self {
        MemberWatches {
            members,
            changed,
            running: BTreeMap::new(),
        }
    }

    /// Watches exactly the clusters in `bound`: new ones are started (again, if their watch
    /// ended because no client could be made), those no longer bound stopped.
    pub(super) fn follow(&mut self, bound: &BTreeSet<String>) {
        self.running.retain(|cluster, task| {
            let keep = bound.contains(cluster) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for cluster in bound {
            if !self.running.contains_key(cluster) {
                let task = tokio::spawn(watch(
                    self.members.clone(),
                    cluster.clone(),
                    self.changed.clone(),
                ));
                self.running.insert(cluster.clone(), task);
            }
        }
    }
}

impl Drop for MemberWatches {
    fn drop(&mut self) {
        self.running.values().for_each(JoinHandle::abort);
    }
}

/// Whether a watch event may mean a binding is missing: a deletion, or the end of a list
/// other than the first.
fn wants_pass<K>(event: &watcher::Event<K>, listed_before: &mut bool) -> bool {
    match event {
        watcher::Event::Delete(_) => true,
        watcher::Event::InitDone => std::mem::replace(listed_before, true),
        _ => false,
    }
}

/// Watches `cluster`'s grant bindings until aborted; without a client for it (not joined, or
/// gone), until the next pass starts it again.
async fn watch(members: MemberClients, cluster: String, changed: Sender<()>) {
    let client = match members.as_user(&cluster, &member_identity()).await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(%cluster, error = %format!("{e:#}"), "grants: no member client");
            return;
        }
    };
    let config = watcher::Config::default().labels(GRANT_LABEL);
    let (mut role_lists, mut cluster_role_lists) = (false, false);
    let roles = watcher(Api::<RoleBinding>::all(client.clone()), config.clone())
        .default_backoff()
        .filter_map(|e| futures::future::ready(e.ok()))
        .map(move |e| wants_pass(&e, &mut role_lists));
    let cluster_roles = watcher(Api::<ClusterRoleBinding>::all(client), config)
        .default_backoff()
        .filter_map(|e| futures::future::ready(e.ok()))
        .map(move |e| wants_pass(&e, &mut cluster_role_lists));
    let mut signals = futures::stream::select(roles.boxed(), cluster_roles.boxed());
    while let Some(pass) = signals.next().await {
        if pass {
            tracing::debug!(%cluster, "grants: a member binding went; pass");
            // A full channel already holds a pending pass.
            let _ = changed.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletions_and_relists_start_a_pass() {
        let mut listed = false;
        let mut pass = |e: watcher::Event<RoleBinding>| wants_pass(&e, &mut listed);
        assert!(!pass(watcher::Event::Init));
        assert!(!pass(watcher::Event::InitApply(RoleBinding::default())));
        assert!(!pass(watcher::Event::InitDone), "the first list");
        assert!(!pass(watcher::Event::Apply(RoleBinding::default())));
        assert!(pass(watcher::Event::Delete(RoleBinding::default())));
        assert!(!pass(watcher::Event::Init));
        assert!(pass(watcher::Event::InitDone), "a list after the first");
    }
}
