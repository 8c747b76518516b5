//! One strategy per built-in kind: everything the server knows about a kind, declared in one
//! place. A [`Strategy`] names the kind's `k8s-openapi` type (its group, version, kind, plural
//! and scope; typed validation, the `/openapi/v3` schema, the protobuf message), the rest of
//! its kind-table row (short names, `all`, subresources, patch schema), how names are
//! checked, which defaults are filled in, which semantic checks run on create and update,
//! what `kubectl get` prints (each column with its own cell), whether `metadata.generation`
//! is tracked, where `/scale` finds replicas, which field selectors work and which of the
//! aggregated `view`/`edit`/`admin` roles grant it ([`Aggregate`]).
//!
//! The built-in rows of the kind table `flotilla_core::kinds`, which the controllers and the
//! CLI share, are generated from these declarations (`kind_table`). A kind family lives in
//! one file:
//!
//! | file | kinds |
//! |---|---|
//! | [`pods`] | Pod, and the pod-spec defaults and checks every workload shares |
//! | [`apps`] | Deployment, ReplicaSet, StatefulSet, DaemonSet |
//! | [`batch`] | Job, CronJob |
//! | [`networking`] | Service, Endpoints, EndpointSlice, Ingress, IngressClass, NetworkPolicy |
//! | [`config`] | ConfigMap, Secret |
//! | [`cluster`] | Namespace, Node, ServiceAccount, PersistentVolumeClaim, Event (core and `events.k8s.io`), Lease |
//! | [`scaling`] | HorizontalPodAutoscaler, PodDisruptionBudget |
//! | [`rbac`] | Role, ClusterRole, RoleBinding, ClusterRoleBinding |
//! | [`api`] | APIService, CertificateSigningRequest, CustomResourceDefinition |
//! | [`reviews`] | TokenReview, SelfSubjectReview, the four access reviews |
//!
//! Custom resources get [`DEFAULT`]: subdomain names, no defaults, no checks, `Name` and
//! `Created At` columns (their CRD is their strategy).

pub(crate) mod api;
pub(crate) mod apps;
pub(crate) mod batch;
pub(crate) mod cluster;
pub(crate) mod config;
#[cfg(test)]
mod kind_table;
pub(crate) mod networking;
pub(crate) mod pods;
pub(crate) mod print;
pub(crate) mod rbac;
pub(crate) mod reviews;
pub(crate) mod scaling;

use flotilla_core::status::{ApiError, StatusCause};
use flotilla_core::user::UserInfo;
use serde_json::{Map, Value};

use crate::registry::ResourceInfo;
use crate::typed_kinds::{KindScope, KindType, Typed};
use flotilla_core::kinds::{Kind, PatchSchema, Scope};

/// Which of the aggregated roles grant a namespaced kind (through their
/// `system:aggregate-to-*` building blocks, generated from the strategies by
/// `auth::bootstrap`). "Read" is get/list/watch, "write" create/delete/deletecollection/
/// patch/update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    /// In none of them (cluster-scoped kinds, RBAC's own bindings at `edit`, ...).
    None,
    /// `view` reads it (with `/status` and `/scale` when served); `edit` writes it (with
    /// `/scale`).
    ViewEdit,
    /// `view` reads it (with `/status`); nobody below `cluster-admin` writes it.
    View,
    /// `edit` reads and writes it; `view` does not see it (Secrets).
    Edit,
    /// `admin` gets these verbs on it.
    Admin(&'static [&'static str]),
}

/// How a kind's `metadata.name` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (Namespace).
    Label,
    /// DNS-1035 label (Service).
    Dns1035,
    /// Anything without `/` or `%` and not `.`/`..` (RBAC, APIService `v1.`).
    Path,
}

/// One `kubectl get` column with the function computing its cell.
#[derive(Clone, Copy)]
pub(crate) struct PrintColumn {
    /// Header (`Ready`).
    pub name: &'static str,
    /// OpenAPI type of the cell (`string`, `integer`, `boolean`, `date`).
    pub ty: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: i64,
    /// The cell of one object.
    pub cell: fn(&Value) -> Value,
}

