//! Plain manifests: the YAML (multi-document) and JSON files of a revision, parsed into objects.
//! One file that does not parse fails the whole revision, so nothing of it is applied.

use serde_json::Value;

use super::git::File;

/// Why a revision's manifests could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A file is not valid YAML or JSON.
    #[error("unable to parse {path}: {message}")]
    Parse {
        /// Path in the repository.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{path}: document {index} is not a Kubernetes object: {message}")]
    NotAnObject {
        /// Path in the repository.
        path: String,
        /// 1-based document number in the file.
        index: usize,
        /// What is missing.
        message: String,
    },
    /// Two documents describe the same object.
    #[error("{path}: {object} is also defined in {other}")]
    Duplicate {
        /// Path of the second definition.
        path: String,
        /// The object.
        object: String,
        /// Path of the first definition.
        other: String,
    },
}

/// `Result` of parsing.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// One object of the revision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manifest {
    /// The file it came from.
    pub path: String,
    /// The object as written in Git.
    pub object: Value,
}

fn documents(file: &File) -> Result<Vec<Value>> {
    let parse_error = |message: String| Error::Parse {
        path: file.path.clone(),
        message,
    };
    let text = std::str::from_utf8(&file.data).map_err(|e| parse_error(e.to_string()))?;
    if file.path.ends_with(".json") {
        let value: Value = serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        return Ok(vec![value]);
    }
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| parse_error(e.to_string()))?;
        out.push(value);
    }
    Ok(out)
}

fn check(path: &str, index: usize, value: &Value) -> Result<()> {
    let missing = |message: &str| Error::NotAnObject {
        path: path.to_string(),
        index,
        message: message.to_string(),
    };
    if !value.is_object() {
        return Err(missing("not a mapping"));
    }
    for (field, pointer) in [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("metadata.name", "/metadata/name"),
    ] {
        let present = value
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !present {
            return Err(missing(&format!("{field} is missing")));
        }
    }
    Ok(())
}

/// `group/Kind namespace/name` of an object, its identity in a revision.
pub(crate) fn key(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    format!(
        "{group}/{}:{}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Every object in `files` (empty documents skipped, `List`s expanded). Namespaced objects
/// without a namespace are left so; the sync fills in the destination namespace.
pub(crate) fn parse(files: &[File]) -> Result<Vec<Manifest>> {
    let mut out: Vec<Manifest> = Vec::new();
    for file in files {
        let mut index = 0;
        for document in documents(file)? {
            index += 1;
            if document.is_null() {
                continue;
            }
            let items = match document.get("kind").and_then(Value::as_str) {
                Some(kind) if kind.ends_with("List") && document.get("items").is_some() => {
                    document["items"].as_array().cloned().unwrap_or_default()
                }
                _ => vec![document],
            };
            for object in items {
                check(&file.path, index, &object)?;
                let k = key(&object);
                if let Some(first) = out.iter().find(|m| key(&m.object) == k) {
                    return Err(Error::Duplicate {
                        path: file.path.clone(),
                        object: k,
                        other: first.path.clone(),
                    });
                }
                out.push(Manifest {
                    path: file.path.clone(),
                    object,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> File {
        File {
            path: path.into(),
            data: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn multi_document_yaml_and_json_lists() {
        let files = [
            file(
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
            ),
            file(
                "b.json",
                r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c"}}]}"#,
            ),
        ];
        let got: Vec<String> = parse(&files)
            .unwrap()
            .iter()
            .map(|m| key(&m.object))
            .collect();
        assert_eq!(got, ["/ConfigMap:/a", "/ConfigMap:/b", "/Secret:/c"]);
    }

    #[test]
    fn bad_files_name_the_file() {
        let e = parse(&[file("x/bad.yaml", "kind: [unclosed\n")]).unwrap_err();
        assert!(
            e.to_string().starts_with("unable to parse x/bad.yaml"),
            "{e}"
        );
        let e = parse(&[file("y.yaml", "apiVersion: v1\nkind: ConfigMap\n")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "y.yaml: document 1 is not a Kubernetes object: metadata.name is missing"
        );
        let twice = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
        let e = parse(&[file("1.yaml", twice), file("2.yaml", twice)]).unwrap_err();
        assert!(e.to_string().contains("also defined in 1.yaml"), "{e}");
    }
}
