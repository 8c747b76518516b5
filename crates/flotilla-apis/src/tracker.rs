//! `ResourceTracker` (core.oam.dev/v1beta1, cluster-scoped): what an application dispatched.

use k8s_openapi::ClusterResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::application::AppliedResource;
use crate::resource::{empty, fleet_resource};

/// Records every object an application dispatched to every cluster. Named
/// `<app>-<namespace>` and labelled with the application's name and namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTracker {
    /// `core.oam.dev/v1beta1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `ResourceTracker`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The tracked objects.
    #[serde(default)]
    pub spec: ResourceTrackerSpec,
}
fleet_resource!(
    ResourceTracker,
    "core.oam.dev",
    "v1beta1",
    "ResourceTracker",
    "resourcetrackers",
    ClusterResourceScope
);

/// `spec` of a [`ResourceTracker`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTrackerSpec {
    /// `Versioned` (per-revision record) or `Root`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub tracker_type: String,
    /// The application generation the record was written for.
    #[serde(default)]
    pub application_generation: i64,
    /// Every dispatched object, sorted.
    #[serde(default)]
    pub managed_resources: Vec<AppliedResource>,
}

/// The name of an application's resource tracker.
pub fn resource_tracker_name(app_name: &str, app_namespace: &str) -> String {
    format!("{app_name}-{app_namespace}")
}
