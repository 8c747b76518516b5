//! Dispatch: rendered objects → server-side apply in a cluster, with ownership checks.
//!
//! Every dispatched object carries the ownership labels (`app.oam.dev/name|namespace|component|
//! cluster|appRevision`) and a render-hash annotation; an object whose live hash matches is not
//! rewritten (unless drift is being re-asserted). An existing object that belongs to no
//! application, or to another one, is refused unless a `take-over` / `shared-resource` policy
//! covers it.

use flotilla_apis::labels;
use kube::Resource as _;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GetParams, Patch, PatchParams};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use std::collections::HashMap;

use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use tokio::sync::Mutex;

use super::render::{is_namespaced, known_kind, plural_of};
use super::shared_by;

/// The field manager every dispatch writes with.
pub(crate) const FIELD_MANAGER: &str = "flotilla";

/// Why an object could not be dispatched, read or deleted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster refused the request (the Status message, as kubectl prints it).
    #[error("{0}")]
    Refused(String),
    /// The object exists and belongs to no application.
    #[error("{0} exists but not managed by any application now")]
    NotManaged(String),
    /// The object belongs to another application.
    #[error("{object} is managed by other application {owner}")]
    OtherApplication {
        /// `Kind ns/name`.
        object: String,
        /// `ns/name` of the owner.
        owner: String,
    },
    /// Refused for now, but the cluster may accept it later: the object is invalid there
    /// (422), or its kind is not served (yet; a CRD may come). Retried with backoff.
    #[error("{0}")]
    NotAcceptedYet(String),
    /// The cluster could not be reached.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// The object has no usable apiVersion/kind/name.
    #[error("invalid object: {0}")]
    Invalid(String),
}

impl Error {
    /// Whether waiting (and retrying) is the right response.
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable(_))
    }

    /// Whether the cluster may accept the same request later (see [`Error::NotAcceptedYet`]).
    pub fn may_succeed_later(&self) -> bool {
        matches!(self, Error::NotAcceptedYet(_))
    }

    fn from_kube(e: kube::Error) -> Error {
        match e {
            kube::Error::Api(status) if status.code == 422 => Error::NotAcceptedYet(status.message),
            kube::Error::Api(status) => Error::Refused(if status.message.is_empty() {
                format!("{} ({})", status.reason, status.code)
            } else {
                status.message
            }),
            kube::Error::HyperError(e) => Error::Unreachable(e.to_string()),
            kube::Error::Service(e) => Error::Unreachable(e.to_string()),
            kube::Error::HttpError(e) => Error::Unreachable(e.to_string()),
            other => Error::Refused(other.to_string()),
        }
    }
}

/// `Result` of dispatching.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an object goes and on whose behalf.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// Application name.
    pub app_name: &'a str,
    /// Application namespace.
    pub app_namespace: &'a str,
    /// Component name.
    pub component: &'a str,
    /// Cluster name.
    pub cluster: &'a str,
    /// The revision label value.
    pub revision: &'a str,
    /// Namespace override from the topology (else the object's own, else the app's).
    pub namespace: Option<&'a str>,
}

/// The plural resource name and scope of a kind in one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindInfo {
    /// `deployments`.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl KindInfo {
    /// Well-known kinds from the built-in table, others guessed (lower-case plural,
    /// namespaced) until discovery says otherwise.
    pub(crate) fn of(api_version: &str, kind: &str) -> KindInfo {
        match known_kind(api_version, kind) {
            Some((plural, namespaced)) => KindInfo { plural, namespaced },
            None => KindInfo {
                plural: plural_of(api_version, kind),
                namespaced: is_namespaced(api_version, kind),
            },
        }
    }
}

/// Discovery answers per cluster, for kinds outside the built-in table (custom resources).
#[derive(Default)]
pub struct KindCache {
    known: Mutex<HashMap<(String, String, String), KindInfo>>,
}

