//! A dispatched object's desired state as the drift watch keeps it, one per object per
//! cluster. The copies of one object that an application sends to its clusters differ only
//! in their `app.oam.dev/cluster` label and their render hash (which covers the label), so
//! the rest, the template, is kept once as compact JSON and shared by every cluster it goes
//! to ([`Templates`]); each copy keeps its own hash, and its cluster is the drift watch's key.

use std::collections::HashSet;
use std::sync::Arc;

use flotilla_apis::labels;
use serde_json::{Map, Value};

/// One desired object: its shared template and what this cluster's copy adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DesiredObject {
    /// The object without its cluster label and render hash, as compact JSON.
    template: Arc<[u8]>,
    /// Whether the copy carries the `app.oam.dev/cluster` label naming its cluster.
    labelled: bool,
    /// The copy's render hash, if it has one.
    render_hash: Option<Box<str>>,
}

fn metadata_map<'a>(object: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    object.get_mut("metadata")?.get_mut(field)?.as_object_mut()
}

impl DesiredObject {
    /// `prepared`, the object as dispatch applies it in `cluster`; its template is not
    /// shared yet ([`Templates::share`]).
    pub(crate) fn of(prepared: &Value, cluster: &str) -> Self {
        let mut template = prepared.clone();
        let labelled = metadata_map(&mut template, "labels").is_some_and(|labels| {
            let ours = labels.get(labels::APP_CLUSTER).and_then(Value::as_str) == Some(cluster);
            if ours {
                labels.remove(labels::APP_CLUSTER);
            }
            ours
        });
        let render_hash = metadata_map(&mut template, "annotations").and_then(|a| {
            let hash = Box::from(a.get(labels::RENDER_HASH)?.as_str()?);
            a.remove(labels::RENDER_HASH);
            Some(hash)
        });
        DesiredObject {
            template: serde_json::to_vec(&template).unwrap_or_default().into(),
            labelled,
            render_hash,
        }
    }

    /// The object as dispatch applies it in `cluster` (the one it was made for).
    pub(crate) fn decoded(&self, cluster: &str) -> Value {
        let mut object: Value = serde_json::from_slice(&self.template).unwrap_or(Value::Null);
        if self.labelled
            && let Some(labels) = metadata_map(&mut object, "labels")
        {
            labels.insert(labels::APP_CLUSTER.into(), cluster.into());
        }
        if let Some(hash) = &self.render_hash
            && let Some(annotations) = metadata_map(&mut object, "annotations")
        {
            annotations.insert(labels::RENDER_HASH.into(), hash.as_ref().into());
        }
        object
    }
}

/// The templates held, each once, with how many there were at the last sweep.
#[derive(Default)]
pub(crate) struct Templates {
    held: HashSet<Arc<[u8]>>,
    after_last_sweep: usize,
}

impl Templates {
    /// Makes `object` share its template with an equal one already held (or holds its own).
    pub(crate) fn share(&mut self, object: &mut DesiredObject) {
        match self.held.get(&object.template) {
            Some(held) => object.template = Arc::clone(held),
            None => {
                self.held.insert(Arc::clone(&object.template));
                // A template released while a copy of its object was still in use stays
                // until a sweep: they run as the number held doubles, so at most about as
                // many as are in use are left over.
                if self.held.len() > 2 * self.after_last_sweep + 64 {
                    self.held.retain(|t| Arc::strong_count(t) > 1);
                    self.after_last_sweep = self.held.len();
                }
            }
        }
    }

    /// `object` is about to be dropped: its template goes too unless another object holds it.
    pub(crate) fn release(&mut self, object: &DesiredObject) {
        // Held here and by `object`: no one else.
        if Arc::strong_count(&object.template) <= 2 {
            self.held.remove(&object.template);
        }
    }

    /// Templates held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prepared(cluster: &str, hash: &str, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {labels::APP_NAME: "web", labels::APP_CLUSTER: cluster},
                "annotations": {"keep": "me", labels::RENDER_HASH: hash},
            },
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
        })
    }

    #[test]
    fn decodes_to_the_object_it_was_made_of() {
        let object = prepared("east", "abc", "nginx");
        assert_eq!(DesiredObject::of(&object, "east").decoded("east"), object);
        // A label naming another cluster, no render hash, no metadata: kept as they are.
        let mut other = object.clone();
        other["metadata"]["labels"][labels::APP_CLUSTER] = json!("west");
        other["metadata"]["annotations"] = json!({"keep": "me"});
        assert_eq!(DesiredObject::of(&other, "east").decoded("east"), other);
        let bare = json!({"kind": "Namespace"});
        assert_eq!(DesiredObject::of(&bare, "east").decoded("east"), bare);
    }

    #[test]
    fn clusters_share_a_template_until_the_last_copy_goes() {
        let mut templates = Templates::default();
        let mut east = DesiredObject::of(&prepared("east", "h1", "nginx"), "east");
        let mut west = DesiredObject::of(&prepared("west", "h2", "nginx"), "west");
        let mut changed = DesiredObject::of(&prepared("west", "h3", "httpd"), "west");
        for object in [&mut east, &mut west, &mut changed] {
            templates.share(object);
        }
        assert!(Arc::ptr_eq(&east.template, &west.template));
        assert_ne!(east, west, "the hashes differ");
        assert_eq!(templates.len(), 2);
        assert_eq!(west.decoded("west"), prepared("west", "h2", "nginx"));
        templates.release(&east);
        drop(east);
        assert_eq!(templates.len(), 2, "west still holds it");
        templates.release(&west);
        drop(west);
        assert_eq!(templates.len(), 1);
        // A copy still in use when released is swept later.
        let copy = changed.clone();
        templates.release(&changed);
        drop((changed, copy));
        for i in 0..70 {
            let mut o = DesiredObject::of(&prepared("east", "h", &format!("image-{i}")), "east");
            templates.share(&mut o);
        }
        assert!(templates.len() < 8, "swept: {} left", templates.len());
    }
}
