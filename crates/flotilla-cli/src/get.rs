//! `flotilla get KIND[,KIND...] [NAME] (-m CLUSTER | -M)`: read resources in member clusters through the
//! hub's cluster gateway as the signed-in user, printed like kubectl (server-side tables,
//! kubectl's errors; with `-M` a cluster's error is printed and the others still print).

use std::io::Write as _;
use std::time::Duration;

use flotilla_controllers::cluster::{gateway, managed_cluster, registry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use serde_json::{Value, json};

use crate::args::GetArgs;

/// How long a member may take to answer one request.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(15);

/// A resource kind resolved through a member's discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedResource {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl ResolvedResource {
    /// The request path for a list (no name) or one object.
    pub(crate) fn path(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut path = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespaced
            && let Some(ns) = namespace
        {
            path.push_str(&format!("/namespaces/{ns}"));
        }
        path.push('/');
        path.push_str(&self.plural);
        if let Some(name) = name {
            path.push('/');
            path.push_str(name);
        }
        path
    }
}

/// Whether `name` (lower-case, no group) names `resource`: plural, singular, kind or short name.
pub(crate) fn names_resource(name: &str, resource: &APIResource) -> bool {
    if resource.name.contains('/') {
        return false;
    }
    resource.name == name
        || resource.singular_name == name
        || resource.kind.to_lowercase() == name
        || resource
            .short_names
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == name))
}

/// Splits `deployments.apps` / `deployment.v1.apps` into (name, version, group).
pub(crate) fn split_kind_arg(arg: &str) -> (String, Option<String>, Option<String>) {
    let arg = arg.to_lowercase();
    match arg.split_once('.') {
        None => (arg, None, None),
        Some((name, rest)) => match rest.split_once('.') {
            Some((version, group))
                if version.starts_with('v')
                    && version[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                (
                    name.to_string(),
                    Some(version.to_string()),
                    Some(group.to_string()),
                )
            }
            _ => (name.to_string(), None, Some(rest.to_string())),
        },
    }
}

/// A built-in kind named by `name` (and `version`/`group` when given), from the kind table
/// `flotilla_core::kinds`: every Flotilla API server serves these, so no discovery is needed.
pub(crate) fn resolve_builtin(
    name: &str,
    version: Option<&str>,
    group: Option<&str>,
) -> Option<ResolvedResource> {
    flotilla_core::kinds::builtin()
        .filter(|k| group.is_none_or(|g| g == k.group) && version.is_none_or(|v| v == k.version))
        .find(|k| k.is_named(name))
        .map(|k| ResolvedResource {
            group: k.group.to_string(),
            version: k.version.to_string(),
            plural: k.plural.to_string(),
            kind: k.kind.to_string(),
            namespaced: k.namespaced(),
        })
}

