//! Controllers that reach the hub and members only through the Kubernetes API (kube-rs).
//!
//! - [`application`]: render → place → override → workflow → dispatch → health → gc.
//! - [`cluster`]: the member registry's health probes.
//! - `error_backoff`: the error policy every hub controller shares (per-object backoff).
//! - [`leader`]: the Lease election that gates every hub controller ([`hub::run`]).
//! - [`mcs`]: multi-cluster Services (ServiceExport / ServiceImport → `amcs-<name>` + slices).
//! - [`multiplexed_client`]: kube clients over one HTTP/2 connection per server (members).
//! - [`api_connector`]: the TCP/TLS connector and response timeout those clients and the
//!   gateway's relay take from a `kube::Config`.
//! - [`membersim`]: the simulated member's workload controllers.
//! - [`statemetrics`]: a member's kube-state-metrics-named series on its `/metrics`.
//! - [`fleetmetrics`]: the hub's scrape of every member, `/metrics/clusters` and history.
//! - `alerts`: rules from `vela-system/flotilla-alerts`, Events and webhooks.
//! - [`grants`]: FleetRoleBindings → member bindings and the hub's gateway permission.
//!
//! Everything is `pub(crate)` except what other crates use, and that is all that is public:
//! - the `flotilla` binary: [`hub::run`], [`hub::run_on_every_hub`] and their options,
//!   [`leader::run_elected`], [`membersim::run`], [`statemetrics::StateMetrics`], [`fleetmetrics::text`]
//!   and [`fleetmetrics::history`], [`gitops::PushQueue`], [`multiplexed_client::client`],
//!   the metric registrations and [`cluster::gateway`] (the hub's member forwarding);
//! - the CLI: the cluster registry ([`cluster::registry`], [`cluster::credentials`],
//!   [`cluster::managed_cluster`], [`cluster::hub_identity`]), the preview and status helpers
//!   ([`application::preview`], [`application::dispatch`], [`application::health`],
//!   [`mcs::imports`], [`mcs::observe`]), [`grants::api_resource`] and
//!   [`fleetmetrics::exposition`]'s parsers;
//! - the gateway: [`application::member_clients::impersonating`], the stored credentials and
//!   [`api_connector`].

pub(crate) mod alerts;
pub mod api_connector;
pub mod application;
pub mod cluster;
pub(crate) mod error_backoff;
pub mod fleetmetrics;
pub mod gitops;
pub mod grants;
pub mod hub;
pub mod leader;
pub mod mcs;
pub mod membersim;
pub mod multiplexed_client;
pub mod statemetrics;
