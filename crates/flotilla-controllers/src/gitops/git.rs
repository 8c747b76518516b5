//! Git access with gitoxide (`gix`), no `git` binary: fetch a repository into a bare cache
//! repository, resolve a revision (branch, tag, commit; `HEAD` by default) and read the files
//! under a path at that commit.
//!
//! `git://` and `https://` repositories are fetched into `<cache>/<hash of the URL>`; a
//! `file://` repository is opened in place (gitoxide's `file://` transport would spawn
//! `git-upload-pack`). Everything here blocks: call it from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use gix::remote::Direction;
use sha2::Digest as _;

/// Why a repository could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The URL's scheme is not served.
    #[error("repository {url:?}: only https://, git:// and file:// repositories are supported")]
    UnsupportedUrl {
        /// The repoURL.
        url: String,
    },
    /// Connecting or fetching failed.
    #[error("failed to fetch {url}: {message}")]
    Unreachable {
        /// The repoURL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// No branch, tag or commit has that name.
    #[error("unable to resolve '{revision}' to a commit SHA in {url}")]
    UnknownRevision {
        /// The repoURL.
        url: String,
        /// The targetRevision.
        revision: String,
    },
    /// The path is not in the commit's tree.
    #[error("app path does not exist: {path:?} at revision {revision}")]
    MissingPath {
        /// The source path.
        path: String,
        /// The commit SHA.
        revision: String,
    },
    /// Reading the local repository failed.
    #[error("repository {url}: {message}")]
    Repository {
        /// The repoURL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// `Result` of Git access.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// A username and password (or token) for `https://` repositories.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// User name (any non-empty value for a bare token).
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// One file read from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    /// Path relative to the repository root.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
}

/// The files under a path at a resolved commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The commit SHA.
    pub revision: String,
    /// The manifest files (`.yaml`, `.yml`, `.json`), in path order.
    pub files: Vec<File>,
}

/// How a repository is reached.
enum Location {
    /// A local repository opened in place.
    Local(PathBuf),
    /// A remote fetched into a cache.
    Remote,
}

fn location(url: &str) -> Result<Location> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Location::Local(PathBuf::from(path)));
    }
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("git://") {
        return Ok(Location::Remote);
    }
    Err(Error::UnsupportedUrl {
        url: url.to_string(),
    })
}

/// The cache folder of `url` under `cache_dir`.
pub(crate) fn cache_path(cache_dir: &Path, url: &str) -> PathBuf {
    let digest = sha2::Sha256::digest(url.as_bytes());
    let name: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    cache_dir.join(name)
}

fn open_isolated(path: &Path, url: &str) -> Result<gix::Repository> {
    gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| Error::Repository {
        url: url.to_string(),
        message: format!("cannot open {}: {e}", path.display()),
    })
}

/// Fetches every branch, every tag and `HEAD` of a remote `url` into its cache (created on
/// first use). A `file://` URL needs no fetch: it returns at once.
pub(crate) fn fetch(cache_dir: &Path, url: &str, credentials: Option<&Credentials>) -> Result<()> {
    if let Location::Local(_) = location(url)? {
        return Ok(());
    }
    let path = cache_path(cache_dir, url);
    let unreachable = |message: String| Error::Unreachable {
        url: url.to_string(),
        message,
    };
    let repo = if path.join("HEAD").exists() {
        open_isolated(&path, url)?
    } else {
        std::fs::create_dir_all(&path).map_err(|e| unreachable(format!("cache: {e}")))?;
        gix::ThreadSafeRepository::init_opts(
            &path,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            gix::open::Options::isolated(),
        )
        .map_err(|e| unreachable(format!("cache: {e}")))?
        .to_thread_local()
    };
    let remote = repo
        .remote_at(url)
        .and_then(|r| {
            r.with_refspecs(
                [
                    "+HEAD:refs/remotes/origin/HEAD",
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                Direction::Fetch,
            )
        })
        .map_err(|e| unreachable(e.to_string()))?;
    let connection = remote
        .connect(Direction::Fetch)
        .map_err(|e| unreachable(e.to_string()))?;
    let connection = match credentials.cloned() {
        Some(creds) => connection.with_credentials(move |action| match action {
            gix::credentials::helper::Action::Get(context) => {
                Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: creds.username.clone(),
                        password: creds.password.clone(),
                        oauth_refresh_token: None,
                    },
                    next: context.into(),
                }))
            }
            _ => Ok(None),
        }),
        None => connection.with_credentials(|_| Ok(None)),
    };
    connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| unreachable(e.to_string()))?
        .receive(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(())
}

