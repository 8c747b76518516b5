//! The etcd backend against a real etcd server (Debian's `etcd-server`), started on free
//! loopback ports for each test. Each test returns early, saying so, when no `etcd` binary
//! is on PATH (or in `FLOTILLA_ETCD_BIN`).

#[path = "support/conformance.rs"]
mod conformance;

use std::time::Duration;

use bytes::Bytes;
use flotilla_storage::etcd::EtcdBackend;
use flotilla_storage::etcd_process::{self, EtcdCluster};
use flotilla_storage::{Backend, Error, Event, Precondition};
use futures::StreamExt;

/// A running etcd, killed on drop, and its data folder.
struct Etcd {
    _cluster: EtcdCluster,
    endpoint: String,
    _dir: tempfile::TempDir,
}

/// Starts a single-member etcd, or returns None (and says why) without the binary.
async fn start_etcd() -> Option<(Etcd, EtcdBackend)> {
    if etcd_process::etcd_binary().is_none() {
        eprintln!("skipping: no etcd binary (install etcd-server or set FLOTILLA_ETCD_BIN)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = EtcdCluster::start(1, dir.path()).expect("start etcd");
    let endpoint = cluster.endpoints();
    let backend = EtcdBackend::connect(&[&endpoint]).await.unwrap();
    let etcd = Etcd {
        _cluster: cluster,
        endpoint,
        _dir: dir,
    };
    Some((etcd, backend))
}

#[tokio::test]
async fn etcd_backend_conforms() {
    let Some((_etcd, store)) = start_etcd().await else {
        return;
    };
    assert_eq!(store.current_revision().await.unwrap(), 1, "a fresh etcd");
    conformance::all(&store, "/conformance/").await;
}

#[tokio::test]
async fn hubs_sharing_etcd_see_each_others_writes_and_compactions() {
    let Some((etcd, hub_a)) = start_etcd().await else {
        return;
    };
    let hub_b = EtcdBackend::connect(&[&etcd.endpoint]).await.unwrap();
    let start = hub_b.current_revision().await.unwrap();
    let mut watch_b = hub_b.watch("/registry/", start).await.unwrap();

    let kv = hub_a
        .put(
            "/registry/core/pods/default/p",
            Bytes::from_static(b"{}"),
            Precondition::Absent,
        )
        .await
        .unwrap();
    let events = tokio::time::timeout(Duration::from_secs(10), watch_b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        events,
        [Event::Put {
            kv: kv.clone(),
            prev: None
        }]
    );
    // B's CAS sees A's write.
    let err = hub_b
        .put(
            "/registry/core/pods/default/p",
            Bytes::new(),
            Precondition::ModRevision(start),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RevisionMismatch { .. }), "{err}");

    // A compacts; B, which never compacted, still refuses a watch from before it and
    // learns etcd's compacted revision.
    let later = hub_a
        .put(
            "/registry/core/pods/default/q",
            Bytes::from_static(b"{}"),
            Precondition::Absent,
        )
        .await
        .unwrap();
    hub_a.compact(later.mod_revision).await.unwrap();
    let err = hub_b
        .watch("/registry/", start)
        .await
        .err()
        .expect("compacted");
    assert!(
        matches!(err, Error::Compacted { requested, compacted } if requested == start && compacted >= later.mod_revision - 1),
        "{err}"
    );
    assert!(hub_b.compacted_revision().await.unwrap() >= later.mod_revision - 1);

    // B's open watch was already past the compaction and keeps going.
    let events = tokio::time::timeout(Duration::from_secs(10), watch_b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        events.iter().map(Event::revision).collect::<Vec<_>>(),
        [later.mod_revision]
    );
}

#[test]
fn a_member_whose_port_is_taken_fails_fast_with_its_log() {
    if etcd_process::etcd_binary().is_none() {
        eprintln!("skipping: no etcd binary (install etcd-server or set FLOTILLA_ETCD_BIN)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = EtcdCluster::new(1, dir.path()).unwrap();
    let endpoint = cluster.endpoints();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let err = cluster.start_all().expect_err("the client port is taken");
    assert!(
        matches!(
            err,
            etcd_process::EtcdProcessError::Exited { member: 0, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("address already in use"), "{err}");
}

#[test]
fn free_ports_are_below_the_ephemeral_range_and_not_repeated() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let ephemeral_low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let ports: Vec<u16> = (0..50)
        .map(|_| flotilla_storage::local_port::free_port().unwrap())
        .collect();
    assert!(ports.iter().all(|&p| p < ephemeral_low), "{ports:?}");
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len(), "{ports:?}");
}
