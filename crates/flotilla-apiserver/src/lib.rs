//! The Kubernetes-compatible API server shared by the Flotilla hub and simulated members.
//!
//! [`server::start`] binds, bootstraps and serves. A request goes through
//! [`router`] → the [`auth`] layers → [`handlers`] (one file per verb family: decode,
//! encode) → [`store`] (strategy and admission of the final object, read-modify-write,
//! delete, hooks; the only place storage keys are formed) → `flotilla_storage`. Around that: [`registry`] (what is
//! served, including CRDs from [`crd`]; identity of built-in kinds from
//! `flotilla_core::kinds`), [`strategy`] (one per built-in kind: defaults, checks, table
//! columns), [`discovery`], [`openapi`], [`table`], [`validation`], [`watch`] (one shared
//! feed per resource), [`namespace`] and [`gc`] (background lifecycles, run by
//! [`leader_tasks`] on one server per store, with [`compaction`]), [`metrics`]; [`ui`] is the
//! hub's dashboard in front of it all.

pub(crate) mod admission;
pub(crate) mod apiservices;
pub(crate) mod apply;
pub(crate) mod auth;
pub(crate) mod builtin;
pub mod cluster_gateway;
pub(crate) mod codec;
pub(crate) mod compaction;
pub(crate) mod convert;
pub(crate) mod crd;
pub(crate) mod csr;
pub(crate) mod discovery;
pub(crate) mod error;
pub(crate) mod gc;
pub(crate) mod handlers;
pub(crate) mod jsonpath;
pub(crate) mod kubernetes_service;
pub mod leader_tasks;
pub(crate) mod managed;
pub(crate) mod metadata_only;
pub(crate) mod metrics;
pub(crate) mod namespace;
pub(crate) mod namespace_cache;
pub(crate) mod objects;
pub(crate) mod openapi;
pub(crate) mod openapi_schemas;
pub mod pki;
pub(crate) mod proto;
pub(crate) mod registry;
pub(crate) mod request_info;
pub(crate) mod router;
pub mod server;
pub mod state;
pub(crate) mod store;
pub(crate) mod strategy;
pub(crate) mod table;
pub(crate) mod typed_kinds;
pub(crate) mod ui;
pub(crate) mod validation;
pub mod waiting;
pub(crate) mod watch;
pub mod webhook;

pub use metrics::ExtraMetrics;
pub use server::{RunningServer, ServerOptions, StartError, start};
