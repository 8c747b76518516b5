//! The one table of kinds Flotilla knows by heart: identity (group, version, kind, plural,
//! scope, short names, categories), the storage version, the strategic-merge patch schema and
//! which subresources are served.
//!
//! The API server serves the [`Served::Builtin`] rows; controllers and the CLI look kinds up
//! here instead of guessing plurals. The built-in rows (`kinds/builtin_table.rs`) are
//! generated from `flotilla-apiserver`'s strategies, where each built-in kind is declared
//! once with its behaviour (a test there fails when the two differ and rewrites the file with
//! `FLOTILLA_BLESS=1`). Rows with [`Served::Crd`] are kinds Flotilla installs as
//! CustomResourceDefinitions but addresses by name in code.

use crate::resource::api_version;

mod builtin_table;

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `metadata.namespace` is required.
    Namespaced,
    /// Cluster-wide objects.
    Cluster,
}

/// How a kind reaches an API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Compiled into every Flotilla API server.
    Builtin,
    /// A CustomResourceDefinition Flotilla installs (served only once the CRD exists).
    Crd,
}

/// Which strategic-merge patch schema a built-in kind has (`None` in [`Kind::patch_schema`]:
/// strategic merge patch is refused with 415, as for custom resources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchSchema {
    /// Object metadata and `status.conditions` only.
    Object,
    /// A Pod: its spec, pod IPs, host IPs, resource claim statuses.
    Pod,
    /// A kind embedding a pod template whose pod spec sits at this path.
    PodTemplate(&'static [&'static str]),
    /// A Service: ports merge by `port`.
    Service,
    /// A Node: addresses by `type`, `podCIDRs` as a set.
    Node,
    /// A ServiceAccount: secrets by `name`.
    ServiceAccount,
}

/// One served group/version/resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Version this row is served at.
    pub version: &'static str,
    /// `Deployment`, ...
    pub kind: &'static str,
    /// Plural resource name (`deployments`).
    pub plural: &'static str,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// `kubectl` short names (`deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// The version objects of this resource are stored at.
    pub storage_version: &'static str,
    /// The strategic merge patch schema, `None` when strategic merge is refused.
    pub patch_schema: Option<PatchSchema>,
    /// Whether `/status` is served.
    pub status: bool,
    /// Whether `/scale` is served.
    pub scale: bool,
    /// Built in, or installed as a CRD.
    pub served: Served,
}

impl Kind {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }

    /// The singular resource name (`deployment`).
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// Whether objects live in a namespace.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// Whether `name` (lower-case) is this resource's plural, singular or a short name.
    pub fn is_named(&self, name: &str) -> bool {
        self.plural == name || self.singular() == name || self.short_names.contains(&name)
    }

    /// A built-in row with the object patch schema, no short names, no categories and no
    /// subresources, stored at `version`.
    pub const fn new(
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        kind: &'static str,
        scope: Scope,
    ) -> Self {
        Kind {
            group,
            version,
            kind,
            plural,
            scope,
            short_names: &[],
            categories: &[],
            storage_version: version,
            patch_schema: Some(PatchSchema::Object),
            status: false,
            scale: false,
            served: Served::Builtin,
        }
    }
    /// With these `kubectl` short names.
    pub const fn short_names(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    /// In the `all` category.
    pub const fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    /// `/status` is served.
    pub const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    /// `/scale` is served.
    pub const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    /// Objects are stored at `version`.
    pub const fn stored_as(mut self, version: &'static str) -> Self {
        self.storage_version = version;
        self
    }
    /// Strategic merge patches use `schema` (`None`: refused).
    pub const fn patch(mut self, schema: Option<PatchSchema>) -> Self {
        self.patch_schema = schema;
        self
    }
    /// The same kind served at another `version`, stored as this row is.
    pub const fn at_version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }
    const fn crd(mut self) -> Self {
        self.served = Served::Crd;
        self.patch_schema = None;
        self
    }
}

/// A kind embedding a pod template at `spec.template`.
pub const POD_TEMPLATE: Option<PatchSchema> =
    Some(PatchSchema::PodTemplate(&["spec", "template", "spec"]));

