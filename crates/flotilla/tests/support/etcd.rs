//! Local etcd clusters for the HA tests (real `etcd` processes, through
//! `flotilla_storage::etcd_process`) and hubs over them.

use std::path::Path;
use std::time::Duration;

use super::Server;

/// Generous: etcd elections and hub start-ups on a loaded 2-core machine.
pub(crate) const WAIT: Duration = Duration::from_secs(90);

pub(crate) use flotilla_storage::etcd_process::EtcdCluster;

pub(crate) fn etcd_hub(name: &str, etcd: &EtcdCluster, dir: &Path) -> Server {
    Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--storage",
            "etcd",
            "--etcd-endpoints",
            &etcd.endpoints(),
            "--id",
            name,
        ],
        &dir.join(name),
    )
}

pub(crate) fn lease_holder(hub: &Server) -> String {
    hub.jsonpath(
        "lease",
        "flotilla-controllers",
        "kube-system",
        "{.spec.holderIdentity}",
    )
}