impl PrintColumn {
    /// A string column shown by default.
    pub(crate) const fn new(name: &'static str, cell: fn(&Value) -> Value) -> Self {
        PrintColumn {
            name,
            ty: "string",
            priority: 0,
            cell,
        }
    }

    /// Shown only with `-o wide`.
    pub(crate) const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    /// A column of another OpenAPI type.
    pub(crate) const fn typed(mut self, ty: &'static str) -> Self {
        self.ty = ty;
        self
    }
}

/// Where `/scale` finds replicas in a built-in object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScaleFields {
    /// `.spec.replicas`
    pub spec_replicas: &'static str,
    /// `.status.replicas`
    pub status_replicas: &'static str,
}

/// `spec.replicas` / `status.replicas`, what every built-in scalable kind uses.
pub(crate) const REPLICAS: ScaleFields = ScaleFields {
    spec_replicas: ".spec.replicas",
    status_replicas: ".status.replicas",
};

/// How the server treats objects of one built-in kind.
#[derive(Clone, Copy)]
pub(crate) struct Strategy {
    /// The kind's row of the kind table at its preferred version (`flotilla_core::kinds`
    /// holds a generated copy, see `kind_table`).
    pub row: Kind,
    /// A second version the kind is also served at, and whether its objects are stored at
    /// the preferred version (reviews are not stored at all).
    pub also: Option<(&'static str, bool)>,
    /// Its `k8s-openapi` type at each version it has one (preferred version first).
    pub typed: [Option<Typed>; 2],
    /// Which aggregated roles grant it.
    pub aggregate: Aggregate,
    /// Field labels `?fieldSelector=` accepts besides `metadata.name` and
    /// `metadata.namespace`, as kube-apiserver registers them.
    pub field_labels: &'static [&'static str],
    /// How `metadata.name` is checked.
    pub name_rule: NameRule,
    /// Fills in what kube-apiserver defaults (before validation, on every write).
    pub defaults: fn(&mut Value),
    /// What the server sets on create only (initial status, the requesting user, ...), after
    /// defaults and before validation.
    pub on_create: fn(&mut Value, &UserInfo) -> Result<(), ApiError>,
    /// Semantic checks of the whole object; `old` is the stored object on updates.
    pub validate: fn(&Value, Option<&Value>, &mut Vec<StatusCause>),
    /// Checks of what may not change on update (`old`, `new`).
    pub validate_update: fn(&Value, &Value, &mut Vec<StatusCause>),
    /// `kubectl get` columns, each with its cell.
    pub columns: &'static [PrintColumn],
    /// `metadata.generation` is bumped on spec changes.
    pub tracks_generation: bool,
    /// Where `/scale` finds replicas (kinds with a scale subresource).
    pub scale: Option<ScaleFields>,
}

fn no_defaults(_: &mut Value) {}
fn nothing_on_create(_: &mut Value, _: &UserInfo) -> Result<(), ApiError> {
    Ok(())
}
fn no_checks(_: &Value, _: Option<&Value>, _: &mut Vec<StatusCause>) {}
fn no_update_checks(_: &Value, _: &Value, _: &mut Vec<StatusCause>) {}

/// `Name` and `Created At`: the table of kinds without printers of their own.
pub(crate) const NAME_CREATED: &[PrintColumn] = &[
    PrintColumn::new("Name", print::name),
    PrintColumn::new("Created At", print::created_at).typed("date"),
];

