//! The built-in rows of `flotilla_core::kinds` are generated from the strategies, where each
//! built-in kind is declared once: the controllers and the CLI need the kind table but may
//! not link the server, so `flotilla-core` holds a generated copy
//! (`flotilla-core/src/kinds/builtin_table.rs`). The test here fails when the copy differs
//! from the strategies and, with `FLOTILLA_BLESS=1`, rewrites it.

use std::fmt::Write as _;

use flotilla_core::kinds::{JOB_TEMPLATE, Kind, POD_TEMPLATE, PatchSchema, Scope};

use super::{FAMILIES, Strategy};

/// API groups in discovery order (kube-apiserver's group priority, then Flotilla's additions).
/// A kind in a new group places the group here.
const GROUP_ORDER: &[&str] = &[
    "",
    "apps",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "events.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "apiextensions.k8s.io",
];

const TABLE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../flotilla-core/src/kinds/builtin_table.rs"
);

/// A strategy's rows: its preferred version, then the one it is also served at.
fn rows_of(s: &Strategy) -> impl Iterator<Item = Kind> + use<> {
    let row = s.row;
    let also = s.also.map(|(version, stored_as_preferred)| {
        let also = row.at_version(version);
        if stored_as_preferred {
            also.stored_as(row.version)
        } else {
            also.stored_as(version)
        }
    });
    std::iter::once(row).chain(also)
}

/// Every strategy's rows in discovery order: by group, preferred versions before the second
/// versions of a group, then by plural.
fn declared_rows() -> Vec<Kind> {
    let mut rows: Vec<(usize, bool, Kind)> = Vec::new();
    for s in FAMILIES.iter().flat_map(|f| f.iter()) {
        for (i, row) in rows_of(s).enumerate() {
            let group = GROUP_ORDER.iter().position(|g| *g == row.group);
            let group = group.unwrap_or_else(|| {
                panic!("place group {:?} in kind_table::GROUP_ORDER", row.group)
            });
            rows.push((group, i > 0, row));
        }
    }
    rows.sort_by_key(|(group, second, row)| (*group, *second, row.plural));
    rows.into_iter().map(|(_, _, row)| row).collect()
}

fn quoted(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("&[{}]", items.join(", "))
}

fn patch_schema(schema: Option<PatchSchema>) -> String {
    match schema {
        None => "None".into(),
        Some(s) if Some(s) == POD_TEMPLATE => "POD_TEMPLATE".into(),
        Some(s) if Some(s) == JOB_TEMPLATE => "JOB_TEMPLATE".into(),
        Some(PatchSchema::PodTemplate(path)) => {
            format!("Some(PatchSchema::PodTemplate({}))", quoted(path))
        }
        Some(s) => format!("Some(PatchSchema::{s:?})"),
    }
}

/// One row as the builder expression that makes it.
fn row_source(k: &Kind) -> String {
    let scope = match k.scope {
        Scope::Namespaced => "Scope::Namespaced",
        Scope::Cluster => "Scope::Cluster",
    };
    let mut s = format!(
        "Kind::new({:?}, {:?}, {:?}, {:?}, {scope})",
        k.group, k.version, k.plural, k.kind
    );
    if !k.short_names.is_empty() {
        write!(s, ".short_names({})", quoted(k.short_names)).unwrap();
    }
    match k.categories {
        [] => {}
        ["all"] => s.push_str(".all()"),
        other => panic!("{}: categories {other:?} have no builder", k.kind),
    }
    for (set, call) in [(k.status, ".status()"), (k.scale, ".scale()")] {
        if set {
            s.push_str(call);
        }
    }
    if k.storage_version != k.version {
        write!(s, ".stored_as({:?})", k.storage_version).unwrap();
    }
    if k.patch_schema != Some(PatchSchema::Object) {
        write!(s, ".patch({})", patch_schema(k.patch_schema)).unwrap();
    }
    s
}

fn table_source(rows: &[Kind]) -> String {
    let mut out = String::from(
        "//! The built-in rows of the kind table, in discovery order. Generated from\n\
         //! `flotilla-apiserver`'s strategies (each built-in kind's one declaration): do not edit;\n\
         //! `FLOTILLA_BLESS=1 cargo test -p flotilla-apiserver --lib kind_table` rewrites it.\n\n\
         use super::{JOB_TEMPLATE, Kind, POD_TEMPLATE, PatchSchema, Scope};\n\n\
         /// Every built-in row.\n\
         pub(super) const BUILTIN: &[Kind] = &[\n",
    );
    for row in rows {
        writeln!(out, "    {},", row_source(row)).unwrap();
    }
    out.push_str("];\n");
    out
}

#[test]
fn kind_table_is_generated_from_the_strategies() {
    let declared = declared_rows();
    let generated: Vec<Kind> = flotilla_core::kinds::builtin().copied().collect();
    if std::env::var_os("FLOTILLA_BLESS").is_some() {
        std::fs::write(TABLE_PATH, table_source(&declared)).unwrap();
        eprintln!("rewrote {TABLE_PATH}; run cargo fmt --all and rebuild");
        return;
    }
    if declared == generated {
        return;
    }
    let differ: Vec<String> = declared
        .iter()
        .zip(&generated)
        .filter(|(d, g)| d != g)
        .map(|(d, g)| {
            format!(
                "strategies: {}\ntable:      {}",
                row_source(d),
                row_source(g)
            )
        })
        .take(3)
        .collect();
    panic!(
        "flotilla-core's kind table differs from the strategies ({} vs {} rows):\n{}\n\
         regenerate it: FLOTILLA_BLESS=1 cargo test -p flotilla-apiserver --lib kind_table \
         && cargo fmt --all",
        declared.len(),
        generated.len(),
        differ.join("\n")
    );
}
