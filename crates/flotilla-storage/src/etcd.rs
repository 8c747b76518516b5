//! The etcd v3 backend: the same [`Backend`] over an etcd cluster,
//! so several hubs can share one store.
//!
//! etcd already is this trait: its revision is the store revision, a key's
//! `create_revision`/`mod_revision` are ours, a conditional write is a transaction that
//! compares the key's `create_revision` (0 when absent) or `mod_revision`, a range has a
//! limit and a `more` flag, and a watch starts from a revision over a key range.
//!
//! Differences from the embedded backend:
//! - Reads go to etcd (linearizable ranges), so they cost a network round trip.
//! - History is etcd's: it survives restarts of the hub and is bounded by etcd's
//!   compaction, not by a ring in memory.
//! - etcd does not report its compacted revision except through errors, so
//!   [`compacted_revision`](Backend::compacted_revision) is the highest one this process has
//!   compacted to or been told about; a watch older than etcd's real compaction is still
//!   refused with [`Error::Compacted`] (checked by reading at that revision first).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KvClient, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};

use crate::{
    Backend, Error, Event, KeyValue, Precondition, RangeResult, Result, Revision, WatchStream,
    check_precondition,
};

/// Errors of the etcd backend. They reach callers as [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The etcd client failed (connection, gRPC status).
    #[error("etcd: {0}")]
    Client(#[from] etcd_client::Error),
    /// etcd returned a key that is not UTF-8.
    #[error("etcd returned a key that is not UTF-8: {0:?}")]
    NonUtf8Key(String),
    /// A response without a header (so without a revision).
    #[error("etcd answered without a response header")]
    NoHeader,
    /// A response of the wrong shape for the request.
    #[error("etcd answered {operation} with an unexpected response")]
    Unexpected {
        /// The request, e.g. `txn`.
        operation: &'static str,
    },
    /// etcd cancelled a watch (e.g. compacted under it).
    #[error("etcd cancelled the watch: {0}")]
    WatchCancelled(String),
    /// A write to the empty key.
    #[error("the empty key cannot be written")]
    EmptyKey,
    /// A TLS file could not be read.
    #[error("reading {path}: {source}")]
    ReadTls {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A client certificate without its key, or the reverse.
    #[error("a client certificate for etcd needs both the certificate and the key file")]
    HalfIdentity,
}

impl From<EtcdError> for Error {
    fn from(e: EtcdError) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// Maps a client error: anything that says etcd cannot be reached or cannot serve now (no
/// leader, timeouts, transport failures) is [`Error::Unavailable`], naming etcd's reason.
fn client_err(e: etcd_client::Error) -> Error {
    match &e {
        etcd_client::Error::GRpcStatus(status) if is_unavailable(status) => {
            Error::Unavailable(format!("etcd: {}", status.message()))
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            Error::Unavailable(format!("etcd: {e}"))
        }
        _ => EtcdError::Client(e).into(),
    }
}

fn is_unavailable(status: &tonic::Status) -> bool {
    use tonic::Code;
    let message = status.message();
    if message.contains("compacted") {
        return false;
    }
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    ) || message.contains("no leader")
        || message.contains("timed out")
}

/// How to reach an etcd cluster.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// `http://host:port` or `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// PEM CA bundle that signed the members' serving certificates (TLS).
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and key for etcd's client-certificate authentication.
    pub cert_file: Option<std::path::PathBuf>,
    /// The key of `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
    /// Where `/registry/...` lives in etcd (`--etcd-prefix`); empty or `/registry` keeps
    /// Kubernetes' own layout.
    pub prefix: String,
}

/// Maps the store's keys to etcd's under a prefix, so several Flotilla installations can
/// share one etcd: `/registry/REST` is `PREFIX/REST`; keys outside `/registry` (the shared
/// CA at `/flotilla/pki/cluster`) are `PREFIX/flotilla/...`. With prefix `/registry` every
/// key is stored as it is.
#[derive(Debug, Clone, Default)]
struct KeyMap {
    /// Empty when keys are stored as they are.
    prefix: String,
}

impl KeyMap {
    fn new(prefix: &str) -> KeyMap {
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix == "/registry" { "" } else { prefix };
        KeyMap {
            prefix: prefix.to_owned(),
        }
    }

