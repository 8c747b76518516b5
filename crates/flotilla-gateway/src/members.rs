//! The members the gateway can send to: every ManagedCluster on the hub with a client built
//! from the credentials the hub stores, whether the hub reports it available, which Services
//! it has (listed every second), and its failure record (3 failures in a row take it out for
//! 10 s).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use flotilla_controllers::application::member_clients::{Identity, impersonating};
use flotilla_controllers::cluster::{credentials, managed_cluster};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use parking_lot::{Mutex, RwLock};

use crate::member_stream::MemberStreams;
use crate::metrics::ClusterSeries;

/// Failures in a row that take a member out.
pub(crate) const FAILURES_TO_EJECT: u32 = 3;
/// How long a member stays out.
pub(crate) const EJECTION: Duration = Duration::from_secs(10);
/// How often the members and their Services are read again.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Connect timeout towards a member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a member's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One member.
pub(crate) struct Member {
    pub name: String,
    pub client: kube::Client,
    /// Relays requests to the member's service proxy, as the same identity as `client`.
    pub relay: MemberStreams,
    /// Its metric series, looked up on its first request.
    pub series: OnceLock<ClusterSeries>,
    state: RwLock<MemberState>,
    breaker: Mutex<Breaker>,
}

#[derive(Default)]
struct MemberState {
    available: bool,
    /// Its Services answered the last listing.
    reachable: bool,
    /// `namespace/name` of its Services.
    services: HashSet<String>,
}

#[derive(Default)]
struct Breaker {
    failures_in_a_row: u32,
    out_until: Option<Instant>,
}

impl Member {
    /// Whether the member has the Service and is usable (available, answering, not out).
    pub(crate) fn serves(&self, service_key: &str, now: Instant) -> bool {
        self.has(service_key) && !self.is_out(now)
    }

    /// Whether the member is available and has the Service (breaker aside).
    pub(crate) fn has(&self, service_key: &str) -> bool {
        let state = self.state.read();
        state.available && state.reachable && state.services.contains(service_key)
    }

    fn is_out(&self, now: Instant) -> bool {
        self.breaker
            .lock()
            .out_until
            .is_some_and(|until| now < until)
    }

    /// A request succeeded.
    pub(crate) fn record_success(&self) {
        let mut breaker = self.breaker.lock();
        breaker.failures_in_a_row = 0;
    }

    /// A request failed (refused, broken or 5xx); true when this takes the member out.
    pub(crate) fn record_failure(&self, now: Instant) -> bool {
        let mut breaker = self.breaker.lock();
        breaker.failures_in_a_row += 1;
        if breaker.failures_in_a_row >= FAILURES_TO_EJECT {
            breaker.failures_in_a_row = 0;
            breaker.out_until = Some(now + EJECTION);
            return true;
        }
        false
    }
}

#[cfg(test)]
impl Member {
    /// A member that is available and has `services` (`namespace/name`).
    pub(crate) fn serving(
        name: &str,
        client: kube::Client,
        relay: MemberStreams,
        services: &[&str],
    ) -> Member {
        Member {
            name: name.to_string(),
            client,
            relay,
            series: OnceLock::new(),
            state: RwLock::new(MemberState {
                available: true,
                reachable: true,
                services: services.iter().map(|s| s.to_string()).collect(),
            }),
            breaker: Mutex::new(Breaker::default()),
        }
    }
}

/// Every member, by name.
#[derive(Default)]
pub(crate) struct Members {
    by_name: RwLock<BTreeMap<String, Arc<Member>>>,
}

impl Members {
    /// The members, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<Member>> {
        self.by_name.read().values().cloned().collect()
    }

    /// Adds `member` (tests build the members themselves).
    #[cfg(test)]
    pub(crate) fn insert(&self, member: Member) {
        self.by_name
            .write()
            .insert(member.name.clone(), Arc::new(member));
    }

    /// Reads the ManagedClusters and each member's Services once.
    pub(crate) async fn refresh(&self, hub_client: &kube::Client) -> anyhow::Result<()> {
        let clusters = managed_cluster::api(hub_client)
            .list(&ListParams::default())
            .await?;
        let mut seen = HashSet::new();
        for cluster in &clusters.items {
            let Some(name) = cluster.metadata.name.clone() else {
                continue;
            };
            seen.insert(name.clone());
            let available = managed_cluster::is_available(cluster);
            let existing = self.by_name.read().get(&name).cloned();
            let member = match existing {
                Some(m) => {
                    if let Err(e) = m.relay.refresh_preamble().await {
                        tracing::warn!(cluster = %name, error = %e, "member credentials");
                    }
                    m
                }
                None => match build_member(hub_client, &name).await {
                    Ok(m) => {
                        let m = Arc::new(m);
                        self.by_name.write().insert(name.clone(), m.clone());
                        m
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %name, error = %e, "no client for member");
                        continue;
                    }
                },
            };
            member.state.write().available = available;
        }
        self.by_name.write().retain(|name, _| seen.contains(name));
        let members = self.all();
        futures::future::join_all(members.iter().map(|m| list_services(m))).await;
        Ok(())
    }
}

async fn build_member(hub_client: &kube::Client, name: &str) -> anyhow::Result<Member> {
    let mut config = credentials::read(hub_client, name)
        .await?
        .to_config(name, None)
        .await?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    // The hub's stored credential only impersonates: list Services and proxy to them as the
    // gateway's own identity, which the member's audit log names.
    let gateway = Identity::hub_component("ingress-gateway", &["system:masters"]);
    let mut relay_config = config.clone();
    relay_config.auth_info.impersonate = gateway.user.clone();
    relay_config.auth_info.impersonate_groups = Some(gateway.groups.clone());
    Ok(Member {
        name: name.to_string(),
        relay: MemberStreams::new(&relay_config)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        client: impersonating(kube::Client::try_from(config)?, &gateway),
        series: OnceLock::new(),
        state: RwLock::new(MemberState::default()),
        breaker: Mutex::new(Breaker::default()),
    })
}

async fn list_services(member: &Member) {
    if !member.state.read().available {
        return;
    }
    let api: Api<Service> = Api::all(member.client.clone());
    let listed =
        tokio::time::timeout(CONNECT_TIMEOUT, api.list_metadata(&ListParams::default())).await;
    let mut state = member.state.write();
    match listed {
        Ok(Ok(list)) => {
            state.reachable = true;
            state.services = list
                .items
                .iter()
                .map(|s| {
                    format!(
                        "{}/{}",
                        s.metadata.namespace.as_deref().unwrap_or(""),
                        s.metadata.name.as_deref().unwrap_or("")
                    )
                })
                .collect();
        }
        Ok(Err(e)) => {
            tracing::debug!(cluster = %member.name, error = %e, "listing services failed");
            state.reachable = false;
        }
        Err(_) => state.reachable = false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_in_a_row_take_a_member_out_for_ten_seconds() {
        let mut breaker = Breaker::default();
        let now = Instant::now();
        let fail = |b: &mut Breaker| {
            b.failures_in_a_row += 1;
            if b.failures_in_a_row >= FAILURES_TO_EJECT {
                b.failures_in_a_row = 0;
                b.out_until = Some(now + EJECTION);
            }
        };
        fail(&mut breaker);
        fail(&mut breaker);
        assert!(breaker.out_until.is_none());
        fail(&mut breaker);
        assert!(
            breaker
                .out_until
                .is_some_and(|u| u > now + Duration::from_secs(9))
        );
    }
}
