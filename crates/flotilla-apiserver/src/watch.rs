//! Watch fan-out: one storage watch per resource, decoded once and shared by every HTTP
//! watcher of that resource through a broadcast channel, with a short in-memory backlog so
//! a watcher can start a little in the past without its own storage watch. Watchers that
//! start further back get a dedicated storage watch (which replays history or fails with
//! `Compacted`, answered as 410 Expired).
//!
//! Memory: an event is kept as bytes only, the stored objects after and before the change,
//! shared with the store's own history (`resourceVersion` is written into the served
//! object as each line is sent, not into a copy held here); watchers with a selector
//! decode them when they need to. The backlog is bounded by count, bytes and age, so an
//! idle resource holds nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_core::status::ApiError;
use flotilla_storage::{Event, KeyValue, Revision, WatchStream};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::objects::{self, VersionSlot};
use crate::store::Store;

/// How many recent events each resource keeps for watchers that start slightly behind.
const BACKLOG: usize = 1024;
/// ... and at most about this many bytes (object and previous object) ...
const BACKLOG_BYTES: usize = 4 * 1024 * 1024;
/// ... for at most this long (a client lists, then watches from the list's revision at
/// once; one further behind is served from the storage history instead).
const BACKLOG_AGE: Duration = Duration::from_secs(60);
/// How often an idle feed drops backlog events past [`BACKLOG_AGE`].
const BACKLOG_SWEEP: Duration = Duration::from_secs(15);
/// How much of its recent past each resource's feed keeps (the oldest events go past any
/// bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BacklogBounds {
    /// Events.
    pub(crate) events: usize,
    /// Bytes of the events (object and previous object).
    pub(crate) bytes: usize,
    /// Age.
    pub(crate) age: Duration,
    /// Events in flight to live watchers: a watcher further behind is ended with 410
    /// Expired (it lists and watches again, as with kube-apiserver). The broadcast buffer
    /// takes ~40 bytes per slot up front, so 8,192 slots are ~320 KiB per resource watched.
    pub(crate) channel: usize,
}

impl BacklogBounds {
    /// The hub's feeds: [`BACKLOG`] events, [`BACKLOG_BYTES`], [`BACKLOG_AGE`].
    pub(crate) const HUB: BacklogBounds = BacklogBounds {
        events: BACKLOG,
        bytes: BACKLOG_BYTES,
        age: BACKLOG_AGE,
        channel: CHANNEL,
    };
    /// A simulated member's feeds: a small cluster's watchers (its simulator and exporter on
    /// loopback, the hub's drift watches) start from a list a moment old; one further behind
    /// is served from the member's storage history, or told 410 Expired past it.
    pub(crate) const MEMBER: BacklogBounds = BacklogBounds {
        events: 256,
        bytes: 256 * 1024,
        age: BACKLOG_AGE,
        channel: MEMBER_CHANNEL,
    };
}

/// Broadcast buffer per resource; a watcher further behind than this is dropped (it
/// re-watches, as Kubernetes clients do). Events are freed once every watcher has them.
const CHANNEL: usize = 8192;
/// A simulated member's broadcast buffer per resource (~40 KiB, against ~320 KiB for the
/// hub's: a member watches ~10 resources, and a thousand members share one process).
const MEMBER_CHANNEL: usize = 1024;

/// `ADDED`, `MODIFIED`, `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, shared by every watcher, held as bytes.
#[derive(Debug)]
pub(crate) struct WatchEvent {
    pub kind: EventType,
    pub revision: Revision,
    pub key: String,
    /// The object after the change as served, with `resourceVersion` (for deletes: the
    /// last state, at the delete revision).
    pub json: Served,
    /// The object before the change (updates and deletes), as JSON.
    prev: Option<Bytes>,
}

impl WatchEvent {
    /// An event from decoded objects (the served object and the one before the change).
    #[cfg(test)]
    pub(crate) fn from_values(
        kind: EventType,
        revision: Revision,
        key: String,
        object: &Value,
        prev: Option<&Value>,
    ) -> WatchEvent {
        let bytes = |v: &Value| Bytes::from(serde_json::to_vec(v).unwrap_or_default());
        WatchEvent {
            kind,
            revision,
            key,
            json: Served::Encoded(bytes(object)),
            prev: prev.map(bytes),
        }
    }

