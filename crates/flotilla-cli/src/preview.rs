//! `flotilla dry-run` and `flotilla diff`: what an Application would put on each cluster,
//! worked out as the controller does (`flotilla_controllers::application::preview`) from what
//! the signed-in user can read on the hub; nothing is written. `diff` reads the members through
//! the hub's cluster gateway as the user and keeps kubectl diff's exit codes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use flotilla_apis::Application;
use flotilla_controllers::application::dispatch::{self, KindCache};
use flotilla_controllers::application::placement::ClusterInfo;
use flotilla_controllers::application::preview::{self, identity};
use flotilla_controllers::cluster::managed_cluster;
use kube::api::Api;
use serde_json::Value;

use crate::args::{DiffArgs, DryRunArgs};
use crate::get::member_client_for;
use crate::up::parse_documents;

/// `flotilla dry-run -f FILE | NAME`: every cluster's objects as YAML, each cluster introduced
/// by a `# cluster: NAME` line.
pub(crate) async fn dry_run(hub_client: &kube::Client, args: &DryRunArgs) -> anyhow::Result<()> {
    let app = match (&args.file, &args.app) {
        (Some(file), None) => from_file(hub_client, file, args.namespace.as_deref())?,
        (None, Some(name)) => stored(hub_client, name, args.namespace.as_deref())
            .await?
            .with_context(|| format!("applications.core.oam.dev \"{name}\" not found"))?,
        _ => bail!("give either -f FILE or the name of a stored Application"),
    };
    let planned = plan(hub_client, &app).await?;
    print!("{}", render_yaml(&planned)?);
    Ok(())
}

/// The YAML of every cluster's objects.
pub(crate) fn render_yaml(planned: &BTreeMap<String, Vec<Value>>) -> anyhow::Result<String> {
    let mut out = String::new();
    for (cluster, objects) in planned {
        out.push_str(&format!("# cluster: {cluster}\n"));
        for o in objects {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(o)?);
        }
    }
    Ok(out)
}

/// `flotilla diff -f FILE`: exits 0 when nothing would change, 1 when something would, 2 on
/// an error (kubectl diff's contract).
pub(crate) async fn diff(hub_client: &kube::Client, args: &DiffArgs) -> ! {
    match diff_inner(hub_client, args).await {
        Ok(text) if text.is_empty() => std::process::exit(0),
        Ok(text) => {
            print!("{text}");
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2)
        }
    }
}

async fn diff_inner(hub_client: &kube::Client, args: &DiffArgs) -> anyhow::Result<String> {
    let app = from_file(hub_client, &args.file, args.namespace.as_deref())?;
    let planned = plan(hub_client, &app).await?;
    let (name, namespace) = (
        app.metadata.name.clone().unwrap_or_default(),
        app.metadata.namespace.clone().unwrap_or_default(),
    );
    // What the stored application dispatched and this file no longer would: gc deletes it.
    let applied = stored(hub_client, &name, Some(&namespace))
        .await?
        .and_then(|a| a.status)
        .map(|s| s.applied_resources)
        .unwrap_or_default();
    let kinds = KindCache::default();
    let mut out = String::new();
    let mut clusters: Vec<&String> = planned.keys().collect();
    clusters.extend(applied.iter().map(|r| &r.cluster));
    clusters.sort();
    clusters.dedup();
    for cluster in clusters {
        let client = member_client_for(hub_client, cluster);
        let objects = planned.get(cluster).map(Vec::as_slice).unwrap_or_default();
        let mut text = String::new();
        for desired in objects {
            text.push_str(&object_diff(&client, &kinds, cluster, desired).await?);
        }
        for r in applied.iter().filter(|r| &r.cluster == cluster) {
            let key = (
                r.api_version.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
            );
            if !objects.iter().any(|o| identity(o) == key) {
                text.push_str(&format!("- {} (deleted)\n", describe(&key)));
            }
        }
        if !text.is_empty() {
            out.push_str(&format!("# cluster: {cluster}\n{text}"));
        }
    }
    Ok(out)
}

