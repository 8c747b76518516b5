//! Metadata-only responses (`Accept: application/json;as=PartialObjectMetadata;
//! g=meta.k8s.io;v=v1`) for every verb that returns an object: kube-rs' metadata API
//! (get, list, merge and apply patches) and raw POST, PUT and DELETE requests.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ObjectMeta, PartialObjectMetaExt};
use serde_json::{Value, json};
use support::{Server, temp_dir};

const METADATA_ACCEPT: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// Sends `method path` with `body`, asking for metadata only; returns the decoded reply.
async fn metadata_request(client: &kube::Client, method: &str, path: &str, body: Value) -> Value {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, METADATA_ACCEPT)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(request).await.unwrap()
}

fn assert_metadata_only(reply: &Value, name: &str) {
    assert_eq!(reply["kind"], "PartialObjectMetadata", "{reply}");
    assert_eq!(reply["apiVersion"], "meta.k8s.io/v1", "{reply}");
    assert_eq!(reply["metadata"]["name"], name, "{reply}");
    assert!(reply.get("data").is_none(), "no data in {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_answers_with_metadata_only_when_asked() {
    let dir = temp_dir("hub-metadata-only");
    let hub = Server::hub(&dir);
    let client = hub.kube_client().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let cm = |data: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "meta", "labels": {"step": data}}, "data": {"k": data}})
    };

    let created = metadata_request(&client, "POST", base, cm("created")).await;
    assert_metadata_only(&created, "meta");
    assert_eq!(created["metadata"]["labels"]["step"], "created");

    let replaced = metadata_request(&client, "PUT", &format!("{base}/meta"), cm("replaced")).await;
    assert_metadata_only(&replaced, "meta");
    assert_eq!(replaced["metadata"]["labels"]["step"], "replaced");

    // kube-rs' metadata API: get, list, merge patch and apply patch.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let meta = api.get_metadata("meta").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["step"], "replaced");
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|m| m.metadata.name.as_deref() == Some("meta"))
    );
    let patch = json!({"metadata": {"labels": {"step": "merged"}}});
    let merged = api
        .patch_metadata("meta", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(merged.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(merged.metadata.labels.unwrap()["step"], "merged");
    let applied = ObjectMeta {
        labels: Some([("owner".to_string(), "kube-rs".to_string())].into()),
        ..Default::default()
    }
    .into_request_partial::<ConfigMap>();
    let applied = api
        .patch_metadata(
            "meta",
            &PatchParams::apply("meta-test"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["owner"], "kube-rs");
    // The data was never touched by the metadata-only writes.
    let full = api.get("meta").await.unwrap();
    assert_eq!(full.data.unwrap()["k"], "replaced");

    // DELETE of an object held by a finalizer returns the object: metadata only.
    let patch = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    api.patch("meta", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let deleting = metadata_request(&client, "DELETE", &format!("{base}/meta"), json!({})).await;
    assert_metadata_only(&deleting, "meta");
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    let patch = json!({"metadata": {"finalizers": null}});
    api.patch("meta", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // A finished delete still answers with a Status.
    metadata_request(&client, "POST", base, cm("again")).await;
    let gone = api.delete("meta", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_right(), "a Status for a finished delete");
}
