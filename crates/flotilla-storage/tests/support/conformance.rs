//! What every backend must do, written against the trait only, so the embedded and etcd
//! backends are held to the same behaviour. Each check uses its own key prefix and
//! revisions relative to the store's current one, so checks can share a store.

use std::time::Duration;

use bytes::Bytes;
use flotilla_storage::{Backend, Error, Event, Precondition, WatchStream};
use futures::StreamExt;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next(stream: &mut WatchStream) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch event in time")
        .expect("stream still open")
        .expect("no watch error")
}

pub(crate) async fn compare_and_swap(store: &dyn Backend, prefix: &str) {
    let key = format!("{prefix}k");
    let start = store.current_revision().await.unwrap();
    let created = store
        .put(&key, b("v1"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        (created.create_revision, created.mod_revision),
        (start + 1, start + 1)
    );
    assert_eq!(store.current_revision().await.unwrap(), start + 1);

    let err = store
        .put(&key, b("x"), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    let err = store
        .put(&key, b("x"), Precondition::ModRevision(start))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RevisionMismatch { expected, actual, .. } if expected == start && actual == start + 1),
        "{err}"
    );
    assert_eq!(
        store.current_revision().await.unwrap(),
        start + 1,
        "refusals write nothing"
    );

    let updated = store
        .put(&key, b("v2"), Precondition::ModRevision(start + 1))
        .await
        .unwrap();
    assert_eq!(
        (updated.create_revision, updated.mod_revision),
        (start + 1, start + 2)
    );
    assert_eq!(updated.value, b("v2"));
    assert_eq!(store.get(&key).await.unwrap(), Some(updated.clone()));
    let exists = store
        .put(&key, b("v3"), Precondition::Exists)
        .await
        .unwrap();
    assert_eq!(exists.mod_revision, start + 3);

    let missing = format!("{prefix}missing");
    for pre in [Precondition::Exists, Precondition::ModRevision(start + 1)] {
        let err = store.put(&missing, b("x"), pre).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
    }
    for pre in [
        Precondition::Exists,
        Precondition::Absent,
        Precondition::ModRevision(1),
    ] {
        let err = store.delete(&missing, pre).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{pre:?}: {err}");
    }
    let err = store.delete(&key, Precondition::Absent).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    let err = store
        .delete(&key, Precondition::ModRevision(start + 2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RevisionMismatch { .. }), "{err}");

    let (prev, rev) = store
        .delete(&key, Precondition::ModRevision(start + 3))
        .await
        .unwrap();
    assert_eq!(prev, exists);
    assert_eq!(rev, start + 4);
    assert_eq!(store.current_revision().await.unwrap(), start + 4);
    assert!(store.get(&key).await.unwrap().is_none());

    let again = store
        .put(&key, b("v4"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        (again.create_revision, again.mod_revision),
        (start + 5, start + 5)
    );
}

pub(crate) async fn range_pages(store: &dyn Backend, prefix: &str) {
    let pods = format!("{prefix}pods/");
    for key in ["ns1/b", "ns1/a", "ns2/c"] {
        let key = format!("{pods}{key}");
        store
            .put(&key, b(&key), Precondition::Absent)
            .await
            .unwrap();
    }
    // Neighbours that must not show up.
    store
        .put(
            &format!("{prefix}podsx/ns1/z"),
            b("x"),
            Precondition::Absent,
        )
        .await
        .unwrap();
    store
        .put(
            &format!("{prefix}configmaps/ns1/a"),
            b("x"),
            Precondition::Absent,
        )
        .await
        .unwrap();
    let rev = store.current_revision().await.unwrap();

    let all = store.range(&pods, None, 0).await.unwrap();
    let keys: Vec<_> = all
        .kvs
        .iter()
        .map(|kv| kv.key.trim_start_matches(&pods))
        .collect();
    assert_eq!(keys, ["ns1/a", "ns1/b", "ns2/c"]);
    assert!(!all.more);
    assert_eq!(all.revision, rev);
    assert!(all.kvs.iter().all(|kv| kv.value == b(&kv.key)));

    let page1 = store.range(&pods, None, 2).await.unwrap();
    assert_eq!(page1.kvs.len(), 2);
    assert!(page1.more);
    let page2 = store
        .range(&pods, Some(&page1.kvs[1].key), 2)
        .await
        .unwrap();
    assert_eq!(page2.kvs.len(), 1);
    assert!(page2.kvs[0].key.ends_with("ns2/c"));
    assert!(!page2.more);
    let exact = store.range(&pods, None, 3).await.unwrap();
    assert!(!exact.more);

    let ns1 = store.range(&format!("{pods}ns1/"), None, 0).await.unwrap();
    assert_eq!(ns1.kvs.len(), 2);
    assert!(
        store
            .range(&format!("{prefix}none/"), None, 5)
            .await
            .unwrap()
            .kvs
            .is_empty()
    );
}

pub(crate) async fn watch_replay_then_live(store: &dyn Backend, prefix: &str) {
    let a = format!("{prefix}a/");
    let start = store.current_revision().await.unwrap();
    let a1 = store
        .put(&format!("{a}1"), b("x"), Precondition::Absent)
        .await
        .unwrap();
    store
        .put(&format!("{prefix}b/1"), b("x"), Precondition::Absent)
        .await
        .unwrap();
    let a1b = store
        .put(
            &format!("{a}1"),
            b("y"),
            Precondition::ModRevision(a1.mod_revision),
        )
        .await
        .unwrap();

    let mut from_start = store.watch(&a, start).await.unwrap();
    let mut from_mid = store.watch(&a, a1.mod_revision).await.unwrap();
    let mut replay = Vec::new();
    while replay.len() < 2 {
        replay.extend(next(&mut from_start).await);
    }
    assert_eq!(
        replay[0],
        Event::Put {
            kv: a1.clone(),
            prev: None
        }
    );
    assert_eq!(
        replay[1],
        Event::Put {
            kv: a1b.clone(),
            prev: Some(a1.clone())
        }
    );
    let mid = next(&mut from_mid).await;
    assert_eq!(
        mid.iter().map(Event::revision).collect::<Vec<_>>(),
        [a1b.mod_revision]
    );

    store
        .put(&format!("{prefix}b/2"), b("x"), Precondition::Absent)
        .await
        .unwrap();
    let (prev, rev) = store
        .delete(&format!("{a}1"), Precondition::Exists)
        .await
        .unwrap();
    for stream in [&mut from_start, &mut from_mid] {
        assert_eq!(
            next(stream).await,
            [Event::Delete {
                prev: prev.clone(),
                revision: rev
            }]
        );
    }
}

pub(crate) async fn compaction(store: &dyn Backend, prefix: &str) {
    let first = store
        .put(&format!("{prefix}1"), b("x"), Precondition::Absent)
        .await
        .unwrap();
    let second = store
        .put(&format!("{prefix}2"), b("x"), Precondition::Absent)
        .await
        .unwrap();
    store.compact(first.mod_revision).await.unwrap();
    assert!(store.compacted_revision().await.unwrap() >= first.mod_revision);
    let err = store
        .watch(prefix, first.mod_revision - 1)
        .await
        .err()
        .expect("compacted");
    assert!(
        matches!(err, Error::Compacted { requested, .. } if requested == first.mod_revision - 1),
        "{err}"
    );
    let mut w = store.watch(prefix, first.mod_revision).await.unwrap();
    assert_eq!(
        next(&mut w)
            .await
            .iter()
            .map(Event::revision)
            .collect::<Vec<_>>(),
        [second.mod_revision]
    );
    // Values survive compaction; only history goes.
    assert!(store.get(&format!("{prefix}1")).await.unwrap().is_some());
}

/// Every check, each under its own prefix.
pub(crate) async fn all(store: &dyn Backend, root: &str) {
    compare_and_swap(store, &format!("{root}cas/")).await;
    range_pages(store, &format!("{root}range/")).await;
    watch_replay_then_live(store, &format!("{root}watch/")).await;
    compaction(store, &format!("{root}compact/")).await;
}
