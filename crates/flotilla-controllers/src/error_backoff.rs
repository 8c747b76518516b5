//! The error policy every hub controller shares: a reconcile that fails is retried after a
//! per-object delay that doubles with each failure in a row, from 1 s up to 5 min, and starts
//! over once the object reconciles. A broken object is then retried quickly at first and
//! rarely after a while, instead of every 5 s for ever, and one broken object does not slow
//! the retries of another.
//!
//! ```ignore
//! let backoff = ErrorBackoff::shared();
//! controller
//!     .run(reconcile, backoff.policy("application"), ctx)
//!     .for_each(|result| { backoff.observe(&result); async {} })
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

/// The delay after an object's first failure.
pub(crate) const INITIAL: Duration = Duration::from_secs(1);
/// The longest delay.
pub(crate) const CAP: Duration = Duration::from_secs(300);

/// Failures in a row, per object (`namespace/name`).
#[derive(Debug)]
pub(crate) struct ErrorBackoff {
    initial: Duration,
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl ErrorBackoff {
    /// A backoff from `initial`, doubling, up to `cap`.
    pub(crate) fn new(initial: Duration, cap: Duration) -> ErrorBackoff {
        ErrorBackoff {
            initial,
            cap,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The controllers' backoff (1 s doubling to 5 min), to share between the error policy
    /// and the loop that observes results.
    pub(crate) fn shared() -> Arc<ErrorBackoff> {
        Arc::new(ErrorBackoff::new(INITIAL, CAP))
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        // A panic while holding it cannot leave the counts inconsistent.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a failure of `key`; returns how long to wait before retrying it.
    pub(crate) fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures();
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        let factor = 1u32.checked_shl(*count - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    /// `key` reconciled: its next failure waits `initial` again.
    pub(crate) fn succeeded(&self, key: &str) {
        self.failures().remove(key);
    }

    /// The error policy for `Controller::run`: logs the failure (naming `controller` and the
    /// object) and requeues the object after its backoff.
    pub(crate) fn policy<K, E, C>(
        self: &Arc<Self>,
        controller: &'static str,
    ) -> impl Fn(Arc<K>, &E, Arc<C>) -> Action + use<K, E, C>
    where
        K: Resource,
        E: Display,
    {
        let backoff = Arc::clone(self);
        move |object, error, _ctx| {
            let key = key(object.namespace().as_deref(), &object.name_any());
            let delay = backoff.failed(&key);
            tracing::warn!(controller, object = %key, %error, retry_in = ?delay,
                "reconcile failed; retrying");
            Action::requeue(delay)
        }
    }

    /// Resets the object's backoff when `result` (an item of `Controller::run`'s stream) is
    /// a successful reconcile.
    pub(crate) fn observe<K: Resource, A, E>(&self, result: &Result<(ObjectRef<K>, A), E>) {
        if let Ok((object, _)) = result {
            self.succeeded(&key(object.namespace.as_deref(), &object.name));
        }
    }
}

fn key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_object_up_to_the_cap_and_resets_on_success() {
        let backoff = ErrorBackoff::new(INITIAL, CAP);
        let delays: Vec<u64> = (0..12).map(|_| backoff.failed("ns/a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // Another object is not slowed by the first one's failures.
        assert_eq!(backoff.failed("ns/b"), INITIAL);
        backoff.succeeded("ns/a");
        assert_eq!(backoff.failed("ns/a"), INITIAL);
        assert_eq!(backoff.failed("ns/b"), 2 * INITIAL);
    }

    #[test]
    fn many_failures_stay_at_the_cap() {
        let backoff = ErrorBackoff::new(INITIAL, CAP);
        for _ in 0..100 {
            backoff.failed("ns/a");
        }
        assert_eq!(backoff.failed("ns/a"), CAP);
    }

    #[test]
    fn a_successful_reconcile_in_the_stream_resets_the_object() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let backoff = ErrorBackoff::shared();
        backoff.failed("ns/a");
        backoff.failed("ns/a");
        let failed: Result<(ObjectRef<ConfigMap>, ()), ()> = Err(());
        backoff.observe(&failed);
        assert_eq!(backoff.failed("ns/a"), 4 * INITIAL);
        let ok: Result<_, ()> = Ok((ObjectRef::<ConfigMap>::new("a").within("ns"), ()));
        backoff.observe(&ok);
        assert_eq!(backoff.failed("ns/a"), INITIAL);
    }
}
