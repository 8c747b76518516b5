//! Leader election through a `coordination.k8s.io/v1` Lease, the way kube-controller-manager
//! does it: candidates try every `retry_period` to take the Lease
//! `kube-system/flotilla-controllers`; the holder renews it every `retry_period` and gives up
//! (stopping its controllers) when it could not renew for `renew_deadline`, which is shorter
//! than `lease_duration`, so a leader that lost contact has stopped before anyone else may take
//! the expired Lease: no two leaders act at once.
//!
//! As in client-go, a candidate judges expiry on its own clock, never by comparing the
//! holder's `renewTime` with its own wall clock (hubs on different machines may disagree on
//! the time): a Lease has expired when its record (holder, `renewTime`, duration) has not
//! changed for `leaseDurationSeconds` since this candidate first saw it that way. Between
//! tries a candidate watches the Lease, so it sees each renewal as it is written rather than
//! up to one `retry_period` later at its next read, and it tries again right when the Lease
//! expires: a killed leader is replaced about `leaseDurationSeconds` after its last renewal,
//! not up to `retry_period` more. A leader that stops cleanly releases the Lease (empty
//! holder), which the watch shows at once: the next hub takes it right away.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

/// The Lease's namespace.
pub(crate) const LEASE_NAMESPACE: &str = "kube-system";
/// The Lease's name.
pub(crate) const LEASE_NAME: &str = "flotilla-controllers";

/// Errors of one election round (all retried).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ElectionError {
    #[error("reading or writing Lease {LEASE_NAMESPACE}/{LEASE_NAME}: {0}")]
    /// The hub API failed a Lease read or write.
    Api(#[from] kube::Error),
    #[error("no answer about the Lease within {0:?}")]
    /// The hub API did not answer in time.
    Timeout(Duration),
}

/// How the election runs.
#[derive(Debug, Clone)]
pub struct ElectionOptions {
    /// This candidate's `holderIdentity`.
    pub identity: String,
    /// How long a Lease holds without renewal (15 s).
    pub lease_duration: Duration,
    /// The leader stops leading when it could not renew for this long (10 s).
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews (2 s).
    pub retry_period: Duration,
    /// The first try takes the Lease even if another identity holds it. Right only when no
    /// other candidate can exist (embedded storage: one process owns the store), so a restart
    /// with a new port does not wait out its own previous run's Lease.
    pub sole_candidate: bool,
}

impl ElectionOptions {
    /// kube-controller-manager's timings: lease 15 s, renew deadline 10 s, retry 2 s.
    pub fn new(identity: impl Into<String>) -> ElectionOptions {
        ElectionOptions {
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            sole_candidate: false,
        }
    }
}

/// Runs `lead()` whenever this candidate holds the Lease, and drops it (stopping everything it
/// runs) as soon as the Lease is lost, before another candidate can take it. Returns when
/// `shutdown` resolves, after stopping `lead()` and releasing the Lease.
pub async fn run_elected<F, Fut>(
    hub_client: kube::Client,
    options: ElectionOptions,
    mut lead: F,
    shutdown: impl Future<Output = ()>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut elector = Elector {
        leases: Api::namespaced(hub_client, LEASE_NAMESPACE),
        options,
        first_try: true,
        observed: Observed::default(),
    };
    let elect = async {
        loop {
            let acquired = elector.acquire().await;
            tracing::info!(
                identity = %elector.options.identity,
                "holding Lease {LEASE_NAMESPACE}/{LEASE_NAME}: starting the controllers"
            );
            tokio::select! {
                () = lead() => tracing::warn!("the controllers ended while leading"),
                reason = elector.keep(acquired) => tracing::warn!(
                    identity = %elector.options.identity,
                    "lost Lease {LEASE_NAMESPACE}/{LEASE_NAME} ({reason}); controllers stopped"
                ),
            }
        }
    };
    tokio::select! {
        () = elect => {}
        () = shutdown => {}
    }
    // `lead()` is dropped by now: release so another hub need not wait for expiry.
    elector.release().await;
}

/// The Lease's spec each time the watch delivers it (errors are retried with backoff inside).
fn lease_changes(leases: Api<Lease>) -> impl Stream<Item = LeaseSpec> + Unpin {
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE_NAME}"));
    watcher(leases, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|lease| std::future::ready(lease.ok().map(|l| l.spec.unwrap_or_default())))
        .boxed()
}

struct Elector {
    leases: Api<Lease>,
    options: ElectionOptions,
    first_try: bool,
    observed: Observed,
}

/// The Lease record as this candidate last saw it change, and when, on its own clock.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(LeaseSpec, Instant)>,
}

impl Observed {
    /// Notes the record read at `now`; the clock restarts only when it changed.
    fn see(&mut self, spec: &LeaseSpec, now: Instant) {
        match &self.record {
            Some((seen, _)) if seen == spec => {}
            _ => self.record = Some((spec.clone(), now)),
        }
    }

    /// Whether the record has stayed the same for its `leaseDurationSeconds` (`default` when
    /// it names none) since it was first seen.
    fn expired(&self, now: Instant, default: Duration) -> bool {
        self.expires_in(now, default)
            .is_some_and(|left| left.is_zero())
    }

    /// How long until the record seen expires (zero once it has), if one was seen.
    fn expires_in(&self, now: Instant, default: Duration) -> Option<Duration> {
        let (spec, since) = self.record.as_ref()?;
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(default, Duration::from_secs);
        Some(duration.saturating_sub(now.saturating_duration_since(*since)))
    }
}

