//! Wire types and pure logic shared by every Flotilla crate.
//!
//! Nothing here performs I/O: resource identity ([`resource`]), the authenticated
//! user ([`user`]), Kubernetes `Status` errors ([`status`]), label and field selectors
//! ([`selector`]) and the patch engines ([`patch`]).

pub mod patch;
pub mod resource;
pub mod selector;
pub mod status;
pub mod user;
