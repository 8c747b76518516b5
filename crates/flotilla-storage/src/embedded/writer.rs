//! The writer thread: group commit of conditional writes.
//!
//! Each batch is planned first (preconditions checked in arrival order against the index
//! plus the earlier writes of the batch, revisions assigned), then written in one redb
//! transaction with immediate durability. Only after the commit returns are the index and
//! history updated, watchers woken and callers answered. If the transaction fails, every
//! caller of the batch gets the error and nothing becomes visible.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use redb::Database;
use tokio::sync::{mpsc, oneshot, watch};

use super::{EmbeddedError, KV, META, META_REVISION, Shared, check, encode};
use crate::{Error, Event, KeyValue, Precondition, Result, Revision};

/// A write waiting for the writer thread.
pub(super) enum Op {
    Put {
        key: String,
        value: Bytes,
        precondition: Precondition,
        reply: oneshot::Sender<Result<KeyValue>>,
    },
    Delete {
        key: String,
        precondition: Precondition,
        reply: oneshot::Sender<Result<(KeyValue, Revision)>>,
    },
}

pub(super) struct Writer {
    pub(super) db: Database,
    pub(super) shared: Arc<Shared>,
    pub(super) ops: mpsc::Receiver<Op>,
    pub(super) notify: watch::Sender<Revision>,
    pub(super) max_batch: usize,
}

/// An op after planning: its caller, and either its event or why it was refused.
struct Planned {
    op: Op,
    outcome: Result<Event>,
}

impl Writer {
    /// Serves writes until every sender is dropped.
    pub(super) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = self.ops.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.apply(std::mem::take(&mut batch));
        }
        tracing::debug!("storage writer stopped");
    }

    fn apply(&mut self, ops: Vec<Op>) {
        let start = self.shared.index.read().revision;
        let (planned, revision) = self.plan(ops, start);
        let events: Vec<&Event> = planned
            .iter()
            .filter_map(|p| p.outcome.as_ref().ok())
            .collect();
        if events.is_empty() {
            // Nothing to write: every op was refused by its precondition.
            for p in planned {
                reply(p.op, p.outcome);
            }
            return;
        }
        if let Err(e) = self.commit(&events, revision) {
            tracing::error!(error = %e, writes = events.len(), "storage commit failed");
            let e = Arc::new(e);
            for p in planned {
                reply(p.op, Err(EmbeddedError::Write(Arc::clone(&e)).into()));
            }
            return;
        }
        {
            let mut index = self.shared.index.write();
            for event in &events {
                match event {
                    Event::Put { kv, .. } => {
                        index.kvs.insert(kv.key.clone(), kv.clone());
                    }
                    Event::Delete { prev, .. } => {
                        index.kvs.remove(&prev.key);
                    }
                }
            }
            index.revision = revision;
        }
        let events: Vec<Event> = events.into_iter().cloned().collect();
        self.shared.history.write().push(events);
        self.notify.send_replace(revision);
        for p in planned {
            reply(p.op, p.outcome);
        }
    }

    /// Checks preconditions and assigns revisions; returns the plan and the revision after
    /// it.
    fn plan(&self, ops: Vec<Op>, mut revision: Revision) -> (Vec<Planned>, Revision) {
        // Keys written earlier in this batch: their value as the batch leaves it.
        let mut overlay: HashMap<String, Option<KeyValue>> = HashMap::new();
        let mut planned = Vec::with_capacity(ops.len());
        for op in ops {
            let key = match &op {
                Op::Put { key, .. } | Op::Delete { key, .. } => key.as_str(),
            };
            let current = match overlay.get(key) {
                Some(v) => v.clone(),
                None => self.shared.index.read().kvs.get(key).cloned(),
            };
            let outcome = match &op {
                Op::Put {
                    key,
                    value,
                    precondition,
                    ..
                } => check(key, current.as_ref(), *precondition).map(|()| {
                    revision += 1;
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: current.as_ref().map_or(revision, |c| c.create_revision),
                        mod_revision: revision,
                    };
                    overlay.insert(key.clone(), Some(kv.clone()));
                    Event::Put { kv, prev: current }
                }),
                Op::Delete {
                    key, precondition, ..
                } => match current {
                    None => Err(Error::NotFound(key.clone())),
                    Some(prev) => check(key, Some(&prev), *precondition).map(|()| {
                        revision += 1;
                        overlay.insert(key.clone(), None);
                        Event::Delete { prev, revision }
                    }),
                },
            };
            planned.push(Planned { op, outcome });
        }
        (planned, revision)
    }

    fn commit(&self, events: &[&Event], revision: Revision) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut kv = txn.open_table(KV)?;
            for event in events {
                match event {
                    Event::Put { kv: new, .. } => {
                        kv.insert(new.key.as_str(), encode(new).as_slice())?;
                    }
                    Event::Delete { prev, .. } => {
                        kv.remove(prev.key.as_str())?;
                    }
                }
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_REVISION, revision)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// Answers a caller. A caller that went away (its request was cancelled) no longer needs
/// the answer, so a failed send is ignored.
fn reply(op: Op, outcome: Result<Event>) {
    match op {
        Op::Put { reply, .. } => {
            let _ = reply.send(outcome.map(|event| match event {
                Event::Put { kv, .. } => kv,
                // `plan` turns a put into a put event; a delete event cannot reach here.
                Event::Delete { prev, .. } => prev,
            }));
        }
        Op::Delete { reply, .. } => {
            let _ = reply.send(outcome.map(|event| match event {
                Event::Delete { prev, revision } => (prev, revision),
                // `plan` turns a delete into a delete event; a put event cannot reach here.
                Event::Put { kv, .. } => {
                    let revision = kv.mod_revision;
                    (kv, revision)
                }
            }));
        }
    }
}
