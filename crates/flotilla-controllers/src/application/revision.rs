//! Revisions: the snapshot a workflow run works from, its hash, and when a run starts.
//!
//! A snapshot is the application spec plus everything it refers to (standalone Policies and
//! Workflow, `ref-objects` copies). Every distinct snapshot is an `ApplicationRevision`
//! `<app>-v<N>`. With `app.oam.dev/publishVersion` set, a new revision (and a new run) starts
//! only when that value changes; until then the run keeps working from its recorded snapshot.

use flotilla_apis::{
    AppPolicy, ApplicationRevisionSpec, ApplicationSpec, ApplicationWorkflow, Revision,
};
use serde_json::Value;

use super::dispatch::content_hash;

/// Everything a workflow run renders from.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// The application's spec.
    pub spec: ApplicationSpec,
    /// Standalone Policies the steps name (inline policies of the same name win).
    pub policies: Vec<AppPolicy>,
    /// The referenced standalone Workflow, if `workflow.ref` is used and it exists.
    pub workflow: Option<ApplicationWorkflow>,
    /// Stripped copies of the hub objects `ref-objects` names.
    pub referred_objects: Vec<Value>,
}

impl Snapshot {
    /// The content hash.
    pub(crate) fn hash(&self) -> String {
        content_hash(&serde_json::json!({
            "spec": self.spec,
            "policies": self.policies,
            "workflow": self.workflow,
            "referredObjects": self.referred_objects,
        }))
    }

    /// A policy by name: inline first, then standalone.
    pub(crate) fn policy(&self, name: &str) -> Option<&AppPolicy> {
        self.spec
            .policies
            .iter()
            .find(|p| p.name == name)
            .or_else(|| self.policies.iter().find(|p| p.name == name))
    }

    /// As stored in an ApplicationRevision.
    pub(crate) fn to_revision_spec(&self) -> ApplicationRevisionSpec {
        ApplicationRevisionSpec {
            application: self.spec.clone(),
            policies: self.policies.clone(),
            workflow: self.workflow.clone(),
            referred_objects: self.referred_objects.clone(),
            revision_hash: self.hash(),
        }
    }

    /// Back from an ApplicationRevision.
    pub(crate) fn from_revision_spec(spec: &ApplicationRevisionSpec) -> Snapshot {
        Snapshot {
            spec: spec.application.clone(),
            policies: spec.policies.clone(),
            workflow: spec.workflow.clone(),
            referred_objects: spec.referred_objects.clone(),
        }
    }
}

/// Names the anonymous policies (KubeVela lets a policy go without `name`): the type, or
/// `<type>-<index>` when another policy has that name or type. Deploy steps can then name them,
/// and the default workflow's steps are `deploy-<name>`.
pub(crate) fn name_anonymous_policies(policies: &mut [AppPolicy]) {
    let taken: Vec<String> = policies.iter().map(|p| p.name.clone()).collect();
    for index in 0..policies.len() {
        if !policies[index].name.is_empty() {
            continue;
        }
        let policy_type = policies[index].policy_type.clone();
        let alone = policies
            .iter()
            .enumerate()
            .all(|(i, p)| i == index || p.policy_type != policy_type);
        policies[index].name = if alone && !taken.contains(&policy_type) {
            policy_type
        } else {
            format!("{policy_type}-{index}")
        };
    }
}

/// What to do about revisions on this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Keep running the current revision; with a publish version, from its stored snapshot.
    Keep {
        /// Load the snapshot from the stored revision instead of using the fresh one.
        use_stored: bool,
    },
    /// Start a new run on a new revision.
    New,
    /// Start a new run on the current revision (same content, new publish version).
    Rerun,
}

