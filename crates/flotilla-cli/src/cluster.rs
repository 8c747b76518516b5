//! `flotilla cluster join|list|labels|detach`: the cluster registry on the hub.

use flotilla_controllers::cluster::credentials::ClusterCredential;
use flotilla_controllers::cluster::hub_identity::{HUB_USER, IMPERSONATOR_ROLE};
use flotilla_controllers::cluster::registry::{self, JoinOutcome};

use crate::args::{ClusterCommand, LabelsCommand};

/// Runs a `cluster` sub-command.
pub(crate) async fn run(hub_client: &kube::Client, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Join {
            kubeconfig,
            name,
            labels,
        } => {
            registry::validate_cluster_name(&name)?;
            let labels = registry::parse_labels(&labels)?;
            let credential = ClusterCredential::from_kubeconfig_file(&kubeconfig)?;
            let joined = registry::join(hub_client, &name, &credential, &labels).await?;
            let verb = match joined.outcome {
                JoinOutcome::Joined => "joined",
                JoinOutcome::Updated => "updated",
            };
            println!(
                "Successfully {verb} cluster {name} ({}, endpoint: {})",
                joined.stored.credential_type(),
                joined.stored.endpoint
            );
            if joined.hub_identity {
                println!(
                    "The hub keeps only its own identity {HUB_USER:?} on {name}, which may only \
                     impersonate (ClusterRole {IMPERSONATOR_ROLE}); the given credential was not stored"
                );
            } else {
                println!(
                    "Stored the given credential as is (it may not create ClusterRoleBindings on {name})"
                );
            }
            Ok(())
        }
        ClusterCommand::List => {
            print!("{}", list_table(&registry::list(hub_client).await?));
            let records =
                crate::status::pending_cleanups(hub_client, "app.oam.dev/pending-cleanup-cluster")
                    .await;
            print!("{}", crate::status::render_pending(&records));
            Ok(())
        }
        ClusterCommand::Labels(LabelsCommand::Add { name, labels }) => {
            let labels = registry::parse_labels(&[labels])?;
            anyhow::ensure!(!labels.is_empty(), "no labels given (expected k=v[,k=v])");
            registry::add_labels(hub_client, &name, &labels).await?;
            println!("Successfully updated labels of cluster {name}");
            Ok(())
        }
        ClusterCommand::Labels(LabelsCommand::Del { name, keys }) => {
            let keys = registry::parse_label_keys(&keys)?;
            registry::remove_labels(hub_client, &name, &keys).await?;
            println!("Successfully updated labels of cluster {name}");
            Ok(())
        }
        ClusterCommand::Detach { name } => {
            let left = left_behind(hub_client, &name).await;
            registry::detach(hub_client, &name).await?;
            println!("Successfully detached cluster {name}");
            if left.is_empty() {
                println!("Nothing dispatched by the hub is left on cluster {name}");
            } else {
                println!(
                    "Left on cluster {name} (no longer tracked by the hub; delete them there if unwanted):"
                );
                print!("{left}");
            }
            Ok(())
        }
    }
}

/// Every object any tracker or cleanup record holds on `cluster`, one line each.
async fn left_behind(hub_client: &kube::Client, cluster: &str) -> String {
    let mut lines = std::collections::BTreeSet::new();
    for tracker in crate::status::pending_cleanups(hub_client, "").await {
        let app = format!(
            "{}/{}",
            text(&tracker, "/metadata/labels/app.oam.dev~1namespace"),
            text(&tracker, "/metadata/labels/app.oam.dev~1name")
        );
        for r in tracker
            .pointer("/spec/managedResources")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r["cluster"] == cluster)
        {
            let name = match text(r, "/namespace") {
                "" => text(r, "/name").to_string(),
                ns => format!("{ns}/{}", text(r, "/name")),
            };
            lines.insert(format!(
                "  - {} {name} (application {app})\n",
                text(r, "/kind")
            ));
        }
    }
    lines.into_iter().collect()
}

fn text<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// The `cluster list` table: `CLUSTER TYPE ENDPOINT ACCEPTED LABELS`.
pub(crate) fn list_table(clusters: &[registry::ClusterInfo]) -> String {
    let headers: Vec<String> = ["CLUSTER", "TYPE", "ENDPOINT", "ACCEPTED", "LABELS"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.credential_type
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into()),
                c.endpoint.clone(),
                c.accepted.to_string(),
                c.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    crate::table::render(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_controllers::cluster::credentials::CredentialType;

    #[test]
    fn list_prints_the_spec_columns() {
        let clusters = vec![registry::ClusterInfo {
            name: "us-west-1".into(),
            credential_type: Some(CredentialType::X509Certificate),
            endpoint: "https://127.0.0.1:40123".into(),
            accepted: true,
            labels: [("provider".to_string(), "AWS".to_string())].into(),
            available: Some("True".into()),
        }];
        assert_eq!(
            list_table(&clusters),
            "CLUSTER     TYPE              ENDPOINT                  ACCEPTED   LABELS\n\
             us-west-1   X509Certificate   https://127.0.0.1:40123   true       provider=AWS\n"
        );
    }
}
