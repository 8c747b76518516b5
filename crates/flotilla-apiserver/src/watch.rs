//! Watch fan-out: one storage watch per resource, decoded once and shared by every HTTP
//! watcher of that resource through a broadcast channel, with a short in-memory backlog so
//! a watcher can start a little in the past without its own storage watch. Watchers that
//! start further back get a dedicated storage watch (which replays history or fails with
//! `Compacted`, answered as 410 Expired).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use flotilla_core::status::ApiError;
use flotilla_storage::{Event, Revision, SharedBackend, WatchStream};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::storage_error;
use crate::objects;

/// How many recent events each resource keeps for watchers that start slightly behind.
const BACKLOG: usize = 4096;
/// ... and at most about this many bytes of serialized objects.
const BACKLOG_BYTES: usize = 32 * 1024 * 1024;
/// Broadcast buffer per resource; a watcher further behind than this is dropped (it
/// re-watches, as Kubernetes clients do).
const CHANNEL: usize = 8192;

/// `ADDED`, `MODIFIED`, `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One decoded change, shared by every watcher.
#[derive(Debug)]
pub struct WatchEvent {
    pub kind: EventType,
    pub revision: Revision,
    pub key: String,
    /// The object after the change (for deletes: the last state, at the delete revision).
    pub object: Value,
    /// The object before the change (updates and deletes).
    pub prev: Option<Value>,
    /// `object` serialized once.
    pub json: Bytes,
}

/// Decodes a storage event.
pub fn decode_event(ev: &Event) -> Result<WatchEvent, ApiError> {
    let (kind, object, prev) = match ev {
        Event::Put { kv, prev } => (
            if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            objects::decode(kv)?,
            prev.as_ref().map(objects::decode).transpose()?,
        ),
        Event::Delete { prev, revision } => {
            let mut obj = objects::decode(prev)?;
            objects::set_resource_version(&mut obj, *revision);
            let before = objects::decode(prev)?;
            (EventType::Deleted, obj, Some(before))
        }
    };
    let json = Bytes::from(serde_json::to_vec(&object).unwrap_or_default());
    Ok(WatchEvent {
        kind,
        revision: ev.revision(),
        key: ev.key().to_string(),
        object,
        prev,
        json,
    })
}

struct FeedState {
    /// Events at or before this revision are not in `backlog`.
    floor: Revision,
    backlog: VecDeque<Arc<WatchEvent>>,
    /// Serialized size of the objects in `backlog`.
    bytes: usize,
}

struct Feed {
    sender: broadcast::Sender<Arc<WatchEvent>>,
    state: Mutex<FeedState>,
}

/// Where a watcher's events come from.
pub enum Subscription {
    /// The shared feed: `backlog` first, then `live` (skip revisions ≤ the last delivered).
    Shared {
        backlog: Vec<Arc<WatchEvent>>,
        live: broadcast::Receiver<Arc<WatchEvent>>,
    },
    /// A storage watch of its own.
    Direct(WatchStream),
}

/// The per-resource feeds of one server.
pub struct WatchHub {
    store: SharedBackend,
    feeds: Arc<Mutex<HashMap<String, Arc<Feed>>>>,
}

impl WatchHub {
    pub fn new(store: SharedBackend) -> WatchHub {
        WatchHub {
            store,
            feeds: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Number of resources with a live shared feed.
    pub fn feed_count(&self) -> usize {
        self.feeds.lock().len()
    }

    /// Makes sure the shared feed of `prefix` runs; returns the revision it started after.
    pub async fn ensure_feed(&self, prefix: &str) -> Result<(), ApiError> {
        if self.feeds.lock().contains_key(prefix) {
            return Ok(());
        }
        let start = self.store.current_revision().await.map_err(storage_error)?;
        let stream = self
            .store
            .watch(prefix, start)
            .await
            .map_err(storage_error)?;
        let feed = {
            let mut feeds = self.feeds.lock();
            if feeds.contains_key(prefix) {
                return Ok(());
            }
            let (sender, _) = broadcast::channel(CHANNEL);
            let feed = Arc::new(Feed {
                sender,
                state: Mutex::new(FeedState {
                    floor: start,
                    backlog: VecDeque::new(),
                    bytes: 0,
                }),
            });
            feeds.insert(prefix.to_string(), feed.clone());
            feed
        };
        let feeds = Arc::clone(&self.feeds);
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            run_feed(stream, &feed).await;
            feeds.lock().remove(&prefix);
            tracing::debug!(%prefix, "watch feed ended");
        });
        Ok(())
    }

