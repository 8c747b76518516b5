//! The drift watch's desired objects, with how many objects of each wake-up group (one
//! component in one workflow step of an application, in every cluster it goes to) are not
//! known to be healthy, so that an object's health change can tell whether its group just
//! became all healthy, or stopped being so, without looking at its other objects: that is
//! when a pass can move on (a step succeeds, a `dependsOn` component may start) or has
//! something new to show.

use std::collections::{HashMap, HashSet};

use super::desired_object::{DesiredObject, Templates};
use super::drift_watch::{Desired, NameKey, ObjectKey, WatchKey};

/// An application: namespace, name.
pub(crate) type AppKey = (String, String);

/// A wake-up group: the application and its step and component, hashed.
type GroupKey = (AppKey, u64);

fn app_of(desired: &Desired) -> AppKey {
    (
        desired.app.namespace.clone().unwrap_or_default(),
        desired.app.name.clone().unwrap_or_default(),
    )
}

fn group_of(desired: &Desired) -> GroupKey {
    (app_of(desired), desired.group)
}

/// Every dispatched object's desired state (their templates shared between clusters,
/// `desired_object.rs`), and per wake-up group the number of its objects whose health is not
/// known to be good (never judged, or judged unhealthy).
///
/// Objects are held by watch (cluster, apiVersion, kind), then by namespace and name: each
/// object's entry keeps only its own names, and a watch's relist looks at its own objects.
#[derive(Default)]
pub(crate) struct DesiredSet {
    objects: HashMap<WatchKey, HashMap<NameKey, Desired>>,
    templates: Templates,
    not_healthy: HashMap<GroupKey, usize>,
}