/// Resolves a kind argument: built-in kinds from the kind table, others through the member's
/// discovery documents.
pub(crate) async fn resolve(
    member_client: &kube::Client,
    arg: &str,
) -> Result<ResolvedResource, kube::Error> {
    let (name, version, group) = split_kind_arg(arg);
    if let Some(builtin) = resolve_builtin(&name, version.as_deref(), group.as_deref()) {
        return Ok(builtin);
    }
    let mut candidates: Vec<(String, String, Vec<APIResource>)> = Vec::new();
    if group.as_deref().is_none_or(str::is_empty) {
        let core = member_client.list_core_api_resources("v1").await?;
        candidates.push((String::new(), "v1".into(), core.resources));
    }
    let groups = member_client.list_api_groups().await?;
    for g in groups.groups {
        if let Some(wanted) = &group
            && !wanted.is_empty()
            && &g.name != wanted
        {
            continue;
        }
        let gv = match &version {
            Some(v) => format!("{}/{v}", g.name),
            None => match g.preferred_version.as_ref() {
                Some(p) => p.group_version.clone(),
                None => match g.versions.first() {
                    Some(v) => v.group_version.clone(),
                    None => continue,
                },
            },
        };
        let Ok(list) = member_client.list_api_group_resources(&gv).await else {
            continue;
        };
        let v = gv
            .rsplit_once('/')
            .map(|(_, v)| v.to_string())
            .unwrap_or(gv.clone());
        candidates.push((g.name.clone(), v, list.resources));
    }
    for (g, v, resources) in candidates {
        if let Some(r) = resources.iter().find(|r| names_resource(&name, r)) {
            return Ok(ResolvedResource {
                group: g,
                version: v,
                plural: r.name.clone(),
                kind: r.kind.clone(),
                namespaced: r.namespaced,
            });
        }
    }
    Err(kube::Error::Api(Box::new(kube::core::Status {
        code: 404,
        reason: "NotFound".into(),
        message: format!("the server doesn't have a resource type \"{arg}\""),
        ..Default::default()
    })))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A rendered cell of a server-side table.
pub(crate) fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Rows of a `meta.k8s.io/v1 Table`: (headers, rows), optionally with NAMESPACE and CLUSTER.
pub(crate) fn table_rows(
    table: &Value,
    wide: bool,
    with_namespace: bool,
    cluster: Option<&str>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let columns = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut headers = Vec::new();
    if cluster.is_some() {
        headers.push("CLUSTER".to_string());
    }
    if with_namespace {
        headers.push("NAMESPACE".to_string());
    }
    headers.extend(
        shown
            .iter()
            .map(|&i| columns[i]["name"].as_str().unwrap_or("").to_uppercase()),
    );
    let rows = table["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|row| {
            let cells = row["cells"].as_array().cloned().unwrap_or_default();
            let mut out = Vec::new();
            if let Some(c) = cluster {
                out.push(c.to_string());
            }
            if with_namespace {
                out.push(
                    row.pointer("/object/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                );
            }
            out.extend(
                shown
                    .iter()
                    .map(|&i| cells.get(i).map(cell_text).unwrap_or_default()),
            );
            out
        })
        .collect();
    (headers, rows)
}

/// kubectl's rendering of an API error.
pub(crate) fn kubectl_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if status.message.starts_with("the server doesn't have") => {
            format!("error: {}", status.message)
        }
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                "Unknown"
            } else {
                &status.reason
            };
            format!("Error from server ({reason}): {}", status.message)
        }
        other => format!("error: {}", registry::one_line(other)),
    }
}

/// A client for `cluster` through the hub's cluster gateway, as the signed-in user: no member
/// credentials are read, the hub authorizes `clustergateways/proxy` and the member's RBAC
/// decides the rest (`local` is the hub itself).
pub(crate) fn member_client_for(hub_client: &kube::Client, cluster: &str) -> kube::Client {
    if cluster == registry::LOCAL_CLUSTER {
        return hub_client.clone();
    }
    gateway::gateway_client(hub_client, cluster)
}

/// The names of every registered cluster (ManagedClusters; no credentials are read).
pub(crate) async fn cluster_names(hub_client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let list = managed_cluster::api(hub_client)
        .list(&Default::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "hub API: {}",
                flotilla_controllers::cluster::describe_kube_error(&e)
            )
        })?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// What one cluster answered.
struct ClusterResult {
    cluster: String,
    outcome: Result<(ResolvedResource, Value), String>,
}

