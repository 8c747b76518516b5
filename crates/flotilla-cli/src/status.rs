//! `flotilla status APP`: the unified view of an Application (SPEC 4.8).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use futures::StreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::Value;

use flotilla_controllers::application::dispatch::{self, KindCache};
use flotilla_controllers::application::health::workload_health;

use crate::args::StatusArgs;
use crate::get::member_client_for;

/// The API resource of `Application`.
pub(crate) fn application_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("core.oam.dev", "v1beta1", "Application"),
        "applications",
    )
}

/// `2026-11-22T10:00:00Z` → `2026-11-22 10:00:00 +0000 UTC` (Go's time format).
pub(crate) fn go_time(rfc3339: &str) -> String {
    match rfc3339.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn b(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn write_steps(out: &mut String, steps: &[Value], indent: &str) {
    for step in steps {
        let _ = writeln!(out, "{indent}- id: {}", s(step, "/id"));
        let _ = writeln!(out, "{indent}  name: {}", s(step, "/name"));
        let _ = writeln!(out, "{indent}  type: {}", s(step, "/type"));
        let _ = writeln!(out, "{indent}  phase: {}", s(step, "/phase"));
        if !s(step, "/reason").is_empty() {
            let _ = writeln!(out, "{indent}  reason: {}", s(step, "/reason"));
        }
        if !s(step, "/message").is_empty() {
            let _ = writeln!(out, "{indent}  message: {}", s(step, "/message"));
        }
        if let Some(sub) = step.get("subSteps").and_then(Value::as_array)
            && !sub.is_empty()
        {
            let _ = writeln!(out, "{indent}  subSteps:");
            write_steps(out, sub, &format!("{indent}  "));
        }
    }
}

/// Renders the status view of an Application object (JSON as served).
pub(crate) fn render(app: &Value) -> String {
    let mut out = String::new();
    out.push_str("About:\n");
    let _ = writeln!(out, "  Name:         {}", s(app, "/metadata/name"));
    let _ = writeln!(out, "  Namespace:    {}", s(app, "/metadata/namespace"));
    let _ = writeln!(
        out,
        "  Created at:   {}",
        go_time(s(app, "/metadata/creationTimestamp"))
    );
    let phase = s(app, "/status/status");
    let _ = writeln!(
        out,
        "  Status:       {}",
        if phase.is_empty() { "rendering" } else { phase }
    );
    if let Some(workflow) = app.pointer("/status/workflow").filter(|w| w.is_object()) {
        out.push_str("Workflow:\n");
        let _ = writeln!(out, "  mode: {}", s(workflow, "/mode"));
        let _ = writeln!(out, "  finished: {}", b(workflow, "/finished"));
        let _ = writeln!(out, "  Suspend: {}", b(workflow, "/suspend"));
        let _ = writeln!(out, "  Terminated: {}", b(workflow, "/terminated"));
        if !s(workflow, "/message").is_empty() {
            let _ = writeln!(out, "  message: {}", s(workflow, "/message"));
        }
        out.push_str("  Steps\n");
        let steps = workflow
            .get("steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        write_steps(&mut out, &steps, "  ");
    }
    let services = app
        .pointer("/status/services")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    out.push_str("Services:\n");
    for service in &services {
        let name = s(service, "/name");
        let _ = writeln!(out, "  - Name: {name}");
        let _ = writeln!(
            out,
            "    Cluster: {}  Namespace: {}",
            s(service, "/cluster"),
            s(service, "/namespace")
        );
        let mut ty = s(service, "/workloadType").to_string();
        if ty.is_empty() {
            ty = app
                .pointer("/spec/components")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["name"] == name))
                .map(|c| s(c, "/type").to_string())
                .unwrap_or_default();
        }
        let _ = writeln!(out, "    Type: {ty}");
        let health = if b(service, "/healthy") {
            "Healthy"
        } else {
            "Unhealthy"
        };
        let message = s(service, "/message");
        if message.is_empty() {
            let _ = writeln!(out, "    {health}");
        } else {
            let _ = writeln!(out, "    {health} {message}");
        }
        let traits = service
            .get("traits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !traits.is_empty() {
            out.push_str("    Traits:\n");
            for t in &traits {
                let mark = if b(t, "/healthy") { "✅" } else { "❌" };
                let message = s(t, "/message");
                if message.is_empty() {
                    let _ = writeln!(out, "      {mark} {}", s(t, "/type"));
                } else {
                    let _ = writeln!(out, "      {mark} {}: {message}", s(t, "/type"));
                }
            }
        } else {
            out.push_str("    No trait applied\n");
        }
    }
    write_drift(&mut out, app);
    out
}

/// `status.drift` (annotation `app.oam.dev/drift: report`): each drifted object and its fields,
/// per cluster.
fn write_drift(out: &mut String, app: &Value) {
    let drift = app
        .pointer("/status/drift")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if drift.is_empty() {
        return;
    }
    out.push_str("Drift:\n");
    for d in &drift {
        let name = match s(d, "/namespace") {
            "" => s(d, "/name").to_string(),
            ns => format!("{ns}/{}", s(d, "/name")),
        };
        let fields: Vec<&str> = d
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "  - Cluster: {}  {} {name}: {}",
            s(d, "/cluster"),
            s(d, "/kind"),
            fields.join(", ")
        );
    }
}