    /// The object after the change, decoded.
    pub(crate) fn object(&self) -> Value {
        let mut json = Vec::new();
        let json = match &self.json {
            Served::Encoded(bytes) => &bytes[..],
            spliced => {
                spliced.write_to(&mut json);
                &json[..]
            }
        };
        serde_json::from_slice(json).unwrap_or(Value::Null)
    }

    /// The object before the change, decoded.
    pub(crate) fn prev(&self) -> Option<Value> {
        self.prev
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }

    /// Bytes this event keeps alive.
    fn size(&self) -> usize {
        self.key.len() + self.json.len() + self.prev.as_ref().map_or(0, Bytes::len)
    }
}

/// An object as a watch serves it.
#[derive(Debug)]
pub(crate) enum Served {
    /// The stored bytes themselves, shared with the store and its history (not copied),
    /// with `resourceVersion` written into their [`VersionSlot`] as each line is sent.
    Stored {
        bytes: Bytes,
        slot: VersionSlot,
        revision: Revision,
    },
    /// Bytes encoded for serving (stored bytes not laid out for the slot, and tests).
    Encoded(Bytes),
}

impl Served {
    /// A stored object served at revision `rev`.
    fn of(kv: &KeyValue, rev: Revision) -> Result<Served, ApiError> {
        if let Some(slot) = VersionSlot::of(&kv.value) {
            return Ok(Served::Stored {
                bytes: kv.value.clone(),
                slot,
                revision: rev,
            });
        }
        let mut obj = objects::decode(kv)?;
        objects::set_resource_version(&mut obj, rev);
        Ok(Served::Encoded(Bytes::from(
            serde_json::to_vec(&obj).unwrap_or_default(),
        )))
    }

    /// Appends the served JSON to `out`.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Served::Stored {
                bytes,
                slot,
                revision,
            } => slot.write(bytes, *revision, out),
            Served::Encoded(bytes) => out.extend_from_slice(bytes),
        }
    }

    /// About how long the served JSON is.
    pub(crate) fn len(&self) -> usize {
        match self {
            Served::Stored { bytes, .. } => bytes.len() + objects::VERSION_ROOM,
            Served::Encoded(bytes) => bytes.len(),
        }
    }
}

/// Checks that a stored value is JSON (a watcher decodes `prev` only when it filters).
fn checked(kv: &KeyValue) -> Result<Bytes, ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(&kv.value)
        .map_err(|e| ApiError::internal(format!("decoding {}: {e}", kv.key)))?;
    Ok(kv.value.clone())
}

/// Decodes a storage event.
pub(crate) fn decode_event(ev: &Event) -> Result<WatchEvent, ApiError> {
    let (kind, json, prev) = match ev {
        Event::Put { kv, prev } => (
            if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            Served::of(kv, kv.mod_revision)?,
            prev.as_ref().map(checked).transpose()?,
        ),
        Event::Delete { prev, revision } => (
            EventType::Deleted,
            Served::of(prev, *revision)?,
            Some(checked(prev)?),
        ),
    };
    Ok(WatchEvent {
        kind,
        revision: ev.revision(),
        key: ev.key().to_string(),
        json,
        prev,
    })
}

struct FeedState {
    /// Events at or before this revision are not in `backlog`.
    floor: Revision,
    /// Recent events and when they arrived.
    backlog: VecDeque<(Instant, Arc<WatchEvent>)>,
    /// Bytes the events in `backlog` keep alive.
    bytes: usize,
    bounds: BacklogBounds,
}

impl FeedState {
    fn push(&mut self, event: Arc<WatchEvent>, now: Instant) {
        self.bytes += event.size();
        self.backlog.push_back((now, event));
        self.trim(now);
    }