impl KindCache {
    /// The plural and scope of `api_version`/`kind` in `cluster`, asking the cluster's
    /// discovery once for kinds the built-in table does not know. A kind the cluster does not
    /// serve (yet) is an error, never a guess: guessing the scope would write to the wrong place.
    pub async fn resolve(
        &self,
        client: &kube::Client,
        cluster: &str,
        api_version: &str,
        kind: &str,
    ) -> Result<KindInfo> {
        if known_kind(api_version, kind).is_some() {
            return Ok(KindInfo::of(api_version, kind));
        }
        let key = (
            cluster.to_string(),
            api_version.to_string(),
            kind.to_string(),
        );
        if let Some(info) = self.known.lock().await.get(&key) {
            return Ok(info.clone());
        }
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        match kube::discovery::pinned_kind(client, &gvk).await {
            Ok((resource, capabilities)) => {
                let info = KindInfo {
                    plural: resource.plural,
                    namespaced: capabilities.scope == Scope::Namespaced,
                };
                self.known.lock().await.insert(key, info.clone());
                Ok(info)
            }
            Err(kube::Error::Discovery(e)) => Err(Error::NotAcceptedYet(format!(
                "the server does not serve kind {kind} in {api_version}: {e}"
            ))),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::NotAcceptedYet(format!(
                "the server does not serve kind {kind} in {api_version}"
            ))),
            Err(e) => Err(Error::from_kube(e)),
        }
    }
}

