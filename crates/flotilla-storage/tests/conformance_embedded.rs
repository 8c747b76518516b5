//! The embedded backend against the shared backend conformance checks.

#[path = "support/conformance.rs"]
mod conformance;

#[tokio::test]
async fn embedded_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = flotilla_storage::EmbeddedBackend::open(dir.path()).unwrap();
    conformance::all(&store, "/conformance/").await;
}
