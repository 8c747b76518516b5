//! The dashboard's server-side session store: a random session id (the cookie) maps to the
//! bearer token the user signed in with. The token never leaves the hub again: not in a
//! cookie, a URL or a log line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::Mutex;
use rand::RngCore;

/// A session ends after this long without a request.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after sign-in, used or not.
pub(super) const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions kept at once; the least recently used go first.
pub(super) const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) username: String,
    created: Instant,
    last_used: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Every live session of this hub process.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `token` (already verified) and returns its id.
    pub(crate) fn create(&self, token: String, username: String) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut by_id = self.by_id.lock();
        by_id.retain(|_, s| live(s, now));
        if by_id.len() >= MAX_SESSIONS {
            let oldest = by_id
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                by_id.remove(&oldest);
            }
        }
        by_id.insert(
            id.clone(),
            Session {
                token,
                username,
                created: now,
                last_used: now,
            },
        );
        id
    }

    /// The live session with this id (refreshing its idle timer), if any.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut by_id = self.by_id.lock();
        let session = by_id.get_mut(id)?;
        if !live(session, now) {
            by_id.remove(id);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends a session.
    pub(crate) fn remove(&self, id: &str) {
        self.by_id.lock().remove(id);
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) < IDLE_TIMEOUT && now.duration_since(s.created) < MAX_AGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_map_to_their_token() {
        let sessions = Sessions::default();
        let a = sessions.create("token-a".into(), "alice".into());
        let b = sessions.create("token-b".into(), "bob".into());
        assert_ne!(a, b);
        assert!(a.len() >= 43, "{a}");
        assert_eq!(sessions.get(&a).unwrap().token, "token-a");
        assert_eq!(sessions.get(&b).unwrap().username, "bob");
        assert!(sessions.get("forged").is_none());
        sessions.remove(&a);
        assert!(sessions.get(&a).is_none());
    }

    #[test]
    fn debug_never_prints_the_token() {
        let sessions = Sessions::default();
        let id = sessions.create("secret-token".into(), "alice".into());
        let text = format!("{:?}", sessions.get(&id).unwrap());
        assert!(!text.contains("secret-token"), "{text}");
    }
}
