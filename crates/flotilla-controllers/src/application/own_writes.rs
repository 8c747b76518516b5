//! The status writes the application controller makes itself: the watch event each one
//! causes carries nothing the controller does not know already, so it does not trigger
//! another pass (the pass that wrote asked for its own requeue).
//!
//! Before a status write the controller records what the object will look like (the object
//! it read with the new status); after the write that record becomes the server's answer. A
//! watch event is the controller's own when everything but `resourceVersion` and
//! `managedFields` (the rest of the metadata, spec, status) equals the record, so it does not
//! matter whether the event arrives before or after the write returns. One entry per
//! application at most: dropped when its event arrives, when a different object arrives (a
//! change by someone else, or a relist that skipped ours) or when the write fails. A pass
//! that starts before the event of the previous pass's write reached the cache reads an
//! older version, so its own write fails its resourceVersion test: it leaves that entry be.

use std::collections::HashMap;
use std::sync::Mutex;

use flotilla_apis::{Application, ApplicationStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A status write under way or not yet seen on the watch.
struct Expected {
    /// The resourceVersion the write started from: an event of that version (a relist served
    /// before the write) is not the write's, and does not drop the entry.
    read_version: Option<String>,
    /// The resourceVersion the write made; `None` while it is under way.
    written_version: Option<String>,
    /// The object the write makes, without its resourceVersion and managedFields.
    object: Application,
}

/// The status writes of this controller whose watch events have not arrived yet.
#[derive(Default)]
pub(crate) struct OwnWrites {
    expected: Mutex<HashMap<(String, String), Expected>>,
}

fn key(app: &Application) -> (String, String) {
    (
        app.metadata.namespace.clone().unwrap_or_default(),
        app.metadata.name.clone().unwrap_or_default(),
    )
}

/// `metadata` without what every write changes by itself.
fn comparable(metadata: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        resource_version: None,
        managed_fields: None,
        ..metadata.clone()
    }
}

fn same_object(expected: &Application, seen: &Application) -> bool {
    expected.spec == seen.spec
        && expected.status == seen.status
        && expected.api_version == seen.api_version
        && expected.kind == seen.kind
        && expected.metadata == comparable(&seen.metadata)
}

impl OwnWrites {
    /// Records, before writing it, that `read` with `status` is the controller's own. A read
    /// older than the last write whose event is still to come (the cache has not caught up)
    /// records nothing: that write fails its resourceVersion test, and the earlier write's
    /// event is still to be recognised.
    pub(crate) fn expect(&self, read: &Application, status: &ApplicationStatus) {
        let Ok(mut map) = self.expected.lock() else {
            return;
        };
        let read_version = read.metadata.resource_version.clone();
        if let Some(earlier) = map.get(&key(read))
            && earlier.written_version.is_some()
            && earlier.written_version != read_version
        {
            return;
        }
        let object = Application {
            metadata: comparable(&read.metadata),
            status: Some(status.clone()),
            ..read.clone()
        };
        let expected = Expected {
            read_version,
            written_version: None,
            object,
        };
        map.insert(key(read), expected);
    }

    /// The write succeeded with `answer`: what the server made replaces the prediction, unless
    /// the write's event has arrived already (or something after it).
    pub(crate) fn written(&self, answer: &Application) {
        let Ok(mut map) = self.expected.lock() else {
            return;
        };
        if let Some(entry) = map.get_mut(&key(answer))
            && entry.written_version.is_none()
        {
            entry.written_version = answer.metadata.resource_version.clone();
            entry.object = Application {
                metadata: comparable(&answer.metadata),
                ..answer.clone()
            };
        }
    }

    /// The write of `read`'s status failed: no event of it will come (an earlier write's
    /// entry stays).
    pub(crate) fn failed(&self, read: &Application) {
        let Ok(mut map) = self.expected.lock() else {
            return;
        };
        let key = key(read);
        if map.get(&key).is_some_and(|entry| {
            entry.written_version.is_none() && entry.read_version == read.metadata.resource_version
        }) {
            map.remove(&key);
        }
    }

