use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::{EmbeddedBackend, EmbeddedOptions};
use crate::{Backend, Error, Event, Precondition, WatchStream};

fn open(dir: &tempfile::TempDir) -> EmbeddedBackend {
    EmbeddedBackend::open(dir.path()).expect("open store")
}

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

#[tokio::test]
async fn fresh_store_starts_at_revision_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.current_revision().await.unwrap(), 1);
    assert_eq!(store.compacted_revision().await.unwrap(), 0);
    assert!(store.is_empty());
    assert!(store.get("/a").await.unwrap().is_none());
}

#[tokio::test]
async fn compare_and_swap_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let created = store
        .put("/k", b("v1"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(created.create_revision, 2);
    assert_eq!(created.mod_revision, 2);
    assert_eq!(created.value, b("v1"));

    let err = store
        .put("/k", b("x"), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists(ref k) if k == "/k"),
        "{err}"
    );

    let err = store
        .put("/k", b("x"), Precondition::ModRevision(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RevisionMismatch {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    // Refused writes do not move the revision.
    assert_eq!(store.current_revision().await.unwrap(), 2);

    let updated = store
        .put("/k", b("v2"), Precondition::ModRevision(2))
        .await
        .unwrap();
    assert_eq!((updated.create_revision, updated.mod_revision), (2, 3));

    let updated = store
        .put("/k", b("v3"), Precondition::Exists)
        .await
        .unwrap();
    assert_eq!((updated.create_revision, updated.mod_revision), (2, 4));
    assert_eq!(store.get("/k").await.unwrap(), Some(updated.clone()));

    for pre in [Precondition::Exists, Precondition::ModRevision(4)] {
        let err = store.put("/missing", b("x"), pre).await.unwrap_err();
        assert!(
            matches!(err, Error::NotFound(ref k) if k == "/missing"),
            "{err}"
        );
    }

    let err = store
        .delete("/k", Precondition::ModRevision(3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RevisionMismatch {
                expected: 3,
                actual: 4,
                ..
            }
        ),
        "{err}"
    );
    let (prev, rev) = store
        .delete("/k", Precondition::ModRevision(4))
        .await
        .unwrap();
    assert_eq!(prev, updated);
    assert_eq!(rev, 5);
    assert!(store.get("/k").await.unwrap().is_none());
    let err = store.delete("/k", Precondition::Exists).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");

    // A re-created key starts a new life.
    let again = store
        .put("/k", b("v4"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!((again.create_revision, again.mod_revision), (6, 6));

    let err = store
        .put("", b("x"), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
}

#[tokio::test]
async fn concurrent_creates_of_one_key_admit_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .put("/race", Bytes::from(format!("{i}")), Precondition::Absent)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::AlreadyExists(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.current_revision().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_modify_write_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    store
        .put("/counter", b("0"), Precondition::Absent)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..25 {
                    loop {
                        let kv = store.get("/counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                        let next = Bytes::from((n + 1).to_string());
                        match store
                            .put("/counter", next, Precondition::ModRevision(kv.mod_revision))
                            .await
                        {
                            Ok(_) => break,
                            Err(Error::RevisionMismatch { .. }) => continue,
                            Err(e) => panic!("unexpected error {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let kv = store.get("/counter").await.unwrap().unwrap();
    assert_eq!(kv.value, b("200"));
    assert_eq!(kv.mod_revision, store.current_revision().await.unwrap());
    assert_eq!(kv.mod_revision, 2 + 200);
}

#[tokio::test]
async fn range_pages_through_a_prefix_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for key in [
        "/registry/core/pods/ns1/b",
        "/registry/core/pods/ns1/a",
        "/registry/core/pods/ns2/c",
        "/registry/core/podsx/ns1/z",
        "/registry/core/configmaps/ns1/a",
    ] {
        store.put(key, b(key), Precondition::Absent).await.unwrap();
    }
    let rev = store.current_revision().await.unwrap();
    let prefix = "/registry/core/pods/";

    let all = store.range(prefix, None, 0).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/core/pods/ns1/a",
            "/registry/core/pods/ns1/b",
            "/registry/core/pods/ns2/c"
        ]
    );
    assert!(!all.more);
    assert_eq!(all.revision, rev);

    let page1 = store.range(prefix, None, 2).await.unwrap();
    assert_eq!(page1.kvs.len(), 2);
    assert!(page1.more);
    let page2 = store
        .range(prefix, Some(&page1.kvs[1].key), 2)
        .await
        .unwrap();
    assert_eq!(page2.kvs.len(), 1);
    assert_eq!(page2.kvs[0].key, "/registry/core/pods/ns2/c");
    assert!(!page2.more);

    // An exact fit is not "more".
    let exact = store.range(prefix, None, 3).await.unwrap();
    assert_eq!(exact.kvs.len(), 3);
    assert!(!exact.more);

    // A start before the prefix starts at the prefix; one past it yields nothing.
    let before = store.range(prefix, Some("/a"), 0).await.unwrap();
    assert_eq!(before.kvs.len(), 3);
    let past = store.range(prefix, Some("/z"), 0).await.unwrap();
    assert!(past.kvs.is_empty());

    let ns1 = store
        .range("/registry/core/pods/ns1/", None, 0)
        .await
        .unwrap();
    assert_eq!(ns1.kvs.len(), 2);
    assert!(
        store
            .range("/nothing/", None, 5)
            .await
            .unwrap()
            .kvs
            .is_empty()
    );
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_writes_for_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a1 = store
        .put("/a/1", b("x"), Precondition::Absent)
        .await
        .unwrap(); // 2
    store
        .put("/b/1", b("x"), Precondition::Absent)
        .await
        .unwrap(); // 3
    let a1b = store
        .put("/a/1", b("y"), Precondition::ModRevision(a1.mod_revision))
        .await
        .unwrap(); // 4

    let mut from_start = store.watch("/a/", 0).await.unwrap();
    let mut from_mid = store.watch("/a/", 2).await.unwrap();
    let mut everything = store.watch("", 3).await.unwrap();

    let replay = next(&mut from_start).await;
    assert_eq!(replay.len(), 2);
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
    let replay = next(&mut from_mid).await;
    assert_eq!(replay.iter().map(Event::revision).collect::<Vec<_>>(), [4]);

    store
        .put("/b/2", b("x"), Precondition::Absent)
        .await
        .unwrap(); // 5, not /a/
    let (prev, rev) = store.delete("/a/1", Precondition::Exists).await.unwrap(); // 6
    assert_eq!(prev, a1b);
    for stream in [&mut from_start, &mut from_mid] {
        let live = next(stream).await;
        assert_eq!(
            live,
            [Event::Delete {
                prev: a1b.clone(),
                revision: rev
            }]
        );
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.extend(next(&mut everything).await.iter().map(Event::revision));
    }
    assert_eq!(seen, [4, 5, 6]);
}

#[tokio::test]
async fn watch_from_the_future_waits_for_that_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut w = store.watch("", 3).await.unwrap();
    store.put("/1", b("x"), Precondition::Absent).await.unwrap(); // 2
    store.put("/2", b("x"), Precondition::Absent).await.unwrap(); // 3
    store.put("/3", b("x"), Precondition::Absent).await.unwrap(); // 4
    let events = next(&mut w).await;
    assert_eq!(events.iter().map(Event::revision).collect::<Vec<_>>(), [4]);
}

#[tokio::test]
async fn compaction_refuses_old_watches_and_ends_lagging_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..5 {
        store
            .put(&format!("/k{i}"), b("x"), Precondition::Absent)
            .await
            .unwrap(); // 2..=6
    }
    let mut lagging = store.watch("", 1).await.unwrap();
    store.compact(4).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 4);

    let err = store.watch("", 3).await.err().expect("compacted");
    assert!(
        matches!(
            err,
            Error::Compacted {
                requested: 3,
                compacted: 4
            }
        ),
        "{err}"
    );
    // Exactly the compacted revision is still a valid start.
    let mut ok = store.watch("", 4).await.unwrap();
    assert_eq!(
        next(&mut ok)
            .await
            .iter()
            .map(Event::revision)
            .collect::<Vec<_>>(),
        [5, 6]
    );

    // The lagging watcher is told, then its stream ends.
    let item = lagging.next().await.expect("an item");
    assert!(matches!(item, Err(Error::Compacted { .. })), "{item:?}");
    assert!(lagging.next().await.is_none());

    let err = store.compact(100).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
}

#[tokio::test]
async fn bounded_history_ends_a_watcher_that_fell_behind() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        history_capacity: 4,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedBackend::open_with_options(dir.path(), options).unwrap();
    let mut slow = store.watch("", 1).await.unwrap();
    for i in 0..10 {
        store
            .put(&format!("/k{i}"), b("x"), Precondition::Absent)
            .await
            .unwrap(); // 2..=11
    }
    // Ring holds 8..=11, so a watch may start after 7.
    assert_eq!(store.compacted_revision().await.unwrap(), 7);
    let item = slow.next().await.expect("an item");
    assert!(
        matches!(
            item,
            Err(Error::Compacted {
                requested: 1,
                compacted: 7
            })
        ),
        "{item:?}"
    );
    assert!(slow.next().await.is_none());
    let mut w = store.watch("", 7).await.unwrap();
    assert_eq!(next(&mut w).await.len(), 4);
}

#[tokio::test]
async fn watch_batches_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        watch_batch: 3,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedBackend::open_with_options(dir.path(), options).unwrap();
    for i in 0..7 {
        store
            .put(&format!("/k{i}"), b("x"), Precondition::Absent)
            .await
            .unwrap();
    }
    let mut w = store.watch("", 0).await.unwrap();
    let sizes = [
        next(&mut w).await.len(),
        next(&mut w).await.len(),
        next(&mut w).await.len(),
    ];
    assert_eq!(sizes, [3, 3, 1]);
}

#[tokio::test]
async fn dropping_the_store_ends_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put("/k", b("x"), Precondition::Absent).await.unwrap();
    let mut w = store.watch("", 0).await.unwrap();
    drop(store);
    // What was committed is still delivered, then the stream ends.
    assert_eq!(next(&mut w).await.len(), 1);
    let end = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn revision_survives_reopen_even_when_the_last_write_was_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store
            .put("/keep", b("k"), Precondition::Absent)
            .await
            .unwrap(); // 2
        store
            .put("/gone", b("g"), Precondition::Absent)
            .await
            .unwrap(); // 3
        store.delete("/gone", Precondition::Exists).await.unwrap(); // 4
        assert_eq!(store.current_revision().await.unwrap(), 4);
    }
    let store = open(&dir);
    assert_eq!(store.current_revision().await.unwrap(), 4);
    let keep = store.get("/keep").await.unwrap().unwrap();
    assert_eq!(
        (keep.value.as_ref(), keep.create_revision, keep.mod_revision),
        (&b"k"[..], 2, 2)
    );
    assert!(store.get("/gone").await.unwrap().is_none());

    // History is not persisted: watches may start at the reopened revision, not before.
    assert_eq!(store.compacted_revision().await.unwrap(), 4);
    let err = store.watch("", 3).await.err().expect("compacted");
    assert!(
        matches!(
            err,
            Error::Compacted {
                requested: 3,
                compacted: 4
            }
        ),
        "{err}"
    );
    let mut w = store.watch("", 4).await.unwrap();

    let next_write = store
        .put("/new", b("n"), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(next_write.mod_revision, 5);
    assert_eq!(next(&mut w).await.len(), 1);
}

#[tokio::test]
async fn a_store_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let second = EmbeddedBackend::open(dir.path());
    assert!(
        matches!(second, Err(super::EmbeddedError::Open { .. })),
        "{second:?}"
    );
    drop(store);
    // Dropping the first closes the file.
    open(&dir);
}

/// A small deterministic generator, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random puts and deletes with random preconditions, checked against a plain model of
/// the semantics, with reopens in between.
#[tokio::test]
async fn random_operations_match_a_model_across_reopens() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    // key -> (value, create_revision, mod_revision)
    let mut model: BTreeMap<String, (String, i64, i64)> = BTreeMap::new();
    let mut revision = 1;
    for round in 0..3 {
        let store = open(&dir);
        assert_eq!(store.current_revision().await.unwrap(), revision);
        for i in 0..300 {
            let key = format!("/m/{}", rng.below(12));
            let current = model.get(&key).cloned();
            let precondition = match rng.below(4) {
                0 => Precondition::Absent,
                1 => Precondition::Exists,
                2 => Precondition::ModRevision(current.as_ref().map_or(1, |c| c.2)),
                _ => Precondition::ModRevision(rng.below(revision as u64 + 1) as i64),
            };
            if rng.below(3) == 0 {
                let got = store.delete(&key, precondition).await;
                let allowed = match (current.as_ref(), precondition) {
                    (None, _) => false,
                    (Some(_), Precondition::Absent) => false,
                    (Some(_), Precondition::Exists) => true,
                    (Some(c), Precondition::ModRevision(r)) => c.2 == r,
                };
                match got {
                    Ok((prev, rev)) => {
                        assert!(allowed, "delete {key} {precondition:?} succeeded");
                        let c = current.unwrap();
                        assert_eq!(
                            (prev.value, prev.create_revision, prev.mod_revision),
                            (b(&c.0), c.1, c.2)
                        );
                        revision += 1;
                        assert_eq!(rev, revision);
                        model.remove(&key);
                    }
                    Err(e) => assert!(!allowed, "delete {key} {precondition:?} failed: {e}"),
                }
            } else {
                let value = format!("r{round}-{i}");
                let got = store.put(&key, b(&value), precondition).await;
                let allowed = match (current.as_ref(), precondition) {
                    (None, Precondition::Absent) => true,
                    (None, _) | (Some(_), Precondition::Absent) => false,
                    (Some(_), Precondition::Exists) => true,
                    (Some(c), Precondition::ModRevision(r)) => c.2 == r,
                };
                match got {
                    Ok(kv) => {
                        assert!(allowed, "put {key} {precondition:?} succeeded");
                        revision += 1;
                        let create = current.map_or(revision, |c| c.1);
                        assert_eq!((kv.create_revision, kv.mod_revision), (create, revision));
                        model.insert(key, (value, create, revision));
                    }
                    Err(e) => assert!(!allowed, "put {key} {precondition:?} failed: {e}"),
                }
            }
        }
        // Ranges with random prefixes, starts and limits agree with the model.
        for _ in 0..200 {
            let prefixes = ["", "/", "/m/", "/m/1", "/m/1/", "/n/"];
            let prefix = prefixes[rng.below(prefixes.len() as u64) as usize];
            let start_after = match rng.below(3) {
                0 => None,
                _ => Some(format!("/m/{}", rng.below(14))),
            };
            let limit = rng.below(6) as usize;
            let got = store
                .range(prefix, start_after.as_deref(), limit)
                .await
                .unwrap();
            let matching: Vec<&String> = model
                .keys()
                .filter(|k| k.starts_with(prefix))
                .filter(|k| start_after.as_ref().is_none_or(|s| k.as_str() > s.as_str()))
                .collect();
            let want: Vec<&String> = if limit == 0 {
                matching.clone()
            } else {
                matching.iter().take(limit).copied().collect()
            };
            let got_keys: Vec<&String> = got.kvs.iter().map(|kv| &kv.key).collect();
            assert_eq!(
                got_keys, want,
                "range({prefix:?}, {start_after:?}, {limit})"
            );
            assert_eq!(got.more, limit > 0 && matching.len() > limit);
            assert_eq!(got.revision, revision);
        }

        let all = store.range("/m/", None, 0).await.unwrap();
        let got: Vec<_> = all
            .kvs
            .iter()
            .map(|kv| {
                let value = String::from_utf8(kv.value.to_vec()).unwrap();
                (kv.key.clone(), (value, kv.create_revision, kv.mod_revision))
            })
            .collect();
        let want: Vec<_> = model.clone().into_iter().collect();
        assert_eq!(got, want, "round {round}");
        assert_eq!(all.revision, revision);
    }
}

