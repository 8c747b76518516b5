//! What the hub adds to objects as they are written, from the request's identity.
//!
//! Applications (`core.oam.dev`, and Argo CD's `argoproj.io` Applications and ApplicationSets)
//! carry the user who last created or changed them in the
//! annotations `app.oam.dev/username` and `app.oam.dev/group` (groups comma-separated), so
//! the controllers can act on members as that user. The server overwrites whatever the
//! request wrote there; a write that leaves the spec alone (a controller adding a
//! finalizer, a label change) keeps the recorded user.

use flotilla_core::user::{SYSTEM_AUTHENTICATED, UserInfo};
use serde_json::{Value, json};

use crate::objects::meta_mut;
use crate::registry::ResourceInfo;

/// Annotation: the user who last created or changed the application.
pub(crate) const USERNAME: &str = "app.oam.dev/username";
/// Annotation: that user's groups, comma-separated.
pub(crate) const GROUP: &str = "app.oam.dev/group";

/// KubeVela Applications, and Argo CD Applications and ApplicationSets (synced or generated
/// as their creator).
fn is_application(info: &ResourceInfo) -> bool {
    match info.group.as_str() {
        "core.oam.dev" => info.resource == "applications",
        "argoproj.io" => matches!(info.resource.as_str(), "applications" | "applicationsets"),
        _ => false,
    }
}

fn spec_of(obj: &Value) -> Option<&Value> {
    obj.get("spec")
}

/// Stamps (or preserves) the acting user on an Application about to be stored.
/// `current` is the stored object for updates, `None` for creates.
pub(crate) fn stamp_user(
    info: &ResourceInfo,
    next: &mut Value,
    current: Option<&Value>,
    user: &UserInfo,
) {
    if !is_application(info) {
        return;
    }
    let changed = match current {
        None => true,
        Some(cur) => spec_of(cur) != spec_of(next),
    };
    let (username, group) = if changed && !user.username.is_empty() {
        let groups: Vec<&str> = user
            .groups
            .iter()
            .map(String::as_str)
            .filter(|g| *g != SYSTEM_AUTHENTICATED)
            .collect();
        (Some(user.username.clone()), Some(groups.join(",")))
    } else {
        let kept = |key: &str| {
            current
                .and_then(|c| c.pointer("/metadata/annotations"))
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        (kept(USERNAME), kept(GROUP))
    };
    let meta = meta_mut(next);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    let map = annotations
        .as_object_mut()
        .expect("annotations is an object");
    for (key, value) in [(USERNAME, username), (GROUP, group)] {
        match value {
            Some(v) => {
                map.insert(key.to_string(), json!(v));
            }
            None => {
                map.remove(key);
            }
        }
    }
    if map.is_empty() {
        meta.remove("annotations");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_info() -> ResourceInfo {
        let mut info = crate::builtin::resources().remove(0);
        info.group = "core.oam.dev".into();
        info.resource = "applications".into();
        info
    }

    #[test]
    fn spec_changes_record_the_user_and_other_writes_keep_it() {
        let info = app_info();
        let alice = UserInfo::new("alice", vec!["dev".into(), SYSTEM_AUTHENTICATED.into()]);
        let admin = UserInfo::new("admin", vec!["system:masters".into()]);
        let mut created = json!({"metadata": {"name": "a", "annotations": {USERNAME: "mallory"}}, "spec": {"x": 1}});
        stamp_user(&info, &mut created, None, &alice);
        assert_eq!(created["metadata"]["annotations"][USERNAME], "alice");
        assert_eq!(created["metadata"]["annotations"][GROUP], "dev");
        // A controller adding a finalizer (spec unchanged) keeps alice, even if it tries.
        let mut finalized = created.clone();
        finalized["metadata"]["finalizers"] = json!(["x"]);
        finalized["metadata"]["annotations"][USERNAME] = json!("admin");
        stamp_user(&info, &mut finalized, Some(&created), &admin);
        assert_eq!(finalized["metadata"]["annotations"][USERNAME], "alice");
        // A spec change by someone else records them.
        let mut changed = created.clone();
        changed["spec"]["x"] = json!(2);
        stamp_user(&info, &mut changed, Some(&created), &admin);
        assert_eq!(changed["metadata"]["annotations"][USERNAME], "admin");
        assert_eq!(changed["metadata"]["annotations"][GROUP], "system:masters");
    }

    #[test]
    fn argo_applications_and_application_sets_are_stamped_too() {
        let alice = UserInfo::new("alice", vec!["dev".into()]);
        for (group, resource, stamped) in [
            ("argoproj.io", "applications", true),
            ("argoproj.io", "applicationsets", true),
            ("argoproj.io", "appprojects", false),
            ("apps", "deployments", false),
        ] {
            let mut info = app_info();
            info.group = group.into();
            info.resource = resource.into();
            let mut obj = json!({"metadata": {"name": "a"}, "spec": {}});
            stamp_user(&info, &mut obj, None, &alice);
            let got = obj.pointer("/metadata/annotations/app.oam.dev~1username");
            assert_eq!(got.is_some(), stamped, "{group}/{resource}");
        }
    }
}
