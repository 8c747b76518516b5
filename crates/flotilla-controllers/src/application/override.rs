//! Override: the `override` policy's patches applied to the components. Pure, no I/O.
//!
//! The rules (KubeVela's):
//! - a patch matches components by `name` (`*` globs; empty matches every name) and `type`
//!   (empty matches every type);
//! - on a match, a patch whose `type` differs from the component's replaces the type and the
//!   properties; otherwise properties deep-merge: maps merge key by key, scalars and **lists** of
//!   the patch replace the component's;
//! - traits are matched by type: properties merge the same way, `disable: true` removes the
//!   trait, a type the component lacks is appended;
//! - a patch with a plain name (no glob) that matches nothing adds a new component;
//! - `selector` (when given) keeps only the listed components.

use flotilla_apis::{ApplicationComponent, ApplicationTrait};
use serde::Deserialize;
use serde_json::Value;

/// Why an override policy could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// The policy's properties do not have the override shape.
    #[error("override policy {policy}: {message}")]
    InvalidProperties {
        /// Policy name.
        policy: String,
        /// What is wrong.
        message: String,
    },
    /// A patch that would add a component has no type.
    #[error("override policy {policy}: component {component} matches nothing and has no type")]
    NewComponentWithoutType {
        /// Policy name.
        policy: String,
        /// Component name.
        component: String,
    },
}

/// `Result` of overriding.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// `properties` of an override policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OverrideProperties {
    /// Component patches.
    #[serde(default)]
    pub components: Vec<ComponentPatch>,
    /// Component names to keep (all when empty).
    #[serde(default)]
    pub selector: Option<Vec<String>>,
}

/// One component patch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ComponentPatch {
    /// Name or glob; empty matches all.
    #[serde(default)]
    pub name: String,
    /// Type; empty matches all.
    #[serde(default, rename = "type")]
    pub component_type: String,
    /// Properties to merge.
    #[serde(default)]
    pub properties: Option<Value>,
    /// Trait patches.
    #[serde(default)]
    pub traits: Vec<TraitPatch>,
}

/// One trait patch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TraitPatch {
    /// Trait type.
    #[serde(rename = "type")]
    pub trait_type: String,
    /// Properties to merge.
    #[serde(default)]
    pub properties: Option<Value>,
    /// Remove the trait.
    #[serde(default)]
    pub disable: bool,
}

/// Parses an override policy's properties.
pub(crate) fn parse(policy: &str, properties: Option<&Value>) -> Result<OverrideProperties> {
    match properties {
        None | Some(Value::Null) => Ok(OverrideProperties::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::InvalidProperties {
            policy: policy.to_string(),
            message: e.to_string(),
        }),
    }
}

