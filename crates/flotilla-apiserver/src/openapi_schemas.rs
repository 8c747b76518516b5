//! `components.schemas` of the `/openapi/v3` documents, what `kubectl explain
//! deployment.spec.replicas` reads: built-in kinds from k8s-openapi's schemas (its
//! `schemars` feature, for the types of `crate::typed_kinds`), custom resources from their
//! CRD's structural schema. Each kind's schema carries `x-kubernetes-group-version-kind`, and
//! references use `allOf` as kube-apiserver's do.

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta, ObjectMeta};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::registry::ResourceInfo;

const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

/// `io.k8s.api.apps.v1.Deployment` from `{"$ref": "#/components/schemas/io.k8s..."}`.
fn ref_name(schema: &schemars::Schema) -> Option<String> {
    schema
        .get("$ref")?
        .as_str()?
        .strip_prefix(SCHEMA_REF_PREFIX)
        .map(str::to_string)
}

/// kube-apiserver's component name of a custom resource: `dev.oam.core.v1beta1.Application`.
pub(crate) fn crd_schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// A custom resource's schema: its structural schema with `apiVersion`, `kind` and
/// `metadata` (a reference to ObjectMeta) filled in.
fn crd_schema(generator: &mut SchemaGenerator, r: &ResourceInfo) -> Value {
    let mut schema = r
        .crd
        .as_ref()
        .and_then(|c| c.schema.clone())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"type": "object"}));
    let meta_ref = generator.subschema_for::<ObjectMeta>();
    schema["properties"]["apiVersion"] = json!({
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.",
    });
    schema["properties"]["kind"] = json!({
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.",
    });
    schema["properties"]["metadata"] = json!({
        "allOf": [meta_ref],
        "description": "Standard object's metadata.",
    });
    schema
}

/// The component schemas of one group-version's document: its kinds, their List kinds, and,
/// as kube-apiserver's documents carry them for the operations, `autoscaling/v1` Scale (when
/// a kind has `/scale`) and `meta/v1` DeleteOptions.
pub(crate) fn component_schemas(resources: &[std::sync::Arc<ResourceInfo>]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<(String, Value)> = Vec::new();
    let mut custom: Vec<(String, Value)> = Vec::new();
    let mut lists: Vec<(String, Value)> = Vec::new();
    for r in resources {
        let gvk = json!([{"group": r.group, "kind": r.kind, "version": r.version}]);
        let name = if r.crd.is_some() {
            let name = crd_schema_name(&r.group, &r.version, &r.kind);
            let mut schema = crd_schema(&mut generator, r);
            schema["x-kubernetes-group-version-kind"] = gvk;
            custom.push((name.clone(), schema));
            name
        } else if let Some(name) =
            crate::typed_kinds::schema_ref(&mut generator, &r.group, &r.version, &r.kind)
                .as_ref()
                .and_then(ref_name)
        {
            kinds.push((name.clone(), gvk));
            name
        } else {
            continue;
        };
        if !r.is_virtual && r.verbs.contains(&"list") {
            let list = list_schema(&mut generator, r, &name);
            lists.push((name, list));
        }
    }
    let extra = operation_kinds(&mut generator, resources);
    let mut schemas = generator.take_definitions(true);
    for (name, gvk) in kinds.into_iter().chain(extra) {
        if let Some(schema) = schemas.get_mut(&name) {
            schema["x-kubernetes-group-version-kind"] = gvk;
        }
    }
    schemas.extend(custom);
    schemas.extend(
        lists
            .into_iter()
            .map(|(name, list)| (format!("{name}List"), list)),
    );
    schemas
}

/// The `<Kind>List` schema of `r`, whose items are the component `item`.
fn list_schema(generator: &mut SchemaGenerator, r: &ResourceInfo, item: &str) -> Value {
    let list_meta = generator.subschema_for::<ListMeta>();
    json!({
        "description": format!("{} is a list of {} objects.", r.list_kind(), r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "items": {
                "type": "array",
                "description": format!("Items is the list of {} objects.", r.kind),
                "items": {"allOf": [{"$ref": format!("{SCHEMA_REF_PREFIX}{item}")}], "default": {}},
            },
            "metadata": {"allOf": [list_meta], "default": {}, "description": "Standard list metadata."},
        },
        "x-kubernetes-group-version-kind": [{"group": r.group, "kind": r.list_kind(), "version": r.version}],
    })
}

/// The kinds the operations of `resources` take or return besides their own, registered in
/// `generator`, with their group-version-kinds: Scale for `/scale`, DeleteOptions for
/// deletes (registered in every built-in group-version, as kube-apiserver lists it).
fn operation_kinds(
    generator: &mut SchemaGenerator,
    resources: &[std::sync::Arc<ResourceInfo>],
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if resources.iter().any(|r| r.scale.is_some())
        && let Some(name) = ref_name(&generator.subschema_for::<Scale>())
    {
        let gvk = json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}]);
        out.push((name, gvk));
    }
    if resources.iter().any(|r| !r.is_virtual)
        && let Some(name) = ref_name(&generator.subschema_for::<DeleteOptions>())
    {
        let mut group_versions: Vec<(&str, &str)> = flotilla_core::kinds::builtin()
            .map(|k| (k.group, k.version))
            .collect();
        group_versions.sort();
        group_versions.dedup();
        let gvks: Vec<Value> = group_versions
            .into_iter()
            .map(|(group, version)| json!({"group": group, "kind": "DeleteOptions", "version": version}))
            .collect();
        out.push((name, Value::Array(gvks)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_schema_reaches_replicas_through_refs() {
        let registry = crate::registry::Registry::new();
        let resources = registry.snapshot().group_version("apps", "v1");
        let schemas = component_schemas(&resources);
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let spec = &deployment["properties"]["spec"];
        let spec_ref = spec["allOf"][0]["$ref"].as_str().or(spec["$ref"].as_str());
        assert_eq!(
            spec_ref,
            Some("#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec")
        );
        let replicas = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
        assert_eq!(replicas["type"], "integer");
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    }

    #[test]
    fn custom_resource_names_reverse_the_group() {
        assert_eq!(
            crd_schema_name("core.oam.dev", "v1beta1", "Application"),
            "dev.oam.core.v1beta1.Application"
        );
    }
}