/// What applying `desired` would change in `cluster` (empty: nothing).
async fn object_diff(
    client: &kube::Client,
    kinds: &KindCache,
    cluster: &str,
    desired: &Value,
) -> anyhow::Result<String> {
    let key = identity(desired);
    let (api_version, kind, namespace, name) = &key;
    let info = match kinds.resolve(client, cluster, api_version, kind).await {
        Ok(info) => info,
        Err(e) if e.may_succeed_later() => {
            return Ok(format!("+ {} (created; {e})\n", describe(&key)));
        }
        Err(e) => bail!("cluster {cluster}: {e}"),
    };
    let live = dispatch::get(client, api_version, kind, &info, namespace, name)
        .await
        .with_context(|| format!("cluster {cluster}: reading {}", describe(&key)))?;
    let Some(live) = live else {
        return Ok(format!("+ {} (created)\n", describe(&key)));
    };
    let desired = without_bookkeeping(desired);
    let before = serde_yaml_ng::to_string(&project(&desired, &live))?;
    let after = serde_yaml_ng::to_string(&desired)?;
    if before == after {
        return Ok(String::new());
    }
    let mut out = format!("~ {}\n", describe(&key));
    for line in line_diff(&before, &after) {
        out.push_str(&format!("  {line}\n"));
    }
    Ok(out)
}

/// Reads an Application from a file (its first Application document).
fn from_file(
    hub_client: &kube::Client,
    file: &Path,
    namespace: Option<&str>,
) -> anyhow::Result<Application> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {shown}"))?;
    let document = parse_documents(&shown, &text)?
        .into_iter()
        .find(|d| d["kind"] == "Application")
        .with_context(|| format!("{shown}: no Application in the file"))?;
    let mut app: Application = serde_json::from_value(document)
        .with_context(|| format!("{shown}: not a valid Application"))?;
    if app.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        let ns = namespace.unwrap_or_else(|| hub_client.default_namespace());
        app.metadata.namespace = Some(ns.to_string());
    }
    Ok(app)
}

async fn stored(
    hub_client: &kube::Client,
    name: &str,
    namespace: Option<&str>,
) -> anyhow::Result<Option<Application>> {
    let ns = namespace.unwrap_or_else(|| hub_client.default_namespace());
    let api: Api<Application> = Api::namespaced(hub_client.clone(), ns);
    api.get_opt(name).await.map_err(|e| match e {
        kube::Error::Api(s) => anyhow::anyhow!("Error from server ({}): {}", s.reason, s.message),
        e => e.into(),
    })
}

async fn plan(
    hub_client: &kube::Client,
    app: &Application,
) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
    let list = managed_cluster::api(hub_client)
        .list(&Default::default())
        .await
        .context("listing clusters")?;
    let clusters: Vec<ClusterInfo> = list
        .items
        .into_iter()
        .map(|c| ClusterInfo {
            name: c.metadata.name.unwrap_or_default(),
            labels: c.metadata.labels.unwrap_or_default(),
        })
        .collect();
    Ok(preview::preview(app, hub_client, &clusters).await?)
}

fn describe((_, kind, namespace, name): &(String, String, String, String)) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// The desired object without what changes on every revision (render hash, revision label).
fn without_bookkeeping(desired: &Value) -> Value {
    let mut out = desired.clone();
    if let Some(a) = out["metadata"]["annotations"].as_object_mut() {
        a.remove(flotilla_apis::labels::RENDER_HASH);
    }
    if let Some(l) = out["metadata"]["labels"].as_object_mut() {
        l.remove(flotilla_apis::labels::APP_REVISION);
    }
    out
}

/// `live` cut to the fields `desired` sets (metadata: name, namespace, labels, annotations), so
/// what the cluster or others add is no difference.
pub(crate) fn project(desired: &Value, live: &Value) -> Value {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => Value::Object(
            d.keys()
                .filter_map(|k| l.get(k).map(|lv| (k.clone(), project(&d[k], lv))))
                .collect(),
        ),
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            Value::Array(d.iter().zip(l).map(|(dv, lv)| project(dv, lv)).collect())
        }
        _ => live.clone(),
    }
}

/// A line diff of `before` → `after`: unchanged lines start with two spaces, removed ones
/// with `- `, added ones with `+ ` (longest common subsequence).
pub(crate) fn line_diff(before: &str, after: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_keeps_only_desired_fields() {
        let desired = json!({"spec": {"replicas": 2, "template": {"x": [1, 2]}}});
        let live = json!({"spec": {"replicas": 3, "paused": false, "template": {"x": [1, 5]}},
                          "status": {"ready": 1}});
        assert_eq!(
            project(&desired, &live),
            json!({"spec": {"replicas": 3, "template": {"x": [1, 5]}}})
        );
    }

    #[test]
    fn line_diff_marks_changes() {
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nx\nc\n"),
            ["  a", "- b", "+ x", "  c"]
        );
        assert_eq!(line_diff("a\n", "a\n"), ["  a"]);
    }
}
