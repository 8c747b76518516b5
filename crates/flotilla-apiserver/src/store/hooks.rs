//! Hooks run after the store created, updated or removed an object on this server: how
//! CustomResourceDefinitions start and stop being served, without the store knowing them.
//! Admission hooks run before: on the final object of a create or update a user asked for
//! (RBAC escalation prevention registers there), and can refuse it.
//! (Work that must see writes made through every server sharing the storage, such as
//! garbage collection, follows the storage's change feed instead: see `leader_tasks`.)

use std::sync::Arc;

use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde_json::Value;

use super::Resource;

/// What a hook is told.
pub(crate) struct HookEvent<'a> {
    /// The object's resource.
    pub resource: Resource<'a>,
    /// The object as stored (or as it was removed).
    pub object: &'a Value,
}

/// A hook: quick and synchronous (spawn for anything slow).
pub(crate) type Hook = Arc<dyn Fn(&HookEvent<'_>) + Send + Sync>;

/// A write about to be stored on a user's behalf.
pub(crate) struct WriteAttempt<'a> {
    /// The object's resource.
    pub resource: Resource<'a>,
    /// Who asked (after impersonation).
    pub user: &'a UserInfo,
    /// The object as it would be stored.
    pub object: &'a Value,
}

/// An admission hook: decides synchronously whether the write concerns it and, if so,
/// returns the check to await (owning what it needs).
pub(crate) type AdmissionHook = Arc<
    dyn Fn(&WriteAttempt<'_>) -> Option<BoxFuture<'static, Result<(), ApiError>>> + Send + Sync,
>;

/// When a hook runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum When {
    Created,
    Updated,
    Deleted,
}

/// The registered hooks.
#[derive(Default)]
pub(crate) struct Hooks {
    created: RwLock<Vec<Hook>>,
    updated: RwLock<Vec<Hook>>,
    deleted: RwLock<Vec<Hook>>,
    admission: RwLock<Vec<AdmissionHook>>,
}

impl Hooks {
    fn list(&self, when: When) -> &RwLock<Vec<Hook>> {
        match when {
            When::Created => &self.created,
            When::Updated => &self.updated,
            When::Deleted => &self.deleted,
        }
    }

    pub(crate) fn add(&self, when: When, hook: Hook) {
        self.list(when).write().push(hook);
    }

    fn run(&self, when: When, resource: Resource<'_>, object: &Value) {
        let hooks = self.list(when).read();
        let event = HookEvent { resource, object };
        for hook in hooks.iter() {
            hook(&event);
        }
    }

    pub(crate) fn add_admission(&self, hook: AdmissionHook) {
        self.admission.write().push(hook);
    }

    /// Runs the admission hooks on a write a user asked for; the first refusal wins.
    pub(crate) async fn admit(&self, attempt: &WriteAttempt<'_>) -> Result<(), ApiError> {
        let checks: Vec<_> = self
            .admission
            .read()
            .iter()
            .filter_map(|hook| hook(attempt))
            .collect();
        for check in checks {
            check.await?;
        }
        Ok(())
    }

    pub(crate) fn after_create(&self, resource: Resource<'_>, object: &Value) {
        self.run(When::Created, resource, object);
    }

    pub(crate) fn after_update(&self, resource: Resource<'_>, object: &Value) {
        self.run(When::Updated, resource, object);
    }

    pub(crate) fn after_delete(&self, resource: Resource<'_>, object: &Value) {
        self.run(When::Deleted, resource, object);
    }
}
