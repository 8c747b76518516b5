//! ApplicationSet generators and templating: `list` (literal parameter sets) and `clusters`
//! (one set per joined cluster matching a label selector: `name`, `nameNormalized`, `server`,
//! `metadata.labels.<key>`, `metadata.annotations.<key>`, `values.<key>`); `{{param}}` in any
//! string of the template is replaced by the parameter's value.

use std::collections::BTreeMap;

use flotilla_apis::{
    ClustersGenerator, Generator, IN_CLUSTER, IN_CLUSTER_SERVER, ListGenerator, ManagedCluster,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

/// One parameter set.
pub(crate) type Params = BTreeMap<String, String>;

fn flatten(prefix: &str, value: &Value, out: &mut Params) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Null => {
            out.insert(prefix.to_string(), String::new());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The parameter sets of a `list` generator.
pub(crate) fn list(generator: &ListGenerator) -> Result<Vec<Params>, String> {
    generator
        .elements
        .iter()
        .enumerate()
        .map(|(i, element)| {
            if !element.is_object() {
                return Err(format!("list generator: element {i} is not an object"));
            }
            let mut params = Params::new();
            flatten("", element, &mut params);
            Ok(params)
        })
        .collect()
}

fn expression_matches(
    expression: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let value = labels.get(&expression.key);
    let values = expression.values.clone().unwrap_or_default();
    match expression.operator.as_str() {
        "In" => Ok(value.is_some_and(|v| values.contains(v))),
        "NotIn" => Ok(!value.is_some_and(|v| values.contains(v))),
        "Exists" => Ok(value.is_some()),
        "DoesNotExist" => Ok(value.is_none()),
        other => Err(format!("unknown label selector operator {other:?}")),
    }
}

/// Whether `labels` satisfy `selector` (an empty selector matches everything).
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for expression in selector.match_expressions.iter().flatten() {
        if !expression_matches(expression, labels)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

fn normalized(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn cluster_params(
    name: &str,
    server: &str,
    meta: Option<&ManagedCluster>,
    generator: &ClustersGenerator,
) -> Params {
    let mut params = Params::new();
    params.insert("name".into(), name.to_string());
    params.insert("nameNormalized".into(), normalized(name));
    params.insert("server".into(), server.to_string());
    if let Some(cluster) = meta {
        for (k, v) in cluster.metadata.labels.iter().flatten() {
            params.insert(format!("metadata.labels.{k}"), v.clone());
        }
        for (k, v) in cluster.metadata.annotations.iter().flatten() {
            params.insert(format!("metadata.annotations.{k}"), v.clone());
        }
    }
    for (k, v) in &generator.values {
        params.insert(format!("values.{k}"), v.clone());
    }
    params
}

/// The parameter sets of a `clusters` generator over the joined clusters (the hub itself,
/// `in-cluster`, only when the selector is empty, as in Argo CD).
pub(crate) fn clusters(
    generator: &ClustersGenerator,
    joined: &[ManagedCluster],
) -> Result<Vec<Params>, String> {
    let mut out = Vec::new();
    if is_empty(&generator.selector) {
        out.push(cluster_params(
            IN_CLUSTER,
            IN_CLUSTER_SERVER,
            None,
            generator,
        ));
    }
    for cluster in joined {
        let labels = cluster.metadata.labels.clone().unwrap_or_default();
        if !selector_matches(&generator.selector, &labels)? {
            continue;
        }
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let server = cluster
            .spec
            .managed_cluster_client_configs
            .first()
            .map(|c| c.url.clone())
            .unwrap_or_default();
        out.push(cluster_params(&name, &server, Some(cluster), generator));
    }
    Ok(out)
}

/// Every parameter set of every generator, in order.
pub(crate) fn generate(
    generators: &[Generator],
    joined: &[ManagedCluster],
) -> Result<Vec<Params>, String> {
    let mut out = Vec::new();
    for (i, generator) in generators.iter().enumerate() {
        match (&generator.list, &generator.clusters) {
            (Some(l), None) => out.extend(list(l)?),
            (None, Some(c)) => out.extend(clusters(c, joined)?),
            _ => {
                return Err(format!(
                    "generator {i}: exactly one of list or clusters must be set"
                ));
            }
        }
    }
    Ok(out)
}

fn render_text(text: &str, params: &Params) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let key = rest[start + 2..start + 2 + len].trim();
        out.push_str(&rest[..start]);
        match params.get(key) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + len + 2]),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The template with every `{{param}}` in strings (and keys) replaced.
pub(crate) fn render(template: &Value, params: &Params) -> Value {
    match template {
        Value::String(s) => Value::String(render_text(s, params)),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, params)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (render_text(k, params), render(v, params)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(name: &str, labels: &[(&str, &str)]) -> ManagedCluster {
        let mut c: ManagedCluster = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
            "spec": {"managedClusterClientConfigs": [{"url": format!("https://{name}:6443")}]},
        }))
        .unwrap();
        c.api_version = "cluster.open-cluster-management.io/v1".into();
        c
    }

    #[test]
    fn clusters_generator_selects_by_label() {
        let joined = [
            cluster("a", &[("env", "prod")]),
            cluster("b", &[("env", "dev")]),
        ];
        let generator: ClustersGenerator = serde_json::from_value(
            json!({"selector": {"matchLabels": {"env": "prod"}}, "values": {"x": "1"}}),
        )
        .unwrap();
        let params = clusters(&generator, &joined).unwrap();
        assert_eq!(params.len(), 1);
        assert_eq!(params[0]["name"], "a");
        assert_eq!(params[0]["server"], "https://a:6443");
        assert_eq!(params[0]["metadata.labels.env"], "prod");
        assert_eq!(params[0]["values.x"], "1");
        let all = clusters(&ClustersGenerator::default(), &joined).unwrap();
        let names: Vec<&str> = all.iter().map(|p| p["name"].as_str()).collect();
        assert_eq!(names, [IN_CLUSTER, "a", "b"]);
        let expr: ClustersGenerator =
            serde_json::from_value(json!({"selector": {"matchExpressions": [
            {"key": "env", "operator": "In", "values": ["dev", "qa"]}]}}))
            .unwrap();
        assert_eq!(clusters(&expr, &joined).unwrap()[0]["name"], "b");
    }

    #[test]
    fn templates_replace_known_params_only() {
        let params: Params = [
            ("name".to_string(), "a".to_string()),
            ("metadata.labels.env".to_string(), "prod".to_string()),
        ]
        .into();
        let template = json!({"metadata": {"name": "guestbook-{{name}}"},
            "spec": {"destination": {"name": "{{ name }}", "namespace": "{{metadata.labels.env}}-{{missing}}"}, "n": 1}});
        assert_eq!(
            render(&template, &params),
            json!({"metadata": {"name": "guestbook-a"},
                "spec": {"destination": {"name": "a", "namespace": "prod-{{missing}}"}, "n": 1}})
        );
        let elements: ListGenerator = serde_json::from_value(
            json!({"elements": [{"cluster": "x", "n": 2, "o": {"p": "q"}}]}),
        )
        .unwrap();
        let got = list(&elements).unwrap();
        assert_eq!(got[0]["cluster"], "x");
        assert_eq!(got[0]["n"], "2");
        assert_eq!(got[0]["o.p"], "q");
    }
}