/// Decides whether a new revision and run are needed.
pub(crate) fn decide(
    current: Option<&Revision>,
    fresh_hash: &str,
    publish: Option<&str>,
) -> Decision {
    let Some(current) = current else {
        return Decision::New;
    };
    match publish {
        Some(p) if current.publish_version.as_deref() == Some(p) => Decision::Keep {
            use_stored: current.revision_hash != fresh_hash,
        },
        Some(_) if current.revision_hash == fresh_hash => Decision::Rerun,
        Some(_) => Decision::New,
        None if current.revision_hash == fresh_hash && current.publish_version.is_none() => {
            Decision::Keep { use_stored: false }
        }
        None if current.revision_hash == fresh_hash => Decision::Rerun,
        None => Decision::New,
    }
}

/// The key of a workflow run: the revision, plus the publish version when there is one.
pub(crate) fn run_key(revision: &Revision) -> String {
    match &revision.publish_version {
        Some(p) => format!("{}:{p}", revision.name),
        None => revision.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(hash: &str, publish: Option<&str>) -> Revision {
        Revision {
            name: "demo-v1".into(),
            revision: 1,
            revision_hash: hash.into(),
            publish_version: publish.map(str::to_string),
        }
    }

    #[test]
    fn revision_decisions() {
        assert_eq!(decide(None, "h", None), Decision::New);
        assert_eq!(
            decide(Some(&rev("h", None)), "h", None),
            Decision::Keep { use_stored: false }
        );
        assert_eq!(decide(Some(&rev("h", None)), "h2", None), Decision::New);
        // publishVersion unchanged: content changes are ignored, the stored snapshot is used
        assert_eq!(
            decide(Some(&rev("h", Some("v1"))), "h2", Some("v1")),
            Decision::Keep { use_stored: true }
        );
        assert_eq!(
            decide(Some(&rev("h", Some("v1"))), "h", Some("v1")),
            Decision::Keep { use_stored: false }
        );
        // bumped: a new revision when the content changed, a re-run otherwise
        assert_eq!(
            decide(Some(&rev("h", Some("v1"))), "h2", Some("v2")),
            Decision::New
        );
        assert_eq!(
            decide(Some(&rev("h", Some("v1"))), "h", Some("v2")),
            Decision::Rerun
        );
        // annotation removed: same content re-runs under the plain revision key
        assert_eq!(
            decide(Some(&rev("h", Some("v1"))), "h", None),
            Decision::Rerun
        );
    }

    #[test]
    fn run_keys() {
        assert_eq!(run_key(&rev("h", None)), "demo-v1");
        assert_eq!(run_key(&rev("h", Some("version1"))), "demo-v1:version1");
    }

    #[test]
    fn anonymous_policies_are_named_after_their_type() {
        let mut policies: Vec<AppPolicy> = serde_json::from_value(serde_json::json!([
            {"type": "topology"}, {"type": "override"}, {"type": "override"},
            {"name": "gc", "type": "garbage-collect"}, {"type": "gc"}
        ]))
        .unwrap();
        name_anonymous_policies(&mut policies);
        let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["topology", "override-1", "override-2", "gc", "gc-4"]
        );
    }

    #[test]
    fn inline_policies_win_over_standalone_ones() {
        let snapshot = Snapshot {
            spec: serde_json::from_value(serde_json::json!({
                "components": [],
                "policies": [{"name": "p", "type": "topology", "properties": {"clusters": ["a"]}}],
            }))
            .unwrap(),
            policies: vec![
                AppPolicy {
                    name: "p".into(),
                    policy_type: "topology".into(),
                    properties: None,
                },
                AppPolicy {
                    name: "q".into(),
                    policy_type: "override".into(),
                    properties: None,
                },
            ],
            ..Default::default()
        };
        assert!(snapshot.policy("p").unwrap().properties.is_some());
        assert_eq!(snapshot.policy("q").unwrap().policy_type, "override");
        assert!(snapshot.policy("r").is_none());
        assert_eq!(
            Snapshot::from_revision_spec(&snapshot.to_revision_spec()),
            snapshot
        );
    }
}
