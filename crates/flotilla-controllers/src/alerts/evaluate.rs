//! Rule evaluation: when a condition has held for longer than its rule's `for`, the alert
//! fires once; when it stops holding (or its subject goes away), the alert resolves once.

use std::collections::{BTreeMap, BTreeSet};

use super::rules::Rule;

/// What an alert is about: a cluster or an application.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Subject {
    /// A member cluster, by name.
    Cluster(String),
    /// An application, by namespace and name.
    Application(String, String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Cluster(name) => write!(f, "cluster {name}"),
            Subject::Application(ns, name) => write!(f, "application {ns}/{name}"),
        }
    }
}

/// An alert changing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transition {
    /// The rule's name.
    pub rule: String,
    /// What it is about.
    pub subject: Subject,
    /// True: firing; false: resolved.
    pub firing: bool,
}

/// What the evaluator remembers between rounds (unix seconds).
#[derive(Debug, Default)]
pub(crate) struct AlertState {
    bad_since: BTreeMap<(String, Subject), i64>,
    firing: BTreeSet<(String, Subject)>,
}

impl AlertState {
    /// One round of `rule` at `now`: `bad` holds every subject whose condition holds now.
    pub(crate) fn step(
        &mut self,
        now: i64,
        rule: &Rule,
        bad: &BTreeSet<Subject>,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        for subject in bad {
            let key = (rule.name.clone(), subject.clone());
            let since = *self.bad_since.entry(key.clone()).or_insert(now);
            let held = now - since;
            if held >= rule.for_duration.as_secs() as i64 && self.firing.insert(key) {
                out.push(Transition {
                    rule: rule.name.clone(),
                    subject: subject.clone(),
                    firing: true,
                });
            }
        }
        let gone: Vec<(String, Subject)> = self
            .bad_since
            .keys()
            .filter(|(r, s)| *r == rule.name && !bad.contains(s))
            .cloned()
            .collect();
        for key in gone {
            self.bad_since.remove(&key);
            if self.firing.remove(&key) {
                out.push(Transition {
                    rule: key.0,
                    subject: key.1,
                    firing: false,
                });
            }
        }
        out
    }

    /// Forgets rules that are no longer configured (their alerts end silently).
    pub(crate) fn retain_rules(&mut self, names: &BTreeSet<String>) {
        self.bad_since.retain(|(r, _), _| names.contains(r));
        self.firing.retain(|(r, _)| names.contains(r));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::rules::RuleType;

    fn rule() -> Rule {
        Rule {
            name: "down".into(),
            rule_type: RuleType::ClusterUnavailable,
            for_duration: Duration::from_secs(30),
        }
    }

    fn bad(names: &[&str]) -> BTreeSet<Subject> {
        names
            .iter()
            .map(|n| Subject::Cluster(n.to_string()))
            .collect()
    }

    #[test]
    fn fires_after_the_duration_once_and_resolves_once() {
        let mut state = AlertState::default();
        assert!(state.step(0, &rule(), &bad(&["a"])).is_empty());
        assert!(state.step(29, &rule(), &bad(&["a"])).is_empty());
        let fired = state.step(30, &rule(), &bad(&["a"]));
        assert_eq!(fired.len(), 1);
        assert!(fired[0].firing);
        assert!(state.step(60, &rule(), &bad(&["a"])).is_empty());
        let resolved = state.step(61, &rule(), &bad(&[]));
        assert_eq!(
            resolved,
            [Transition {
                rule: "down".into(),
                subject: Subject::Cluster("a".into()),
                firing: false
            }]
        );
        assert!(state.step(62, &rule(), &bad(&[])).is_empty());
    }

    #[test]
    fn a_blip_shorter_than_the_duration_is_silent() {
        let mut state = AlertState::default();
        assert!(state.step(0, &rule(), &bad(&["a"])).is_empty());
        assert!(state.step(10, &rule(), &bad(&[])).is_empty());
        assert!(state.step(35, &rule(), &bad(&["a"])).is_empty());
    }
}
