//! The cluster's certificate authority: CA, serving certificate, client certificates and
//! kubeconfigs. (Owned by the auth work; this file fixes the interface.)

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pki: {0}")]
    Pki(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CA and serving identity kept in a data dir (`ca.crt`, `ca.key`, `server.crt`, ...).
pub struct ClusterPki {
    _private: (),
}

impl ClusterPki {
    /// Loads the CA from `data_dir`, creating it (and the serving certificate for
    /// 127.0.0.1, ::1, localhost) at first start.
    pub fn load_or_create(_data_dir: &Path) -> Result<ClusterPki> {
        Err(Error::Pki("not built yet".into()))
    }

    /// TLS for the API server: h2 + http/1.1 ALPN; client certificates are requested and,
    /// when sent, verified against the CA (requests without one go on to token auth).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        unreachable_config()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        String::new()
    }

    /// A kubeconfig for `user` (CN) in `groups` (O) with a freshly signed client certificate.
    pub fn client_kubeconfig(
        &self,
        _server_url: &str,
        _cluster_name: &str,
        _user: &str,
        _groups: &[String],
    ) -> Result<String> {
        Err(Error::Pki("not built yet".into()))
    }
}

fn unreachable_config() -> Arc<rustls::ServerConfig> {
    panic!("pki not built yet")
}
