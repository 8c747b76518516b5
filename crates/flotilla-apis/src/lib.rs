//! The fleet API kinds: typed structs and the CRDs the hub installs at start.
