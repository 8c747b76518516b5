//! The sub-reconcilers of one application, called in this order by `controller.rs`:
//! revision → workflow → converge → gc → status; cleanup on delete. `deploy`, `gather` and
//! `tracker` are what they share; `steps` executes a workflow step by type (`deploy`,
//! `notification`).

pub(crate) mod cleanup;
pub(crate) mod converge;
pub(crate) mod deploy;
pub(crate) mod gather;
pub(crate) mod gc;
pub(crate) mod notification;
pub(crate) mod revision;
pub(crate) mod status;
pub(crate) mod steps;
pub(crate) mod tracker;
pub(crate) mod workflow;
