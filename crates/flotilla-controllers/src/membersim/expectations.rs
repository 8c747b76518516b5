//! The ReplicaSet controller's expectations: which of its own Pod creations and deletions its
//! Pod cache does not show yet. While any is outstanding the controller does not act on the
//! cache (it would count too few or too many Pods and create or delete again). Expectations
//! are by Pod name, so a slow cache only delays the controller, it never makes it act twice;
//! like Kubernetes' controller expectations they expire after five minutes (a Pod someone
//! else deleted before the cache ever saw it would otherwise hold its owner back for ever).
//! And every workload controller's last writes ([`LastWrites`]), so that it does not write
//! again from a cache that does not show its previous write yet.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long an unobserved creation or deletion holds its owner back (Kubernetes: 5 minutes).
pub(crate) const EXPECTATION_TTL: Duration = Duration::from_secs(300);

/// Above this many owners with outstanding writes, expired ones are dropped.
const PURGE_ABOVE: usize = 4096;

/// What the cache shows of one Pod name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cached {
    /// Not in the cache.
    Absent,
    /// In the cache, counting towards its owner.
    Active,
    /// In the cache, being deleted or finished.
    Inactive,
}

#[derive(Debug)]
struct Pending {
    creations: HashSet<String>,
    deletions: HashSet<String>,
    since: Instant,
}

/// Outstanding creations and deletions per owner uid.
#[derive(Debug, Default)]
pub(crate) struct Expectations {
    by_owner: HashMap<String, Pending>,
}

impl Expectations {
    fn entry(&mut self, owner: &str, now: Instant) -> &mut Pending {
        if self.by_owner.len() >= PURGE_ABOVE {
            // Owners deleted while they had writes outstanding are never asked about again.
            self.by_owner
                .retain(|_, p| now.duration_since(p.since) < EXPECTATION_TTL);
        }
        let pending = self
            .by_owner
            .entry(owner.to_string())
            .or_insert_with(|| Pending {
                creations: HashSet::new(),
                deletions: HashSet::new(),
                since: now,
            });
        pending.since = now;
        pending
    }

    /// `owner` created the Pod `name`.
    pub(crate) fn created(&mut self, owner: &str, name: &str, now: Instant) {
        self.entry(owner, now).creations.insert(name.to_string());
    }

    /// `owner` deleted (or is about to delete) the Pod `name`.
    pub(crate) fn deleted(&mut self, owner: &str, name: &str, now: Instant) {
        let pending = self.entry(owner, now);
        pending.creations.remove(name);
        pending.deletions.insert(name.to_string());
    }

    /// Whether some of `owner`'s writes are not in the cache yet (`cached` says what the cache
    /// shows of a name). Observed ones are forgotten, and so is everything once it expired.
    pub(crate) fn outstanding(
        &mut self,
        owner: &str,
        cached: impl Fn(&str) -> Cached,
        now: Instant,
    ) -> bool {
        let Some(pending) = self.by_owner.get_mut(owner) else {
            return false;
        };
        pending.creations.retain(|n| cached(n) == Cached::Absent);
        pending.deletions.retain(|n| cached(n) == Cached::Active);
        let expired = now.duration_since(pending.since) >= EXPECTATION_TTL;
        if expired || (pending.creations.is_empty() && pending.deletions.is_empty()) {
            self.by_owner.remove(owner);
            return false;
        }
        true
    }

    /// Forgets an owner that is gone.
    pub(crate) fn forget(&mut self, owner: &str) {
        self.by_owner.remove(owner);
    }

    /// How many owners have outstanding writes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_owner.len()
    }

    /// Whether no owner has outstanding writes.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_owner.is_empty()
    }
}

/// Above this many objects whose cache has not shown our write yet, the record is dropped
/// (at worst some outdated status is written again, as without the record).
const LAST_WRITES_PURGE_ABOVE: usize = 65_536;

/// Per object uid, the resourceVersion a controller's last write to it was based on, until
/// its cache shows another version. While the cache still shows that version, whatever the
/// controller would write is computed from an outdated view (writing it anyway makes one more
/// event per look, and a cache that falls further behind).
#[derive(Debug, Default)]
pub(crate) struct LastWrites {
    based_on: HashMap<String, String>,
}

