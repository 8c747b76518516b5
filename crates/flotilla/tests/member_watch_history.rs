//! A simulated member keeps a watch history sized for a member (issue 11 goal 3), with the
//! semantics of kube-apiserver: a watch from a recent resourceVersion replays what followed
//! it; one from further back than the member keeps (about 1 MiB of objects) is answered
//! 410 Expired, and the client lists again.

mod support;

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use support::{Server, TestDir};

/// One ConfigMap of about `kib` KiB.
fn config_map(name: &str, kib: usize) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "blob".to_string(),
            "x".repeat(kib * 1024),
        )])),
        ..Default::default()
    }
}

/// The first answer to a watch of `api` from `rv`: the names it replays, or the error code.
async fn watch_from(api: &Api<ConfigMap>, rv: &str, want: usize) -> Result<Vec<String>, u16> {
    let stream = match api.watch(&WatchParams::default().timeout(5), rv).await {
        Ok(s) => s,
        Err(kube::Error::Api(s)) => return Err(s.code),
        Err(e) => panic!("watch from {rv}: {e}"),
    };
    let mut stream = stream.boxed();
    let mut names = Vec::new();
    while names.len() < want {
        match stream.try_next().await {
            Ok(Some(WatchEvent::Added(cm))) => names.push(cm.metadata.name.unwrap_or_default()),
            Ok(Some(WatchEvent::Error(e))) => return Err(e.code),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(kube::Error::Api(s)) => return Err(s.code),
            Err(e) => panic!("watch from {rv}: {e}"),
        }
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_watch_history_replays_recent_changes_and_expires_old_ones() {
    let dir = TestDir::new("member-watch-history");
    let member = Server::member("m1", &dir.path().join("m1"));
    let api: Api<ConfigMap> = Api::namespaced(member.kube_client().await, "default");
    let pp = PostParams::default();

    let first = api.create(&pp, &config_map("first", 1)).await.unwrap();
    let start = first.metadata.resource_version.unwrap();
    api.create(&pp, &config_map("second", 1)).await.unwrap();
    assert_eq!(
        watch_from(&api, &start, 1).await,
        Ok(vec!["second".to_string()]),
        "a watch from a recent resourceVersion replays what followed it"
    );

    // 2 MiB of objects: more than the member's history keeps.
    let mut last = String::new();
    for i in 0..20 {
        let cm = api
            .create(&pp, &config_map(&format!("big-{i}"), 100))
            .await
            .unwrap();
        last = cm.metadata.resource_version.unwrap();
    }
    assert_eq!(
        watch_from(&api, &start, 1).await,
        Err(410),
        "a watch from before the history is 410 Expired"
    );
    api.create(&pp, &config_map("after", 1)).await.unwrap();
    assert_eq!(
        watch_from(&api, &last, 1).await,
        Ok(vec!["after".to_string()]),
        "a watch from a recent resourceVersion still replays"
    );
}
