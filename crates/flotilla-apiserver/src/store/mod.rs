//! The store: the one layer between the API and storage, in the shape of Kubernetes'
//! registry store. [`Store`] reads and writes objects by resource and name (keys are
//! laid out in [`keys`] and nowhere else) with compare-and-swap on the modification
//! revision, serves `resourceVersion` from it, turns a deleting object that lost its last
//! finalizer into a delete, and runs the [`hooks`] registered for after-create,
//! after-update and after-delete. On top of it: [`update`] (the read-modify-write loop
//! every update path shares, with managedFields and dry-run) and [`delete`] (finalizers,
//! propagation, preconditions, dry-run).

pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod hooks;
pub(crate) mod keys;
pub(crate) mod options;
pub(crate) mod update;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use flotilla_core::status::ApiError;
use flotilla_storage::{KeyValue, Precondition, RangeResult, Revision, SharedBackend, WatchStream};
use serde_json::Value;

use crate::error::storage_error;
use crate::objects::{decode, encode, finalizers, meta_str, set_resource_version};
pub(crate) use hooks::{AdmissionHook, Hook, HookEvent, WriteAttempt};
pub(crate) use keys::Resource;

/// Objects in storage (cheap to clone).
#[derive(Clone)]
pub(crate) struct Store {
    backend: SharedBackend,
    hooks: Arc<hooks::Hooks>,
}

/// What an update did.
pub(crate) enum Written {
    /// The object was stored (at the object's new resourceVersion).
    Stored(Value),
    /// The object was being deleted and lost its last finalizer: it is gone now.
    Deleted(Value),
}

impl Written {
    /// The object as stored or as it was removed.
    pub(crate) fn object(self) -> Value {
        match self {
            Written::Stored(v) | Written::Deleted(v) => v,
        }
    }
}

impl Store {
    /// A store over `backend`, without hooks yet.
    pub(crate) fn new(backend: SharedBackend) -> Store {
        Store {
            backend,
            hooks: Arc::default(),
        }
    }

    /// The latest revision of the whole store.
    pub(crate) async fn current_revision(&self) -> Result<Revision, ApiError> {
        self.backend.current_revision().await.map_err(storage_error)
    }

    /// Forgets history before `revision`.
    pub(crate) async fn compact(&self, revision: Revision) -> Result<(), ApiError> {
        self.backend.compact(revision).await.map_err(storage_error)
    }

    /// Reads one object (with its resourceVersion) and its modification revision.
    pub(crate) async fn get<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        match self.get_kv(res, namespace, name).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Reads one object as stored (for serving the stored bytes without decoding them).
    pub(crate) async fn get_kv<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<KeyValue>, ApiError> {
        let key = res.into().key(namespace, name);
        self.backend.get(&key).await.map_err(storage_error)
    }

