//! `flotilla gateway`: one HTTP entry point for the fleet. It serves every hub Ingress of
//! class `flotilla` and sends each request to the backend Service in one of the members that
//! have it, through that member's service proxy, spread by the
//! `gateway.flotilla.io/cluster-weights` annotation (default: equal), with failover.
//!
//! Reaches the hub and the members only through kube-rs. See the README beside this file for
//! the parts in calling order.

pub(crate) mod forward;
pub(crate) mod http1_answer;
pub(crate) mod http1_framing;
pub(crate) mod http1_head;
pub(crate) mod http1_server;
pub(crate) mod ingress_status;
pub(crate) mod member_stream;
pub(crate) mod members;
pub(crate) mod metrics;
pub(crate) mod routes;
pub(crate) mod weights;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use parking_lot::{Mutex, RwLock};

use crate::members::{Member, Members};
use crate::routes::{Backend, RouteTable};
use crate::weights::Spread;

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
}

/// The shared state of a running gateway.
pub(crate) struct Gateway {
    hub_client: kube::Client,
    routes: RwLock<Arc<RouteTable>>,
    members: Members,
    spreads: Mutex<HashMap<String, Spread>>,
    metrics: metrics::GatewayMetrics,
}

impl Gateway {
    /// Picks the member for a request to `backend`, skipping `tried`: the members that have
    /// the Service and are not out, by weight; if the weighted ones are all out, equally over
    /// the rest; if every member is out, equally over those that have the Service.
    fn pick(&self, backend: &Backend, tried: &[Arc<Member>]) -> Option<Arc<Member>> {
        let now = Instant::now();
        let key = backend.service_key.as_str();
        let members = self.members.all();
        let open: Vec<&Arc<Member>> = members
            .iter()
            .filter(|m| !tried.iter().any(|t| t.name == m.name))
            .collect();
        let weight = |m: &Member| backend.weights.as_ref().map_or(1, |w| w.of(&m.name));
        let mut candidates: Vec<(&str, u64)> = open
            .iter()
            .filter(|m| m.serves(key, now))
            .map(|m| (m.name.as_str(), weight(m)))
            .collect();
        if candidates.iter().all(|(_, w)| *w == 0) {
            candidates.iter_mut().for_each(|c| c.1 = 1);
        }
        if candidates.is_empty() {
            candidates = open
                .iter()
                .filter(|m| m.has(key))
                .map(|m| (m.name.as_str(), 1))
                .collect();
        }
        let chosen = {
            let mut spreads = self.spreads.lock();
            match spreads.get_mut(&backend.spread_key) {
                Some(spread) => spread.pick(&candidates),
                None => {
                    let mut spread = Spread::default();
                    let chosen = spread.pick(&candidates);
                    spreads.insert(backend.spread_key.clone(), spread);
                    chosen
                }
            }?
        };
        let name = candidates[chosen].0;
        open.into_iter().find(|m| m.name == name).cloned()
    }
}

/// Binds `listen`, then serves until the process ends.
pub async fn run(hub_client: kube::Client, listen: &str) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen.to_string(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen.to_string(),
        source,
    })?;
    let gateway = Arc::new(Gateway {
        hub_client: hub_client.clone(),
        routes: RwLock::new(Arc::new(RouteTable::default())),
        members: Members::default(),
        spreads: Mutex::new(HashMap::new()),
        metrics: metrics::GatewayMetrics::new(),
    });
    tokio::spawn(refresh_members(gateway.clone()));
    tokio::spawn(watch_ingresses(gateway.clone(), address));
    eprintln!("flotilla gateway serving at http://{address}");
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: let some connections end first.
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        tokio::spawn(http1_server::serve(gateway.clone(), tcp, peer));
    }
}

/// Pause after a failed accept.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Reads the members and their Services every second.
async fn refresh_members(gateway: Arc<Gateway>) {
    loop {
        if let Err(e) = gateway.members.refresh(&gateway.hub_client).await {
            tracing::warn!(error = %format!("{e:#}"), "reading the members failed");
        }
        tokio::time::sleep(members::REFRESH_INTERVAL).await;
    }
}

/// Keeps the route table and the Ingresses' status in step with the hub.
async fn watch_ingresses(gateway: Arc<Gateway>, address: SocketAddr) {
    let api: Api<Ingress> = Api::all(gateway.hub_client.clone());
    let (reader, writer) = reflector::store();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut reported = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watching Ingresses");
                continue;
            }
        }
        let ingresses = reader.state();
        let (table, served) = RouteTable::build(ingresses.iter().map(|i| i.as_ref()));
        *gateway.routes.write() = Arc::new(table);
        ingress_status::sync(
            &gateway.hub_client,
            &ingresses,
            &served,
            address,
            &mut reported,
        )
        .await;
    }
}
