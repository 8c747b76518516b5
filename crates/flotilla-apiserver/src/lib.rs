//! The Kubernetes-compatible API server shared by the Flotilla hub and simulated members.

pub mod request_info;