impl Strategy {
    /// The kind of `row` with the [`DEFAULT`] behaviour and no `k8s-openapi` type (objects
    /// are stored as sent and have no `/openapi/v3` schema).
    pub(crate) const fn untyped(row: Kind) -> Self {
        Strategy {
            row,
            also: None,
            typed: [None, None],
            aggregate: Aggregate::None,
            field_labels: &[],
            name_rule: NameRule::Subdomain,
            defaults: no_defaults,
            on_create: nothing_on_create,
            validate: no_checks,
            validate_update: no_update_checks,
            columns: NAME_CREATED,
            tracks_generation: false,
            scale: None,
        }
    }
    /// A kind whose objects are decoded through `T`, which also gives its group, version,
    /// kind, plural, scope, schema and protobuf message.
    pub(crate) const fn typed<T: KindType>() -> Self
    where
        T::Scope: KindScope,
    {
        Self::with_type::<T>(Typed::decoded::<T>())
    }
    /// A kind whose `T` gives its identity, schema and protobuf message only (objects are
    /// stored as sent).
    pub(crate) const fn described<T: KindType>() -> Self
    where
        T::Scope: KindScope,
    {
        Self::with_type::<T>(Typed::schema_only::<T>())
    }
    const fn with_type<T: KindType>(t: Typed) -> Self
    where
        T::Scope: KindScope,
    {
        let row = Kind::new(
            T::GROUP,
            T::VERSION,
            T::URL_PATH_SEGMENT,
            T::KIND,
            <T::Scope as KindScope>::SCOPE,
        );
        let mut s = Self::untyped(row);
        s.typed[0] = Some(t);
        s
    }
    /// Also served at `T`'s version, decoded through `T`, stored at the preferred version.
    pub(crate) const fn also<T: KindType>(mut self) -> Self {
        self.also = Some((T::VERSION, true));
        self.typed[1] = Some(Typed::decoded::<T>());
        self
    }
    /// A review also served at `version`, which has no `k8s-openapi` type.
    pub(crate) const fn also_untyped(mut self, version: &'static str) -> Self {
        self.also = Some((version, false));
        self
    }
    /// `kubectl` short names.
    pub(crate) const fn short_names(mut self, names: &'static [&'static str]) -> Self {
        self.row = self.row.short_names(names);
        self
    }
    /// In the `all` category (`kubectl get all`).
    pub(crate) const fn in_all(mut self) -> Self {
        self.row = self.row.all();
        self
    }
    /// `/status` is served.
    pub(crate) const fn status(mut self) -> Self {
        self.row = self.row.status();
        self
    }
    /// Strategic merge patches use `schema` (`None`: refused with 415, as for reviews).
    pub(crate) const fn patch(mut self, schema: Option<PatchSchema>) -> Self {
        self.row = self.row.patch(schema);
        self
    }
    /// Granted by the aggregated roles as `aggregate` says.
    pub(crate) const fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }
    /// `?fieldSelector=` also accepts `labels`.
    pub(crate) const fn field_labels(mut self, labels: &'static [&'static str]) -> Self {
        self.field_labels = labels;
        self
    }
    /// Names follow `rule`.
    pub(crate) const fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
    /// Defaults filled by `f`.
    pub(crate) const fn defaults(mut self, f: fn(&mut Value)) -> Self {
        self.defaults = f;
        self
    }
    /// Create-only settings by `f`.
    pub(crate) const fn on_create(
        mut self,
        f: fn(&mut Value, &UserInfo) -> Result<(), ApiError>,
    ) -> Self {
        self.on_create = f;
        self
    }
    /// Semantic checks by `f`.
    pub(crate) const fn validate(
        mut self,
        f: fn(&Value, Option<&Value>, &mut Vec<StatusCause>),
    ) -> Self {
        self.validate = f;
        self
    }
    /// Update-only checks by `f` (old, new).
    pub(crate) const fn validate_update(
        mut self,
        f: fn(&Value, &Value, &mut Vec<StatusCause>),
    ) -> Self {
        self.validate_update = f;
        self
    }
    /// `kubectl get` columns.
    pub(crate) const fn columns(mut self, columns: &'static [PrintColumn]) -> Self {
        self.columns = columns;
        self
    }
    /// `metadata.generation` is tracked.
    pub(crate) const fn generation(mut self) -> Self {
        self.tracks_generation = true;
        self
    }
    /// `/scale` is served and reads `fields`.
    pub(crate) const fn scale(mut self, fields: ScaleFields) -> Self {
        self.row = self.row.scale();
        self.scale = Some(fields);
        self
    }
}