async fn fetch(
    hub_client: &kube::Client,
    cluster: &str,
    kind: &str,
    args: &GetArgs,
    namespace: &str,
    as_table: bool,
) -> Result<(ResolvedResource, Value), String> {
    let member_client = member_client_for(hub_client, cluster);
    let resource = resolve(&member_client, kind)
        .await
        .map_err(|e| kubectl_error(&e))?;
    let ns = (!args.all_namespaces).then_some(namespace);
    let mut path = resource.path(ns, args.name.as_deref());
    if args.name.is_none()
        && let Some(selector) = &args.selector
    {
        path.push_str(&format!("?labelSelector={}", percent_encode(selector)));
    }
    let accept = if as_table {
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    } else {
        "application/json"
    };
    let request = http::Request::get(&path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .map_err(|e| format!("error: {e}"))?;
    let text = member_client
        .request_text(request)
        .await
        .map_err(|e| kubectl_error(&e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("error: {e}"))?;
    Ok((resource, value))
}

/// A Table from a plain object or list (for servers that do not answer `as=Table`).
fn fallback_table(value: &Value) -> Value {
    let items: Vec<Value> = if value["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
        value["items"].as_array().cloned().unwrap_or_default()
    } else {
        vec![value.clone()]
    };
    json!({
        "columnDefinitions": [{"name": "Name", "priority": 0}],
        "rows": items.iter().map(|i| json!({"cells": [i["metadata"]["name"]], "object": {"metadata": i["metadata"]}})).collect::<Vec<_>>(),
    })
}

/// The kinds of a `KIND[,KIND...]` argument, in order, without repeats.
pub(crate) fn kind_list(arg: &str) -> anyhow::Result<Vec<String>> {
    let mut kinds: Vec<String> = Vec::new();
    for kind in arg.split(',').map(str::trim) {
        anyhow::ensure!(!kind.is_empty(), "error: empty resource type in {arg:?}");
        if !kinds.iter().any(|k| k == kind) {
            kinds.push(kind.to_string());
        }
    }
    Ok(kinds)
}

/// Runs `flotilla get`.
pub(crate) async fn run(hub_client: &kube::Client, args: &GetArgs) -> anyhow::Result<()> {
    let output = args.output.as_deref().unwrap_or("");
    anyhow::ensure!(
        matches!(output, "" | "wide" | "yaml" | "json" | "name"),
        "unable to match a printer suitable for the output format {output:?}, allowed formats are: json,name,wide,yaml"
    );
    let kinds = kind_list(&args.kind)?;
    let clusters: Vec<String> = match (&args.cluster, args.all_clusters) {
        (Some(c), _) => vec![c.clone()],
        (None, true) => cluster_names(hub_client).await?,
        (None, false) => {
            anyhow::bail!("choose the member cluster to read: -m CLUSTER, or -M for all clusters")
        }
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| hub_client.default_namespace().to_string());
    let as_table = matches!(output, "" | "wide");
    let pairs: Vec<(&str, &str)> = kinds
        .iter()
        .flat_map(|k| clusters.iter().map(move |c| (k.as_str(), c.as_str())))
        .collect();
    let results = futures::future::join_all(pairs.iter().map(|&(kind, cluster)| {
        fetch_with_deadline(hub_client, cluster, kind, args, &namespace, as_table)
    }))
    .await;
    let mut printed = Printed::default();
    for (i, _) in kinds.iter().enumerate() {
        let of_kind = &results[i * clusters.len()..(i + 1) * clusters.len()];
        printed.add_kind(of_kind, args, output, kinds.len() > 1);
    }
    printed.print(args, output, &namespace)?;
    if printed.failed {
        // kubectl's exit status; the errors are already on stderr in kubectl's words.
        std::process::exit(1);
    }
    Ok(())
}

/// [`fetch`] bounded by [`MEMBER_TIMEOUT`].
async fn fetch_with_deadline(
    hub_client: &kube::Client,
    cluster: &str,
    kind: &str,
    args: &GetArgs,
    namespace: &str,
    as_table: bool,
) -> ClusterResult {
    let outcome = tokio::time::timeout(
        MEMBER_TIMEOUT,
        fetch(hub_client, cluster, kind, args, namespace, as_table),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "error: cluster {cluster:?} did not answer within {}s",
            MEMBER_TIMEOUT.as_secs()
        ))
    });
    ClusterResult {
        cluster: cluster.to_string(),
        outcome,
    }
}

/// What `flotilla get` prints, gathered kind by kind: one table per kind (kubectl's blank
/// line between them), or the items of every kind in one List.
#[derive(Default)]
struct Printed {
    failed: bool,
    tables: Vec<(Vec<String>, Vec<Vec<String>>)>,
    items: Vec<(ResolvedResource, Value)>,
    cluster_scoped: bool,
}

