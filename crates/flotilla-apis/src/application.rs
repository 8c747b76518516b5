//! `Application` (core.oam.dev/v1beta1) and `ApplicationRevision`.

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::{empty, fleet_resource};

/// A KubeVela Application: components, policies and an optional workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// `core.oam.dev/v1beta1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `Application`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to deploy, where, and how.
    #[serde(default)]
    pub spec: ApplicationSpec,
    /// What the controller observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationStatus>,
}
fleet_resource!(
    Application,
    "core.oam.dev",
    "v1beta1",
    "Application",
    "applications",
    NamespaceResourceScope
);

/// `spec` of an [`Application`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The components, rendered in order.
    #[serde(default)]
    pub components: Vec<ApplicationComponent>,
    /// Inline policies (topology, override, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppPolicy>,
    /// The workflow: inline steps or a reference to a standalone Workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<ApplicationWorkflow>,
}

/// One component of an application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationComponent {
    /// Component name (the workload's name).
    #[serde(default)]
    pub name: String,
    /// Component type: `webservice`, `k8s-objects`, `ref-objects`, ...
    #[serde(default, rename = "type")]
    pub component_type: String,
    /// Type-specific properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// Traits, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<ApplicationTrait>,
    /// Components that must be deployed first (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// A trait attached to a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTrait {
    /// Trait type: `scaler`, `gateway`, `labels`, ...
    #[serde(default, rename = "type")]
    pub trait_type: String,
    /// Type-specific properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
}

/// An inline policy of an application (same shape as a standalone [`crate::Policy`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPolicy {
    /// Policy name, referenced by deploy steps.
    #[serde(default)]
    pub name: String,
    /// Policy type: `topology`, `override`, `apply-once`, ...
    #[serde(default, rename = "type")]
    pub policy_type: String,
    /// Type-specific properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
}

/// `spec.workflow` of an application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationWorkflow {
    /// Name of a standalone Workflow in the application's namespace.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Inline steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<WorkflowStep>,
    /// Execution mode (kept, steps always run in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkflowExecuteMode>,
}

/// `mode` of a workflow: how steps and sub-steps run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowExecuteMode {
    /// `StepByStep` or `DAG` for the top-level steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<String>,
    /// `StepByStep` or `DAG` for the sub-steps of a step-group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_steps: Option<String>,
}

/// One workflow step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    /// Step name, unique in the workflow.
    #[serde(default)]
    pub name: String,
    /// Step type: `deploy`, `suspend`, `step-group`.
    #[serde(default, rename = "type")]
    pub step_type: String,
    /// Type-specific properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// Sub-steps of a `step-group`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_steps: Vec<WorkflowStep>,
    /// Steps this one waits for (in `DAG` mode, steps without it start at once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Step timeout (`30s`, `5m`): a step not done by then fails with reason `Timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Run condition: `always`, or an expression over earlier steps
    /// (`status.<step>.failed|succeeded|timeout`, `status["<step>"].…`) and the step's inputs
    /// (`inputs.<name> == "v"`, `inputs["<name>"]`), with `==`, `!=`, `!`, `&&`, `||`.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Values this step takes from earlier steps' outputs, set into its properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<StepInput>,
    /// Values this step exports for later steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<StepOutput>,
}

/// One of a step's `inputs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInput {
    /// The name of an earlier step's output.
    #[serde(default)]
    pub from: String,
    /// Where in the step's properties the value goes (dotted path, `slack.message.text`).
    #[serde(default)]
    pub parameter_key: String,
}

/// One of a step's `outputs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutput {
    /// The output's name, unique in the workflow.
    #[serde(default)]
    pub name: String,
    /// A path into the step's output: `output.value.status.readyReplicas`,
    /// `output.value.metadata.labels["app"]`.
    #[serde(default)]
    pub value_from: String,
}

/// `status` of an [`Application`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The phase: see [`ApplicationPhase`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The workflow's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowStatus>,
    /// One entry per component per cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ApplicationComponentStatus>,
    /// The revision the workflow runs (or ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<Revision>,
    /// `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions (`Rendered`, `WorkflowFinished`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Every resource the application dispatched, per cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_resources: Vec<AppliedResource>,
    /// Dispatched objects that differ from the desired state (annotation
    /// `app.oam.dev/drift: report`; otherwise drift is corrected and not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftReport>,
}

/// One dispatched object that drifted from the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    /// The cluster.
    pub cluster: String,
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Namespace (empty for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The drifted fields (`spec.replicas`), or `<deleted>` when the object is gone.
    pub fields: Vec<String>,
}

/// A condition on an application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(default, rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: String,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// A resource the application dispatched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedResource {
    /// Cluster name (`local` for the hub).
    #[serde(default)]
    pub cluster: String,
    /// `apiVersion` of the object.
    #[serde(default)]
    pub api_version: String,
    /// `kind` of the object.
    #[serde(default)]
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Component it was rendered from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    /// Trait that rendered it, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trait_type: String,
}

/// The revision an application runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// `<app>-v<N>`.
    #[serde(default)]
    pub name: String,
    /// `N`.
    #[serde(default)]
    pub revision: i64,
    /// Hash of the revision's content.
    #[serde(default)]
    pub revision_hash: String,
    /// The `app.oam.dev/publishVersion` the workflow ran for, if the app carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_version: Option<String>,
}