impl Strategy {
    /// The kind's type at `version`.
    pub(crate) fn typed_at(&self, version: &str) -> Option<Typed> {
        self.typed
            .iter()
            .flatten()
            .find(|t| t.version == version)
            .copied()
    }
}

/// What a kind without a strategy of its own gets.
pub(crate) const DEFAULT: Strategy =
    Strategy::untyped(Kind::new("", "", "", "", Scope::Namespaced));

/// Every family's strategies.
const FAMILIES: &[&[Strategy]] = &[
    pods::STRATEGIES,
    apps::STRATEGIES,
    batch::STRATEGIES,
    networking::STRATEGIES,
    config::STRATEGIES,
    cluster::STRATEGIES,
    scaling::STRATEGIES,
    rbac::STRATEGIES,
    api::STRATEGIES,
    reviews::STRATEGIES,
];

/// The strategy of built-in `kind` in `group` ([`DEFAULT`] when it has none).
pub(crate) fn for_kind(group: &str, kind: &str) -> &'static Strategy {
    FAMILIES
        .iter()
        .flat_map(|family| family.iter())
        .find(|s| s.row.group == group && s.row.kind == kind)
        .unwrap_or(&DEFAULT)
}

/// The strategy of a served resource: its kind's for built-ins, [`DEFAULT`] for custom
/// resources (whose CRD says the rest).
pub(crate) fn of(info: &ResourceInfo) -> &'static Strategy {
    if info.is_builtin() {
        for_kind(&info.group, &info.kind)
    } else {
        &DEFAULT
    }
}

/// The map at `path` inside `v`, when it is an object.
pub(crate) fn obj_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for p in path {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()
}

/// Sets `key` unless it has a non-null value.
pub(crate) fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// The value at `path` inside `v`.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_names_a_builtin_kind_once() {
        let all: Vec<&Strategy> = FAMILIES.iter().flat_map(|f| f.iter()).collect();
        for (i, s) in all.iter().enumerate() {
            assert!(
                flotilla_core::kinds::find(s.row.group, s.row.kind).is_some(),
                "{}/{} is not in the kind table",
                s.row.group,
                s.row.kind
            );
            assert!(
                all[i + 1..]
                    .iter()
                    .all(|o| (o.row.group, o.row.kind) != (s.row.group, s.row.kind)),
                "{}/{} has two strategies",
                s.row.group,
                s.row.kind
            );
        }
    }

    #[test]
    fn every_builtin_kind_has_a_strategy() {
        for k in flotilla_core::kinds::builtin() {
            assert!(
                !std::ptr::eq(for_kind(k.group, k.kind), &DEFAULT),
                "{}/{} has no strategy: add one to its family file",
                k.group,
                k.kind
            );
        }
    }

    /// A strategy's second type is the same kind at the version it is also served at.
    #[test]
    fn second_types_are_the_same_kind() {
        for s in FAMILIES.iter().flat_map(|f| f.iter()) {
            if let Some(t) = s.typed[1] {
                assert_eq!((t.group, t.kind), (s.row.group, s.row.kind));
                assert_eq!(Some((t.version, true)), s.also, "{}", t.kind);
            }
        }
    }

    #[test]
    fn scalable_kinds_say_where_replicas_are() {
        for k in flotilla_core::kinds::builtin() {
            assert_eq!(
                k.scale,
                for_kind(k.group, k.kind).scale.is_some(),
                "{}",
                k.kind
            );
        }
    }

    #[test]
    fn every_table_starts_with_a_name_or_time() {
        for family in FAMILIES {
            for s in family.iter() {
                assert!(!s.columns.is_empty(), "{}", s.row.kind);
            }
        }
    }
}