impl Printed {
    /// Adds what the clusters answered for one kind; `with_kind` prefixes names with the kind
    /// (`serviceimport.multicluster.x-k8s.io/web`) as kubectl does when several kinds print.
    fn add_kind(
        &mut self,
        results: &[ClusterResult],
        args: &GetArgs,
        output: &str,
        with_kind: bool,
    ) {
        let mut table: Option<(Vec<String>, Vec<Vec<String>>)> = None;
        for result in results {
            let (resource, value) = match &result.outcome {
                Err(message) => {
                    self.failed = true;
                    if args.all_clusters {
                        eprintln!("{message} (cluster {})", result.cluster);
                    } else {
                        eprintln!("{message}");
                    }
                    continue;
                }
                Ok(ok) => ok,
            };
            self.cluster_scoped |= !resource.namespaced;
            if matches!(output, "" | "wide") {
                let (headers, mut rows) = rows_of(resource, value, args, output, &result.cluster);
                if with_kind {
                    prefix_names(&headers, &mut rows, resource);
                }
                table.get_or_insert((headers, Vec::new())).1.extend(rows);
            } else {
                self.items.extend(list_items(resource, value));
            }
        }
        if let Some(table) = table.filter(|(_, rows)| !rows.is_empty()) {
            self.tables.push(table);
        }
    }

    fn print(&self, args: &GetArgs, output: &str, namespace: &str) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        if matches!(output, "" | "wide") {
            for (i, (headers, rows)) in self.tables.iter().enumerate() {
                if i > 0 {
                    writeln!(stdout)?;
                }
                write!(stdout, "{}", crate::table::render(headers, rows))?;
            }
            if self.tables.is_empty() && !self.failed {
                if !self.cluster_scoped && !args.all_namespaces {
                    eprintln!("No resources found in {namespace} namespace.");
                } else {
                    eprintln!("No resources found");
                }
            }
        } else if output == "name" {
            for (resource, item) in &self.items {
                let kind = crate::up::display_kind(&resource.kind, &resource.group);
                writeln!(
                    stdout,
                    "{kind}/{}",
                    item["metadata"]["name"].as_str().unwrap_or("")
                )?;
            }
        } else if !self.items.is_empty() || !self.failed {
            let single = args.name.is_some() && !args.kind.contains(',') && self.items.len() == 1;
            let document = if single {
                self.items[0].1.clone()
            } else {
                json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": self.items.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>(),
                    "metadata": {"resourceVersion": ""},
                })
            };
            if output == "json" {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&document)?)?;
            } else {
                write!(stdout, "{}", serde_yaml_ng::to_string(&document)?)?;
            }
        }
        stdout.flush()?;
        Ok(())
    }
}

/// The table rows of one cluster's answer (a server-side Table, or a plain list).
fn rows_of(
    resource: &ResolvedResource,
    value: &Value,
    args: &GetArgs,
    output: &str,
    cluster: &str,
) -> (Vec<String>, Vec<Vec<String>>) {
    let fallback;
    let table = if value["kind"] == "Table" {
        value
    } else {
        fallback = fallback_table(value);
        &fallback
    };
    table_rows(
        table,
        output == "wide",
        args.all_namespaces && resource.namespaced,
        args.all_clusters.then_some(cluster),
    )
}

/// `NAME` cells become `kind.group/name`.
fn prefix_names(headers: &[String], rows: &mut [Vec<String>], resource: &ResolvedResource) {
    let Some(i) = headers.iter().position(|h| h == "NAME") else {
        return;
    };
    let kind = crate::up::display_kind(&resource.kind, &resource.group);
    for row in rows {
        if let Some(cell) = row.get_mut(i) {
            *cell = format!("{kind}/{cell}");
        }
    }
}