impl DesiredSet {
    fn count(&mut self, desired: &Desired, delta: isize) {
        if desired.health == Some(true) {
            return;
        }
        let group = group_of(desired);
        let n = self.not_healthy.entry(group.clone()).or_default();
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.not_healthy.remove(&group);
        }
    }

    /// Takes `key`'s entry out (a watch left with no object is dropped).
    fn take(&mut self, key: &ObjectKey) -> Option<Desired> {
        let objects = self.objects.get_mut(&key.watch)?;
        let old = objects.remove(&key.name);
        if objects.is_empty() {
            self.objects.remove(&key.watch);
        }
        old
    }

    /// Records `desired` for `key`, keeping the health last judged or seen, and what the
    /// watch verified when the desired object is the same.
    pub(crate) fn insert(&mut self, key: ObjectKey, mut desired: Desired) {
        self.templates.share(&mut desired.object);
        if let Some(old) = self.take(&key) {
            desired.health = desired.health.or(old.health);
            if desired.verified.is_none() && old.object == desired.object {
                desired.verified = old.verified.clone();
            }
            self.count(&old, -1);
            self.templates.release(&old.object);
        }
        self.count(&desired, 1);
        self.objects
            .entry(key.watch)
            .or_default()
            .insert(key.name, desired);
    }

    /// Forgets one object.
    pub(crate) fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.take(key) {
            self.count(&old, -1);
            self.templates.release(&old.object);
        }
    }

    /// Forgets every object of an application.
    pub(crate) fn remove_app(&mut self, app_namespace: &str, app_name: &str) {
        let templates = &mut self.templates;
        self.objects.retain(|_, objects| {
            objects.retain(|_, d| {
                let keep = d.app.namespace.as_deref() != Some(app_namespace)
                    || d.app.name.as_deref() != Some(app_name);
                if !keep {
                    templates.release(&d.object);
                }
                keep
            });
            !objects.is_empty()
        });
        self.not_healthy
            .retain(|(app, _), _| app.0 != app_namespace || app.1 != app_name);
    }

    /// Records what the watch verified of `key` (`None`: nothing), if its desired object
    /// is still `compared`, the one the event was compared with.
    pub(crate) fn set_verified(
        &mut self,
        key: &ObjectKey,
        compared: &DesiredObject,
        verified: Option<super::drift_watch::Verified>,
    ) {
        if let Some(entry) = self.get_mut(key)
            && entry.object == *compared
        {
            entry.verified = verified;
        }
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Desired> {
        self.objects.get(&key.watch)?.get(&key.name)
    }

    pub(crate) fn get_mut(&mut self, key: &ObjectKey) -> Option<&mut Desired> {
        self.objects.get_mut(&key.watch)?.get_mut(&key.name)
    }

    /// Records the health of one object; when this makes its group's objects all healthy,
    /// or makes one of them unhealthy while all were healthy, returns the application (to
    /// reconcile again). Other changes return `None`: the group has more to wait for, or
    /// nothing new to show.
    pub(crate) fn set_health(&mut self, key: &ObjectKey, healthy: bool) -> Option<AppKey> {
        let entry = self.objects.get_mut(&key.watch)?.get_mut(&key.name)?;
        if entry.health == Some(healthy) {
            return None;
        }
        let was_unknown_or_bad = entry.health != Some(true);
        entry.health = Some(healthy);
        let group = group_of(entry);
        let before = self.not_healthy.get(&group).copied().unwrap_or(0);
        let after = match (was_unknown_or_bad, healthy) {
            (true, true) => before.saturating_sub(1),
            (false, false) => before + 1,
            _ => before,
        };
        let changed = (before == 0) != (after == 0);
        if after == 0 {
            self.not_healthy.remove(&group);
        } else {
            self.not_healthy.insert(group.clone(), after);
        }
        changed.then_some(group.0)
    }

    /// Records the health a pass judged one object to have, unless the watch has reported
    /// the object since it was registered: a pass's read may be older than the watch's last
    /// event (the pass reads, the object changes, the event arrives, the pass records), and
    /// recording it would lose that event's news.
    pub(crate) fn judged(&mut self, key: &ObjectKey, healthy: bool) {
        if self.get(key).is_some_and(|d| d.health.is_none()) {
            self.set_health(key, healthy);
        }
    }

    /// The keys of `watch`'s objects, except those named in `except` (namespace, name).
    pub(crate) fn keys_of_watch(
        &self,
        watch: &WatchKey,
        except: &HashSet<NameKey>,
    ) -> Vec<ObjectKey> {
        let Some(objects) = self.objects.get(watch) else {
            return Vec::new();
        };
        objects
            .keys()
            .filter(|name| !except.contains(*name))
            .map(|name| ObjectKey {
                watch: watch.clone(),
                name: name.clone(),
            })
            .collect()
    }

    /// Objects held (for tests and sizes).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.objects.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ObjectReference;
    use serde_json::json;

    use super::super::dispatch::KindInfo;
    use super::super::member_clients::Identity;
    use super::*;

    fn app(name: &str) -> Arc<ObjectReference> {
        Arc::new(ObjectReference {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        })
    }

    fn desired(app: &Arc<ObjectReference>, group: u64) -> Desired {
        Desired {
            object: DesiredObject::of(&json!({}), "a"),
            kind: KindInfo::of("apps/v1", "Deployment"),
            exempt: Vec::new(),
            identity: Arc::new(Identity::of(None)),
            app: Arc::clone(app),
            report: false,
            health: None,
            group,
            verified: None,
        }
    }

    fn key(cluster: &str, name: &str) -> ObjectKey {
        ObjectKey::new(cluster, "apps/v1", "Deployment", "default", name)
    }

    fn web() -> AppKey {
        ("default".into(), "web".into())
    }

    #[test]
    fn wakes_only_when_the_last_object_becomes_healthy_or_one_stops_being_so() {
        let (web_app, other) = (app("web"), app("other"));
        let mut set = DesiredSet::default();
        for cluster in ["a", "b", "c"] {
            set.insert(key(cluster, "web"), desired(&web_app, 1));
        }
        set.insert(key("a", "other"), desired(&other, 1));
        // Not ready yet, then ready one by one: only the last one wakes the application.
        assert_eq!(set.set_health(&key("a", "web"), false), None);
        assert_eq!(set.set_health(&key("a", "web"), true), None);
        assert_eq!(set.set_health(&key("b", "web"), true), None);
        assert_eq!(set.set_health(&key("b", "web"), true), None, "no change");
        assert_eq!(set.set_health(&key("c", "web"), true), Some(web()));
        // A pass registering the same objects again keeps what was seen.
        set.insert(key("c", "web"), desired(&web_app, 1));
        assert_eq!(set.set_health(&key("c", "web"), true), None);
        // One stops being healthy: wake; a second one too: nothing new; both back: wake.
        assert_eq!(set.set_health(&key("a", "web"), false), Some(web()));
        assert_eq!(set.set_health(&key("b", "web"), false), None);
        assert_eq!(set.set_health(&key("a", "web"), true), None);
        assert_eq!(set.set_health(&key("b", "web"), true), Some(web()));
        // The other application is counted apart.
        assert_eq!(
            set.set_health(&key("a", "other"), true),
            Some(("default".into(), "other".into()))
        );
        // Forgetting an unhealthy object can leave the rest all healthy (the pass that
        // forgot it sees that itself).
        assert_eq!(set.set_health(&key("a", "web"), false), Some(web()));
        set.remove(&key("a", "web"));
        assert_eq!(set.set_health(&key("b", "web"), false), Some(web()));
        // Another group of the same application (another step or component) is apart.
        set.insert(key("a", "db"), desired(&web_app, 2));
        assert_eq!(set.set_health(&key("a", "db"), true), Some(web()));
        set.remove_app("default", "web");
        assert_eq!(set.len(), 1, "only the other application's object");
        // A pass's judgement counts only until the watch has said something.
        set.insert(key("a", "late"), desired(&web_app, 3));
        set.judged(&key("a", "late"), false);
        assert_eq!(set.set_health(&key("a", "late"), true), Some(web()));
        set.judged(&key("a", "late"), false);
        assert_eq!(
            set.get(&key("a", "late")).and_then(|d| d.health),
            Some(true)
        );
        assert_eq!(set.set_health(&key("b", "web"), true), None, "forgotten");
    }

    #[test]
    fn a_watch_finds_its_own_objects_and_an_emptied_watch_is_dropped() {
        let web_app = app("web");
        let mut set = DesiredSet::default();
        for (cluster, name) in [("a", "web"), ("a", "db"), ("b", "web")] {
            set.insert(key(cluster, name), desired(&web_app, 1));
        }
        let watch_a = key("a", "web").watch;
        let listed: HashSet<NameKey> = [key("a", "db").name].into_iter().collect();
        assert_eq!(set.keys_of_watch(&watch_a, &listed), vec![key("a", "web")]);
        let other_kind = ("a".to_string(), "v1".to_string(), "Service".to_string());
        assert!(set.keys_of_watch(&other_kind, &HashSet::new()).is_empty());
        set.remove(&key("b", "web"));
        assert!(!set.objects.contains_key(&key("b", "web").watch));
        assert!(set.get(&key("b", "web")).is_none());
        assert!(set.get(&key("a", "db")).is_some());
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn what_the_watch_verified_lasts_while_the_desired_object_is_the_same() {
        let web_app = app("web");
        let mut set = DesiredSet::default();
        let verified = || super::super::drift_watch::Verified {
            session: 7,
            observed: super::super::health::Observed {
                healthy: true,
                message: "Ready:1/1".into(),
                gateway: None,
            },
        };
        let (v1, v2) = (
            DesiredObject::of(&json!({}), "a"),
            DesiredObject::of(&json!({"v": 2}), "a"),
        );
        let is_verified = |set: &DesiredSet| {
            set.get(&key("a", "web"))
                .is_some_and(|d| d.verified.is_some())
        };
        set.insert(key("a", "web"), desired(&web_app, 1));
        set.set_verified(&key("a", "web"), &v1, Some(verified()));
        assert!(is_verified(&set));
        // A pass registering the same object again keeps it.
        set.insert(key("a", "web"), desired(&web_app, 1));
        assert!(is_verified(&set));
        // A new desired object drops it, and an event compared with the old one is not
        // recorded against the new one.
        let mut changed = desired(&web_app, 1);
        changed.object = v2.clone();
        set.insert(key("a", "web"), changed);
        assert!(!is_verified(&set));
        set.set_verified(&key("a", "web"), &v1, Some(verified()));
        assert!(!is_verified(&set));
        set.set_verified(&key("a", "web"), &v2, Some(verified()));
        assert!(is_verified(&set));
        set.set_verified(&key("a", "web"), &v2, None);
        assert!(!is_verified(&set));
    }
}