/// Many concurrent writers (so the writer thread batches): the watch log must have
/// exactly one event per revision, with no gap, and replaying it must give the final
/// state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_leave_a_gapless_log_that_replays_to_the_state() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let mut log = store.watch("", 0).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut rng = XorShift(w * 7919 + 1);
                for i in 0..40 {
                    let key = format!("/c/{}", rng.below(10));
                    let _ = match rng.below(3) {
                        0 => store.delete(&key, Precondition::Exists).await.map(|_| ()),
                        1 => store
                            .put(&key, Bytes::from(format!("{w}-{i}")), Precondition::Absent)
                            .await
                            .map(|_| ()),
                        _ => match store.get(&key).await.unwrap() {
                            Some(kv) => store
                                .put(
                                    &key,
                                    Bytes::from(format!("{w}-{i}")),
                                    Precondition::ModRevision(kv.mod_revision),
                                )
                                .await
                                .map(|_| ()),
                            None => Ok(()),
                        },
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let current = store.current_revision().await.unwrap();
    let mut replayed: BTreeMap<String, crate::KeyValue> = BTreeMap::new();
    let mut expected_rev = 2;
    while expected_rev <= current {
        for event in next(&mut log).await {
            assert_eq!(event.revision(), expected_rev, "gapless, ordered log");
            expected_rev += 1;
            match event {
                Event::Put { kv, prev } => {
                    assert_eq!(
                        replayed.get(&kv.key),
                        prev.as_ref(),
                        "prev is the value replaced"
                    );
                    replayed.insert(kv.key.clone(), kv);
                }
                Event::Delete { prev, .. } => {
                    assert_eq!(replayed.remove(&prev.key), Some(prev));
                }
            }
        }
    }
    let state = store.range("", None, 0).await.unwrap();
    assert_eq!(state.kvs, replayed.into_values().collect::<Vec<_>>());
}

#[test]
fn a_file_that_is_not_a_store_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(super::FILE_NAME), b"not a redb file at all").unwrap();
    let got = EmbeddedBackend::open(dir.path());
    assert!(
        matches!(got, Err(super::EmbeddedError::Open { .. })),
        "{got:?}"
    );
}

