//! `flotilla up -f FILE`: server-side apply every document of a file to the hub.

use std::io::Read as _;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde::Deserialize as _;
use serde_json::Value;

use crate::args::UpArgs;

/// The field manager `flotilla up` applies with.
pub const FIELD_MANAGER: &str = "flotilla";

/// Errors reading the documents of a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not YAML or JSON.
    #[error("error parsing {file}: {message}")]
    Parse { file: String, message: String },
    /// A document lacks apiVersion, kind or metadata.name.
    #[error("error validating {file}: document {index}: {message}")]
    Invalid {
        file: String,
        index: usize,
        message: String,
    },
}

/// Parses every non-empty YAML (or JSON) document of `text`.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| Error::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let invalid = |message: &str| Error::Invalid {
            file: file.to_string(),
            index: index + 1,
            message: message.to_string(),
        };
        if !value.is_object() {
            return Err(invalid("not an object"));
        }
        // A kubectl-style List: apply its items.
        if value["kind"] == "List" {
            for item in value["items"].as_array().cloned().unwrap_or_default() {
                check(&item).map_err(|m| invalid(&m))?;
                out.push(item);
            }
            continue;
        }
        check(&value).map_err(|m| invalid(&m))?;
        out.push(value);
    }
    Ok(out)
}

fn check(value: &Value) -> Result<(), String> {
    for (pointer, what) in [
        ("/apiVersion", "apiVersion not set"),
        ("/kind", "kind not set"),
        ("/metadata/name", "metadata.name not set"),
    ] {
        if value
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(what.to_string());
        }
    }
    Ok(())
}

/// `kind.group` as kubectl prints it (`application.core.oam.dev`, `deployment.apps`, `service`).
pub fn display_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_lowercase()
    } else {
        format!("{}.{group}", kind.to_lowercase())
    }
}

/// Runs `flotilla up`.
pub async fn run(hub_client: &kube::Client, args: &UpArgs) -> anyhow::Result<()> {
    let file = args.file.display().to_string();
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?
    };
    let documents = parse_documents(&file, &text)?;
    anyhow::ensure!(
        !documents.is_empty(),
        "no objects passed to apply in {file}"
    );
    let mut applications = Vec::new();
    for mut document in documents {
        let api_version = document["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let name = document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &kind);
        let (resource, capabilities) = discovery::pinned_kind(hub_client, &gvk)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "resource mapping not found for name: {name:?} namespace: {:?} from {file:?}: no matches for kind {kind:?} in version {api_version:?}",
                    document["metadata"]["namespace"].as_str().unwrap_or("")
                )
            })?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = document["metadata"]["namespace"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| args.namespace.clone())
                    .unwrap_or_else(|| hub_client.default_namespace().to_string());
                if let Some(flag) = &args.namespace {
                    anyhow::ensure!(
                        flag == &namespace,
                        "the namespace from the provided object {namespace:?} does not match the namespace {flag:?}. You must pass '--namespace={namespace}' to perform this operation."
                    );
                }
                document["metadata"]["namespace"] = Value::String(namespace.clone());
                if kind == "Application" {
                    applications.push((name.clone(), namespace.clone()));
                }
                Api::namespaced_with(hub_client.clone(), &namespace, &resource)
            }
            Scope::Cluster => Api::all_with(hub_client.clone(), &resource),
        };
        let before = api
            .get_opt(&name)
            .await?
            .and_then(|o| o.metadata.resource_version);
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&document),
            )
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => {
                    anyhow::anyhow!("Error from server ({}): {}", status.reason, status.message)
                }
                other => other.into(),
            })?;
        let outcome = match before {
            None => "created",
            Some(rv) if Some(&rv) == applied.metadata.resource_version.as_ref() => "unchanged",
            Some(_) => "configured",
        };
        println!("{}/{name} {outcome}", display_kind(&kind, &group));
    }
    for (name, namespace) in applications {
        println!();
        println!("Follow the application {name}:");
        println!("  flotilla status {name} -n {namespace}");
        println!("  flotilla status {name} -n {namespace} --watch");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_and_checked() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: b\n";
        let docs = parse_documents("f", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Application");
        assert!(matches!(
            parse_documents("f", "kind: X\nmetadata: {name: a}\n"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            parse_documents("f", "a: [\n"),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn kinds_print_like_kubectl() {
        assert_eq!(
            display_kind("Application", "core.oam.dev"),
            "application.core.oam.dev"
        );
        assert_eq!(display_kind("Service", ""), "service");
    }
}
