//! Controllers that reach the hub and members only through the Kubernetes API (kube-rs).
