//! The scrape's member clients: one [`PlainClient`] per member on the member's shared
//! connection ([`crate::multiplexed_client`]), impersonating `system:flotilla:fleet-metrics`
//! (group `system:monitoring`, which may read `/metrics`). The stored credential is read again
//! every [`CLIENT_TTL`]; an unchanged one keeps the client and its connection. A plain client,
//! not a [`kube::Client`]: a scrape is one GET read as it arrives, and kube's clients each
//! cost a tower `Buffer` (a task and ~8 KiB) per member, plus one more per scrape for the
//! impersonating wrapper the scrape used to put around the pooled client.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::application::member_clients::Identity;
use crate::cluster::credentials::{self, ClusterCredential};
use crate::multiplexed_client::{PlainClient, forget_shared, plain_client};

/// How long a client is used before its member's credential is read again.
const CLIENT_TTL: Duration = Duration::from_secs(60);

/// A member's scrape client, the credential it was built from and its connection's URL.
struct Scraper {
    client: PlainClient,
    credential: ClusterCredential,
    url: http::Uri,
    checked: Instant,
}

/// The scrape clients by member.
pub(crate) struct Scrapers {
    hub_client: kube::Client,
    timeout: Duration,
    by_cluster: Mutex<HashMap<String, Scraper>>,
}

impl Scrapers {
    /// No client yet; credentials are read through `hub_client`, and each connect and
    /// response wait is bounded by `timeout`.
    pub(crate) fn new(hub_client: kube::Client, timeout: Duration) -> Scrapers {
        Scrapers {
            hub_client,
            timeout,
            by_cluster: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Scraper>> {
        self.by_cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The scrape client of `cluster`.
    pub(crate) async fn client(&self, cluster: &str) -> anyhow::Result<PlainClient> {
        if let Some(known) = self.lock().get(cluster)
            && known.checked.elapsed() < CLIENT_TTL
        {
            return Ok(known.client.clone());
        }
        let credential = credentials::read(&self.hub_client, cluster).await?;
        if let Some(known) = self.lock().get_mut(cluster)
            && known.credential == credential
        {
            known.checked = Instant::now();
            return Ok(known.client.clone());
        }
        let mut config = credential.to_config(cluster, Some(self.timeout)).await?;
        let scraper = Identity::hub_component("fleet-metrics", &["system:monitoring"]);
        config.auth_info.impersonate = scraper.user;
        config.auth_info.impersonate_groups = Some(scraper.groups);
        let url = config.cluster_url.clone();
        let client = plain_client(config)?;
        let known = Scraper {
            client: client.clone(),
            credential,
            url,
            checked: Instant::now(),
        };
        self.lock().insert(cluster.to_string(), known);
        Ok(client)
    }

    /// Drops `cluster`'s client after a failed scrape: the next one opens a new connection.
    pub(crate) fn forget(&self, cluster: &str) {
        if let Some(gone) = self.lock().remove(cluster) {
            forget_shared(&gone.url);
        }
    }

    /// Drops the clients of members not in `clusters` (gone or unavailable).
    pub(crate) fn keep_only(&self, clusters: &[String]) {
        self.lock().retain(|name, _| clusters.contains(name));
    }
}
