//! A thousand concurrent watchers on one store, as a busy hub has (every kubectl -w,
//! controller informer and the API server's own feeds): each must see exactly the events
//! under its prefix, in order, while writers keep writing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_storage::{Backend, EmbeddedBackend, Event, Precondition};
use futures::StreamExt;

const WATCHERS: usize = 1000;
const NAMESPACES: usize = 10;
const WRITES_PER_NAMESPACE: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_each_see_their_prefix_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
    let start = store.current_revision().await.unwrap();

    // Watcher i watches namespace i % NAMESPACES, or everything when i % 100 == 99.
    let mut watchers = Vec::with_capacity(WATCHERS);
    for i in 0..WATCHERS {
        let prefix = if i % 100 == 99 {
            "/registry/core/configmaps/".to_owned()
        } else {
            format!("/registry/core/configmaps/ns{}/", i % NAMESPACES)
        };
        let expected = if i % 100 == 99 {
            NAMESPACES * WRITES_PER_NAMESPACE
        } else {
            WRITES_PER_NAMESPACE
        };
        let mut stream = store.watch(&prefix, start).await.unwrap();
        watchers.push(tokio::spawn(async move {
            let mut seen: Vec<Event> = Vec::with_capacity(expected);
            while seen.len() < expected {
                let batch = tokio::time::timeout(Duration::from_secs(60), stream.next())
                    .await
                    .expect("events in time")
                    .expect("stream open")
                    .expect("no error");
                seen.extend(batch);
            }
            (prefix, seen)
        }));
    }

    let writers: Vec<_> = (0..NAMESPACES)
        .map(|ns| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let key = format!("/registry/core/configmaps/ns{ns}/cm");
                let mut rev = None;
                for n in 0..WRITES_PER_NAMESPACE {
                    let value = Bytes::from(format!("{{\"n\":{n}}}"));
                    let pre = rev.map_or(Precondition::Absent, Precondition::ModRevision);
                    rev = Some(store.put(&key, value, pre).await.unwrap().mod_revision);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }

    for w in watchers {
        let (prefix, seen) = w.await.unwrap();
        assert!(
            seen.iter().all(|e| e.key().starts_with(&prefix)),
            "{prefix}"
        );
        assert!(
            seen.windows(2).all(|p| p[0].revision() < p[1].revision()),
            "{prefix}: revision order"
        );
        if prefix.ends_with("/ns3/") {
            // One key, created once then updated in order.
            let values: Vec<String> = seen
                .iter()
                .map(|e| match e {
                    Event::Put { kv, .. } => String::from_utf8(kv.value.to_vec()).unwrap(),
                    Event::Delete { .. } => panic!("no deletes were made"),
                })
                .collect();
            let want: Vec<String> = (0..WRITES_PER_NAMESPACE)
                .map(|n| format!("{{\"n\":{n}}}"))
                .collect();
            assert_eq!(values, want);
        }
    }
}
