//! The Kubernetes-compatible API server shared by the Flotilla hub and simulated members.

pub mod auth;
pub mod pki;
pub mod request_info;
