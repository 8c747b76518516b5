//! A built-in kind's `k8s-openapi` type, as its strategy declares it
//! ([`crate::strategy::Strategy::typed`]): objects of a [`Typed::decoded`] kind are decoded
//! through their type on every write (validation and `fieldValidation`, [`typed_decode`]);
//! every typed kind's type gives its `/openapi/v3` component schema ([`schema_ref`]) and its
//! Kubernetes protobuf message ([`proto_message`]). The strategy takes the kind's group,
//! version, kind, plural and scope from the type itself, so it cannot name one kind and type
//! another.

use flotilla_core::kinds::Scope;
use k8s_openapi::Resource;
use k8s_openapi::api::autoscaling::v1::Scale;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a `k8s-openapi` type must offer to stand for a built-in kind.
pub(crate) trait KindType:
    Resource + DeserializeOwned + Serialize + JsonSchema + 'static
{
}
impl<T: Resource + DeserializeOwned + Serialize + JsonSchema + 'static> KindType for T {}

/// Decodes (and normalizes) an object through a type, or says why it does not fit.
pub(crate) type Decode = fn(&Value) -> Result<Value, String>;

/// The kind-table scope of a `k8s-openapi` resource scope.
pub(crate) trait KindScope {
    /// Namespaced or cluster-wide.
    const SCOPE: Scope;
}
impl KindScope for k8s_openapi::NamespaceResourceScope {
    const SCOPE: Scope = Scope::Namespaced;
}
impl KindScope for k8s_openapi::ClusterResourceScope {
    const SCOPE: Scope = Scope::Cluster;
}

/// One served version of a built-in kind, typed by `k8s-openapi`.
#[derive(Clone, Copy)]
pub(crate) struct Typed {
    /// `T::GROUP`.
    pub group: &'static str,
    /// `T::VERSION`.
    pub version: &'static str,
    /// `T::KIND`.
    pub kind: &'static str,
    /// Decodes (and normalizes) an object through the type; `None`: the type gives only the
    /// schema (reviews, and kinds whose objects are stored as sent).
    pub decode: Option<Decode>,
    /// Registers the type's definitions in a generator and returns its `$ref`.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

fn roundtrip<T: KindType>(v: &Value) -> Result<Value, String> {
    let typed = T::deserialize(v).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn schema_of<T: KindType>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

impl Typed {
    /// Objects are decoded through `T` on every write, and `T` gives the schema.
    pub(crate) const fn decoded<T: KindType>() -> Self {
        let mut t = Self::schema_only::<T>();
        t.decode = Some(roundtrip::<T>);
        t
    }

    /// `T` gives the schema (and protobuf message) only.
    pub(crate) const fn schema_only<T: KindType>() -> Self {
        Typed {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            decode: None,
            schema: schema_of::<T>,
        }
    }
}

/// The Kubernetes protobuf message of `kind` at `group`/`version` (`api.apps.v1.Deployment`):
/// the Go package's last element is the group's first label (`core` for the core group),
/// except for the two API groups served by their own API servers upstream.
pub(crate) fn proto_message(group: &str, version: &str, kind: &str) -> String {
    let package = match group {
        "" => "api.core".to_string(),
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions".to_string(),
        "apiregistration.k8s.io" => "kube_aggregator.pkg.apis.apiregistration".to_string(),
        _ => format!("api.{}", group.split('.').next().unwrap_or(group)),
    };
    format!("{package}.{version}.{kind}")
}

/// `autoscaling/v1` Scale, the body of every `/scale` subresource (not a kind of its own).
pub(crate) const SCALE: Typed = Typed::decoded::<Scale>();

/// The type of `kind` at `group`/`version`: its strategy's, or [`SCALE`].
pub(crate) fn typed(group: &str, version: &str, kind: &str) -> Option<Typed> {
    if (group, version, kind) == (SCALE.group, SCALE.version, SCALE.kind) {
        return Some(SCALE);
    }
    crate::strategy::for_kind(group, kind).typed_at(version)
}

/// Decodes a built-in object through its `k8s-openapi` type: `Some(Ok(normalized))`,
/// `Some(Err(why))` if it does not fit the schema, `None` for kinds not decoded.
pub(crate) fn typed_decode(
    group: &str,
    version: &str,
    kind: &str,
    v: &Value,
) -> Option<Result<Value, String>> {
    typed(group, version, kind)?.decode.map(|decode| decode(v))
}

/// The `$ref` to k8s-openapi's schema of a built-in kind, registering its definitions in
/// `generator`.
pub(crate) fn schema_ref(
    generator: &mut SchemaGenerator,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<Schema> {
    typed(group, version, kind).map(|t| (t.schema)(generator))
}
