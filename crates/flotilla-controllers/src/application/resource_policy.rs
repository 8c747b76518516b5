//! The application-wide resource policies: `apply-once`, `garbage-collect`, `take-over`,
//! `read-only`, `shared-resource`, with KubeVela's selector fields. Pure.

use flotilla_apis::AppPolicy;
use serde::Deserialize;
use serde_json::Value;

use super::dispatch::{ApplyOptions, Propagation};

/// Which resources a rule covers (every listed field must match; empty matches all).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceSelector {
    /// Component names.
    #[serde(default)]
    pub component_names: Vec<String>,
    /// Component types.
    #[serde(default)]
    pub component_types: Vec<String>,
    /// Trait types (objects a trait rendered).
    #[serde(default)]
    pub trait_types: Vec<String>,
    /// Kinds (`Deployment`).
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Object names.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// The facts about one object a selector looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResourceFacts<'a> {
    /// Component name.
    pub component: &'a str,
    /// Component type.
    pub component_type: &'a str,
    /// Trait type, if a trait rendered it.
    pub trait_type: Option<&'a str>,
    /// Kind.
    pub kind: &'a str,
    /// Name.
    pub name: &'a str,
}

impl ResourceSelector {
    /// Whether the selector covers the object.
    pub(crate) fn matches(&self, f: &ResourceFacts<'_>) -> bool {
        let ok = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        ok(&self.component_names, f.component)
            && ok(&self.component_types, f.component_type)
            && (self.trait_types.is_empty()
                || f.trait_type
                    .is_some_and(|t| self.trait_types.iter().any(|x| x == t)))
            && ok(&self.resource_types, f.kind)
            && ok(&self.resource_names, f.name)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Rule {
    #[serde(default)]
    selector: ResourceSelector,
    #[serde(default)]
    strategy: Option<Value>,
    /// `garbage-collect` only: `orphan` leaves the object's dependents when it is deleted.
    #[serde(default)]
    propagation: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleSet {
    #[serde(default)]
    enable: Option<bool>,
    #[serde(default)]
    keep_legacy_resource: bool,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// When a garbage-collect rule deletes what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GcStrategy {
    /// When the application no longer renders it, and on delete (the default).
    OnAppUpdate,
    /// Only when the application is deleted.
    OnAppDelete,
    /// Never.
    Never,
}

/// The resource policies of an application.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResourcePolicies {
    apply_once: Option<RuleSet>,
    /// Every `garbage-collect` policy, in order: they combine.
    gc: Vec<RuleSet>,
    take_over: Vec<Rule>,
    read_only: Vec<Rule>,
    shared: Vec<Rule>,
}

/// Why a resource policy could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {policy}: {message}")]
pub(crate) struct Error {
    /// Policy name.
    pub policy: String,
    /// What is wrong.
    pub message: String,
}

impl ResourcePolicies {
    /// Reads the resource policies among an application's inline policies.
    pub(crate) fn from_policies(policies: &[AppPolicy]) -> Result<Self, Error> {
        let mut out = ResourcePolicies::default();
        for p in policies {
            let parse = || -> Result<RuleSet, Error> {
                match &p.properties {
                    None | Some(Value::Null) => Ok(RuleSet::default()),
                    Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error {
                        policy: p.name.clone(),
                        message: e.to_string(),
                    }),
                }
            };
            match p.policy_type.as_str() {
                "apply-once" => out.apply_once = Some(parse()?),
                "garbage-collect" => {
                    let set = parse()?;
                    if let Some(bad) = set.rules.iter().find_map(|r| {
                        r.propagation
                            .as_deref()
                            .filter(|p| !matches!(*p, "orphan" | "cascading"))
                    }) {
                        return Err(Error {
                            policy: p.name.clone(),
                            message: format!(
                                "propagation {bad:?}: supported values: \"orphan\", \"cascading\""
                            ),
                        });
                    }
                    out.gc.push(set);
                }
                "take-over" => out.take_over.extend(parse()?.rules),
                "read-only" => out.read_only.extend(parse()?.rules),
                "shared-resource" => out.shared.extend(parse()?.rules),
                _ => {}
            }
        }
        Ok(out)
    }

    /// How dispatch treats one object.
    pub(crate) fn apply_options(&self, facts: &ResourceFacts<'_>) -> ApplyOptions {
        let any = |rules: &[Rule]| rules.iter().any(|r| r.selector.matches(facts));
        let mut options = ApplyOptions {
            take_over: any(&self.take_over),
            read_only: any(&self.read_only),
            shared: any(&self.shared),
            ..Default::default()
        };
        if let Some(apply_once) = &self.apply_once
            && apply_once.enable.unwrap_or(false)
        {
            if apply_once.rules.is_empty() {
                options.apply_once_all = true;
            }
            for rule in apply_once
                .rules
                .iter()
                .filter(|r| r.selector.matches(facts))
            {
                let paths: Vec<String> = rule
                    .strategy
                    .as_ref()
                    .and_then(|s| s.get("path"))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                if paths.iter().any(|p| p == "*") || paths.is_empty() {
                    options.apply_once_all = true;
                }
                options
                    .apply_once_paths
                    .extend(paths.into_iter().filter(|p| p != "*"));
            }
        }
        options
    }

    /// Whether objects no longer rendered are kept (`keepLegacyResource` on any policy).
    pub(crate) fn keep_legacy(&self) -> bool {
        self.gc.iter().any(|g| g.keep_legacy_resource)
    }

    /// The garbage-collect rules covering an object, every policy's in order.
    fn gc_rules<'a>(&'a self, facts: &'a ResourceFacts<'_>) -> impl Iterator<Item = &'a Rule> {
        self.gc
            .iter()
            .flat_map(|g| &g.rules)
            .filter(move |r| r.selector.matches(facts))
    }

    /// The garbage-collect strategy for an object: the first covering rule that sets one.
    pub(crate) fn gc_strategy(&self, facts: &ResourceFacts<'_>) -> GcStrategy {
        for rule in self.gc_rules(facts) {
            match rule.strategy.as_ref().and_then(Value::as_str) {
                Some("never") => return GcStrategy::Never,
                Some("onAppDelete") => return GcStrategy::OnAppDelete,
                Some("onAppUpdate") => return GcStrategy::OnAppUpdate,
                _ => {}
            }
        }
        GcStrategy::OnAppUpdate
    }

    /// How deleting an object treats its dependents: the first covering rule that says.
    pub(crate) fn gc_propagation(&self, facts: &ResourceFacts<'_>) -> Propagation {
        match self.gc_rules(facts).find_map(|r| r.propagation.as_deref()) {
            Some("orphan") => Propagation::Orphan,
            _ => Propagation::Cascading,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(kind: &'a str, trait_type: Option<&'a str>) -> ResourceFacts<'a> {
        ResourceFacts {
            component: "web",
            component_type: "webservice",
            trait_type,
            kind,
            name: "web",
        }
    }

    #[test]
    fn apply_once_take_over_and_gc_rules() {
        let policies: Vec<AppPolicy> = serde_json::from_value(json!([
            {"name": "once", "type": "apply-once", "properties": {"enable": true, "rules": [
                {"selector": {"resourceTypes": ["Deployment"]},
                 "strategy": {"path": ["spec.replicas"]}}]}},
            {"name": "adopt", "type": "take-over", "properties": {"rules": [
                {"selector": {"traitTypes": ["gateway"]}}]}},
            {"name": "gc", "type": "garbage-collect", "properties": {"rules": [
                {"selector": {"resourceTypes": ["PersistentVolumeClaim"]}, "strategy": "never"}]}},
            {"name": "t", "type": "topology", "properties": {"clusters": ["x"]}},
        ]))
        .unwrap();
        let p = ResourcePolicies::from_policies(&policies).unwrap();
        let d = p.apply_options(&facts("Deployment", None));
        assert_eq!(d.apply_once_paths, ["spec.replicas"]);
        assert!(!d.apply_once_all && !d.take_over);
        let i = p.apply_options(&facts("Ingress", Some("gateway")));
        assert!(i.take_over && i.apply_once_paths.is_empty());
        assert_eq!(
            p.gc_strategy(&facts("PersistentVolumeClaim", None)),
            GcStrategy::Never
        );
        assert_eq!(
            p.gc_strategy(&facts("Deployment", None)),
            GcStrategy::OnAppUpdate
        );
        assert!(!p.keep_legacy());
    }

    #[test]
    fn several_gc_policies_combine_with_selectors_and_propagation() {
        let policies: Vec<AppPolicy> = serde_json::from_value(json!([
            {"type": "garbage-collect", "properties": {"rules": [
                {"selector": {"componentNames": ["db"]}, "strategy": "never"}]}},
            {"type": "garbage-collect", "properties": {"keepLegacyResource": true, "rules": [
                {"selector": {"resourceTypes": ["Deployment"]}, "propagation": "orphan"},
                {"selector": {"resourceNames": ["web"]}, "strategy": "onAppDelete"}]}},
        ]))
        .unwrap();
        let p = ResourcePolicies::from_policies(&policies).unwrap();
        assert!(p.keep_legacy());
        let web = facts("Deployment", None);
        assert_eq!(p.gc_strategy(&web), GcStrategy::OnAppDelete);
        assert_eq!(p.gc_propagation(&web), Propagation::Orphan);
        let db = ResourceFacts {
            component: "db",
            name: "db",
            ..facts("Service", None)
        };
        assert_eq!(p.gc_strategy(&db), GcStrategy::Never);
        assert_eq!(p.gc_propagation(&db), Propagation::Cascading);
        let bad: Vec<AppPolicy> = serde_json::from_value(json!([
            {"type": "garbage-collect", "properties": {"rules": [{"propagation": "later"}]}}]))
        .unwrap();
        assert!(ResourcePolicies::from_policies(&bad).is_err());
    }

    #[test]
    fn bad_rules_are_errors() {
        let policies: Vec<AppPolicy> = serde_json::from_value(json!([
            {"name": "gc", "type": "garbage-collect", "properties": {"rules": "all"}}]))
        .unwrap();
        assert!(ResourcePolicies::from_policies(&policies).is_err());
    }
}
