//! Standalone `Policy` and `Workflow` (core.oam.dev/v1alpha1).

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::application::{AppPolicy, WorkflowExecuteMode, WorkflowStep};
use crate::resource::{empty, fleet_resource};

/// A standalone policy, referenced by name from applications in its namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `core.oam.dev/v1alpha1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `Policy`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Policy type: `topology`, `override`, ...
    #[serde(rename = "type", default)]
    pub policy_type: String,
    /// Type-specific properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
}
fleet_resource!(
    Policy,
    "core.oam.dev",
    "v1alpha1",
    "Policy",
    "policies",
    NamespaceResourceScope
);

impl Policy {
    /// The policy as an application's inline policy of the same name.
    pub fn to_app_policy(&self) -> AppPolicy {
        AppPolicy {
            name: self.metadata.name.clone().unwrap_or_default(),
            policy_type: self.policy_type.clone(),
            properties: self.properties.clone(),
        }
    }
}

/// A standalone workflow, referenced by `spec.workflow.ref`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// `core.oam.dev/v1alpha1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `Workflow`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Execution mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkflowExecuteMode>,
    /// The steps.
    #[serde(default)]
    pub steps: Vec<WorkflowStep>,
}
fleet_resource!(
    Workflow,
    "core.oam.dev",
    "v1alpha1",
    "Workflow",
    "workflows",
    NamespaceResourceScope
);