/// The API resource of `ResourceTracker` (cleanup records are trackers of type `cleanup`).
pub(crate) fn resource_tracker_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("core.oam.dev", "v1beta1", "ResourceTracker"),
        "resourcetrackers",
    )
}

/// Cleanup records matching `selector` (an unreadable list shows as none).
pub(crate) async fn pending_cleanups(hub_client: &kube::Client, selector: &str) -> Vec<Value> {
    let api: Api<DynamicObject> = Api::all_with(hub_client.clone(), &resource_tracker_resource());
    match api
        .list(&kube::api::ListParams::default().labels(selector))
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list cleanup records");
            Vec::new()
        }
    }
}

/// `Pending cleanup:` (objects left on clusters that were unreachable), or nothing.
pub(crate) fn render_pending(records: &[Value]) -> String {
    let mut out = String::new();
    for record in records {
        let cluster = s(
            record,
            "/metadata/labels/app.oam.dev~1pending-cleanup-cluster",
        );
        for r in record
            .pointer("/spec/managedResources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = match s(r, "/namespace") {
                "" => s(r, "/name").to_string(),
                ns => format!("{ns}/{}", s(r, "/name")),
            };
            let _ = writeln!(out, "  - Cluster: {cluster}  {} {name}", s(r, "/kind"));
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("Pending cleanup (deleted when the cluster is reachable again):\n{out}")
}

/// Runs `flotilla status`.
pub(crate) async fn run(hub_client: &kube::Client, args: &StatusArgs) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| hub_client.default_namespace().to_string());
    let api: Api<DynamicObject> =
        Api::namespaced_with(hub_client.clone(), &namespace, &application_resource());
    let app = match api.get(&args.app).await {
        Ok(app) => app,
        Err(kube::Error::Api(status)) => {
            anyhow::bail!("Error from server ({}): {}", status.reason, status.message)
        }
        Err(e) => return Err(e.into()),
    };
    let selector = format!(
        "app.oam.dev/name={},app.oam.dev/namespace={namespace},app.oam.dev/pending-cleanup-cluster",
        args.app
    );
    let pending = render_pending(&pending_cleanups(hub_client, &selector).await);
    let app_value = serde_json::to_value(&app)?;
    let mcs = crate::status_mcs::section(hub_client, &app_value).await;
    let mut last = render(&app_value);
    print!("{last}{mcs}{pending}");
    if args.tree {
        print!("{}", render_tree(hub_client, &app_value).await);
    }
    if !args.watch {
        return Ok(());
    }
    let config = watcher::Config::default().fields(&format!("metadata.name={}", args.app));
    let mut stream = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = stream.next() => match next {
                None => return Ok(()),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watch interrupted; retrying");
                }
                Some(Ok(app)) => {
                    let text = render(&serde_json::to_value(&app)?);
                    if text != last {
                        println!();
                        print!("{text}");
                        last = text;
                    }
                }
            }
        }
    }
}

/// `flotilla status --tree`: per cluster, every object the application dispatched, read through
/// the hub's cluster gateway as the signed-in user, with its health.
pub(crate) async fn render_tree(hub_client: &kube::Client, app: &Value) -> String {
    let mut by_cluster: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in app["status"]["appliedResources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        by_cluster
            .entry(s(r, "/cluster").to_string())
            .or_default()
            .push(r);
    }
    let mut out = String::from("Resource tree:\n");
    if by_cluster.is_empty() {
        out.push_str("  (nothing dispatched)\n");
    }
    let kinds = KindCache::default();
    for (cluster, resources) in by_cluster {
        out.push_str(&format!("  {cluster}\n"));
        let client = member_client_for(hub_client, &cluster);
        for (i, r) in resources.iter().enumerate() {
            let branch = if i + 1 == resources.len() {
                "└─"
            } else {
                "├─"
            };
            let health = object_health(&client, &kinds, &cluster, r).await;
            let (kind, namespace, name) = (s(r, "/kind"), s(r, "/namespace"), s(r, "/name"));
            let object = if namespace.is_empty() {
                format!("{kind} {name}")
            } else {
                format!("{kind} {namespace}/{name}")
            };
            out.push_str(&format!("  {branch} {object}  {health}\n"));
        }
    }
    out
}

