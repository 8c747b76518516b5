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

pub mod admission;
pub mod apiservices;
pub mod apply;
pub mod auth;
pub mod builtin;
pub mod cluster_gateway;
pub mod codec;
pub mod compaction;
pub mod convert;
pub mod crd;
pub mod csr;
pub mod discovery;
pub mod error;
pub mod gc;
pub mod handlers;
pub mod jsonpath;
pub mod kubernetes_service;
pub mod leader_tasks;
pub mod managed;
pub mod metadata_only;
pub mod metrics;
pub mod namespace;
pub mod objects;
pub mod openapi;
pub mod openapi_schemas;
pub mod pki;
pub mod proto;
pub mod registry;
pub mod request_info;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod strategy;
pub mod table;
pub mod ui;
pub mod validation;
pub mod waiting;
pub mod watch;
pub mod webhook;

pub use server::{RunningServer, ServerOptions, StartError, start};
