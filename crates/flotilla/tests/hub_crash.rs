//! `kill -9` of the hub while it is writing: every acknowledged write survives the restart,
//! resourceVersions keep increasing, and a watch from a pre-crash resourceVersion gets
//! events or a 410 Expired error event (never silence or a panic).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::{Server, temp_dir};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = temp_dir("hub-crash");
    let hub = Server::hub(&dir);
    let api: Api<ConfigMap> = Api::namespaced(hub.kube_client().await, "default");

    // Writers run until the hub dies; every acknowledged name and RV is recorded.
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let api = api.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                match api.create(&PostParams::default(), &cm(&name)).await {
                    Ok(o) => {
                        let rv: i64 = o.metadata.resource_version.unwrap().parse().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 60 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(hub); // SIGKILL, mid-write
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    let max_rv = acked.iter().map(|(_, rv)| *rv).max().unwrap();

    let hub = Server::hub(&dir);
    let api: Api<ConfigMap> = Api::namespaced(hub.kube_client().await, "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let present: std::collections::HashSet<String> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    for (name, _) in &acked {
        assert!(
            present.contains(name),
            "acknowledged {name} lost in the crash"
        );
    }
    for c in &list.items {
        let name = c.metadata.name.as_deref().unwrap();
        assert_eq!(c.data.as_ref().unwrap()["k"], name, "{name} corrupted");
    }
    let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= max_rv);
    let after = api
        .create(&PostParams::default(), &cm("after-restart"))
        .await
        .unwrap();
    let after_rv: i64 = after.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        after_rv > max_rv,
        "resourceVersion went backwards: {after_rv} <= {max_rv}"
    );

    // A watch from a pre-crash revision: events (replayed) or an in-stream 410.
    let old = acked[0].1.to_string();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the old-RV watch said nothing")
        .expect("the old-RV watch ended with nothing")
        .unwrap();
    match first {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410, "{e:?}");
            assert!(e.message.contains("too old resource version"), "{e:?}");
        }
        WatchEvent::Added(_) | WatchEvent::Modified(_) => {}
        other => panic!("unexpected first event {other:?}"),
    }
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