    /// The etcd key for a store key.
    fn outward(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            return key.to_owned();
        }
        match key.strip_prefix("/registry") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", self.prefix)
            }
            _ => format!("{}{key}", self.prefix),
        }
    }

    /// The store key for an etcd key.
    fn inward(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            return key.to_owned();
        }
        let rest = key.strip_prefix(&self.prefix).unwrap_or(key);
        if rest.starts_with("/flotilla/") {
            rest.to_owned()
        } else {
            format!("/registry{rest}")
        }
    }
}

/// Per-request deadline: a request to an etcd without quorum fails with
/// [`Error::Unavailable`] after this long instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Backend`] on etcd v3.
#[derive(Clone)]
pub struct EtcdBackend {
    client: Client,
    /// The client's key-value service alone: cloned per request, where a whole [`Client`]
    /// clone copies eight service handles and the connect options (TLS files included).
    kv: KvClient,
    /// How often a request that never left is tried again (see [`EtcdBackend::unsent_retried`]).
    resends: usize,
    keys: KeyMap,
    /// The oldest `after` a watch may use, as far as this process knows.
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend").finish_non_exhaustive()
    }
}

impl EtcdBackend {
    /// Connects to the etcd cluster at `endpoints` (e.g. `http://127.0.0.1:2379`).
    pub async fn connect<E: AsRef<str>>(endpoints: &[E]) -> Result<Self, EtcdError> {
        Self::connect_with(&EtcdOptions {
            endpoints: endpoints.iter().map(|e| e.as_ref().to_owned()).collect(),
            ..EtcdOptions::default()
        })
        .await
    }

    /// Connects with TLS when `options` names a CA or a client certificate. The connection
    /// is lazy: an unreachable etcd shows up as [`Error::Unavailable`] on the first request.
    /// Watches require a leader, so they end (rather than hang) when etcd loses quorum.
    pub async fn connect_with(options: &EtcdOptions) -> Result<Self, EtcdError> {
        let mut connect = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        if let Some(tls) = tls_options(options)? {
            connect = connect.with_tls(tls);
        }
        let client = Client::connect(&options.endpoints, Some(connect)).await?;
        Ok(Self {
            kv: client.kv_client(),
            client,
            resends: 2 * options.endpoints.len(),
            keys: KeyMap::new(&options.prefix),
            compacted: Arc::new(AtomicI64::new(0)),
        })
    }

    /// Asks etcd every `every` until a member answers: the store is reachable when this
    /// returns. `on_retry` is told each failure (for a log line). The question is a
    /// serializable read, which a member answers from its own copy even without quorum: a
    /// member that answers but cannot commit is past this wait, and what the caller does next
    /// fails as the store being unavailable (`Error::Unavailable`), naming that cause.
    pub async fn wait_reachable(&self, every: Duration, mut on_retry: impl FnMut(&Error)) {
        loop {
            match self.answers().await {
                Ok(()) => return,
                Err(e) => on_retry(&e),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Whether a member answers a serializable count-only read.
    async fn answers(&self) -> Result<()> {
        self.unsent_retried(|mut etcd| async move {
            let options = GetOptions::new().with_count_only().with_serializable();
            etcd.get(vec![0], Some(options)).await
        })
        .await
        .map_err(client_err)?;
        Ok(())
    }

    fn learn_compacted(&self, floor: Revision) {
        self.compacted.fetch_max(floor, Ordering::Relaxed);
    }

    /// Runs `request` with a clone of the client, again when it failed before reaching etcd.
    ///
    /// etcd-client spreads requests over one lazily (re)connecting channel per endpoint. A
    /// channel whose last connect attempt failed keeps that error and hands it to the next
    /// request routed to it, even when its member has come back since. After all members
    /// were down, the first requests therefore fail with `tcp connect error` although etcd
    /// answers; likewise, with one member down, a share of requests lands on its channel.
    /// Such a request was never sent, so trying it again (on the next channel) is safe even
    /// for a write: up to twice per endpoint, pausing 50 ms each time.
    async fn unsent_retried<T, F, Fut>(&self, request: F) -> Result<T, etcd_client::Error>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.unsent_retried_on(&self.kv, request).await
    }

    /// [`EtcdBackend::unsent_retried`] with a clone of `client` (e.g. the watch service).
    async fn unsent_retried_on<C, T, F, Fut>(
        &self,
        client: &C,
        mut request: F,
    ) -> Result<T, etcd_client::Error>
    where
        C: Clone,
        F: FnMut(C) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut resent = 0;
        loop {
            match request(client.clone()).await {
                Err(e) if resent < self.resends && never_sent(&e) => {
                    resent += 1;
                    tracing::debug!(error = %e, resent, "etcd request not sent; trying again");
                    tokio::time::sleep(RESEND_PAUSE).await;
                }
                other => return other,
            }
        }
    }
}

/// The pause before a request that never left is sent again.
const RESEND_PAUSE: Duration = Duration::from_millis(50);

/// Whether the request failed while connecting, so etcd never saw it: tonic reports a
/// connect failure as `Unavailable` with the connector's message (`tcp connect error`,
/// `error trying to connect`), etcd-client as a transport error.
fn never_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable && status.message().contains("connect")
        }
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::ReadTls {
        path: path.to_owned(),
        source,
    })
}

