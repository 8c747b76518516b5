//! The `default` ServiceAccount of every namespace, as Kubernetes' service account
//! controller keeps it: created when a namespace appears (and at start for namespaces that
//! lack one), never in a terminating namespace.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use flotilla_storage::{Event, Precondition, SharedBackend};
use futures::StreamExt;
use serde_json::{Value, json};

const NAMESPACES: &str = "/registry/core/namespaces/";
const DEFAULT: &str = "default";

fn service_account_key(namespace: &str) -> String {
    format!("/registry/core/serviceaccounts/{namespace}/{DEFAULT}")
}

fn is_live(namespace: &Value) -> bool {
    namespace["metadata"]["deletionTimestamp"].is_null()
        && namespace["status"]["phase"] != "Terminating"
}

/// Starts the controller on the current tokio runtime.
pub fn spawn(store: SharedBackend) {
    tokio::spawn(async move { run(store).await });
}

async fn run(store: SharedBackend) {
    loop {
        let revision = match list_and_ensure(&store).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "listing namespaces for default ServiceAccounts");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut stream = match store.watch(NAMESPACES, revision).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "watching namespaces; re-listing");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Some(batch) = stream.next().await {
            let Ok(events) = batch else { break };
            for event in events {
                if let Event::Put { kv, .. } = event
                    && let Ok(namespace) = serde_json::from_slice::<Value>(&kv.value)
                {
                    ensure(&store, &namespace).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn list_and_ensure(store: &SharedBackend) -> Result<i64, flotilla_storage::Error> {
    let mut start_after: Option<String> = None;
    let mut revision = 0;
    loop {
        let page = store.range(NAMESPACES, start_after.as_deref(), 500).await?;
        if revision == 0 {
            revision = page.revision;
        }
        for kv in &page.kvs {
            if let Ok(namespace) = serde_json::from_slice::<Value>(&kv.value) {
                ensure(store, &namespace).await;
            }
        }
        start_after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more || start_after.is_none() {
            return Ok(revision);
        }
    }
}

/// Creates `default` in a live namespace that has none.
async fn ensure(store: &SharedBackend, namespace: &Value) {
    let Some(name) = namespace["metadata"]["name"].as_str() else {
        return;
    };
    if !is_live(namespace) {
        return;
    }
    let key = service_account_key(name);
    if !matches!(store.get(&key).await, Ok(None)) {
        return;
    }
    let account = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": DEFAULT,
            "namespace": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        },
    });
    let Ok(bytes) = serde_json::to_vec(&account) else {
        return;
    };
    let Ok(created) = store.put(&key, bytes.into(), Precondition::Absent).await else {
        return; // someone else created it first
    };
    // The namespace may have started terminating meanwhile: then take it back.
    let still_live = match store.get(&format!("{NAMESPACES}{name}")).await {
        Ok(Some(kv)) => serde_json::from_slice::<Value>(&kv.value)
            .map(|ns| is_live(&ns))
            .unwrap_or(false),
        _ => false,
    };
    if !still_live {
        let _ = store
            .delete(&key, Precondition::ModRevision(created.mod_revision))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_live_namespace_gets_a_default_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedBackend =
            Arc::new(flotilla_storage::embedded::EmbeddedBackend::open(dir.path()).unwrap());
        let put_ns = |name: &str, terminating: bool| {
            let mut ns =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            if terminating {
                ns["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                ns["status"] = json!({"phase": "Terminating"});
            }
            let store = store.clone();
            let key = format!("{NAMESPACES}{name}");
            async move {
                store
                    .put(
                        &key,
                        serde_json::to_vec(&ns).unwrap().into(),
                        Precondition::Absent,
                    )
                    .await
                    .unwrap();
            }
        };
        put_ns("before", false).await;
        spawn(store.clone());
        put_ns("after", false).await;
        put_ns("going", true).await;
        // Events are handled in order: once "last" has its account, "going" was seen.
        put_ns("last", false).await;
        for ns in ["before", "after", "last"] {
            let mut found = None;
            for _ in 0..200 {
                found = store.get(&service_account_key(ns)).await.unwrap();
                if found.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let kv = found.unwrap_or_else(|| panic!("no default ServiceAccount in {ns}"));
            let sa: Value = serde_json::from_slice(&kv.value).unwrap();
            assert_eq!(sa["metadata"]["namespace"], ns);
            assert!(sa["metadata"]["uid"].is_string());
        }
        assert!(
            store
                .get(&service_account_key("going"))
                .await
                .unwrap()
                .is_none()
        );
    }
}
