//! The in-memory watch history shared by every watcher.
//!
//! One ring of recent events in revision order, written by the writer thread after each
//! commit. A watcher is a cursor (the last revision it has looked at) plus a
//! [`watch::Receiver`] that wakes it when the store revision moves: it copies the events
//! after its cursor that match its prefix, and sleeps when there are none. A thousand
//! watchers therefore cost a thousand cursors, not a thousand queues, and a watcher can
//! never miss an event silently: once its cursor falls out of the ring (the ring wrapped
//! or [`compact`](History::compact) ran), its stream yields
//! [`Error::Compacted`](crate::Error::Compacted) and ends.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Shared, matches};
use crate::{Error, Event, Result, Revision, WatchStream};

#[derive(Debug)]
pub(super) struct History {
    events: VecDeque<Event>,
    capacity: usize,
    /// Bytes of keys and values the ring may hold (values may be shared with the index, so
    /// this over-counts what the ring alone keeps alive).
    max_bytes: usize,
    bytes: usize,
    /// The oldest revision a watch may start after: every event with a greater revision
    /// is in `events` (or not written yet).
    floor: Revision,
}

impl History {
    pub(super) fn new(capacity: usize, max_bytes: usize, floor: Revision) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            max_bytes,
            bytes: 0,
            floor,
        }
    }

    pub(super) fn floor(&self) -> Revision {
        self.floor
    }

    /// Appends events (in revision order), dropping the oldest past either bound. The
    /// newest event is always kept.
    pub(super) fn push(&mut self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.bytes += size(&event);
            self.events.push_back(event);
        }
        while self.events.len() > 1
            && (self.events.len() > self.capacity || self.bytes > self.max_bytes)
        {
            if let Some(old) = self.pop_front() {
                self.floor = self.floor.max(old.revision());
            }
        }
    }

    /// Forgets events at and before `revision`.
    pub(super) fn compact(&mut self, revision: Revision) {
        while self
            .events
            .front()
            .is_some_and(|e| e.revision() <= revision)
        {
            self.pop_front();
        }
        self.floor = self.floor.max(revision);
    }

    fn pop_front(&mut self) -> Option<Event> {
        let old = self.events.pop_front()?;
        self.bytes -= size(&old);
        Some(old)
    }

    /// The events after `cursor` matching `prefix`, at most `max`, and the revision up to
    /// which history was looked at.
    fn read(&self, prefix: &str, cursor: Revision, max: usize) -> Result<(Vec<Event>, Revision)> {
        if cursor < self.floor {
            return Err(Error::Compacted {
                requested: cursor,
                compacted: self.floor,
            });
        }
        let start = self.events.partition_point(|e| e.revision() <= cursor);
        let mut out = Vec::new();
        let mut seen = cursor;
        for event in self.events.range(start..) {
            if out.len() == max {
                break;
            }
            seen = event.revision();
            if matches(event, prefix) {
                out.push(event.clone());
            }
        }
        Ok((out, seen))
    }
}

/// The bytes an event holds: its key and the values it carries.
fn size(event: &Event) -> usize {
    match event {
        Event::Put { kv, prev } => {
            kv.key.len() + kv.value.len() + prev.as_ref().map_or(0, |p| p.value.len())
        }
        Event::Delete { prev, .. } => prev.key.len() + prev.value.len(),
    }
}

struct Watcher {
    shared: Arc<Shared>,
    wake: watch::Receiver<Revision>,
    prefix: String,
    cursor: Revision,
    done: bool,
}

/// Starts a watch of `prefix` after revision `after` (see [`crate::Backend::watch`]).
pub(super) fn watch(
    shared: Arc<Shared>,
    wake: watch::Receiver<Revision>,
    prefix: String,
    after: Revision,
) -> Result<WatchStream> {
    let floor = shared.history.read().floor();
    if after < floor {
        return Err(Error::Compacted {
            requested: after,
            compacted: floor,
        });
    }
    let watcher = Watcher {
        shared,
        wake,
        prefix,
        cursor: after,
        done: false,
    };
    let stream = futures::stream::unfold(watcher, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            // Mark the current revision seen *before* reading history: a commit after
            // this line wakes `changed()` below, one before it is in the read.
            w.wake.borrow_and_update();
            let read = w
                .shared
                .history
                .read()
                .read(&w.prefix, w.cursor, w.shared.watch_batch);
            match read {
                Err(e) => {
                    w.done = true;
                    return Some((Err(e), w));
                }
                Ok((events, seen)) => {
                    w.cursor = seen;
                    if !events.is_empty() {
                        return Some((Ok(events), w));
                    }
                }
            }
            if w.wake.changed().await.is_err() {
                // The store shut down and everything committed has been delivered.
                return None;
            }
        }
    });
    Ok(Box::pin(stream))
}