impl Elector {
    /// Tries every `retry_period` (and right when the Lease seen would expire, if sooner)
    /// until this candidate holds the Lease; returns when the successful try started.
    async fn acquire(&mut self) -> Instant {
        let mut changes = lease_changes(self.leases.clone());
        let mut last_error = String::new();
        loop {
            let attempt = Instant::now();
            match self
                .try_acquire_or_renew_within(self.options.renew_deadline)
                .await
            {
                Ok(true) => return attempt,
                Ok(false) => {}
                Err(e) => {
                    let message = e.to_string();
                    if message != last_error {
                        tracing::warn!(error = %message, "leader election: will retry");
                        last_error = message;
                    }
                }
            }
            self.until_next_try(attempt + self.options.retry_period, &mut changes)
                .await;
        }
    }

    /// Waits until `retry_at`, until the Lease seen expires if that is sooner, or until the
    /// Lease is released, noting every change of the Lease the watch delivers meanwhile. The
    /// watch is what keeps the takeover short: polling alone sees the holder's last renewal up
    /// to `retry_period` late, and the Lease expires `lease_duration` after it was seen.
    /// Seeing it sooner stays safe: a change is seen only after the holder wrote it, so after
    /// the holder started the renewal its `renew_deadline` counts from.
    async fn until_next_try(
        &mut self,
        retry_at: Instant,
        changes: &mut (impl Stream<Item = LeaseSpec> + Unpin),
    ) {
        loop {
            let now = Instant::now();
            let wake = self
                .observed
                .expires_in(now, self.options.lease_duration)
                .filter(|left| !left.is_zero())
                .map_or(retry_at, |left| retry_at.min(now + left));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => return,
                Some(spec) = changes.next() => {
                    self.observed.see(&spec, Instant::now());
                    if spec.holder_identity.as_deref().unwrap_or_default().is_empty() {
                        return; // released: take it now
                    }
                }
            }
        }
    }

    /// Renews every `retry_period` while leading; returns why leadership ended.
    async fn keep(&mut self, acquired: Instant) -> String {
        let mut renewed = acquired;
        loop {
            tokio::time::sleep(self.options.retry_period).await;
            let left = self
                .options
                .renew_deadline
                .saturating_sub(renewed.elapsed());
            if left.is_zero() {
                return format!("not renewed for {:?}", self.options.renew_deadline);
            }
            // Counted from before the request: the renewTime written is no older than this.
            let attempt = Instant::now();
            match self.try_acquire_or_renew_within(left).await {
                Ok(true) => renewed = attempt,
                Ok(false) => return "another hub holds it".into(),
                Err(e) => tracing::warn!(error = %e, "renewing the Lease failed"),
            }
            if renewed.elapsed() >= self.options.renew_deadline {
                return format!("not renewed for {:?}", self.options.renew_deadline);
            }
        }
    }

    async fn try_acquire_or_renew_within(
        &mut self,
        limit: Duration,
    ) -> Result<bool, ElectionError> {
        tokio::time::timeout(limit, self.try_acquire_or_renew())
            .await
            .map_err(|_| ElectionError::Timeout(limit))?
    }

    /// One round: create the Lease, renew ours, or take an expired (or released) one.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, ElectionError> {
        let first_try = std::mem::replace(&mut self.first_try, false);
        let now = MicroTime(Timestamp::now());
        let Some(current) = self.leases.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now.clone(), now, 0)),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        self.observed.see(&spec, Instant::now());
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.options.identity;
        let takeable = ours
            || holder.is_empty()
            || self
                .observed
                .expired(Instant::now(), self.options.lease_duration)
            || (first_try && self.options.sole_candidate);
        if !takeable {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if ours {
            self.spec(
                spec.acquire_time.clone().unwrap_or(now.clone()),
                now,
                transitions,
            )
        } else {
            self.spec(now.clone(), now, transitions + 1)
        };
        let mut lease = current;
        lease.spec = Some(next);
        // The replace carries the resourceVersion read above: two candidates racing for an
        // expired Lease cannot both win.
        match self
            .leases
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.options.identity.clone()),
            lease_duration_seconds: Some(self.options.lease_duration.as_secs() as i32),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up if we hold it (best effort, bounded).
    async fn release(&mut self) {
        let release = async {
            let mut lease = self.leases.get_opt(LEASE_NAME).await.ok()??;
            let spec = lease.spec.as_mut()?;
            if spec.holder_identity.as_deref() != Some(self.options.identity.as_str()) {
                return None;
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            self.leases
                .replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
                .ok()
        };
        if tokio::time::timeout(Duration::from_secs(3), release)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            tracing::info!("released Lease {LEASE_NAMESPACE}/{LEASE_NAME}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_its_duration_after_it_was_last_seen_changing() {
        let default = Duration::from_secs(15);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut observed = Observed::default();
        assert!(!observed.expired(at(100), default), "nothing seen yet");
        // A renewTime an hour old (the holder's clock is behind ours) is not expired yet.
        let old = spec("a", Timestamp::now() - Duration::from_secs(3600));
        observed.see(&old, at(0));
        assert!(!observed.expired(at(14), default));
        assert_eq!(
            observed.expires_in(at(14), default),
            Some(Duration::from_secs(1))
        );
        assert!(observed.expired(at(15), default));
        // The holder renews: the clock restarts when the record changes, not when re-read.
        let renewed = spec("a", Timestamp::now());
        observed.see(&renewed, at(10));
        observed.see(&renewed, at(12));
        assert!(!observed.expired(at(24), default));
        assert!(observed.expired(at(25), default));
        // Even a renewTime in the future expires once unchanged for the duration.
        let ahead = spec("b", Timestamp::now() + Duration::from_secs(3600));
        observed.see(&ahead, at(30));
        assert!(observed.expired(at(45), default));
    }

    #[test]
    fn the_leader_gives_up_before_the_lease_expires() {
        let o = ElectionOptions::new("hub-a");
        assert!(o.renew_deadline + o.retry_period <= o.lease_duration);
    }
}