/// `healthy`, `unhealthy`, `missing` or the error, with the health message.
async fn object_health(
    client: &kube::Client,
    kinds: &KindCache,
    cluster: &str,
    r: &Value,
) -> String {
    let (api_version, kind) = (s(r, "/apiVersion"), s(r, "/kind"));
    let info = match kinds.resolve(client, cluster, api_version, kind).await {
        Ok(info) => info,
        Err(e) => return format!("error: {e}"),
    };
    match dispatch::get(
        client,
        api_version,
        kind,
        &info,
        s(r, "/namespace"),
        s(r, "/name"),
    )
    .await
    {
        Ok(None) => "missing".into(),
        Ok(Some(live)) => {
            let (healthy, message) = workload_health(&live);
            let word = if healthy { "healthy" } else { "unhealthy" };
            format!("{word} {message}").trim_end().to_string()
        }
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_spec_format() {
        let app = json!({
            "metadata": {"name": "example-app", "namespace": "default", "creationTimestamp": "2026-11-22T10:00:00Z"},
            "spec": {"components": [{"name": "hello-world-server", "type": "webservice"}]},
            "status": {
                "status": "running",
                "workflow": {"mode": "StepByStep-DAG", "finished": true, "suspend": false, "terminated": false,
                    "steps": [{"id": "abc", "name": "deploy-beijing", "type": "deploy", "phase": "succeeded"}]},
                "services": [{"name": "hello-world-server", "cluster": "beijing-1", "namespace": "default",
                    "healthy": true, "message": "Ready:3/3",
                    "traits": [{"type": "scaler", "healthy": true},
                               {"type": "gateway", "healthy": true, "message": "Visiting URL: testsvc-mc.example.com, IP: 10.0.0.12"}]}]
            }
        });
        let expected = "About:
  Name:         example-app
  Namespace:    default
  Created at:   2026-11-22 10:00:00 +0000 UTC
  Status:       running
Workflow:
  mode: StepByStep-DAG
  finished: true
  Suspend: false
  Terminated: false
  Steps
  - id: abc
    name: deploy-beijing
    type: deploy
    phase: succeeded
Services:
  - Name: hello-world-server
    Cluster: beijing-1  Namespace: default
    Type: webservice
    Healthy Ready:3/3
    Traits:
      ✅ scaler
      ✅ gateway: Visiting URL: testsvc-mc.example.com, IP: 10.0.0.12
";
        assert_eq!(render(&app), expected);
    }

    #[test]
    fn unhealthy_services_and_traits_are_marked() {
        let app = json!({"metadata": {"name": "a"}, "status": {"services": [
            {"name": "c", "cluster": "x", "namespace": "d", "healthy": false, "message": "Ready:1/3",
             "traits": [{"type": "gateway", "healthy": false, "message": "no IP yet"}]}]}});
        let text = render(&app);
        assert!(text.contains("    Unhealthy Ready:1/3\n"));
        assert!(text.contains("      ❌ gateway: no IP yet\n"));
        assert!(text.contains("  Status:       rendering\n"));
        assert!(!text.contains("Drift:"));
    }

    #[test]
    fn pending_cleanups_name_cluster_and_object() {
        let records = [
            json!({"metadata": {"labels": {"app.oam.dev/pending-cleanup-cluster": "m2"}},
            "spec": {"managedResources": [{"cluster": "m2", "apiVersion": "apps/v1",
                "kind": "Deployment", "namespace": "default", "name": "web"}]}}),
        ];
        assert_eq!(
            render_pending(&records),
            "Pending cleanup (deleted when the cluster is reachable again):\n  - Cluster: m2  Deployment default/web\n"
        );
        assert_eq!(render_pending(&[]), "");
    }

    #[test]
    fn reported_drift_names_cluster_object_and_fields() {
        let app = json!({"metadata": {"name": "a"}, "status": {"drift": [
            {"cluster": "m1", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "default",
             "name": "c", "fields": ["data.k", "data.j"]}]}});
        assert!(
            render(&app)
                .ends_with("Drift:\n  - Cluster: m1  ConfigMap default/c: data.k, data.j\n")
        );
    }
}