    /// Drops the oldest events past any bound (count, bytes, age).
    fn trim(&mut self, now: Instant) {
        while let Some((at, oldest)) = self.backlog.front() {
            let over = self.backlog.len() > self.bounds.events
                || self.bytes > self.bounds.bytes
                || now.duration_since(*at) > self.bounds.age;
            if !over {
                break;
            }
            self.floor = oldest.revision;
            self.bytes -= oldest.size();
            self.backlog.pop_front();
        }
    }
}

struct Feed {
    sender: broadcast::Sender<Arc<WatchEvent>>,
    state: Mutex<FeedState>,
}

/// Where a watcher's events come from.
pub(crate) enum Subscription {
    /// The shared feed: `backlog` first, then `live` (skip revisions ≤ the last delivered).
    Shared {
        backlog: Vec<Arc<WatchEvent>>,
        live: broadcast::Receiver<Arc<WatchEvent>>,
    },
    /// A storage watch of its own.
    Direct(WatchStream),
}

/// The per-resource feeds of one server.
pub(crate) struct WatchHub {
    store: Store,
    feeds: Arc<Mutex<HashMap<String, Arc<Feed>>>>,
    bounds: BacklogBounds,
}

impl WatchHub {
    /// Feeds keeping the hub's bounds of their past.
    #[cfg(test)]
    pub(crate) fn new(store: Store) -> WatchHub {
        WatchHub::with_backlog(store, BacklogBounds::HUB)
    }

    /// Feeds keeping `bounds` of their past.
    pub(crate) fn with_backlog(store: Store, bounds: BacklogBounds) -> WatchHub {
        WatchHub {
            store,
            feeds: Arc::new(Mutex::new(HashMap::new())),
            bounds,
        }
    }

    /// Number of resources with a live shared feed.
    #[cfg(test)]
    pub(crate) fn feed_count(&self) -> usize {
        self.feeds.lock().len()
    }

