//! `metadata.managedFields` bookkeeping for non-apply writes (create, update, patch):
//! the field ownership engine of `flotilla_core::patch`, given the resource's list
//! merge keys and the write's context.

use flotilla_core::patch::{FieldManager, record_managed_fields};
use flotilla_core::patch::{MergeKeys, NoMergeKeys, builtin_merge_keys};
use serde_json::Value;

use crate::objects::now_rfc3339;
use crate::registry::ResourceInfo;

/// The list merge keys field ownership uses for `info` (none for custom resources).
pub(crate) fn merge_keys(info: &ResourceInfo) -> Box<dyn MergeKeys + Send + Sync> {
    match builtin_merge_keys(&info.group, &info.kind) {
        Some(table) if info.is_builtin() => Box::new(table),
        _ => Box::new(NoMergeKeys),
    }
}

/// Records an `Update` by `manager` of what changed between `old` and `new`.
/// `subresource` is `""` or `"status"`/`"scale"`.
pub(crate) fn record_update(
    info: &ResourceInfo,
    new: &mut Value,
    old: Option<&Value>,
    manager: &str,
    subresource: &str,
) {
    let now = now_rfc3339();
    let fm = FieldManager {
        manager,
        now: &now,
        subresource: (!subresource.is_empty()).then_some(subresource),
        ignore_status: info.status && subresource != "status",
    };
    let keys = merge_keys(info);
    record_managed_fields(old, new, keys.as_ref(), &fm);
}
