//! What every namespaced create asks first — does the namespace exist, and is it
//! terminating? — answered from memory, as kube-apiserver's NamespaceLifecycle admission
//! answers it from its namespace informer, instead of a storage read per create (one etcd
//! round trip each on `--storage etcd`).
//!
//! The cache lists the namespaces, then follows the storage's watch of them (so changes made
//! through any hub sharing the store arrive), and is also updated at once by this server's own
//! namespace writes (store hooks), so on one server a namespace marked Terminating refuses
//! new content from the moment the DELETE is answered, as before. Only an active namespace is
//! answered from memory: an unknown or deleted name, or any name while the cache is not
//! synced (starting, or re-listing after its watch ended), is read from storage as before.
//! With several hubs, a namespace another hub marked Terminating is seen after the watch
//! delivers it (milliseconds); an object created in that window is deleted by the namespace
//! lifecycle, which only removes a namespace after a pass that found it empty.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flotilla_core::status::ApiError;
use flotilla_storage::{Event, KeyValue, Revision};
use futures::StreamExt;
use parking_lot::RwLock;
use serde_json::Value;

use crate::store::keys::{NAMESPACES, cluster_scoped_name};
use crate::store::{HookEvent, Store};

/// A namespace's state as far as creating content in it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    Terminating,
}

/// What the cache knows of one name, as of `revision`.
#[derive(Debug, Clone, Copy)]
struct Known {
    revision: Revision,
    /// `None`: deleted (kept so that an older event cannot bring it back).
    phase: Option<Phase>,
}

/// The namespaces of one store, kept in memory.
pub(crate) struct NamespaceCache {
    store: Store,
    names: RwLock<HashMap<String, Known>>,
    synced: AtomicBool,
}