/// `Kind ns/name` (or `Kind name`) for messages.
pub(crate) fn describe(object: &Value) -> String {
    describe_named(
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

/// [`describe`] from the names alone (an empty namespace is left out).
pub(crate) fn describe_named(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// Hash of an object's content (its render hash).
pub(crate) fn content_hash(object: &Value) -> String {
    let digest = sha2::Sha256::digest(object.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Fills in the namespace, the ownership labels and the render-hash annotation. Pure.
pub(crate) fn prepare(object: &Value, target: &Target<'_>, namespaced: bool) -> Value {
    let mut object = object.clone();
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    if namespaced {
        let namespace = target
            .namespace
            .map(str::to_string)
            .or_else(|| {
                meta["namespace"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| target.app_namespace.to_string());
        meta["namespace"] = json!(namespace);
    } else if let Some(m) = meta.as_object_mut() {
        m.remove("namespace");
    }
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    for (k, v) in [
        (labels::APP_NAME, target.app_name),
        (labels::APP_NAMESPACE, target.app_namespace),
        (labels::APP_COMPONENT, target.component),
        (labels::APP_CLUSTER, target.cluster),
        (labels::APP_REVISION, target.revision),
    ] {
        meta["labels"][k] = json!(v);
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove(labels::RENDER_HASH);
        if a.is_empty()
            && let Some(m) = meta.as_object_mut()
        {
            m.remove("annotations");
        }
    }
    let hash = content_hash(&object);
    let meta = &mut object["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][labels::RENDER_HASH] = json!(hash);
    object
}

/// Who owns a live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// This application.
    Ours,
    /// No application.
    None,
    /// Another application (`ns/name`).
    Other(String),
}

/// Reads the ownership labels of a live object. Pure.
pub(crate) fn ownership(live: &Value, app_name: &str, app_namespace: &str) -> Ownership {
    let l = &live["metadata"]["labels"];
    match (
        l[labels::APP_NAME].as_str(),
        l[labels::APP_NAMESPACE].as_str(),
    ) {
        (Some(n), Some(ns)) if n == app_name && ns == app_namespace => Ownership::Ours,
        (Some(n), ns) => Ownership::Other(format!("{}/{n}", ns.unwrap_or_default())),
        _ => Ownership::None,
    }
}

/// The `ApiResource` of an apiVersion/kind.
pub(crate) fn api_resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    ApiResource {
        group,
        version,
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// An `Api` for the object's kind, in its namespace.
pub(crate) fn api_for(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    info: &KindInfo,
    namespace: &str,
) -> Api<DynamicObject> {
    let resource = api_resource(api_version, kind, &info.plural);
    if info.namespaced && !namespace.is_empty() {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

/// Reads and writes of one kind in one namespace of a cluster whose answers are parsed once,
/// straight into a `Value`. Through `Api<DynamicObject>` every answer was parsed into typed
/// metadata and then serialised back into a `Value` (the hub's CPU per object read and
/// written, issue 11); the requests sent are the same.
pub(crate) struct ValueApi {
    client: kube::Client,
    request: kube::core::Request,
}

impl ValueApi {
    /// The object's kind in `namespace` (ignored for cluster-scoped kinds).
    pub(crate) fn new(
        client: &kube::Client,
        api_version: &str,
        kind: &str,
        info: &KindInfo,
        namespace: &str,
    ) -> ValueApi {
        let resource = api_resource(api_version, kind, &info.plural);
        let namespace = (info.namespaced && !namespace.is_empty()).then_some(namespace);
        ValueApi {
            client: client.clone(),
            request: kube::core::Request::new(DynamicObject::url_path(&resource, namespace)),
        }
    }

    /// The object as the cluster holds it; `None` when it does not exist.
    pub(crate) async fn get_opt(&self, name: &str) -> Result<Option<Value>> {
        let request = self
            .request
            .get(name, &GetParams::default())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        match self.client.request::<Value>(request).await {
            Ok(object) => Ok(Some(object)),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
            Err(e) => Err(Error::from_kube(e)),
        }
    }

    /// Patches `name`; the object as patched.
    async fn patch<P: serde::Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<Value> {
        let request = self
            .request
            .patch(name, params, patch)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.client
            .request::<Value>(request)
            .await
            .map_err(Error::from_kube)
    }
}

fn identity(object: &Value) -> Result<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (api_version, kind, name) = (
        text(&object["apiVersion"]),
        text(&object["kind"]),
        text(&object["metadata"]["name"]),
    );
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(Error::Invalid(describe(object)));
    }
    Ok((
        api_version,
        kind,
        text(&object["metadata"]["namespace"]),
        name,
    ))
}

/// Reads an object; `None` when it does not exist.
pub async fn get(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    info: &KindInfo,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>> {
    ValueApi::new(client, api_version, kind, info, namespace)
        .get_opt(name)
        .await
}

/// How to treat one object.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApplyOptions {
    /// Adopt an object that belongs to no application.
    pub take_over: bool,
    /// Allow an object that belongs to another application (left to it).
    pub shared: bool,
    /// Never write; only check the object exists.
    pub read_only: bool,
    /// Paths (`spec.replicas`) set at creation and then left to the cluster.
    pub apply_once_paths: Vec<String>,
    /// Apply at creation only.
    pub apply_once_all: bool,
    /// Write even when the live render hash matches (re-assert drift).
    pub force: bool,
}

/// What dispatch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Created or updated.
    Written,
    /// Live object already matched.
    Unchanged,
    /// Left alone (read-only, shared, apply-once).
    Skipped,
}

fn value_at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(object, |v, key| v.get(key))
}

fn set_at(object: &mut Value, path: &str, value: Value) {
    let keys: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut cursor = object;
    for key in parents {
        if !cursor.get(*key).is_some_and(Value::is_object) {
            cursor[*key] = Value::Object(Map::new());
        }
        cursor = &mut cursor[*key];
    }
    cursor[*last] = value;
}

/// Whether a live object of ours must be written again: its render hash differs from the
/// desired one, or, when re-asserting (`force`), a field the desired state sets has drifted
/// (apply-once paths aside). An untouched object is never rewritten, so a hub restarted with
/// nothing changed (whose first pass re-asserts) writes nothing to its members. Pure.
pub(crate) fn needs_write(live: &Value, desired: &Value, options: &ApplyOptions) -> bool {
    let live_hash = live["metadata"]["annotations"][labels::RENDER_HASH].as_str();
    let hash = desired["metadata"]["annotations"][labels::RENDER_HASH].as_str();
    if live_hash.is_none() || live_hash != hash {
        return true;
    }
    options.force
        && !super::drift::drifted_fields(desired, live, &options.apply_once_paths).is_empty()
}

/// Applies a prepared object (see [`prepare`]) with the ownership rules. Returns what was
/// done and the object as the cluster now holds it (the read that decided, or the write's
/// answer), so the caller needs no second read.
pub(crate) async fn apply(
    client: &kube::Client,
    desired: &Value,
    info: &KindInfo,
    app_name: &str,
    app_namespace: &str,
    options: &ApplyOptions,
) -> Result<(Applied, Value)> {
    let (api_version, kind, namespace, name) = identity(desired)?;
    let api = ValueApi::new(client, &api_version, &kind, info, &namespace);
    let live = api.get_opt(&name).await?;
    // Copied only when apply-once paths change it: a pass has every object of every
    // cluster in flight at once, and a copy each made up most of the hub's peak memory.
    let mut desired = std::borrow::Cow::Borrowed(desired);
    let me = format!("{app_namespace}/{app_name}");
    if let Some(live) = &live {
        let skipped = || Ok((Applied::Skipped, live.clone()));
        match ownership(live, app_name, app_namespace) {
            Ownership::Ours => {}
            Ownership::None if options.take_over => {}
            Ownership::None if options.read_only => return skipped(),
            Ownership::None => return Err(Error::NotManaged(describe(&desired))),
            Ownership::Other(owner) if options.shared => {
                // Left to its owner; this application is recorded as a sharer.
                return match shared_by::join(live, &owner, &me) {
                    Some(patch) => Ok((Applied::Skipped, merge_patch(&api, &name, &patch).await?)),
                    None => skipped(),
                };
            }
            Ownership::Other(_) if options.read_only => return skipped(),
            Ownership::Other(owner) => {
                return Err(Error::OtherApplication {
                    object: describe(&desired),
                    owner,
                });
            }
        }
        if options.read_only || options.apply_once_all {
            return skipped();
        }
        if !needs_write(live, &desired, options) {
            return Ok((Applied::Unchanged, live.clone()));
        }
        for path in &options.apply_once_paths {
            if let Some(v) = value_at(live, path) {
                set_at(desired.to_mut(), path, v.clone());
            }
        }
    } else if options.read_only {
        return Err(Error::Refused(format!(
            "{} not found (read-only)",
            describe(&desired)
        )));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch(&name, &params, &Patch::Apply(desired.as_ref()))
        .await?;
    if options.shared {
        // The owner heads the list of sharers (kept out of the applied fields, so no
        // re-apply drops the others).
        if let Some(patch) = shared_by::join(&written, &me, &me) {
            return Ok((Applied::Written, merge_patch(&api, &name, &patch).await?));
        }
    }
    Ok((Applied::Written, written))
}

/// Merge-patches `name`; the object as patched.
async fn merge_patch(api: &ValueApi, name: &str, patch: &Value) -> Result<Value> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

/// Creates namespace `name` unless it exists (the `flotilla.io/create-namespace` opt-in).
pub(crate) async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let api = api_for(
        client,
        "v1",
        "Namespace",
        &KindInfo::of("v1", "Namespace"),
        "",
    );
    if api.get_opt(name).await.map_err(Error::from_kube)?.is_some() {
        return Ok(());
    }
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let object: DynamicObject =
        serde_json::from_value(namespace).map_err(|e| Error::Invalid(e.to_string()))?;
    match api.create(&Default::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(Error::from_kube(e)),
    }
}

/// How deleting an object treats what it owns (a `garbage-collect` rule's `propagation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// Dependents go too (in the background).
    #[default]
    Cascading,
    /// Dependents stay.
    Orphan,
}

/// Lets go of an object: deletes it if it is still ours and nobody else shares it, else hands
/// it to the next sharer or drops this application from its sharers; absent objects are fine.
pub(crate) async fn delete(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    info: &KindInfo,
    namespace: &str,
    name: &str,
    app_name: &str,
    app_namespace: &str,
    propagation: Propagation,
) -> Result<()> {
    let values = ValueApi::new(client, api_version, kind, info, namespace);
    let Some(live) = values.get_opt(name).await? else {
        return Ok(());
    };
    let owned = ownership(&live, app_name, app_namespace) == Ownership::Ours;
    match shared_by::release(&live, &format!("{app_namespace}/{app_name}"), owned) {
        shared_by::Release::Delete => {}
        shared_by::Release::Keep(patch) => {
            return merge_patch(&values, name, &patch).await.map(drop);
        }
        shared_by::Release::NotOurs => return Ok(()),
    }
    let params = match propagation {
        Propagation::Cascading => DeleteParams::background(),
        Propagation::Orphan => DeleteParams::orphan(),
    };
    let api = api_for(client, api_version, kind, info, namespace);
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::from_kube(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            app_name: "example-app",
            app_namespace: "default",
            component: "web",
            cluster: "beijing-1",
            revision: "example-app-v1",
            namespace: None,
        }
    }

    #[test]
    fn prepare_sets_namespace_labels_and_a_stable_hash() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let prepared = prepare(&object, &target(), true);
        assert_eq!(prepared["metadata"]["namespace"], "default");
        let l = &prepared["metadata"]["labels"];
        assert_eq!(l["app.oam.dev/name"], "example-app");
        assert_eq!(l["app.oam.dev/namespace"], "default");
        assert_eq!(l["app.oam.dev/component"], "web");
        assert_eq!(l["app.oam.dev/cluster"], "beijing-1");
        assert_eq!(l["app.oam.dev/appRevision"], "example-app-v1");
        let hash = prepared["metadata"]["annotations"]["app.oam.dev/render-hash"].clone();
        assert_eq!(prepare(&prepared, &target(), true), prepared, "idempotent");
        let mut changed = object.clone();
        changed["spec"]["replicas"] = json!(2);
        assert_ne!(
            prepare(&changed, &target(), true)["metadata"]["annotations"]["app.oam.dev/render-hash"],
            hash
        );
        let ns = Target {
            namespace: Some("prod"),
            ..target()
        };
        assert_eq!(prepare(&object, &ns, true)["metadata"]["namespace"], "prod");
        let cluster_scoped = json!({"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "x", "namespace": "y"}});
        assert!(
            prepare(&cluster_scoped, &target(), false)["metadata"]
                .get("namespace")
                .is_none()
        );
    }

    #[test]
    fn ownership_from_labels() {
        let ours = prepare(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            &target(),
            true,
        );
        assert_eq!(ownership(&ours, "example-app", "default"), Ownership::Ours);
        assert_eq!(
            ownership(&ours, "other", "default"),
            Ownership::Other("default/example-app".into())
        );
        assert_eq!(
            ownership(&json!({"metadata": {"labels": {"app": "x"}}}), "a", "b"),
            Ownership::None
        );
        assert_eq!(
            Error::NotManaged(describe(&ours)).to_string(),
            "ConfigMap default/c exists but not managed by any application now"
        );
    }

    #[test]
    fn only_a_changed_render_or_real_drift_is_written() {
        let desired = prepare(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                    "spec": {"replicas": 1, "template": {"spec": {"containers": [
                        {"name": "web", "image": "nginx:1.27"}]}}}}),
            &target(),
            true,
        );
        // As served: defaults and status added by the cluster.
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["status"] = json!({"readyReplicas": 1});
        let plain = ApplyOptions::default();
        let force = ApplyOptions {
            force: true,
            ..Default::default()
        };
        assert!(!needs_write(&live, &desired, &plain));
        assert!(
            !needs_write(&live, &desired, &force),
            "re-assert of an untouched object"
        );
        let mut drifted = live.clone();
        drifted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:edited");
        assert!(
            !needs_write(&drifted, &desired, &plain),
            "the hash still matches"
        );
        assert!(
            needs_write(&drifted, &desired, &force),
            "re-assert corrects drift"
        );
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(4);
        let once = ApplyOptions {
            force: true,
            apply_once_paths: vec!["spec.replicas".into()],
            ..Default::default()
        };
        assert!(
            !needs_write(&scaled, &desired, &once),
            "apply-once paths are left alone"
        );
        let mut other_render = live.clone();
        other_render["metadata"]["annotations"][labels::RENDER_HASH] = json!("0000");
        assert!(needs_write(&other_render, &desired, &plain));
        let mut unhashed = live;
        unhashed["metadata"]["annotations"] = json!({});
        assert!(needs_write(&unhashed, &desired, &plain));
    }

    #[test]
    fn apply_once_paths_copy_live_values() {
        let mut desired = json!({"spec": {"replicas": 3}});
        let live = json!({"spec": {"replicas": 7}});
        set_at(
            &mut desired,
            "spec.replicas",
            value_at(&live, "spec.replicas").unwrap().clone(),
        );
        assert_eq!(desired["spec"]["replicas"], 7);
    }
}