/// `*`-glob match (`*` matches any run of characters, possibly empty).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Deep merge: maps merge recursively, anything else in `patch` replaces `base`.
pub(crate) fn merge_properties(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            let mut out = base.clone();
            for (k, v) in patch {
                let merged = match out.get(k) {
                    Some(existing) => merge_properties(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, patch) => patch.clone(),
    }
}

fn merge_optional(base: Option<&Value>, patch: Option<&Value>) -> Option<Value> {
    match (base, patch) {
        (base, None) => base.cloned(),
        (None, Some(p)) => Some(p.clone()),
        (Some(b), Some(p)) => Some(merge_properties(b, p)),
    }
}

fn patch_matches(patch: &ComponentPatch, component: &ApplicationComponent) -> bool {
    let name_ok = patch.name.is_empty() || glob_match(&patch.name, &component.name);
    let type_ok = patch.component_type.is_empty()
        || patch.component_type == component.component_type
        // a named patch with another type replaces the component's type
        || (!patch.name.is_empty() && !patch.name.contains('*'));
    name_ok && type_ok
}

fn patch_traits(traits: &mut Vec<ApplicationTrait>, patches: &[TraitPatch]) {
    for tp in patches {
        match traits.iter().position(|t| t.trait_type == tp.trait_type) {
            Some(i) if tp.disable => {
                traits.remove(i);
            }
            Some(i) => {
                traits[i].properties =
                    merge_optional(traits[i].properties.as_ref(), tp.properties.as_ref());
            }
            None if tp.disable => {}
            None => traits.push(ApplicationTrait {
                trait_type: tp.trait_type.clone(),
                properties: tp.properties.clone(),
            }),
        }
    }
}

/// Applies one override policy to `components`.
pub(crate) fn apply(
    policy: &str,
    components: &[ApplicationComponent],
    properties: &OverrideProperties,
) -> Result<Vec<ApplicationComponent>> {
    let mut out: Vec<ApplicationComponent> = components.to_vec();
    for patch in &properties.components {
        let mut matched = false;
        for component in out.iter_mut().filter(|c| patch_matches(patch, c)) {
            matched = true;
            if !patch.component_type.is_empty() && patch.component_type != component.component_type
            {
                component.component_type = patch.component_type.clone();
                component.properties = patch.properties.clone();
            } else {
                component.properties =
                    merge_optional(component.properties.as_ref(), patch.properties.as_ref());
            }
            patch_traits(&mut component.traits, &patch.traits);
        }
        if !matched && !patch.name.is_empty() && !patch.name.contains('*') {
            if patch.component_type.is_empty() {
                return Err(Error::NewComponentWithoutType {
                    policy: policy.to_string(),
                    component: patch.name.clone(),
                });
            }
            let mut traits = Vec::new();
            patch_traits(&mut traits, &patch.traits);
            out.push(ApplicationComponent {
                name: patch.name.clone(),
                component_type: patch.component_type.clone(),
                properties: patch.properties.clone(),
                traits,
                depends_on: Vec::new(),
            });
        }
    }
    if let Some(selector) = &properties.selector {
        out.retain(|c| selector.contains(&c.name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn components(v: Value) -> Vec<ApplicationComponent> {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Vec<ApplicationComponent> {
        components(json!([
            {"name": "hello-world-server", "type": "webservice",
             "properties": {"image": "crccheck/hello-world", "port": 8000,
                            "env": [{"name": "A", "value": "1"}],
                            "labels": {"team": "a", "tier": "web"}},
             "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                        {"type": "gateway", "properties": {"domain": "x.example.com",
                                                           "http": {"/": 8000}}}]},
            {"name": "worker", "type": "k8s-objects",
             "properties": {"objects": []}},
        ]))
    }

    /// (case, override properties, expected components as JSON)
    #[test]
    fn override_rules() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "type-only patch merges a trait of every component of that type",
                json!({"components": [{"type": "webservice",
                    "traits": [{"type": "scaler", "properties": {"replicas": 5}}]}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "crccheck/hello-world", "port": 8000,
                                    "env": [{"name": "A", "value": "1"}],
                                    "labels": {"team": "a", "tier": "web"}},
                     "traits": [{"type": "scaler", "properties": {"replicas": 5}},
                                {"type": "gateway", "properties": {"domain": "x.example.com",
                                                                   "http": {"/": 8000}}}]},
                    {"name": "worker", "type": "k8s-objects", "properties": {"objects": []}},
                ]),
            ),
            (
                "maps deep-merge, scalars win, lists are replaced whole",
                json!({"components": [{"name": "hello-world-server",
                    "properties": {"image": "nginx", "labels": {"tier": "edge"},
                                   "env": [{"name": "B", "value": "2"}]}}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "nginx", "port": 8000,
                                    "env": [{"name": "B", "value": "2"}],
                                    "labels": {"team": "a", "tier": "edge"}},
                     "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                                {"type": "gateway", "properties": {"domain": "x.example.com",
                                                                   "http": {"/": 8000}}}]},
                    {"name": "worker", "type": "k8s-objects", "properties": {"objects": []}},
                ]),
            ),
            (
                "disable removes a trait, a new trait type is appended",
                json!({"components": [{"name": "hello-*",
                    "traits": [{"type": "gateway", "disable": true},
                               {"type": "labels", "properties": {"env": "prod"}}]}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "crccheck/hello-world", "port": 8000,
                                    "env": [{"name": "A", "value": "1"}],
                                    "labels": {"team": "a", "tier": "web"}},
                     "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                                {"type": "labels", "properties": {"env": "prod"}}]},
                    {"name": "worker", "type": "k8s-objects", "properties": {"objects": []}},
                ]),
            ),
            (
                "a different type replaces the component's type and properties",
                json!({"components": [{"name": "worker", "type": "webservice",
                    "properties": {"image": "busybox"}}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "crccheck/hello-world", "port": 8000,
                                    "env": [{"name": "A", "value": "1"}],
                                    "labels": {"team": "a", "tier": "web"}},
                     "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                                {"type": "gateway", "properties": {"domain": "x.example.com",
                                                                   "http": {"/": 8000}}}]},
                    {"name": "worker", "type": "webservice", "properties": {"image": "busybox"}},
                ]),
            ),
            (
                "a named patch that matches nothing adds a component",
                json!({"components": [{"name": "cache", "type": "webservice",
                    "properties": {"image": "redis"},
                    "traits": [{"type": "scaler", "properties": {"replicas": 2}},
                               {"type": "gateway", "disable": true}]}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "crccheck/hello-world", "port": 8000,
                                    "env": [{"name": "A", "value": "1"}],
                                    "labels": {"team": "a", "tier": "web"}},
                     "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                                {"type": "gateway", "properties": {"domain": "x.example.com",
                                                                   "http": {"/": 8000}}}]},
                    {"name": "worker", "type": "k8s-objects", "properties": {"objects": []}},
                    {"name": "cache", "type": "webservice", "properties": {"image": "redis"},
                     "traits": [{"type": "scaler", "properties": {"replicas": 2}}]},
                ]),
            ),
            (
                "a glob that matches nothing adds nothing; type filter excludes other types",
                json!({"components": [{"name": "db-*", "type": "webservice",
                                       "properties": {"image": "pg"}},
                                      {"type": "k8s-objects", "properties": {"objects": [1]}}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "crccheck/hello-world", "port": 8000,
                                    "env": [{"name": "A", "value": "1"}],
                                    "labels": {"team": "a", "tier": "web"}},
                     "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                                {"type": "gateway", "properties": {"domain": "x.example.com",
                                                                   "http": {"/": 8000}}}]},
                    {"name": "worker", "type": "k8s-objects", "properties": {"objects": [1]}},
                ]),
            ),
            (
                "selector keeps only the listed components",
                json!({"selector": ["worker"]}),
                json!([
                    {"name": "worker", "type": "k8s-objects", "properties": {"objects": []}},
                ]),
            ),
            (
                "an empty name and type matches every component",
                json!({"components": [{"properties": {"extra": true}}]}),
                json!([
                    {"name": "hello-world-server", "type": "webservice",
                     "properties": {"image": "crccheck/hello-world", "port": 8000,
                                    "env": [{"name": "A", "value": "1"}],
                                    "labels": {"team": "a", "tier": "web"}, "extra": true},
                     "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                                {"type": "gateway", "properties": {"domain": "x.example.com",
                                                                   "http": {"/": 8000}}}]},
                    {"name": "worker", "type": "k8s-objects",
                     "properties": {"objects": [], "extra": true}},
                ]),
            ),
        ];
        for (case, props, expected) in cases {
            let props = parse("p", Some(&props)).unwrap();
            let got = apply("p", &base(), &props).unwrap();
            assert_eq!(
                serde_json::to_value(&got).unwrap(),
                expected,
                "case: {case}"
            );
        }
    }

    #[test]
    fn several_policies_apply_in_order() {
        let first = parse(
            "a",
            Some(&json!({"components": [{"type": "webservice",
                "traits": [{"type": "scaler", "properties": {"replicas": 5}}]}]})),
        )
        .unwrap();
        let second = parse(
            "b",
            Some(&json!({"components": [{"name": "hello-world-server",
                "traits": [{"type": "scaler", "properties": {"replicas": 7}}]}]})),
        )
        .unwrap();
        let once = apply("a", &base(), &first).unwrap();
        let twice = apply("b", &once, &second).unwrap();
        assert_eq!(twice[0].traits[0].properties, Some(json!({"replicas": 7})));
    }

    #[test]
    fn new_component_needs_a_type_and_bad_shapes_are_errors() {
        let props = parse("p", Some(&json!({"components": [{"name": "ghost"}]}))).unwrap();
        assert!(matches!(
            apply("p", &base(), &props),
            Err(Error::NewComponentWithoutType { .. })
        ));
        assert!(matches!(
            parse("p", Some(&json!({"components": "nope"}))),
            Err(Error::InvalidProperties { .. })
        ));
    }

    #[test]
    fn globs() {
        for (pattern, text, expected) in [
            ("*", "anything", true),
            ("hello-*", "hello-world", true),
            ("*-server", "hello-world-server", true),
            ("h*o*r", "hello-world-server", true),
            ("hello", "hello-world", false),
            ("a*b", "acbd", false),
            ("", "", true),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} vs {text}");
        }
    }
}
