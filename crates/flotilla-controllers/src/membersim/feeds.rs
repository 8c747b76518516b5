//! Cache feeds: one watch per cached kind whose events, once the cache shows them, say which
//! objects changed, so that the controllers reading that cache are triggered from it and not
//! from another watch of the same kind.
//!
//! Two ways a controller lost a change before (each left a Service's Endpoints listing Pods
//! the garbage collector had deleted):
//! - Triggered from its own watch but reading another's cache: the trigger could come first,
//!   the reconcile saw the old cache, and the cache catching up triggered nothing.
//! - A re-listing watch (after `410 Expired`) has no Delete events for objects deleted while
//!   it was away: mapping only its objects to owners never tells the owners of the vanished
//!   ones. Here a re-list touches, once the cache holds the new list, every object cached
//!   before it and every object listed.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{Lookup, ObjectRef, store::Writer};
use kube::runtime::watcher;

/// Follows a watcher's `events` into the cache `writer` feeds, calling `touched` with each
/// object an event changed once the cache shows the change. Runs until the stream ends.
pub(crate) async fn follow<K>(
    events: impl Stream<Item = watcher::Result<watcher::Event<K>>>,
    mut writer: Writer<K>,
    mut touched: impl FnMut(&K),
) where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let cache = writer.as_reader();
    let mut before_relist: Vec<Arc<K>> = Vec::new();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(error = %e, "member simulator cache watch failed");
                continue;
            }
        };
        if matches!(event, watcher::Event::Init) {
            // The cache keeps the old list until the new one is complete.
            before_relist = cache.state();
        }
        writer.apply_watcher_event(&event);
        match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => touched(&object),
            watcher::Event::InitDone => {
                for object in before_relist.drain(..).chain(cache.state()) {
                    touched(&object);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

/// The object `meta`'s controller owner of `kind`, in the same namespace.
pub(crate) fn controller_of<K>(meta: &kube::api::ObjectMeta, kind: &str) -> Option<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()>,
{
    let owner = meta
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true) && r.kind == kind)?;
    let object = ObjectRef::new(&owner.name);
    Some(match meta.namespace.as_deref() {
        Some(ns) => object.within(ns),
        None => object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membersim::slim::{SimPod, SimReplicaSet};
    use futures::stream;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;
    use std::sync::Mutex;

    fn pod(name: &str) -> SimPod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": format!("rs-{name}"), "uid": "u", "controller": true}]},
        }))
        .unwrap()
    }

    /// Runs `events` through `follow`, recording for each touched Pod its name and the names
    /// the cache held at that moment.
    async fn touches(events: Vec<Event<SimPod>>) -> Vec<(String, Vec<String>)> {
        let (cache, writer) = reflector::store::<SimPod>();
        let seen = Mutex::new(Vec::new());
        follow(stream::iter(events.into_iter().map(Ok)), writer, |p| {
            let mut names: Vec<String> = cache
                .state()
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            names.sort();
            let name = p.metadata.name.clone().unwrap_or_default();
            seen.lock().unwrap().push((name, names));
        })
        .await;
        seen.into_inner().unwrap()
    }

    fn names(touched: &[(String, Vec<String>)]) -> Vec<&str> {
        touched.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[tokio::test]
    async fn a_change_is_in_the_cache_before_it_triggers() {
        let touched = touches(vec![
            Event::Init,
            Event::InitApply(pod("a")),
            Event::InitDone,
            Event::Apply(pod("b")),
            Event::Delete(pod("a")),
        ])
        .await;
        assert_eq!(
            touched,
            vec![
                ("a".into(), vec!["a".into()]),
                ("b".into(), vec!["a".into(), "b".into()]),
                ("a".into(), vec!["b".into()]),
            ]
        );
    }

    #[tokio::test]
    async fn a_relist_touches_the_objects_deleted_while_the_watch_was_away() {
        let touched = touches(vec![
            Event::Init,
            Event::InitApply(pod("a")),
            Event::InitApply(pod("b")),
            Event::InitDone,
            // The watch expired; "a" was deleted meanwhile and "c" created.
            Event::Init,
            Event::InitApply(pod("b")),
            Event::InitApply(pod("c")),
            Event::InitDone,
        ])
        .await;
        let relisted = &touched[2..];
        let mut relisted_names = names(relisted);
        relisted_names.sort();
        assert_eq!(relisted_names, vec!["a", "b", "b", "c"]);
        // Nothing is touched before the cache holds the new list.
        assert!(
            relisted
                .iter()
                .all(|(_, cached)| cached == &vec!["b".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn the_controller_owner_of_a_kind() {
        let p = pod("a");
        let owner = controller_of::<SimReplicaSet>(&p.metadata, "ReplicaSet").unwrap();
        assert_eq!(owner.name, "rs-a");
        assert_eq!(owner.namespace.as_deref(), Some("default"));
        assert!(controller_of::<SimReplicaSet>(&p.metadata, "Deployment").is_none());
    }
}