#[test]
fn corrupt_records_and_unknown_formats_are_reported() {
    use redb::Database;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::FILE_NAME);
    drop(EmbeddedBackend::open(dir.path()).unwrap());

    let write = |f: &dyn Fn(&redb::WriteTransaction)| {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    };

    // A record shorter than its header.
    write(&|txn| {
        txn.open_table(super::KV)
            .unwrap()
            .insert("/short", &b"abc"[..])
            .unwrap();
    });
    let got = EmbeddedBackend::open(dir.path());
    assert!(
        matches!(got, Err(super::EmbeddedError::Corrupt { ref key, .. }) if key == "/short"),
        "{got:?}"
    );

    // A record from the future of the store revision.
    write(&|txn| {
        let mut kv = txn.open_table(super::KV).unwrap();
        kv.remove("/short").unwrap();
        let record = super::encode(&crate::KeyValue {
            key: "/future".into(),
            value: b("x"),
            create_revision: 50,
            mod_revision: 50,
        });
        kv.insert("/future", record.as_slice()).unwrap();
    });
    let got = EmbeddedBackend::open(dir.path());
    assert!(
        matches!(got, Err(super::EmbeddedError::Corrupt { ref key, .. }) if key == "/future"),
        "{got:?}"
    );

    // A format this build does not know.
    write(&|txn| {
        txn.open_table(super::KV)
            .unwrap()
            .remove("/future")
            .unwrap();
        txn.open_table(super::META)
            .unwrap()
            .insert(super::META_FORMAT, 99)
            .unwrap();
    });
    let got = EmbeddedBackend::open(dir.path());
    assert!(
        matches!(got, Err(super::EmbeddedError::Format { found: 99, .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn history_is_bounded_by_bytes_too() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        history_max_bytes: 10_000,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedBackend::open_with_options(dir.path(), options).unwrap();
    let big = Bytes::from(vec![b'x'; 4_000]);
    for i in 0..5 {
        store
            .put(&format!("/big/{i}"), big.clone(), Precondition::Absent)
            .await
            .unwrap(); // 2..=6
    }
    // Two 4 kB events fit in 10 kB; the oldest three were dropped.
    assert_eq!(store.compacted_revision().await.unwrap(), 4);
    let mut w = store.watch("/big/", 4).await.unwrap();
    assert_eq!(
        next(&mut w)
            .await
            .iter()
            .map(Event::revision)
            .collect::<Vec<_>>(),
        [5, 6]
    );
    // An event larger than the bound is still kept, alone.
    store
        .put(
            "/big/huge",
            Bytes::from(vec![b'x'; 20_000]),
            Precondition::Absent,
        )
        .await
        .unwrap(); // 7
    assert_eq!(store.compacted_revision().await.unwrap(), 6);
    assert_eq!(next(&mut w).await.len(), 1);
}
