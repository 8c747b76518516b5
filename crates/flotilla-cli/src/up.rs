//! `flotilla up -f FILE`: server-side apply every document of a file to the hub.

use std::io::Read as _;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde::Deserialize as _;
use serde_json::Value;

use crate::args::UpArgs;

/// The field manager `flotilla up` applies with.
pub(crate) const FIELD_MANAGER: &str = "flotilla";

/// Errors reading the documents of a file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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
pub(crate) fn parse_documents(file: &str, text: &str) -> Result<Vec<Value>, Error> {
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
pub(crate) fn display_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_lowercase()
    } else {
        format!("{}.{group}", kind.to_lowercase())
    }
}

/// The files `-f` names: the file itself, stdin (`-`), or a folder's `.yaml`, `.yml` and
/// `.json` files in name order.
pub(crate) fn input_files(path: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if path.as_os_str() == "-" || !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    }
}

/// What applying one document did: its line for the user, and the Application it was, if any.
struct Applied {
    line: String,
    application: Option<(String, String)>,
}

async fn apply_document(
    hub_client: &kube::Client,
    file: &str,
    mut document: Value,
    namespace_flag: Option<&String>,
) -> anyhow::Result<Applied> {
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
    let mut application = None;
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => {
            let namespace = document["metadata"]["namespace"]
                .as_str()
                .map(str::to_string)
                .or_else(|| namespace_flag.cloned())
                .unwrap_or_else(|| hub_client.default_namespace().to_string());
            if let Some(flag) = namespace_flag {
                anyhow::ensure!(
                    flag == &namespace,
                    "the namespace from the provided object {namespace:?} does not match the namespace {flag:?}. You must pass '--namespace={namespace}' to perform this operation."
                );
            }
            document["metadata"]["namespace"] = Value::String(namespace.clone());
            if kind == "Application" {
                application = Some((name.clone(), namespace.clone()));
            }
            Api::namespaced_with(hub_client.clone(), &namespace, &resource)
        }
        Scope::Cluster => Api::all_with(hub_client.clone(), &resource),
    };
    let from_server = |e: kube::Error| match e {
        kube::Error::Api(status) => anyhow::anyhow!(
            "Error from server ({}): error when applying {}/{name} from {file:?}: {}",
            status.reason,
            display_kind(&kind, &group),
            status.message
        ),
        other => other.into(),
    };
    let before = api
        .get_opt(&name)
        .await
        .map_err(from_server)?
        .and_then(|o| o.metadata.resource_version);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&document),
        )
        .await
        .map_err(from_server)?;
    let outcome = match before {
        None => "created",
        Some(rv) if Some(&rv) == applied.metadata.resource_version.as_ref() => "unchanged",
        Some(_) => "configured",
    };
    Ok(Applied {
        line: format!("{}/{name} {outcome}", display_kind(&kind, &group)),
        application,
    })
}

/// Runs `flotilla up`: every document is applied even when an earlier one fails (like
/// `kubectl apply`); the command fails if any did.
pub(crate) async fn run(hub_client: &kube::Client, args: &UpArgs) -> anyhow::Result<()> {
    let files = input_files(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let mut documents = Vec::new();
    for path in &files {
        let file = path.display().to_string();
        documents.extend(
            parse_documents(&file, &read_input(path)?)?
                .into_iter()
                .map(|d| (file.clone(), d)),
        );
    }
    anyhow::ensure!(
        !documents.is_empty(),
        "no objects passed to apply in {}",
        args.file.display()
    );
    let total = documents.len();
    let mut applications = Vec::new();
    let mut failed = 0;
    for (file, document) in documents {
        match apply_document(hub_client, &file, document, args.namespace.as_ref()).await {
            Ok(applied) => {
                println!("{}", applied.line);
                applications.extend(applied.application);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e:#}");
            }
        }
    }
    for (name, namespace) in applications {
        println!();
        println!("Follow the application {name}:");
        println!("  flotilla status {name} -n {namespace}");
        println!("  flotilla status {name} -n {namespace} --watch");
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {total} objects could not be applied"
    );
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
    fn folders_are_read_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yaml", "a.yml", "c.json", "notes.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let files = input_files(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml", "c.json"]);
        assert_eq!(input_files(std::path::Path::new("-")).unwrap().len(), 1);
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
