//! The `k8s-openapi` type of each built-in kind, in one table: objects of the `decoded` rows
//! are decoded through their type on every write (validation and `fieldValidation`,
//! [`typed_decode`]); every row's type gives the kind's `/openapi/v3` component schema
//! ([`schema_ref`]). Adding a built-in kind with a k8s-openapi type adds its row here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz,
    autoscaling::v1 as as1, autoscaling::v2 as as2, batch::v1 as batch, certificates::v1 as certs,
    coordination::v1 as coord, core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    networking::v1 as net, policy::v1 as policy, rbac::v1 as rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apireg;

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed = T::deserialize(v).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

macro_rules! typed_kinds {
    (
        decoded { $(($g:literal, $v:literal, $k:literal) => $t:ty,)* }
        schema_only { $(($sg:literal, $sv:literal, $sk:literal) => $st:ty,)* }
    ) => {
        /// Decodes a built-in object through its `k8s-openapi` type: `Some(Ok(normalized))`,
        /// `Some(Err(why))` if it does not fit the schema, `None` for kinds not decoded.
        pub(crate) fn typed_decode(
            group: &str,
            version: &str,
            kind: &str,
            v: &Value,
        ) -> Option<Result<Value, String>> {
            match (group, version, kind) {
                $(($g, $v, $k) => Some(roundtrip::<$t>(v)),)*
                _ => None,
            }
        }

        /// The `$ref` to k8s-openapi's schema of a built-in kind, registering its
        /// definitions in `generator`.
        pub(crate) fn schema_ref(
            generator: &mut schemars::SchemaGenerator,
            group: &str,
            version: &str,
            kind: &str,
        ) -> Option<schemars::Schema> {
            match (group, version, kind) {
                $(($g, $v, $k) => Some(generator.subschema_for::<$t>()),)*
                $(($sg, $sv, $sk) => Some(generator.subschema_for::<$st>()),)*
                _ => None,
            }
        }
    };
}

typed_kinds! {
    decoded {
        ("", "v1", "ConfigMap") => core::ConfigMap,
        ("", "v1", "Event") => core::Event,
        ("", "v1", "Namespace") => core::Namespace,
        ("", "v1", "PersistentVolumeClaim") => core::PersistentVolumeClaim,
        ("", "v1", "Pod") => core::Pod,
        ("", "v1", "Secret") => core::Secret,
        ("", "v1", "ServiceAccount") => core::ServiceAccount,
        ("", "v1", "Service") => core::Service,
        ("apps", "v1", "DaemonSet") => apps::DaemonSet,
        ("apps", "v1", "Deployment") => apps::Deployment,
        ("apps", "v1", "ReplicaSet") => apps::ReplicaSet,
        ("apps", "v1", "StatefulSet") => apps::StatefulSet,
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => as1::HorizontalPodAutoscaler,
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => as2::HorizontalPodAutoscaler,
        ("autoscaling", "v1", "Scale") => as1::Scale,
        ("batch", "v1", "CronJob") => batch::CronJob,
        ("batch", "v1", "Job") => batch::Job,
        ("networking.k8s.io", "v1", "Ingress") => net::Ingress,
        ("networking.k8s.io", "v1", "IngressClass") => net::IngressClass,
        ("networking.k8s.io", "v1", "NetworkPolicy") => net::NetworkPolicy,
        ("policy", "v1", "PodDisruptionBudget") => policy::PodDisruptionBudget,
        ("coordination.k8s.io", "v1", "Lease") => coord::Lease,
        ("events.k8s.io", "v1", "Event") => events::Event,
        ("rbac.authorization.k8s.io", "v1", "Role") => rbac::Role,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => rbac::RoleBinding,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => rbac::ClusterRole,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => rbac::ClusterRoleBinding,
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => apiext::CustomResourceDefinition,
    }
    schema_only {
        ("", "v1", "Endpoints") => core::Endpoints,
        ("apiregistration.k8s.io", "v1", "APIService") => apireg::APIService,
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => authn::SelfSubjectReview,
        ("authentication.k8s.io", "v1", "TokenReview") => authn::TokenReview,
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => authz::LocalSubjectAccessReview,
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => authz::SelfSubjectAccessReview,
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => authz::SelfSubjectRulesReview,
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => authz::SubjectAccessReview,
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => certs::CertificateSigningRequest,
        ("discovery.k8s.io", "v1", "EndpointSlice") => discovery::EndpointSlice,
    }
}
