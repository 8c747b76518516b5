//! `flotilla auth grant-privileges` (records a `FleetRoleBinding` that the hub's grants
//! controller applies to members) and `flotilla auth list-privileges` (each member's
//! SelfSubjectRulesReview, made as the user through the cluster gateway).

use flotilla_controllers::application::member_clients::{Identity, impersonating};
use flotilla_controllers::cluster::{gateway, managed_cluster, registry};
use flotilla_controllers::grants;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::args::{AuthCommand, GrantArgs, ListPrivilegesArgs};

/// Runs an `auth` subcommand.
pub(crate) async fn run(hub_client: &kube::Client, command: AuthCommand) -> anyhow::Result<()> {
    match command {
        AuthCommand::GrantPrivileges(args) => grant(hub_client, &args).await,
        AuthCommand::ListPrivileges(args) => list(hub_client, &args).await,
    }
}

/// The `FleetRoleBinding` for `args` (name derived from subject, role and scope).
pub(crate) fn grant_object(args: &GrantArgs) -> anyhow::Result<Value> {
    let (kind, subject) = match (&args.user, &args.group) {
        (Some(u), _) => ("User", u.clone()),
        (None, Some(g)) => ("Group", g.clone()),
        _ => anyhow::bail!("give --user or --group"),
    };
    let role = match (&args.clusterrole, args.readonly) {
        (Some(r), _) => r.clone(),
        (None, true) => "view".to_string(),
        (None, false) => "edit".to_string(),
    };
    let selector = match &args.for_cluster_selector {
        Some(s) => registry::parse_labels(&s.split(',').collect::<Vec<_>>())?,
        None => Default::default(),
    };
    anyhow::ensure!(
        !args.for_cluster.is_empty() || !selector.is_empty(),
        "give --for-cluster or --for-cluster-selector"
    );
    let scope = args
        .for_cluster
        .iter()
        .cloned()
        .chain(selector.iter().map(|(k, v)| format!("{k}-{v}")))
        .collect::<Vec<_>>()
        .join("-");
    let raw = format!(
        "{}-{subject}-{role}-{}-{scope}",
        kind.to_lowercase(),
        args.for_namespace.as_deref().unwrap_or("all")
    );
    let name: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect::<String>()
        .trim_matches(['-', '.'])
        .to_string();
    let mut subject_json = json!({"kind": kind, "name": subject});
    subject_json["apiGroup"] = json!("rbac.authorization.k8s.io");
    Ok(json!({
        "apiVersion": "auth.flotilla.io/v1alpha1",
        "kind": "FleetRoleBinding",
        "metadata": {"name": name},
        "spec": {
            "subjects": [subject_json],
            "clusters": args.for_cluster,
            "clusterSelector": selector,
            "namespace": args.for_namespace.clone().unwrap_or_default(),
            "clusterRole": role,
            "readonly": args.readonly,
        },
    }))
}

async fn grant(hub_client: &kube::Client, args: &GrantArgs) -> anyhow::Result<()> {
    let object = grant_object(args)?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    Api::<DynamicObject>::all_with(hub_client.clone(), &grants::api_resource())
        .patch(
            &name,
            &PatchParams::apply("flotilla-cli").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "hub API: {}",
                flotilla_controllers::cluster::describe_kube_error(&e)
            )
        })?;
    println!(
        "fleetrolebinding.auth.flotilla.io/{name} granted: ClusterRole {} to {} {}",
        object["spec"]["clusterRole"].as_str().unwrap_or(""),
        object["spec"]["subjects"][0]["kind"].as_str().unwrap_or(""),
        object["spec"]["subjects"][0]["name"].as_str().unwrap_or(""),
    );
    Ok(())
}

async fn list(hub_client: &kube::Client, args: &ListPrivilegesArgs) -> anyhow::Result<()> {
    let clusters = managed_cluster::api(hub_client)
        .list(&Default::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "hub API: {}",
                flotilla_controllers::cluster::describe_kube_error(&e)
            )
        })?;
    let as_user = impersonating(
        hub_client.clone(),
        &Identity {
            user: Some(args.user.clone()),
            groups: args.groups.clone(),
        },
    );
    let mut rows = Vec::new();
    for name in clusters
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
    {
        let member = gateway::gateway_client(&as_user, &name);
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": args.namespace},
        });
        let request = http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&review)?)?;
        match member.request::<Value>(request).await {
            Ok(answer) => rows.extend(rule_rows(&name, &args.namespace, &answer)),
            Err(e) => eprintln!("{} (cluster {name})", crate::get::kubectl_error(&e)),
        }
    }
    let headers: Vec<String> = ["CLUSTER", "NAMESPACE", "APIGROUPS", "RESOURCES", "VERBS"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    print!("{}", crate::table::render(&headers, &rows));
    Ok(())
}

/// One row per resource rule of a SelfSubjectRulesReview, the bootstrap self-review rules left out.
fn rule_rows(cluster: &str, namespace: &str, review: &Value) -> Vec<Vec<String>> {
    let join = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    review["status"]["resourceRules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            let groups = join(&r["apiGroups"]);
            groups != "authorization.k8s.io" && groups != "authentication.k8s.io"
        })
        .map(|r| {
            let groups = join(&r["apiGroups"]);
            vec![
                cluster.to_string(),
                namespace.to_string(),
                if groups.is_empty() {
                    "\"\"".into()
                } else {
                    groups
                },
                join(&r["resources"]),
                join(&r["verbs"]),
            ]
        })
        .collect()
}
