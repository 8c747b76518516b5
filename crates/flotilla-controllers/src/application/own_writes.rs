//! The status writes the application controller made itself: the watch event each one
//! causes carries nothing the controller does not know already, so it does not trigger
//! another pass (the pass that wrote asked for its own requeue). One entry per application
//! at most, dropped when its event arrives or anything newer does.

use std::collections::HashMap;
use std::sync::Mutex;

use flotilla_apis::Application;

/// The resourceVersion of the last status this controller wrote, per application.
#[derive(Default)]
pub(crate) struct OwnWrites {
    written: Mutex<HashMap<(String, String), String>>,
}

fn key(app: &Application) -> (String, String) {
    (
        app.metadata.namespace.clone().unwrap_or_default(),
        app.metadata.name.clone().unwrap_or_default(),
    )
}

impl OwnWrites {
    /// Records that `written` (the write's answer) is the controller's own.
    pub(crate) fn record(&self, written: &Application) {
        if let (Some(version), Ok(mut map)) = (
            written.metadata.resource_version.clone(),
            self.written.lock(),
        ) {
            map.insert(key(written), version);
        }
    }

    /// Whether `seen` (a watch event's object) is exactly what the controller last wrote.
    /// The entry goes either way: a later version is someone else's change.
    pub(crate) fn is_own(&self, seen: &Application) -> bool {
        let Ok(mut map) = self.written.lock() else {
            return false;
        };
        match map.remove(&key(seen)) {
            Some(version) => seen.metadata.resource_version.as_deref() == Some(version.as_str()),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(version: &str) -> Application {
        let mut app = Application::default();
        app.metadata.name = Some("web".into());
        app.metadata.namespace = Some("default".into());
        app.metadata.resource_version = Some(version.into());
        app
    }

    #[test]
    fn only_the_event_of_the_own_write_is_skipped() {
        let own = OwnWrites::default();
        assert!(!own.is_own(&app("1")), "nothing written");
        own.record(&app("5"));
        assert!(!own.is_own(&app("4")), "an older event");
        own.record(&app("5"));
        assert!(own.is_own(&app("5")));
        assert!(!own.is_own(&app("5")), "once");
        own.record(&app("7"));
        assert!(!own.is_own(&app("8")), "someone wrote after");
        assert!(!own.is_own(&app("7")), "forgotten by then");
    }
}