/// Resolves `revision` and reads the manifest files under `dir` (sub-folders too with
/// `recurse`) from the fetched cache (remote URLs) or the repository itself (`file://`).
pub(crate) fn read(
    cache_dir: &Path,
    url: &str,
    revision: &str,
    dir: &str,
    recurse: bool,
) -> Result<Snapshot> {
    let (repo, remote) = match location(url)? {
        Location::Local(path) => (open_isolated(&path, url)?, false),
        Location::Remote => (open_isolated(&cache_path(cache_dir, url), url)?, true),
    };
    let commit = resolve(&repo, url, revision, remote)?;
    let files = read_tree(&repo, url, commit, dir, recurse)?;
    Ok(Snapshot {
        revision: commit.to_string(),
        files,
    })
}

/// The reference names tried for `revision`, in order.
fn candidates(revision: &str, remote: bool) -> Vec<String> {
    let head = revision.is_empty() || revision == "HEAD";
    match (head, remote) {
        (true, true) => vec!["refs/remotes/origin/HEAD".into()],
        (true, false) => vec!["HEAD".into()],
        (false, true) => vec![
            format!("refs/remotes/origin/{revision}"),
            format!("refs/tags/{revision}"),
        ],
        (false, false) => vec![
            format!("refs/heads/{revision}"),
            format!("refs/tags/{revision}"),
        ],
    }
}

fn resolve(repo: &gix::Repository, url: &str, revision: &str, remote: bool) -> Result<ObjectId> {
    let unknown = || Error::UnknownRevision {
        url: url.to_string(),
        revision: if revision.is_empty() {
            "HEAD"
        } else {
            revision
        }
        .to_string(),
    };
    for name in candidates(revision, remote) {
        if let Ok(Some(mut reference)) = repo.try_find_reference(name.as_str())
            && let Ok(commit) = reference.peel_to_commit()
        {
            return Ok(commit.id);
        }
    }
    let is_sha =
        (4..=40).contains(&revision.len()) && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_sha {
        return Err(unknown());
    }
    let prefix = gix::hash::Prefix::from_hex(revision).map_err(|_| unknown())?;
    let id = match repo.objects.lookup_prefix(prefix, None) {
        Ok(Some(Ok(id))) => id,
        _ => return Err(unknown()),
    };
    repo.find_commit(id).map_err(|_| unknown())?;
    Ok(id)
}

fn is_manifest(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

fn read_tree(
    repo: &gix::Repository,
    url: &str,
    commit: ObjectId,
    dir: &str,
    recurse: bool,
) -> Result<Vec<File>> {
    let fail = |e: gix::Error| Error::Repository {
        url: url.to_string(),
        message: e.to_string(),
    };
    let root = repo
        .find_commit(commit)
        .map_err(fail)?
        .tree()
        .map_err(fail)?;
    let dir = dir.trim_matches('/');
    let missing = || Error::MissingPath {
        path: dir.to_string(),
        revision: commit.to_string(),
    };
    let tree = if dir.is_empty() || dir == "." {
        root
    } else {
        let entry = root
            .lookup_entry_by_path(dir)
            .map_err(fail)?
            .ok_or_else(missing)?;
        if !entry.mode().is_tree() {
            return Err(missing());
        }
        entry.object().map_err(fail)?.into_tree()
    };
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_string(), tree)];
    while let Some((prefix, tree)) = pending.pop() {
        for entry in tree.iter() {
            let entry = entry.map_err(fail)?;
            let name = entry.filename().to_string();
            let path = if prefix.is_empty() || prefix == "." {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if entry.mode().is_tree() {
                if recurse {
                    pending.push((path, entry.object().map_err(fail)?.into_tree()));
                }
            } else if entry.mode().is_blob() && is_manifest(&name) {
                let data = entry.object().map_err(fail)?.detach().data;
                files.push(File { path, data });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_looked_up_as_branches_then_tags() {
        assert_eq!(candidates("", true), ["refs/remotes/origin/HEAD"]);
        assert_eq!(candidates("HEAD", false), ["HEAD"]);
        assert_eq!(
            candidates("v1", true),
            ["refs/remotes/origin/v1", "refs/tags/v1"]
        );
        assert_eq!(
            candidates("main", false),
            ["refs/heads/main", "refs/tags/main"]
        );
    }

    #[test]
    fn only_three_schemes_are_served() {
        assert!(matches!(location("file:///tmp/x"), Ok(Location::Local(_))));
        assert!(matches!(
            location("git://127.0.0.1/x"),
            Ok(Location::Remote)
        ));
        assert!(matches!(location("https://h/x.git"), Ok(Location::Remote)));
        assert!(matches!(
            location("ssh://git@h/x"),
            Err(Error::UnsupportedUrl { .. })
        ));
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