/// A CronJob: the pod template of its job template.
pub const JOB_TEMPLATE: Option<PatchSchema> = Some(PatchSchema::PodTemplate(&[
    "spec",
    "jobTemplate",
    "spec",
    "template",
    "spec",
]));

const MCS: &str = "multicluster.x-k8s.io";

/// Kinds Flotilla installs as CRDs and addresses by name in code.
const CRDS: &[Kind] = &[
    Kind::new(
        MCS,
        "v1alpha1",
        "serviceexports",
        "ServiceExport",
        Scope::Namespaced,
    )
    .crd(),
    Kind::new(
        MCS,
        "v1alpha1",
        "serviceimports",
        "ServiceImport",
        Scope::Namespaced,
    )
    .crd(),
];

/// Every row: the built-in ones in discovery order (a kind served at two versions has its
/// preferred version first), then the CRDs.
fn rows() -> impl Iterator<Item = &'static Kind> {
    builtin_table::BUILTIN.iter().chain(CRDS)
}

/// The built-in rows (what every Flotilla API server serves without CRDs), in discovery order.
pub fn builtin() -> impl Iterator<Item = &'static Kind> {
    builtin_table::BUILTIN.iter()
}

/// The preferred row of `kind` in `group`.
pub fn find(group: &str, kind: &str) -> Option<&'static Kind> {
    rows().find(|k| k.group == group && k.kind == kind)
}

/// The row of `kind` at `api_version` (`apps/v1`); the preferred row when that version is not
/// in the table.
pub fn find_api_version(api_version: &str, kind: &str) -> Option<&'static Kind> {
    let (group, version) = crate::resource::split_api_version(api_version);
    rows()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
        .or_else(|| find(group, kind))
}

/// The preferred row of a resource named by plural, singular or short name (any case) in `group`.
pub fn find_resource(group: &str, name: &str) -> Option<&'static Kind> {
    let name = name.to_ascii_lowercase();
    rows().find(|k| k.group == group && k.is_named(&name))
}

/// The plural of `kind`: the table's when known, otherwise kube-style English (`-s`, `-es`
/// after `s`, `-ies` for a final `y`) of the lower-case kind.
pub fn plural_of(api_version: &str, kind: &str) -> String {
    match find_api_version(api_version, kind) {
        Some(k) => k.plural.to_string(),
        None => guess_plural(kind),
    }
}

/// kube-style English plural of a kind not in the table (what CRDs usually use).
pub(crate) fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let d = find("apps", "Deployment").unwrap();
        assert_eq!(d.plural, "deployments");
        assert!(d.scale && d.status && d.namespaced());
        assert_eq!(find_resource("apps", "deploy"), Some(d));
        assert_eq!(find_resource("apps", "Deployment"), Some(d));
        assert_eq!(find_api_version("apps/v1", "Deployment"), Some(d));
        let hpa1 = find_api_version("autoscaling/v1", "HorizontalPodAutoscaler").unwrap();
        assert_eq!((hpa1.version, hpa1.storage_version), ("v1", "v2"));
        assert_eq!(
            find("autoscaling", "HorizontalPodAutoscaler")
                .unwrap()
                .version,
            "v2"
        );
        assert!(!find("", "Namespace").unwrap().namespaced());
    }

    #[test]
    fn plurals() {
        assert_eq!(plural_of("networking.k8s.io/v1", "Ingress"), "ingresses");
        assert_eq!(plural_of("v1", "Endpoints"), "endpoints");
        assert_eq!(plural_of("example.com/v1", "Policy"), "policies");
        assert_eq!(plural_of("example.com/v1", "Widget"), "widgets");
        assert_eq!(plural_of("example.com/v1", "Class"), "classes");
    }

    #[test]
    fn rows_are_unique_and_crds_have_no_patch_schema() {
        let all: Vec<&Kind> = rows().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(
                    (a.group, a.version, a.plural) != (b.group, b.version, b.plural),
                    "{} listed twice",
                    a.plural
                );
            }
            if a.served == Served::Crd {
                assert!(a.patch_schema.is_none());
            }
        }
    }
}