    /// Subscribes to changes under `prefix` after revision `after`.
    pub async fn subscribe(&self, prefix: &str, after: Revision) -> Result<Subscription, ApiError> {
        self.ensure_feed(prefix).await?;
        if let Some(feed) = self.feeds.lock().get(prefix).cloned() {
            let state = feed.state.lock();
            if after >= state.floor {
                let backlog = state
                    .backlog
                    .iter()
                    .filter(|e| e.revision > after)
                    .cloned()
                    .collect();
                let live = feed.sender.subscribe();
                return Ok(Subscription::Shared { backlog, live });
            }
        }
        let stream = self
            .store
            .watch(prefix, after)
            .await
            .map_err(storage_error)?;
        Ok(Subscription::Direct(stream))
    }
}

async fn run_feed(mut stream: WatchStream, feed: &Feed) {
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "storage watch failed");
                return;
            }
        };
        for ev in &batch {
            let decoded = match decode_event(ev) {
                Ok(d) => Arc::new(d),
                Err(e) => {
                    tracing::warn!(key = ev.key(), error = %e.message, "undecodable object in watch");
                    continue;
                }
            };
            let mut state = feed.state.lock();
            state.bytes += decoded.json.len();
            state.backlog.push_back(decoded.clone());
            while state.backlog.len() > BACKLOG || state.bytes > BACKLOG_BYTES {
                match state.backlog.pop_front() {
                    Some(old) => {
                        state.floor = old.revision;
                        state.bytes -= old.json.len();
                    }
                    None => break,
                }
            }
            let _ = feed.sender.send(decoded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_storage::Precondition;

    fn obj(name: &str, v: &str) -> Bytes {
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "d"}, "data": {"v": v}}))
                .unwrap(),
        )
    }

    async fn next_shared(sub: &mut Subscription) -> Arc<WatchEvent> {
        match sub {
            Subscription::Shared { backlog, live } => {
                if !backlog.is_empty() {
                    return backlog.remove(0);
                }
                tokio::time::timeout(std::time::Duration::from_secs(5), live.recv())
                    .await
                    .unwrap()
                    .unwrap()
            }
            Subscription::Direct(_) => panic!("expected the shared feed"),
        }
    }

    #[tokio::test]
    async fn one_feed_serves_many_watchers_and_late_starters() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedBackend =
            Arc::new(flotilla_storage::EmbeddedBackend::open(dir.path()).unwrap());
        let hub = WatchHub::new(store.clone());
        let prefix = "/registry/core/configmaps/";
        let start = store.current_revision().await.unwrap();
        let mut subs = Vec::new();
        for _ in 0..100 {
            subs.push(hub.subscribe(prefix, start).await.unwrap());
        }
        assert_eq!(hub.feed_count(), 1);
        let a = store
            .put(&format!("{prefix}d/a"), obj("a", "1"), Precondition::Absent)
            .await
            .unwrap();
        store
            .put(
                &format!("{prefix}d/a"),
                obj("a", "2"),
                Precondition::ModRevision(a.mod_revision),
            )
            .await
            .unwrap();
        store
            .delete(&format!("{prefix}d/a"), Precondition::Exists)
            .await
            .unwrap();
        for sub in &mut subs {
            let kinds = [
                next_shared(sub).await,
                next_shared(sub).await,
                next_shared(sub).await,
            ];
            assert_eq!(
                kinds.iter().map(|e| e.kind).collect::<Vec<_>>(),
                [EventType::Added, EventType::Modified, EventType::Deleted]
            );
            assert_eq!(kinds[1].object["data"]["v"], "2");
            assert_eq!(
                kinds[2].object["metadata"]["resourceVersion"],
                kinds[2].revision.to_string()
            );
        }
        // A watcher starting after the first event gets the rest from the backlog.
        let mut late = hub.subscribe(prefix, a.mod_revision).await.unwrap();
        assert_eq!(next_shared(&mut late).await.kind, EventType::Modified);
        assert_eq!(next_shared(&mut late).await.kind, EventType::Deleted);
        // One from before the feed existed gets a storage watch of its own.
        assert!(matches!(
            hub.subscribe(prefix, start - 1).await.unwrap(),
            Subscription::Direct(_)
        ));
    }
}