    /// Makes sure the shared feed of `prefix` runs; returns the revision it started after.
    pub(crate) async fn ensure_feed(&self, prefix: &str) -> Result<(), ApiError> {
        if self.feeds.lock().contains_key(prefix) {
            return Ok(());
        }
        let start = self.store.current_revision().await?;
        let stream = self.store.watch_prefix(prefix, start).await?;
        let feed = {
            let mut feeds = self.feeds.lock();
            if feeds.contains_key(prefix) {
                return Ok(());
            }
            let (sender, _) = broadcast::channel(self.bounds.channel);
            let feed = Arc::new(Feed {
                sender,
                state: Mutex::new(FeedState {
                    floor: start,
                    backlog: VecDeque::new(),
                    bytes: 0,
                    bounds: self.bounds,
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
    pub(crate) async fn subscribe(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<Subscription, ApiError> {
        self.ensure_feed(prefix).await?;
        if let Some(feed) = self.feeds.lock().get(prefix).cloned() {
            let state = feed.state.lock();
            if after >= state.floor {
                let backlog = state
                    .backlog
                    .iter()
                    .filter(|(_, e)| e.revision > after)
                    .map(|(_, e)| e.clone())
                    .collect();
                let live = feed.sender.subscribe();
                return Ok(Subscription::Shared { backlog, live });
            }
        }
        let stream = self.store.watch_prefix(prefix, after).await?;
        Ok(Subscription::Direct(stream))
    }
}

async fn run_feed(mut stream: WatchStream, feed: &Feed) {
    let mut sweep = tokio::time::interval(BACKLOG_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            batch = stream.next() => batch,
            _ = sweep.tick() => {
                feed.state.lock().trim(Instant::now());
                continue;
            }
        };
        let batch = match batch {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "storage watch failed");
                return;
            }
            None => return,
        };
        for ev in &batch {
            let decoded = match decode_event(ev) {
                Ok(d) => Arc::new(d),
                Err(e) => {
                    tracing::warn!(key = ev.key(), error = %e.message, "undecodable object in watch");
                    continue;
                }
            };
            feed.state.lock().push(decoded.clone(), Instant::now());
            let _ = feed.sender.send(decoded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_storage::Precondition;
    use flotilla_storage::SharedBackend;

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

    #[test]
    fn an_event_serves_the_stored_bytes_with_its_revision() {
        let kv = |value: Bytes, rev: Revision| KeyValue {
            key: "/registry/configmaps/d/a".into(),
            value,
            create_revision: 3,
            mod_revision: rev,
        };
        let laid_out = objects::encode(&serde_json::from_slice(&obj("a", "2")).unwrap());
        let other_order = Bytes::from_static(
            br#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}}"#,
        );
        for stored in [laid_out.clone(), other_order] {
            let event = Event::Put {
                kv: kv(stored.clone(), 7),
                prev: Some(kv(obj("a", "1"), 5)),
            };
            let decoded = decode_event(&event).unwrap();
            assert_eq!(decoded.kind, EventType::Modified);
            let mut expected: Value = serde_json::from_slice(&stored).unwrap();
            objects::set_resource_version(&mut expected, 7);
            let mut served = Vec::new();
            decoded.json.write_to(&mut served);
            assert_eq!(serde_json::from_slice::<Value>(&served).unwrap(), expected);
            assert_eq!(decoded.object(), expected);
        }
        let Served::Stored { bytes, .. } = decode_event(&Event::Delete {
            prev: kv(laid_out.clone(), 7),
            revision: 9,
        })
        .unwrap()
        .json
        else {
            panic!("laid-out bytes are served as stored");
        };
        assert_eq!(bytes.as_ptr(), laid_out.as_ptr(), "shared, not copied");
    }

    #[test]
    fn the_backlog_is_bounded_by_count_bytes_and_age() {
        let event = |rev: Revision, len: usize| {
            Arc::new(WatchEvent {
                kind: EventType::Added,
                revision: rev,
                key: String::new(),
                json: Served::Encoded(Bytes::from(vec![b' '; len])),
                prev: None,
            })
        };
        let mut state = FeedState {
            floor: 0,
            backlog: VecDeque::new(),
            bytes: 0,
            bounds: BacklogBounds::HUB,
        };
        let t0 = Instant::now();
        for rev in 1..=(BACKLOG as Revision + 10) {
            state.push(event(rev, 10), t0);
        }
        assert_eq!(state.backlog.len(), BACKLOG);
        assert_eq!(state.floor, 10);
        state.push(event(2000, BACKLOG_BYTES), t0);
        assert_eq!(
            state.backlog.len(),
            1,
            "one large event pushes out the rest"
        );
        assert_eq!(state.bytes, BACKLOG_BYTES);
        state.trim(t0 + BACKLOG_AGE + Duration::from_secs(1));
        assert!(state.backlog.is_empty(), "an idle feed keeps nothing");
        assert_eq!((state.floor, state.bytes), (2000, 0));
    }

    #[tokio::test]
    async fn one_feed_serves_many_watchers_and_late_starters() {
        let dir = tempfile::tempdir().unwrap();
        let backend: SharedBackend =
            Arc::new(flotilla_storage::EmbeddedBackend::open(dir.path()).unwrap());
        let store = backend.clone();
        let hub = WatchHub::new(crate::store::Store::new(backend));
        let configmaps = crate::store::Resource {
            group: "",
            resource: "configmaps",
            namespaced: true,
        };
        let prefix = &configmaps.prefix();
        let start = store.current_revision().await.unwrap();
        let mut subs = Vec::new();
        for _ in 0..100 {
            subs.push(hub.subscribe(prefix, start).await.unwrap());
        }
        assert_eq!(hub.feed_count(), 1);
        let a = store
            .put(
                &configmaps.key("d", "a"),
                obj("a", "1"),
                Precondition::Absent,
            )
            .await
            .unwrap();
        store
            .put(
                &configmaps.key("d", "a"),
                obj("a", "2"),
                Precondition::ModRevision(a.mod_revision),
            )
            .await
            .unwrap();
        store
            .delete(&configmaps.key("d", "a"), Precondition::Exists)
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
            assert_eq!(kinds[1].object()["data"]["v"], "2");
            assert_eq!(kinds[1].prev().unwrap()["data"]["v"], "1");
            assert_eq!(
                kinds[2].object()["metadata"]["resourceVersion"],
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
