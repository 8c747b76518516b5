//! The `default` ServiceAccount of every namespace, as Kubernetes' service account
//! controller keeps it: created when a namespace appears (and at start for namespaces that
//! lack one), never in a terminating namespace.

use std::time::Duration;

use flotilla_core::status::ApiError;
use flotilla_storage::Event;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::objects::{decode, meta_str, now_rfc3339};
use crate::store::Store;
use crate::store::keys::{NAMESPACES, SERVICE_ACCOUNTS};

const DEFAULT: &str = "default";

fn is_live(namespace: &Value) -> bool {
    namespace["metadata"]["deletionTimestamp"].is_null()
        && namespace["status"]["phase"] != "Terminating"
}

/// Starts the controller on the current tokio runtime.
pub(super) fn spawn(store: Store) {
    tokio::spawn(async move { run(store).await });
}

async fn run(store: Store) {
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
                    && let Ok(namespace) = decode(&kv)
                {
                    ensure(&store, &namespace).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn list_and_ensure(store: &Store) -> Result<i64, ApiError> {
    let (namespaces, revision) = store.list_kvs(&NAMESPACES.prefix()).await?;
    for kv in &namespaces {
        if let Ok(namespace) = decode(kv) {
            ensure(store, &namespace).await;
        }
    }
    Ok(revision)
}

/// Creates `default` in a live namespace that has none.
async fn ensure(store: &Store, namespace: &Value) {
    let name = meta_str(namespace, "name");
    if name.is_empty() || !is_live(namespace) {
        return;
    }
    if !matches!(
        store.get_kv(SERVICE_ACCOUNTS, name, DEFAULT).await,
        Ok(None)
    ) {
        return;
    }
    let account = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": DEFAULT,
            "namespace": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now_rfc3339(),
        },
    });
    let Ok(created) = store.create(SERVICE_ACCOUNTS, account).await else {
        return; // someone else created it first
    };
    // The namespace may have started terminating meanwhile: then take it back.
    let still_live = match store.get(NAMESPACES, "", name).await {
        Ok(Some((ns, _))) => is_live(&ns),
        _ => false,
    };
    if !still_live {
        let revision = crate::objects::resource_version(&created);
        let _ = store.delete_now(SERVICE_ACCOUNTS, &created, revision).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_live_namespace_gets_a_default_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Arc::new(
            flotilla_storage::embedded::EmbeddedBackend::open(dir.path()).unwrap(),
        ));
        let put_ns = |name: &str, terminating: bool| {
            let mut ns =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            if terminating {
                ns["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                ns["status"] = json!({"phase": "Terminating"});
            }
            let store = store.clone();
            async move {
                store.create(NAMESPACES, ns).await.unwrap();
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
                found = store.get(SERVICE_ACCOUNTS, ns, DEFAULT).await.unwrap();
                if found.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let (sa, _) = found.unwrap_or_else(|| panic!("no default ServiceAccount in {ns}"));
            assert_eq!(sa["metadata"]["namespace"], ns);
            assert!(sa["metadata"]["uid"].is_string());
        }
        assert!(
            store
                .get(SERVICE_ACCOUNTS, "going", DEFAULT)
                .await
                .unwrap()
                .is_none()
        );
    }
}
