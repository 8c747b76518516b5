//! Finding the hub the way kubectl does: `--kubeconfig`, then `$KUBECONFIG` (a list of files,
//! merged), then `~/.kube/config`.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Errors loading a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named kubeconfig could not be read.
    #[error("cannot load kubeconfig {path}: {cause}")]
    Load {
        /// The file that was named.
        path: String,
        /// Displayed, not chained: its message already carries its cause.
        cause: Box<kube::config::KubeconfigError>,
    },
    /// No kubeconfig anywhere.
    #[error(
        "no kubeconfig found: pass --kubeconfig FILE, set $KUBECONFIG, or create ~/.kube/config ({0})"
    )]
    NotFound(String),
    /// The client could not be built.
    #[error("cannot build a client from the kubeconfig: {0}")]
    Client(Box<kube::Error>),
}

/// The hub's client configuration by the kubectl rules.
pub(crate) async fn hub_config(kubeconfig: Option<&Path>) -> Result<kube::Config, Error> {
    match kubeconfig {
        Some(path) => {
            let load = |source: kube::config::KubeconfigError| Error::Load {
                path: path.display().to_string(),
                cause: Box::new(source),
            };
            let kc = Kubeconfig::read_from(path).map_err(load)?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(load)
        }
        None => kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|e| Error::NotFound(e.to_string())),
    }
}

/// A client for the hub by the kubectl rules.
pub async fn hub_client(kubeconfig: Option<&Path>) -> Result<kube::Client, Error> {
    let config = hub_config(kubeconfig).await?;
    kube::Client::try_from(config).map_err(|e| Error::Client(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_kubeconfig_wins_and_sets_the_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kc");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: demo\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: x\n",
        )
        .unwrap();
        let config = hub_config(Some(&path)).await.unwrap();
        assert_eq!(config.default_namespace, "demo");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:1/");
        let missing = hub_config(Some(&dir.path().join("nope"))).await;
        assert!(matches!(missing, Err(Error::Load { .. })));
    }
}