/// The objects of a list (each with its apiVersion and kind) or the one object.
fn list_items(resource: &ResolvedResource, value: &Value) -> Vec<(ResolvedResource, Value)> {
    if !value["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
        return vec![(resource.clone(), value.clone())];
    }
    let api_version = if resource.group.is_empty() {
        resource.version.clone()
    } else {
        format!("{}/{}", resource.group, resource.version)
    };
    value["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let mut item = item.clone();
            if item.get("kind").is_none() {
                item["apiVersion"] = json!(api_version);
                item["kind"] = json!(resource.kind);
            }
            (resource.clone(), item)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, singular: &str, kind: &str, short: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            singular_name: singular.into(),
            kind: kind.into(),
            namespaced: true,
            short_names: Some(short.iter().map(|s| s.to_string()).collect()),
            verbs: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn kinds_resolve_like_kubectl() {
        let d = resource("deployments", "deployment", "Deployment", &["deploy"]);
        for n in ["deployments", "deployment", "deploy"] {
            assert!(names_resource(n, &d), "{n}");
        }
        assert!(!names_resource(
            "deployments/status",
            &resource("deployments/status", "", "Deployment", &[])
        ));
        assert_eq!(
            split_kind_arg("deployments.apps"),
            ("deployments".into(), None, Some("apps".into()))
        );
        assert_eq!(
            split_kind_arg("Deployment.v1.apps"),
            ("deployment".into(), Some("v1".into()), Some("apps".into()))
        );
        assert_eq!(
            split_kind_arg("applications.core.oam.dev"),
            ("applications".into(), None, Some("core.oam.dev".into()))
        );
        let r = ResolvedResource {
            group: "apps".into(),
            version: "v1".into(),
            plural: "deployments".into(),
            kind: "Deployment".into(),
            namespaced: true,
        };
        assert_eq!(
            r.path(Some("demo"), Some("web")),
            "/apis/apps/v1/namespaces/demo/deployments/web"
        );
        assert_eq!(r.path(None, None), "/apis/apps/v1/deployments");
        assert_eq!(resolve_builtin("deploy", None, None), Some(r.clone()));
        assert_eq!(
            resolve_builtin("deployment", Some("v1"), Some("apps")),
            Some(r)
        );
        assert_eq!(resolve_builtin("deploy", None, Some("extensions")), None);
        assert_eq!(resolve_builtin("applications", None, None), None);
        let hpa = resolve_builtin("hpa", None, None).unwrap();
        assert_eq!(
            (hpa.group.as_str(), hpa.version.as_str()),
            ("autoscaling", "v2")
        );
        assert!(!resolve_builtin("ns", None, None).unwrap().namespaced);
    }

    #[test]
    fn several_kinds_print_kind_prefixed_names() {
        assert_eq!(
            kind_list("serviceimports, endpointslices,serviceimports").unwrap(),
            vec!["serviceimports", "endpointslices"]
        );
        assert!(kind_list("pods,").is_err());
        let r = ResolvedResource {
            group: "multicluster.x-k8s.io".into(),
            version: "v1alpha1".into(),
            plural: "serviceimports".into(),
            kind: "ServiceImport".into(),
            namespaced: true,
        };
        let headers = vec!["CLUSTER".to_string(), "NAME".to_string()];
        let mut rows = vec![vec!["c".to_string(), "web".to_string()]];
        prefix_names(&headers, &mut rows, &r);
        assert_eq!(rows[0][1], "serviceimport.multicluster.x-k8s.io/web");
        let list = json!({"kind": "ServiceImportList", "items": [{"metadata": {"name": "web"}}]});
        let items = list_items(&r, &list);
        assert_eq!(items[0].1["apiVersion"], "multicluster.x-k8s.io/v1alpha1");
        assert_eq!(items[0].1["kind"], "ServiceImport");
    }

    #[test]
    fn tables_and_errors() {
        let table = json!({
            "kind": "Table",
            "columnDefinitions": [{"name": "Name", "priority": 0}, {"name": "Ready", "priority": 0}, {"name": "Images", "priority": 1}],
            "rows": [{"cells": ["demo", "1/1", "nginx"], "object": {"metadata": {"namespace": "demo"}}}],
        });
        let (h, rows) = table_rows(&table, false, false, Some("test"));
        assert_eq!(h, vec!["CLUSTER", "NAME", "READY"]);
        assert_eq!(rows[0], vec!["test", "demo", "1/1"]);
        let (h, _) = table_rows(&table, true, true, None);
        assert_eq!(h, vec!["NAMESPACE", "NAME", "READY", "IMAGES"]);
        let e = kube::Error::Api(Box::new(kube::core::Status {
            code: 404,
            reason: "NotFound".into(),
            message: "deployments.apps \"demo\" not found".into(),
            ..Default::default()
        }));
        assert_eq!(
            kubectl_error(&e),
            "Error from server (NotFound): deployments.apps \"demo\" not found"
        );
        assert_eq!(percent_encode("app=a,b!=c"), "app%3Da%2Cb%21%3Dc");
    }
}
