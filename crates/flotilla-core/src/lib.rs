//! Wire types and pure logic shared by every Flotilla crate.
//!
//! Nothing here performs I/O: resource identity ([`resource`]), the authenticated
//! user ([`user`]), Kubernetes `Status` errors ([`status`]).

pub mod resource;
pub mod status;
pub mod user;
