//! `kube::Resource` for the hand-written fleet kinds.

/// Implements `kube::Resource` (static type information) for a struct with a `metadata` field.
macro_rules! fleet_resource {
    ($ty:ty, $group:expr, $version:expr, $kind:expr, $plural:expr, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl $ty {
            /// The `apiVersion` of this kind.
            pub const API_VERSION: &'static str = concat!($group, "/", $version);
            /// The `kind` of this kind.
            pub const KIND: &'static str = $kind;
        }
    };
}

pub(crate) use fleet_resource;

/// Serde default for `apiVersion`/`kind` fields: filled from the type on serialize.
pub(crate) fn empty() -> String {
    String::new()
}