fn tls_options(options: &EtcdOptions) -> Result<Option<etcd_client::TlsOptions>, EtcdError> {
    if options.ca_file.is_none() && options.cert_file.is_none() {
        return Ok(None);
    }
    let mut tls = etcd_client::TlsOptions::new();
    if let Some(ca) = &options.ca_file {
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read_pem(ca)?));
    }
    match (&options.cert_file, &options.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(etcd_client::Identity::from_pem(
                read_pem(cert)?,
                read_pem(key)?,
            ));
        }
        (None, None) => {}
        _ => return Err(EtcdError::HalfIdentity),
    }
    Ok(Some(tls))
}

/// The first key after every key starting with `prefix` (etcd's `range_end`); `\0` means
/// "to the end of the keyspace".
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn convert(keys: &KeyMap, kv: &etcd_client::KeyValue) -> Result<KeyValue, EtcdError> {
    let key = kv
        .key_str()
        .map_err(|_| EtcdError::NonUtf8Key(String::from_utf8_lossy(kv.key()).into_owned()))?;
    Ok(KeyValue {
        key: keys.inward(key),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The comparison that holds exactly when `precondition` does.
fn compare(key: &str, precondition: Precondition) -> Compare {
    match precondition {
        // A missing key has create_revision 0.
        Precondition::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
        Precondition::Exists => Compare::create_revision(key, CompareOp::Greater, 0),
        Precondition::ModRevision(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
    }
}

/// Why a transaction's comparison failed, from the key as the failure branch read it.
fn refusal(
    keys: &KeyMap,
    key: &str,
    precondition: Precondition,
    responses: &[TxnOpResponse],
    operation: &'static str,
) -> Error {
    let current = match responses.first() {
        Some(TxnOpResponse::Get(get)) => {
            match get.kvs().first().map(|kv| convert(keys, kv)).transpose() {
                Ok(current) => current,
                Err(e) => return e.into(),
            }
        }
        _ => return EtcdError::Unexpected { operation }.into(),
    };
    match (current, operation) {
        (None, "delete") => Error::NotFound(key.to_owned()),
        (current, _) => match check_precondition(key, current.as_ref(), precondition) {
            Err(e) => e,
            // The comparison failed on the same read, so the check cannot pass.
            Ok(()) => EtcdError::Unexpected { operation }.into(),
        },
    }
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .unsent_retried(|mut etcd| async move {
                etcd.get(vec![0], Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await
            .map_err(client_err)?;
        Ok(resp.header().ok_or(EtcdError::NoHeader)?.revision())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.compacted.load(Ordering::Relaxed))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let stored = self.keys.outward(key);
        let resp = self
            .unsent_retried(|mut etcd| {
                let stored = stored.clone();
                async move { etcd.get(stored, None).await }
            })
            .await
            .map_err(client_err)?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| convert(&self.keys, kv))
            .transpose()?)
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<RangeResult> {
        let start = match start_after {
            // The smallest key greater than `after`.
            Some(after) if after >= prefix => format!("{}\0", self.keys.outward(after)),
            _ => self.keys.outward(prefix),
        };
        let mut options = GetOptions::new().with_range(prefix_end(&self.keys.outward(prefix)));
        if limit > 0 {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let resp = self
            .unsent_retried(|mut etcd| {
                let (start, options) = (start.clone(), options.clone());
                async move { etcd.get(start, Some(options)).await }
            })
            .await
            .map_err(client_err)?;
        let revision = resp.header().ok_or(EtcdError::NoHeader)?.revision();
        let kvs = resp
            .kvs()
            .iter()
            .map(|kv| convert(&self.keys, kv))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RangeResult {
            kvs,
            more: resp.more(),
            revision,
        })
    }

    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<KeyValue> {
        if key.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        let stored = self.keys.outward(key);
        // The previous key tells an update its create_revision; a create has none (and etcd
        // then skips reading it).
        let options = match precondition {
            Precondition::Absent => None,
            _ => Some(PutOptions::new().with_prev_key()),
        };
        let txn = Txn::new()
            .when([compare(&stored, precondition)])
            .and_then([TxnOp::put(stored.as_str(), value.to_vec(), options)])
            .or_else([TxnOp::get(stored.as_str(), None)]);
        let resp = self.txn(txn).await?;
        let revision = resp.header().ok_or(EtcdError::NoHeader)?.revision();
        let responses = resp.op_responses();
        if !resp.succeeded() {
            return Err(refusal(&self.keys, key, precondition, &responses, "put"));
        }
        let Some(TxnOpResponse::Put(put)) = responses.first() else {
            return Err(EtcdError::Unexpected { operation: "put" }.into());
        };
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: put.prev_key().map_or(revision, |p| p.create_revision()),
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<(KeyValue, Revision)> {
        let stored = self.keys.outward(key);
        let cmp = match precondition {
            // Deleting requires the key; "absent" can never hold, the failure branch says why.
            Precondition::Absent => Compare::create_revision(stored.as_str(), CompareOp::Less, 0),
            other => compare(&stored, other),
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::delete(
                stored.as_str(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(stored.as_str(), None)]);
        let resp = self.txn(txn).await?;
        let revision = resp.header().ok_or(EtcdError::NoHeader)?.revision();
        let responses = resp.op_responses();
        if !resp.succeeded() {
            return Err(refusal(&self.keys, key, precondition, &responses, "delete"));
        }
        match responses.first() {
            Some(TxnOpResponse::Delete(delete)) => match delete.prev_kvs().first() {
                Some(prev) => Ok((convert(&self.keys, prev)?, revision)),
                None => Err(Error::NotFound(key.to_owned())),
            },
            _ => Err(EtcdError::Unexpected {
                operation: "delete",
            }
            .into()),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let known = self.compacted.load(Ordering::Relaxed);
        if after < known {
            return Err(Error::Compacted {
                requested: after,
                compacted: known,
            });
        }
        // etcd reports a compacted start only after the watch is created; reading at the
        // start revision fails at once instead.
        let current = self.current_revision().await?;
        if after < current {
            let at = GetOptions::new().with_count_only().with_revision(after + 1);
            let probe = self
                .unsent_retried(|mut etcd| {
                    let at = at.clone();
                    async move { etcd.get(vec![0], Some(at)).await }
                })
                .await;
            if let Err(etcd_client::Error::GRpcStatus(status)) = &probe
                && status.message().contains("compacted")
            {
                let compacted = self.learn_compaction_from_watch(prefix, after).await;
                return Err(Error::Compacted {
                    requested: after,
                    compacted,
                });
            }
            probe.map_err(client_err)?;
        }
        let stored = self.keys.outward(prefix);
        let options = WatchOptions::new()
            .with_range(prefix_end(&stored))
            .with_start_revision(after + 1)
            .with_prev_key();
        let stream = self
            .unsent_retried_on(&self.client.watch_client(), |mut etcd| {
                let (stored, options) = (stored.clone(), options.clone());
                async move { etcd.watch(stored, Some(options)).await }
            })
            .await
            .map_err(client_err)?;
        let state = WatchState {
            stream,
            last: after,
            backend: self.clone(),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, next_batch)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let compacted = self
            .unsent_retried(|mut etcd| async move { etcd.compact(revision, None).await })
            .await;
        match compacted {
            Ok(_) => {}
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("has been compacted") => {}
            Err(e) => return Err(client_err(e)),
        }
        // etcd keeps the event at `revision` itself; the trait forgets it.
        self.learn_compacted(revision);
        Ok(())
    }
}

impl EtcdBackend {
    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.unsent_retried(|mut etcd| {
            let txn = txn.clone();
            async move { etcd.txn(txn).await }
        })
        .await
        .map_err(client_err)
    }

    /// etcd names its compacted revision only when it cancels a watch for it.
    async fn learn_compaction_from_watch(&self, prefix: &str, after: Revision) -> Revision {
        let fallback = (after + 1).max(self.compacted.load(Ordering::Relaxed));
        let stored = self.keys.outward(prefix);
        let options = WatchOptions::new()
            .with_range(prefix_end(&stored))
            .with_start_revision(after + 1);
        let Ok(mut stream) = self
            .client
            .watch_client()
            .watch(stored, Some(options))
            .await
        else {
            return fallback;
        };
        let wait = async {
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() && resp.compact_revision() > 0 {
                    return resp.compact_revision() - 1;
                }
            }
            fallback
        };
        let floor = tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or(fallback);
        self.learn_compacted(floor);
        floor
    }
}

struct WatchState {
    stream: etcd_client::WatchStream,
    /// The last revision delivered (or the start).
    last: Revision,
    backend: EtcdBackend,
    done: bool,
}

async fn next_batch(mut w: WatchState) -> Option<(Result<Vec<Event>>, WatchState)> {
    if w.done {
        return None;
    }
    loop {
        let resp = match w.stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return None,
            Err(e) => {
                w.done = true;
                return Some((Err(client_err(e)), w));
            }
        };
        if resp.canceled() {
            w.done = true;
            let err = if resp.compact_revision() > 0 {
                let compacted = resp.compact_revision() - 1;
                w.backend.learn_compacted(compacted);
                Error::Compacted {
                    requested: w.last,
                    compacted,
                }
            } else {
                EtcdError::WatchCancelled(resp.cancel_reason().to_owned()).into()
            };
            return Some((Err(err), w));
        }
        let mut events = Vec::with_capacity(resp.events().len());
        for event in resp.events() {
            match convert_event(&w.backend.keys, event) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {}
                Err(e) => {
                    w.done = true;
                    return Some((Err(e.into()), w));
                }
            }
        }
        if let Some(last) = events.last() {
            w.last = last.revision();
            return Some((Ok(events), w));
        }
        // A created or progress notice: nothing to deliver.
    }
}

fn convert_event(keys: &KeyMap, event: &etcd_client::Event) -> Result<Option<Event>, EtcdError> {
    let Some(kv) = event.kv() else {
        return Ok(None);
    };
    let prev = event.prev_kv().map(|kv| convert(keys, kv)).transpose()?;
    Ok(Some(match event.event_type() {
        etcd_client::EventType::Put => Event::Put {
            kv: convert(keys, kv)?,
            prev,
        },
        etcd_client::EventType::Delete => {
            let revision = kv.mod_revision();
            // etcd leaves the previous value out only when it was compacted away; keep the
            // key so the watcher still learns of the delete.
            let prev = match prev {
                Some(prev) => prev,
                None => KeyValue {
                    value: Bytes::new(),
                    ..convert(keys, kv)?
                },
            };
            Event::Delete { prev, revision }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::{KeyMap, never_sent, prefix_end};

    #[test]
    fn only_requests_that_never_left_are_sent_again() {
        let status = |code, message: &str| {
            etcd_client::Error::GRpcStatus(tonic::Status::new(code, message.to_owned()))
        };
        assert!(never_sent(&status(
            tonic::Code::Unavailable,
            "tcp connect error"
        )));
        // etcd saw these: it has no leader, or the answer was lost.
        assert!(!never_sent(&status(
            tonic::Code::Unavailable,
            "etcdserver: no leader"
        )));
        assert!(!never_sent(&status(
            tonic::Code::Unknown,
            "connection reset"
        )));
        assert!(!never_sent(&status(
            tonic::Code::Cancelled,
            "Timeout expired"
        )));
    }

    #[test]
    fn keys_live_under_the_etcd_prefix() {
        let same = KeyMap::new("/registry");
        assert_eq!(
            same.outward("/registry/core/pods/a"),
            "/registry/core/pods/a"
        );
        assert_eq!(
            same.inward("/flotilla/pki/cluster"),
            "/flotilla/pki/cluster"
        );
        let other = KeyMap::new("/fleet-a/");
        for (key, stored) in [
            ("/registry/core/pods/d/a", "/fleet-a/core/pods/d/a"),
            ("/registry/", "/fleet-a/"),
            ("/flotilla/pki/cluster", "/fleet-a/flotilla/pki/cluster"),
        ] {
            assert_eq!(other.outward(key), stored);
            assert_eq!(other.inward(stored), key);
        }
    }

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0");
        assert_eq!(prefix_end("a"), b"b");
        assert_eq!(prefix_end(""), [0]);
    }
}