    /// Reads one object or fails with NotFound.
    pub(crate) async fn get_existing<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        namespace: &str,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        let res = res.into();
        self.get(res, namespace, name)
            .await?
            .ok_or_else(|| ApiError::not_found(res.group, res.resource, name))
    }

    /// One page of stored objects of `res` in `namespace` (all when empty), after the key
    /// `start_after` (from an earlier page or a continue token).
    pub(crate) async fn range<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        namespace: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<RangeResult, ApiError> {
        let prefix = res.into().namespace_prefix(namespace);
        self.range_prefix(&prefix, start_after, limit).await
    }

    /// One page under a key prefix from [`keys`].
    pub(crate) async fn range_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<RangeResult, ApiError> {
        self.backend
            .range(prefix, start_after, limit)
            .await
            .map_err(storage_error)
    }

    /// Every object of `res` in `namespace` (all when empty), read a page at a time.
    pub(crate) async fn list<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        namespace: &str,
    ) -> Result<Vec<(Value, Revision)>, ApiError> {
        let (kvs, _) = self
            .list_kvs(&res.into().namespace_prefix(namespace))
            .await?;
        kvs.iter()
            .map(|kv| Ok((decode(kv)?, kv.mod_revision)))
            .collect()
    }

    /// Every stored value under a key prefix from [`keys`], with the revision of the read.
    pub(crate) async fn list_kvs(
        &self,
        prefix: &str,
    ) -> Result<(Vec<KeyValue>, Revision), ApiError> {
        let mut out = Vec::new();
        let mut revision = 0;
        let mut start: Option<String> = None;
        loop {
            let page = self.range_prefix(prefix, start.as_deref(), 500).await?;
            if revision == 0 {
                revision = page.revision;
            }
            start = page.kvs.last().map(|kv| kv.key.clone());
            out.extend(page.kvs);
            if !page.more || start.is_none() {
                return Ok((out, revision));
            }
        }
    }

    /// Changes under a key prefix from [`keys`] after `revision`.
    pub(crate) async fn watch_prefix(
        &self,
        prefix: &str,
        revision: Revision,
    ) -> Result<WatchStream, ApiError> {
        self.backend
            .watch(prefix, revision)
            .await
            .map_err(storage_error)
    }

    /// Changes to objects of `res` after `revision`.
    pub(crate) async fn watch<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        revision: Revision,
    ) -> Result<WatchStream, ApiError> {
        self.watch_prefix(&res.into().prefix(), revision).await
    }

    /// Changes to every object after `revision`.
    pub(crate) async fn watch_all(&self, revision: Revision) -> Result<WatchStream, ApiError> {
        self.watch_prefix(keys::ALL_OBJECTS, revision).await
    }

    /// Stores a new object; AlreadyExists if the name is taken. Runs the after-create hooks.
    pub(crate) async fn create<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let res = res.into();
        let key = res.key(meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        match self
            .backend
            .put(&key, encode(&obj), Precondition::Absent)
            .await
        {
            Ok(kv) => {
                set_resource_version(&mut obj, kv.mod_revision);
                self.hooks.after_create(res, &obj);
                Ok(obj)
            }
            Err(flotilla_storage::Error::AlreadyExists(_)) => Err(ApiError::already_exists(
                res.group,
                res.resource,
                meta_str(&obj, "name"),
            )),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Replaces an object if its modification revision is still `expected`; Conflict
    /// otherwise. An object with a `deletionTimestamp` and no finalizers left is deleted
    /// instead. Runs the after-update (or after-delete) hooks.
    pub(crate) async fn update<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        obj: &Value,
        expected: Revision,
    ) -> Result<Written, ApiError> {
        let res = res.into();
        if !meta_str(obj, "deletionTimestamp").is_empty()
            && finalizers(obj).is_empty()
            && !has_spec_finalizers(res, obj)
        {
            let (_, revision) = self.delete_now_at(res, obj, expected).await?;
            let mut gone = obj.clone();
            set_resource_version(&mut gone, revision);
            return Ok(Written::Deleted(gone));
        }
        let name = meta_str(obj, "name");
        let key = res.key(meta_str(obj, "namespace"), name);
        match self
            .backend
            .put(&key, encode(obj), Precondition::ModRevision(expected))
            .await
        {
            Ok(kv) => {
                let mut out = obj.clone();
                set_resource_version(&mut out, kv.mod_revision);
                self.hooks.after_update(res, &out);
                Ok(Written::Stored(out))
            }
            Err(e) => Err(write_error(res, name, e)),
        }
    }

    /// Removes an object for good if its modification revision is still `expected` (the
    /// only place that does). Runs the after-delete hooks; returns the removed object.
    pub(crate) async fn delete_now<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        obj: &Value,
        expected: Revision,
    ) -> Result<Value, ApiError> {
        self.delete_now_at(res.into(), obj, expected)
            .await
            .map(|(v, _)| v)
    }

    /// [`Store::delete_now`], also returning the revision of the delete.
    async fn delete_now_at(
        &self,
        res: Resource<'_>,
        obj: &Value,
        expected: Revision,
    ) -> Result<(Value, Revision), ApiError> {
        let name = meta_str(obj, "name");
        let key = res.key(meta_str(obj, "namespace"), name);
        match self
            .backend
            .delete(&key, Precondition::ModRevision(expected))
            .await
        {
            Ok((kv, rev)) => {
                let removed = decode(&kv)?;
                self.hooks.after_delete(res, &removed);
                Ok((removed, rev))
            }
            Err(e) => Err(write_error(res, name, e)),
        }
    }

    /// Runs `hook` on the final object of every create and update a user asks for, before
    /// it is stored (dry-run too); server-internal writes (no user name) skip it.
    pub(crate) fn before_write(&self, hook: AdmissionHook) {
        self.hooks.add_admission(hook);
    }

    /// The admission hooks' verdict on storing `object` for `user`.
    pub(crate) async fn admit<'a>(
        &self,
        res: impl Into<Resource<'a>>,
        user: &flotilla_core::user::UserInfo,
        object: &Value,
    ) -> Result<(), ApiError> {
        if user.username.is_empty() {
            return Ok(());
        }
        let attempt = WriteAttempt {
            resource: res.into(),
            user,
            object,
        };
        self.hooks.admit(&attempt).await
    }

    /// Runs `hook` after every object this server creates.
    pub(crate) fn after_create(&self, hook: Hook) {
        self.hooks.add(hooks::When::Created, hook);
    }

    /// Runs `hook` after every object this server updates (and keeps).
    pub(crate) fn after_update(&self, hook: Hook) {
        self.hooks.add(hooks::When::Updated, hook);
    }

    /// Runs `hook` after every object this server removes for good.
    pub(crate) fn after_delete(&self, hook: Hook) {
        self.hooks.add(hooks::When::Deleted, hook);
    }
}

/// A failed compare-and-swap write as the API reports it.
fn write_error(res: Resource<'_>, name: &str, e: flotilla_storage::Error) -> ApiError {
    match e {
        flotilla_storage::Error::RevisionMismatch { .. } => {
            ApiError::stale(res.group, res.resource, name)
        }
        flotilla_storage::Error::NotFound(_) => ApiError::not_found(res.group, res.resource, name),
        e => storage_error(e),
    }
}

/// Namespaces also wait for `spec.finalizers` (the namespace lifecycle's).
fn has_spec_finalizers(res: Resource<'_>, obj: &Value) -> bool {
    res.is_namespaces()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}