impl NamespaceCache {
    /// An empty, unsynced cache over `store` that already follows this server's own
    /// namespace writes; [`NamespaceCache::spawn`] starts following the store.
    pub(crate) fn new(store: Store) -> Arc<NamespaceCache> {
        let cache = Arc::new(NamespaceCache {
            store: store.clone(),
            names: RwLock::new(HashMap::new()),
            synced: AtomicBool::new(false),
        });
        let written = Arc::downgrade(&cache);
        let on_write: crate::store::Hook = Arc::new(move |event: &HookEvent<'_>| {
            if let Some(cache) = written.upgrade() {
                cache.on_own_write(event, false);
            }
        });
        store.after_create(on_write.clone());
        store.after_update(on_write);
        let removed = Arc::downgrade(&cache);
        store.after_delete(Arc::new(move |event: &HookEvent<'_>| {
            if let Some(cache) = removed.upgrade() {
                cache.on_own_write(event, true);
            }
        }));
        cache
    }

    /// Starts the list-then-watch loop on the current tokio runtime.
    pub(crate) fn spawn(self: &Arc<Self>) {
        let cache = self.clone();
        tokio::spawn(async move { cache.run().await });
    }

    /// The namespace's phase, `None` when it does not exist: from memory for a namespace
    /// known active, from storage otherwise.
    pub(crate) async fn phase(&self, name: &str) -> Result<Option<Phase>, ApiError> {
        if self.synced.load(Ordering::Acquire)
            && let Some(Known {
                phase: Some(Phase::Active),
                ..
            }) = self.names.read().get(name).copied()
        {
            return Ok(Some(Phase::Active));
        }
        let kv = self.store.get_kv(NAMESPACES, "", name).await?;
        Ok(match kv {
            Some(kv) => {
                let phase = phase_of_kv(&kv);
                self.learn(name, kv.mod_revision, Some(phase));
                Some(phase)
            }
            None => None,
        })
    }

    /// Records what is known of `name` as of `revision`, unless something newer is known.
    fn learn(&self, name: &str, revision: Revision, phase: Option<Phase>) {
        let mut names = self.names.write();
        match names.get_mut(name) {
            Some(known) if known.revision >= revision => {}
            Some(known) => *known = Known { revision, phase },
            None => {
                names.insert(name.to_string(), Known { revision, phase });
            }
        }
    }

    /// A namespace this server just created, updated or removed.
    fn on_own_write(&self, event: &HookEvent<'_>, removed: bool) {
        if !event.resource.is_namespaces() {
            return;
        }
        let meta = event.object.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
        let revision = meta
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse::<Revision>().ok());
        let (Some(name), Some(revision)) = (name, revision) else {
            return;
        };
        if removed {
            // The object carries the revision it had; its removal came after it.
            self.learn(name, revision + 1, None);
        } else {
            self.learn(name, revision, Some(phase_of(event.object)));
        }
    }

    fn apply(&self, events: &[Event]) {
        for event in events {
            let Some(name) = cluster_scoped_name(&NAMESPACES, event.key()) else {
                continue;
            };
            match event {
                Event::Put { kv, .. } => self.learn(name, kv.mod_revision, Some(phase_of_kv(kv))),
                Event::Delete { revision, .. } => self.learn(name, *revision, None),
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let prefix = NAMESPACES.prefix();
        loop {
            let revision = match self.store.list_kvs(&prefix).await {
                Ok((kvs, revision)) => {
                    for kv in &kvs {
                        if let Some(name) = cluster_scoped_name(&NAMESPACES, &kv.key) {
                            self.learn(name, kv.mod_revision, Some(phase_of_kv(kv)));
                        }
                    }
                    self.forget_missing(&kvs, revision);
                    revision
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing namespaces failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut stream = match self.store.watch_prefix(&prefix, revision).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "watching namespaces failed; re-listing");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            self.synced.store(true, Ordering::Release);
            while let Some(batch) = stream.next().await {
                match batch {
                    Ok(events) => self.apply(&events),
                    Err(e) => {
                        tracing::debug!(error = %e, "namespace watch ended; re-listing");
                        break;
                    }
                }
            }
            self.synced.store(false, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// After a full list at `revision`: names known from before it that the list did not
    /// return are gone.
    fn forget_missing(&self, listed: &[KeyValue], revision: Revision) {
        let present: std::collections::HashSet<&str> = listed
            .iter()
            .filter_map(|kv| cluster_scoped_name(&NAMESPACES, &kv.key))
            .collect();
        let mut names = self.names.write();
        for (name, known) in names.iter_mut() {
            if known.revision <= revision && !present.contains(name.as_str()) {
                *known = Known {
                    revision,
                    phase: None,
                };
            }
        }
    }
}

fn phase_of(ns: &Value) -> Phase {
    match ns.pointer("/status/phase").and_then(Value::as_str) {
        Some("Terminating") => Phase::Terminating,
        _ => Phase::Active,
    }
}

fn phase_of_kv(kv: &KeyValue) -> Phase {
    // An undecodable namespace is not known active: it is read from storage each time.
    serde_json::from_slice::<Value>(&kv.value)
        .map(|ns| phase_of(&ns))
        .unwrap_or(Phase::Terminating)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(name: &str, rev: Revision, phase: &str) -> KeyValue {
        KeyValue {
            key: NAMESPACES.key("", name),
            value: bytes::Bytes::from(
                serde_json::to_vec(
                    &json!({"metadata": {"name": name}, "status": {"phase": phase}}),
                )
                .unwrap(),
            ),
            create_revision: rev,
            mod_revision: rev,
        }
    }

    fn cache() -> (tempfile::TempDir, Arc<NamespaceCache>) {
        let dir = tempfile::tempdir().unwrap();
        let backend: flotilla_storage::SharedBackend =
            Arc::new(flotilla_storage::EmbeddedBackend::open(dir.path().join("db")).unwrap());
        (dir, NamespaceCache::new(Store::new(backend)))
    }

    fn known(cache: &NamespaceCache, name: &str) -> Option<Phase> {
        cache.names.read().get(name).and_then(|k| k.phase)
    }

    #[tokio::test]
    async fn an_older_event_does_not_undo_a_newer_one() {
        let (_dir, cache) = cache();
        cache.apply(&[Event::Put {
            kv: kv("a", 5, "Active"),
            prev: None,
        }]);
        assert_eq!(known(&cache, "a"), Some(Phase::Active));
        cache.learn("a", 7, Some(Phase::Terminating));
        cache.apply(&[Event::Put {
            kv: kv("a", 6, "Active"),
            prev: None,
        }]);
        assert_eq!(known(&cache, "a"), Some(Phase::Terminating));
        cache.apply(&[Event::Delete {
            prev: kv("a", 7, "Terminating"),
            revision: 8,
        }]);
        assert_eq!(known(&cache, "a"), None);
        // A put from before the delete (a late hook, say) does not bring it back.
        cache.learn("a", 7, Some(Phase::Active));
        assert_eq!(known(&cache, "a"), None);
    }

    #[tokio::test]
    async fn unknown_or_unsynced_names_are_read_from_storage() {
        let (_dir, cache) = cache();
        cache.learn("ghost", 3, Some(Phase::Active));
        // Not synced: the store (which has no such namespace) answers.
        assert_eq!(cache.phase("ghost").await.unwrap(), None);
        cache.synced.store(true, Ordering::Release);
        assert_eq!(cache.phase("ghost").await.unwrap(), Some(Phase::Active));
        assert_eq!(cache.phase("other").await.unwrap(), None);
        cache.forget_missing(&[], 10);
        assert_eq!(cache.phase("ghost").await.unwrap(), None);
    }
}