impl LastWrites {
    /// Whether the cache's `rv` of `uid` is still the version our last write was based on.
    pub(crate) fn stale(&mut self, uid: &str, rv: &str) -> bool {
        match self.based_on.get(uid) {
            Some(based_on) if based_on == rv => true,
            Some(_) => {
                self.based_on.remove(uid);
                false
            }
            None => false,
        }
    }

    /// Records a write to `uid` based on the cached `rv` that the server answered with
    /// `new_rv`; a write that changed nothing (same resourceVersion) is not waited for.
    pub(crate) fn wrote(&mut self, uid: &str, rv: &str, new_rv: Option<&str>) {
        if new_rv == Some(rv) {
            return;
        }
        if self.based_on.len() >= LAST_WRITES_PURGE_ABOVE {
            self.based_on.clear();
        }
        self.based_on.insert(uid.to_string(), rv.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_write_from_a_cache_that_does_not_show_the_last_one() {
        let mut w = LastWrites::default();
        assert!(!w.stale("d", "5"));
        w.wrote("d", "5", Some("6"));
        // The cache still shows version 5: what we would write comes from before our write.
        assert!(w.stale("d", "5"));
        // It caught up (or someone else wrote): write freely again.
        assert!(!w.stale("d", "6"));
        assert!(!w.stale("d", "5"));
        // A write that changed nothing brings no event to wait for.
        w.wrote("d", "7", Some("7"));
        assert!(!w.stale("d", "7"));
    }

    fn cache(active: &'static [&'static str]) -> impl Fn(&str) -> Cached {
        move |n| {
            if active.contains(&n) {
                Cached::Active
            } else {
                Cached::Absent
            }
        }
    }

    #[test]
    fn a_creation_holds_its_owner_until_the_cache_shows_it_however_slow() {
        let mut e = Expectations::default();
        let t0 = Instant::now();
        e.created("rs", "p1", t0);
        e.created("rs", "p2", t0);
        // A cache 60 s behind (seen on a loaded machine) still holds the owner back: acting on
        // it would create the same Pods again.
        let later = t0 + Duration::from_secs(60);
        assert!(e.outstanding("rs", cache(&[]), later));
        assert!(e.outstanding("rs", cache(&["p1"]), later));
        assert!(!e.outstanding("rs", cache(&["p1", "p2"]), later));
        assert!(e.is_empty());
    }

    #[test]
    fn a_seen_creation_stays_seen_when_the_pod_goes_away_later() {
        let mut e = Expectations::default();
        let t0 = Instant::now();
        e.created("rs", "p1", t0);
        e.created("rs", "p2", t0);
        assert!(e.outstanding("rs", cache(&["p1"]), t0));
        // p1 was deleted by someone else after the cache saw it: only p2 is awaited.
        assert!(!e.outstanding("rs", cache(&["p2"]), t0));
    }

    #[test]
    fn a_deletion_holds_its_owner_until_the_cache_drops_or_deactivates_the_pod() {
        let mut e = Expectations::default();
        let t0 = Instant::now();
        e.deleted("rs", "p1", t0);
        e.deleted("rs", "p2", t0);
        assert!(e.outstanding("rs", cache(&["p1", "p2"]), t0));
        let terminating = |n: &str| {
            if n == "p1" {
                Cached::Inactive
            } else {
                Cached::Absent
            }
        };
        assert!(!e.outstanding("rs", terminating, t0));
    }

    #[test]
    fn expectations_expire_and_are_per_owner() {
        let mut e = Expectations::default();
        let t0 = Instant::now();
        e.created("a", "p1", t0);
        assert!(!e.outstanding("b", cache(&[]), t0));
        assert!(e.outstanding("a", cache(&[]), t0 + EXPECTATION_TTL / 2));
        assert!(!e.outstanding("a", cache(&[]), t0 + EXPECTATION_TTL));
        e.created("a", "p1", t0);
        e.forget("a");
        assert_eq!(e.len(), 0);
    }
}
