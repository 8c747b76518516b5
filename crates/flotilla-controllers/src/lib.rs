//! Controllers that reach the hub and members only through the Kubernetes API (kube-rs).
//!
//! - [`application`]: render → place → override → workflow → dispatch → health → gc.
//! - [`cluster`]: the member registry's health probes.
//! - [`error_backoff`]: the error policy every hub controller shares (per-object backoff).
//! - [`leader`]: the Lease election that gates every hub controller ([`hub::run`]).
//! - [`mcs`]: multi-cluster Services (ServiceExport / ServiceImport → `amcs-<name>` + slices).
//! - [`multiplexed_client`]: kube clients over one HTTP/2 connection per server (members).
//! - [`membersim`]: the simulated member's workload controllers.
//! - [`statemetrics`]: a member's kube-state-metrics-named series on its `/metrics`.
//! - [`fleetmetrics`]: the hub's scrape of every member, `/metrics/clusters` and history.
//! - [`alerts`]: rules from `vela-system/flotilla-alerts`, Events and webhooks.
//! - [`grants`]: FleetRoleBindings → member bindings and the hub's gateway permission.

#![warn(unreachable_pub, missing_docs)]

pub mod alerts;
pub mod application;
pub mod cluster;
pub mod error_backoff;
pub mod fleetmetrics;
pub mod gitops;
pub mod grants;
pub mod hub;
pub mod leader;
pub mod mcs;
pub mod membersim;
pub mod multiplexed_client;
pub mod statemetrics;