/// `status.workflow` of an application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// The revision the workflow runs for (`<app>-v<N>` or `<app>-v<N>:<publishVersion>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_revision: String,
    /// `StepByStep-DAG` etc.
    #[serde(default)]
    pub mode: String,
    /// Every step ended (succeeded, failed or skipped).
    #[serde(default)]
    pub finished: bool,
    /// A step is waiting for `workflow resume`.
    #[serde(default)]
    pub suspend: bool,
    /// The workflow was terminated.
    #[serde(default)]
    pub terminated: bool,
    /// The workflow's overall message (the first failing step's, for instance).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Steps in order.
    #[serde(default)]
    pub steps: Vec<StepStatus>,
    /// When the workflow started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the workflow finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// The steps' `outputs` so far, by name (Flotilla keeps them here instead of KubeVela's
    /// context ConfigMap).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
}

/// Status of one workflow step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// Stable id of the step (random at first execution).
    #[serde(default)]
    pub id: String,
    /// Step name.
    #[serde(default)]
    pub name: String,
    /// Step type.
    #[serde(default, rename = "type")]
    pub step_type: String,
    /// See [`StepPhase`].
    #[serde(default)]
    pub phase: String,
    /// Human-readable progress or error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason (`Terminate`, `Execute`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the step first ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_execute_time: Option<String>,
    /// When the step last ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execute_time: Option<String>,
    /// Sub-steps of a `step-group`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_steps: Vec<StepStatus>,
}

/// Health of one component in one cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationComponentStatus {
    /// Component name.
    #[serde(default)]
    pub name: String,
    /// Namespace it runs in (in the member).
    #[serde(default)]
    pub namespace: String,
    /// Cluster name (`local` for the hub).
    #[serde(default)]
    pub cluster: String,
    /// Component type (for `flotilla status`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_type: String,
    /// Healthy or not.
    #[serde(default)]
    pub healthy: bool,
    /// `Ready:3/3` and the like.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Trait health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<ApplicationTraitStatus>,
}

/// Health of one trait.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTraitStatus {
    /// Trait type.
    #[serde(default, rename = "type")]
    pub trait_type: String,
    /// Healthy or not.
    #[serde(default)]
    pub healthy: bool,
    /// `Visiting URL: ...` and the like.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The application phases of `status.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationPhase {
    /// Rendering the spec (or it could not be rendered).
    Rendering,
    /// The workflow is running.
    RunningWorkflow,
    /// A step waits for `workflow resume`.
    WorkflowSuspending,
    /// The workflow was terminated.
    WorkflowTerminated,
    /// A step failed.
    WorkflowFailed,
    /// The workflow succeeded and everything is healthy.
    Running,
    /// The workflow succeeded but something is not healthy now.
    Unhealthy,
    /// The application is being deleted.
    Deleting,
}

impl ApplicationPhase {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationPhase::Rendering => "rendering",
            ApplicationPhase::RunningWorkflow => "runningWorkflow",
            ApplicationPhase::WorkflowSuspending => "workflowSuspending",
            ApplicationPhase::WorkflowTerminated => "workflowTerminated",
            ApplicationPhase::WorkflowFailed => "workflowFailed",
            ApplicationPhase::Running => "running",
            ApplicationPhase::Unhealthy => "unhealthy",
            ApplicationPhase::Deleting => "deleting",
        }
    }
}

/// The workflow step phases of `status.workflow.steps[].phase`.
pub mod step_phase {
    /// Finished well.
    pub const SUCCEEDED: &str = "succeeded";
    /// Finished badly (or terminated).
    pub const FAILED: &str = "failed";
    /// Not run (an earlier step failed).
    pub const SKIPPED: &str = "skipped";
    /// Running (also: resumed after a suspension).
    pub const RUNNING: &str = "running";
    /// Not started yet.
    pub const PENDING: &str = "pending";
    /// Waiting for `workflow resume`.
    pub const SUSPENDING: &str = "suspending";
}

/// A stored `ApplicationRevision` (core.oam.dev/v1beta1), named `<app>-v<N>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRevision {
    /// `core.oam.dev/v1beta1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `ApplicationRevision`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The snapshot.
    #[serde(default)]
    pub spec: ApplicationRevisionSpec,
    /// Whether the workflow of this revision succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationRevisionStatus>,
}
fleet_resource!(
    ApplicationRevision,
    "core.oam.dev",
    "v1beta1",
    "ApplicationRevision",
    "applicationrevisions",
    NamespaceResourceScope
);

/// `spec` of an [`ApplicationRevision`]: everything the revision's workflow depends on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRevisionSpec {
    /// The application's spec at this revision.
    #[serde(default)]
    pub application: ApplicationSpec,
    /// Standalone Policies referenced by the spec, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<AppPolicy>,
    /// The standalone Workflow's steps, if `workflow.ref` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<ApplicationWorkflow>,
    /// Content of the hub objects `ref-objects` copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referred_objects: Vec<Value>,
    /// Hash of all of the above.
    #[serde(default)]
    pub revision_hash: String,
}

/// `status` of an [`ApplicationRevision`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRevisionStatus {
    /// The workflow of this revision succeeded.
    #[serde(default)]
    pub succeeded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A watcher must never choke on an odd object: missing names and types deserialize.
    #[test]
    fn incomplete_applications_still_deserialize() {
        let app: Application = serde_json::from_value(json!({
            "metadata": {"name": "odd"},
            "spec": {
                "components": [{"properties": {}}, {"name": "x", "traits": [{}]}],
                "policies": [{}],
                "workflow": {"steps": [{"properties": {}}]},
            },
            "status": {"workflow": {"steps": [{}]}, "services": [{}],
                       "appliedResources": [{}], "latestRevision": {}},
        }))
        .unwrap();
        assert_eq!(app.spec.components[0].name, "");
        assert_eq!(app.spec.components[1].traits[0].trait_type, "");
        assert_eq!(app.spec.workflow.unwrap().steps[0].step_type, "");
    }
}
