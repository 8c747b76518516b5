//! `shared-resource`: every application sharing a member object is listed in its
//! `app.oam.dev/shared-by` annotation (`ns/name`, comma-separated, the owner first). The object
//! stays until the last sharer lets go; when the owner lets go, ownership (the
//! `app.oam.dev/name|namespace` labels) passes to the next sharer. Pure.

use flotilla_apis::labels;
use serde_json::{Value, json};

/// The sharers listed on a live object.
pub(crate) fn sharers(live: &Value) -> Vec<String> {
    live["metadata"]["annotations"][labels::SHARED_BY]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The merge patch that adds `me` to the sharers (`owner` first when the list is new);
/// `None` when `me` is listed already.
pub(crate) fn join(live: &Value, owner: &str, me: &str) -> Option<Value> {
    let mut list = sharers(live);
    if list.iter().any(|s| s == me) {
        return None;
    }
    if list.is_empty() && owner != me {
        list.push(owner.to_string());
    }
    list.push(me.to_string());
    Some(annotation_patch(&list))
}

/// What letting go of a live object means for `me`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Release {
    /// Nobody else shares it: delete it.
    Delete,
    /// Others share it: apply this merge patch (and do not delete).
    Keep(Value),
    /// Neither owned nor shared by `me`: leave it alone.
    NotOurs,
}

/// Letting go of `live`; `owned` when `me` owns it.
pub(crate) fn release(live: &Value, me: &str, owned: bool) -> Release {
    let list = sharers(live);
    let remaining: Vec<String> = list.iter().filter(|s| *s != me).cloned().collect();
    if owned {
        let Some(next) = remaining.first() else {
            return Release::Delete;
        };
        let (namespace, name) = next.split_once('/').unwrap_or(("", next.as_str()));
        let mut patch = annotation_patch(&remaining);
        patch["metadata"]["labels"] = json!({
            labels::APP_NAME: name,
            labels::APP_NAMESPACE: namespace,
        });
        return Release::Keep(patch);
    }
    if remaining.len() == list.len() {
        return Release::NotOurs;
    }
    Release::Keep(annotation_patch(&remaining))
}

fn annotation_patch(list: &[String]) -> Value {
    json!({"metadata": {"annotations": {labels::SHARED_BY: list.join(",")}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(shared_by: Option<&str>) -> Value {
        match shared_by {
            Some(s) => json!({"metadata": {"annotations": {"app.oam.dev/shared-by": s}}}),
            None => json!({"metadata": {}}),
        }
    }

    #[test]
    fn join_lists_the_owner_first_once() {
        assert_eq!(
            join(&live(None), "default/a", "default/b"),
            Some(
                json!({"metadata": {"annotations": {"app.oam.dev/shared-by": "default/a,default/b"}}})
            )
        );
        assert_eq!(
            join(&live(None), "default/a", "default/a"),
            Some(json!({"metadata": {"annotations": {"app.oam.dev/shared-by": "default/a"}}}))
        );
        assert_eq!(
            join(&live(Some("default/a,default/b")), "default/a", "default/b"),
            None
        );
    }

    #[test]
    fn the_last_sharer_deletes_and_ownership_passes_on() {
        assert_eq!(release(&live(None), "default/a", true), Release::Delete);
        assert_eq!(
            release(&live(Some("default/a")), "default/a", true),
            Release::Delete
        );
        let Release::Keep(patch) =
            release(&live(Some("default/a,x/b,default/c")), "default/a", true)
        else {
            panic!("kept")
        };
        assert_eq!(
            patch["metadata"]["annotations"]["app.oam.dev/shared-by"],
            "x/b,default/c"
        );
        assert_eq!(patch["metadata"]["labels"]["app.oam.dev/name"], "b");
        assert_eq!(patch["metadata"]["labels"]["app.oam.dev/namespace"], "x");
        let Release::Keep(patch) = release(&live(Some("default/a,x/b")), "x/b", false) else {
            panic!("kept")
        };
        assert_eq!(
            patch["metadata"]["annotations"]["app.oam.dev/shared-by"],
            "default/a"
        );
        assert!(patch["metadata"].get("labels").is_none());
        assert_eq!(
            release(&live(Some("default/a")), "x/b", false),
            Release::NotOurs
        );
    }
}
