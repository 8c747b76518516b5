//! The manifests of an Application's source at its revision, fetched at most once per poll
//! interval per repository (sooner after a push notification or a requested sync/refresh),
//! and parsed once per fetched revision.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_apis::ApplicationSource;
use tokio::sync::Mutex;

use super::git;
use super::manifests::{self, Manifest};
use super::repo_credentials;
use super::webhook::normalize_repo_url;

/// The parsed manifests of one revision.
#[derive(Debug)]
pub(crate) struct Source {
    /// The commit SHA.
    pub revision: String,
    /// The objects, in file order.
    pub manifests: Vec<Manifest>,
}

/// What is known of one repository.
#[derive(Default)]
struct RepoState {
    /// Last fetch attempt.
    fetched_at: Option<Instant>,
    /// Bumped on every successful fetch: cached reads of older generations are stale.
    generation: u64,
    /// Why the last fetch failed (kept until the next attempt).
    error: Option<String>,
    /// A push notification or sync request asked for a fetch at this time.
    forced_at: Option<Instant>,
}

impl RepoState {
    fn due(&self, poll_interval: Duration) -> bool {
        match (self.fetched_at, self.forced_at) {
            (None, _) => true,
            (Some(f), Some(forced)) if forced > f => true,
            (Some(f), _) => f.elapsed() >= poll_interval,
        }
    }
}

/// A fetch that takes longer is reported as failed (the repository counts as unreachable).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

type ReadKey = (String, String, String, bool);
/// A parsed revision (or why it could not be), and the fetch generation it was read from.
type CachedRead = (u64, Result<Arc<Source>, String>);

/// Fetched repositories and parsed revisions, shared by every Application.
pub(crate) struct Sources {
    cache_dir: PathBuf,
    poll_interval: Duration,
    repos: Mutex<HashMap<String, Arc<Mutex<RepoState>>>>,
    reads: Mutex<HashMap<ReadKey, CachedRead>>,
}

impl Sources {
    /// Repositories are cached under `cache_dir` and fetched every `poll_interval`.
    pub(crate) fn new(cache_dir: PathBuf, poll_interval: Duration) -> Self {
        Sources {
            cache_dir,
            poll_interval,
            repos: Mutex::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
        }
    }

    async fn repo(&self, url: &str) -> Arc<Mutex<RepoState>> {
        self.repos
            .lock()
            .await
            .entry(url.to_string())
            .or_default()
            .clone()
    }

    /// Marks every repository whose normalized URL is in `normalized_urls` for a fetch now;
    /// returns whether any is known.
    pub(crate) async fn force(&self, normalized_urls: &[String]) -> bool {
        let now = Instant::now();
        let mut any = false;
        for (url, state) in self.repos.lock().await.iter() {
            if normalized_urls.contains(&normalize_repo_url(url)) {
                state.lock().await.forced_at = Some(now);
                any = true;
            }
        }
        any
    }

    /// The manifests of `source` (`force`: fetch first whatever the poll interval says).
    /// Errors are messages for a `ComparisonError` condition.
    pub(crate) async fn load(
        &self,
        hub_client: &kube::Client,
        namespace: &str,
        source: &ApplicationSource,
        force: bool,
    ) -> Result<Arc<Source>, String> {
        let url = source.repo_url.trim().to_string();
        if url.is_empty() {
            return Err("spec.source.repoURL is required".into());
        }
        let state = self.repo(&url).await;
        let mut state = state.lock().await;
        if force {
            state.forced_at = Some(Instant::now());
        }
        if state.due(self.poll_interval) {
            state.fetched_at = Some(Instant::now());
            match self.fetch(hub_client, namespace, &url).await {
                Ok(()) => {
                    state.error = None;
                    state.generation += 1;
                }
                Err(message) => state.error = Some(message),
            }
        }
        if let Some(message) = &state.error {
            return Err(message.clone());
        }
        let generation = state.generation;
        drop(state);
        self.read(&url, source, generation).await
    }

    async fn fetch(
        &self,
        hub_client: &kube::Client,
        namespace: &str,
        url: &str,
    ) -> Result<(), String> {
        let credentials = repo_credentials::find(hub_client, namespace, url)
            .await
            .map_err(|e| format!("reading repository credentials: {e}"))?;
        let cache_dir = self.cache_dir.clone();
        let url = url.to_string();
        let task = tokio::task::spawn_blocking({
            let url = url.clone();
            move || git::fetch(&cache_dir, &url, credentials.as_ref())
        });
        match tokio::time::timeout(FETCH_TIMEOUT, task).await {
            Ok(joined) => joined
                .map_err(|e| format!("fetch task: {e}"))?
                .map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "failed to fetch {url}: no answer within {}s",
                FETCH_TIMEOUT.as_secs()
            )),
        }
    }

    async fn read(
        &self,
        url: &str,
        source: &ApplicationSource,
        generation: u64,
    ) -> Result<Arc<Source>, String> {
        let recurse = source.directory.as_ref().is_some_and(|d| d.recurse);
        let key = (
            url.to_string(),
            source.target_revision.clone(),
            source.path.clone(),
            recurse,
        );
        if let Some((generation_read, result)) = self.reads.lock().await.get(&key)
            && *generation_read == generation
        {
            return result.clone();
        }
        let (cache_dir, url_owned) = (self.cache_dir.clone(), url.to_string());
        let (revision, path) = (source.target_revision.clone(), source.path.clone());
        let result = tokio::task::spawn_blocking(move || {
            let snapshot = git::read(&cache_dir, &url_owned, &revision, &path, recurse)
                .map_err(|e| e.to_string())?;
            let manifests = manifests::parse(&snapshot.files)
                .map_err(|e| format!("revision {}: {e}", snapshot.revision))?;
            Ok(Arc::new(Source {
                revision: snapshot.revision,
                manifests,
            }))
        })
        .await
        .map_err(|e| format!("read task: {e}"))
        .and_then(|r| r);
        self.reads
            .lock()
            .await
            .insert(key, (generation, result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_is_due_first_then_per_interval_or_when_forced() {
        let mut state = RepoState::default();
        let poll = Duration::from_secs(180);
        assert!(state.due(poll));
        state.fetched_at = Some(Instant::now());
        assert!(!state.due(poll));
        assert!(state.due(Duration::ZERO));
        state.forced_at = Some(Instant::now() + Duration::from_millis(1));
        assert!(state.due(poll));
    }
}