    /// Whether `seen` (a watch event's object) is what the controller wrote itself. The
    /// entry goes unless `seen` is the version the write started from.
    pub(crate) fn is_own(&self, seen: &Application) -> bool {
        let Ok(mut map) = self.expected.lock() else {
            return false;
        };
        let key = key(seen);
        let Some(entry) = map.get(&key) else {
            return false;
        };
        let version = &seen.metadata.resource_version;
        let own = (entry.written_version.is_some() && entry.written_version == *version)
            || same_object(&entry.object, seen);
        if own || entry.read_version != *version {
            map.remove(&key);
        }
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use k8s_openapi::jiff::Timestamp;

    fn app(version: &str, phase: &str) -> Application {
        let mut app = Application::default();
        app.metadata.name = Some("web".into());
        app.metadata.namespace = Some("default".into());
        app.metadata.resource_version = Some(version.into());
        app.metadata.generation = Some(1);
        app.status = Some(status(phase));
        app
    }

    fn status(phase: &str) -> ApplicationStatus {
        ApplicationStatus {
            status: Some(phase.into()),
            ..Default::default()
        }
    }

    /// What the server makes of `read` with the status `phase`: a new version and
    /// managedFields.
    fn server_wrote(read: &Application, version: &str, phase: &str) -> Application {
        let mut written = read.clone();
        written.status = Some(status(phase));
        written.metadata.resource_version = Some(version.into());
        written.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("flotilla".into()),
            ..Default::default()
        }]);
        written
    }

    #[test]
    fn the_event_of_the_own_write_is_skipped_in_either_order() {
        let own = OwnWrites::default();
        let read = app("4", "rendering");
        assert!(!own.is_own(&read), "nothing written");
        // The event arrives before the write returns.
        own.expect(&read, &status("running"));
        let written = server_wrote(&read, "5", "running");
        assert!(own.is_own(&written));
        own.written(&written);
        assert!(!own.is_own(&written), "once: a relist of it is not skipped");
        // The write returns first.
        let read = written;
        own.expect(&read, &status("unhealthy"));
        let written = server_wrote(&read, "6", "unhealthy");
        own.written(&written);
        assert!(own.is_own(&written));
        assert!(!own.is_own(&written), "once");
    }

    #[test]
    fn the_servers_answer_replaces_the_prediction() {
        let own = OwnWrites::default();
        let read = app("4", "rendering");
        own.expect(&read, &status("running"));
        // The server added a field the prediction lacks.
        let mut written = server_wrote(&read, "5", "running");
        written.status.as_mut().unwrap().observed_generation = Some(1);
        own.written(&written);
        assert!(own.is_own(&written));
    }

    #[test]
    fn a_change_by_anyone_else_starts_a_pass() {
        let own = OwnWrites::default();
        let read = app("4", "rendering");
        // A label set after the write, its event the first to arrive (a relist).
        own.expect(&read, &status("running"));
        let mut labelled = server_wrote(&read, "6", "running");
        labelled.metadata.labels = Some([("team".into(), "a".into())].into());
        assert!(!own.is_own(&labelled));
        own.written(&server_wrote(&read, "5", "running"));
        assert!(!own.is_own(&server_wrote(&read, "5", "running")), "dropped");
        // The spec changed, the generation with it.
        own.expect(&read, &status("running"));
        let mut respecced = server_wrote(&read, "7", "running");
        respecced.metadata.generation = Some(2);
        assert!(!own.is_own(&respecced));
        // Deletion started, or a finalizer removed.
        let changes: [fn(&mut ObjectMeta); 3] = [
            |m| m.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH)),
            |m| m.finalizers = Some(vec!["x".into()]),
            |m| m.annotations = Some([("a".into(), "b".into())].into()),
        ];
        for change in changes {
            own.expect(&read, &status("running"));
            let mut changed = server_wrote(&read, "8", "running");
            change(&mut changed.metadata);
            assert!(!own.is_own(&changed));
        }
        // Someone else's status (a workflow operation).
        own.expect(&read, &status("running"));
        assert!(!own.is_own(&server_wrote(&read, "9", "workflowSuspending")));
    }

    #[test]
    fn a_pass_that_read_before_the_last_writes_event_keeps_its_entry() {
        let own = OwnWrites::default();
        let read = app("4", "rendering");
        own.expect(&read, &status("running"));
        let written = server_wrote(&read, "5", "running");
        own.written(&written);
        // The next pass starts before the event of version 5 reached the cache: its write,
        // from version 4, fails.
        own.expect(&read, &status("unhealthy"));
        own.failed(&read);
        assert!(own.is_own(&written));
        // One that read version 5 is recorded.
        own.expect(&written, &status("unhealthy"));
        let next = server_wrote(&written, "6", "unhealthy");
        own.written(&next);
        assert!(own.is_own(&next));
    }

    #[test]
    fn the_version_read_keeps_the_entry_and_a_failed_write_drops_it() {
        let own = OwnWrites::default();
        let read = app("4", "rendering");
        own.expect(&read, &status("running"));
        assert!(!own.is_own(&read), "the version the write started from");
        let written = server_wrote(&read, "5", "running");
        assert!(own.is_own(&written), "still expected");
        own.expect(&read, &status("running"));
        own.failed(&read);
        assert!(!own.is_own(&written));
    }
}
