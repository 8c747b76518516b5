//! Controllers that reach the hub and members only through the Kubernetes API (kube-rs).
//!
//! - [`application`]: render → place → override → workflow → dispatch → health → gc.
//! - [`cluster`]: the member registry's health probes.
//! - [`membersim`]: the simulated member's workload controllers.

pub mod application;
pub mod cluster;
pub mod hub;
pub mod membersim;
