//! The command line, exactly as `../shared/SPEC.md` section 1 lists it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The whole command line: global options and one command.
#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "A Kubernetes-compatible fleet hub that distributes applications to member clusters"
)]
pub struct Cli {
    /// Path to the kubeconfig of the hub (then $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: the API server plus all controllers.
    Hub(HubArgs),
    /// Run a simulated member cluster: the API server plus a workload simulator.
    Member(MemberArgs),
    /// The one-command playground: a hub plus simulated members, all joined.
    Dev(DevArgs),
    /// Register, list, label and detach member clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Apply an Application (and any other objects in the file) to the hub.
    Up(UpArgs),
    /// The unified status of an Application across clusters.
    Status(StatusArgs),
    /// The objects each cluster would get from an Application (a file, or a stored one by
    /// name), overrides applied, as YAML; nothing is written.
    DryRun(DryRunArgs),
    /// What applying an Application file would change on each member cluster (exit 0: nothing,
    /// 1: something, >1: error, as kubectl diff).
    Diff(DiffArgs),
    /// Workflow operations on an Application.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Read resources in member clusters through the hub's cluster gateway, as you.
    Get(GetArgs),
    /// Grant and list access to member clusters (fleet-wide RBAC).
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Mint user credentials.
    #[command(subcommand)]
    Kubeconfig(KubeconfigCommand),
    /// Argo CD Applications synced from Git: status, sync, diff.
    #[command(subcommand)]
    Gitops(GitopsCommand),
    /// Run the multi-cluster gateway: an HTTP reverse proxy serving the hub's Ingresses of
    /// class `flotilla` over the members' service proxies.
    Gateway(GatewayArgs),
    /// Fleet metrics as tables (the hub's `/metrics/clusters`).
    #[command(subcommand)]
    Top(TopCommand),
}

/// `flotilla top ...`
#[derive(Debug, Clone, Subcommand)]
pub enum TopCommand {
    /// Per cluster: availability, Kubernetes version, Deployments, ready replicas, running Pods.
    Clusters,
    /// Per application and cluster: ready replicas of its Deployments and its last rollout.
    Apps,
}

/// `flotilla gateway ...`
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// `host:port` to serve HTTP on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// `flotilla hub ...`
#[derive(Debug, Clone, Args)]
pub struct HubArgs {
    /// `host:port` to serve the Kubernetes API on (HTTPS; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// Where the hub keeps its CA, certificates, admin kubeconfig, storage and audit log.
    #[arg(long, default_value = ".flotilla/hub")]
    pub data_dir: PathBuf,
    /// `embedded` (one redb file in the data dir, one hub) or `etcd` (several hubs over one
    /// etcd cluster; see docs/ha.md).
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "etcd"])]
    pub storage: String,
    /// etcd client URLs, comma separated (`http://127.0.0.1:2379,...`), with `--storage etcd`.
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// PEM CA that signed etcd's serving certificates (TLS to etcd).
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// PEM client certificate for etcd (with `--etcd-keyfile`).
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// PEM key of `--etcd-certfile`.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Where the objects live in etcd (`PREFIX/{group}/{resource}/...`).
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// This hub's identity in the controllers' leader election (the Lease
    /// `kube-system/flotilla-controllers`); default `HOSTNAME:PORT`.
    #[arg(long)]
    pub id: Option<String>,
    /// How often the cluster health controller probes each member's /readyz.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub cluster_probe_interval: std::time::Duration,
    /// At most this many members' /readyz are probed at once; the fleet metrics scrape and
    /// the multi-cluster Services controller read at most this many members at once too.
    /// The hub's requests to a member (probes, scrapes, those reads, dispatch) share one
    /// pooled connection.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub cluster_probe_concurrency: u32,
    /// How often every available member's /metrics is scraped for `/metrics/clusters` and the
    /// dashboard's history; default: `--cluster-probe-interval`.
    #[arg(long, value_parser = parse_duration)]
    pub fleet_metrics_interval: Option<std::time::Duration>,
    /// How often the multi-cluster Services controller reads the available members that
    /// export or import (and any whose ServiceExport/ServiceImport watches changed) and
    /// converges the imports; other members are only watched.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub mcs_resync_interval: std::time::Duration,
    /// At most this many requests of the application controller (applies, reads, deletes;
    /// watches aside) go to one member at once; more wait. All of the hub's requests to a
    /// member share one HTTP/2 connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub member_request_concurrency: u32,
    /// At most this many Applications reconcile at once (render, dispatch to their members,
    /// status); more wait their turn. Bounds the hub's memory during large fan-outs (many
    /// Applications created or changed at once, a hub restart, a cluster join), since each
    /// reconcile holds its rendered objects and the members' answers while it runs. At 100
    /// members x 100 Applications, 8 held ~25% less memory than 16 for the same time, and
    /// less CPU (docs/benchmarks.md, "How many reconciles at once, in release").
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub application_concurrency: u16,
    /// How soon an Application waiting for its objects to become healthy looks at them again
    /// by itself. The watch on the objects it dispatched wakes it earlier, as soon as they
    /// are all healthy (or one stops being so).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub application_health_recheck: std::time::Duration,
    /// How often an Application whose workflow has finished is passed over by itself (its
    /// objects read from the members, re-rendered, status written), as a safety net: the
    /// watch on the objects it dispatched wakes it as soon as one stops being healthy, is
    /// deleted or drifts, and changes of the Application, its Policies, Workflow and the
    /// ManagedClusters wake it too.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub application_resync_period: std::time::Duration,
    /// How often the GitOps controller fetches each Git repository (a push to
    /// `POST /api/webhook` fetches at once).
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub gitops_poll_interval: std::time::Duration,
    /// Shared secret Git servers sign `POST /api/webhook` payloads with (HMAC-SHA256, GitHub's
    /// `X-Hub-Signature-256` or Gitea's `X-Gitea-Signature`); unset: unsigned pushes accepted.
    #[arg(long, env = "FLOTILLA_GITOPS_WEBHOOK_SECRET", hide_env_values = true)]
    pub gitops_webhook_secret: Option<String>,
    /// How many ApplicationRevisions are kept per Application (the newest; the last one whose
    /// workflow succeeded is kept too, for `flotilla workflow rollback`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub application_revision_limit: u32,
}

/// `flotilla member ...`
#[derive(Debug, Clone, Args)]
pub struct MemberArgs {
    /// The member cluster's name.
    #[arg(long)]
    pub name: String,
    /// `host:port` to serve the Kubernetes API on (HTTPS; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Where the member keeps its CA, kubeconfig and storage (default `.flotilla/members/NAME`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How long the simulated workloads take to become ready.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub ready_delay: std::time::Duration,
    /// Serve this many members from one process: `NAME-1` … `NAME-N`, each with its own port,
    /// CA, storage and data dir (`DATA_DIR/NAME-i`). With a fixed `--listen` port P, member i
    /// listens on P+i-1; with port 0 each picks a free port. 1 (the default) serves `NAME` itself.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Fault injection: delay every API request (not /healthz, /readyz, /livez) by this long.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub fault_latency: std::time::Duration,
    /// Fault injection: refuse requests with these verbs (`get,list,watch,create,update,patch,
    /// delete,deletecollection` or `all`) with a 503 ServiceUnavailable Status. Health
    /// endpoints keep answering.
    #[arg(long, value_delimiter = ',')]
    pub fault_refuse: Vec<String>,
    /// Fault injection: every rollout (Deployment, StatefulSet, ReplicaSet, DaemonSet, Job)
    /// stays not ready, as if its pods never started.
    #[arg(long)]
    pub fault_stuck: bool,
}

/// `flotilla dev ...`
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// The simulated members to start and join.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "beijing-1,beijing-2,us-west-1"
    )]
    pub clusters: Vec<String>,
    /// Where the hub and members keep their data; a second run on it comes back as it was.
    #[arg(long, default_value = ".flotilla/dev")]
    pub data_dir: PathBuf,
    /// Run this many hubs; more than one stores everything in a 3-member etcd cluster started
    /// from the `etcd` binary on PATH (Debian package `etcd-server`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub hubs: u32,
}

/// `flotilla cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Register a member cluster.
    Join {
        /// The member's kubeconfig (its current context is used). Its own arg id: the global
        /// `--kubeconfig` names the hub.
        #[arg(id = "member_kubeconfig", value_name = "KUBECONFIG")]
        kubeconfig: PathBuf,
        /// The cluster name placements use (`local` is reserved for the hub).
        #[arg(long)]
        name: String,
        /// Cluster labels, `k=v[,k=v]`.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
    },
    /// List member clusters.
    List,
    /// Edit cluster labels.
    #[command(subcommand)]
    Labels(LabelsCommand),
    /// Remove a member cluster; the hub forgets what it tracked there.
    Detach {
        /// The cluster to remove.
        name: String,
    },
}

/// `flotilla cluster labels ...`
#[derive(Debug, Subcommand)]
pub enum LabelsCommand {
    /// Add or change labels: `NAME k=v[,k=v]`.
    Add {
        /// The cluster.
        name: String,
        /// `k=v[,k=v]`.
        labels: String,
    },
    /// Remove labels: `NAME k[,k]`.
    Del {
        /// The cluster.
        name: String,
        /// `k[,k]`.
        keys: String,
    },
}

/// `flotilla up ...`
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The YAML or JSON file of objects to apply (`-` for stdin).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Namespace for objects that name none (default: the kubeconfig context's).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
}

/// `flotilla status ...`
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The Application.
    pub app: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Print the view again whenever it changes, until Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Also print the resource tree per cluster with each object's health (read through the
    /// hub's cluster gateway as you).
    #[arg(long)]
    pub tree: bool,
}

/// `flotilla dry-run ...`
#[derive(Debug, Clone, Args)]
pub struct DryRunArgs {
    /// The Application file (its first Application document).
    #[arg(short = 'f', long = "file", conflicts_with = "app")]
    pub file: Option<PathBuf>,
    /// A stored Application, by name.
    pub app: Option<String>,
    /// Namespace (default: the file's, else the kubeconfig context's).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
}

/// `flotilla diff ...`
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The Application file (its first Application document).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Namespace (default: the file's, else the kubeconfig context's).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
}

/// `flotilla workflow ...`
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Continue a suspended workflow.
    Resume(AppRef),
    /// Pause the workflow before its next step.
    Suspend(AppRef),
    /// Stop the workflow; it does not run again until restarted.
    Terminate(AppRef),
    /// Run the workflow again from its first step.
    Restart(AppRef),
    /// Go back to the last revision whose workflow succeeded.
    Rollback(AppRef),
}

/// `flotilla gitops ...`
#[derive(Debug, Subcommand)]
pub enum GitopsCommand {
    /// Sync status, health, the last operation and every resource of an Argo CD Application.
    Status(AppRef),
    /// Sync an Argo CD Application now (its repository is fetched first) and wait for the result.
    Sync(GitopsSyncArgs),
    /// What differs between Git and the destination (exit 0: nothing, 1: something).
    Diff(AppRef),
}

/// `flotilla gitops sync ...`
#[derive(Debug, Clone, Args)]
pub struct GitopsSyncArgs {
    /// The Argo CD Application.
    #[command(flatten)]
    pub app: AppRef,
    /// Also delete objects that left Git.
    #[arg(long)]
    pub prune: bool,
    /// How long to wait for the sync to finish.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// An Application by name and namespace.
#[derive(Debug, Clone, Args)]
pub struct AppRef {
    /// The Application.
    pub app: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
}

/// `flotilla get ...`
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The kind, as kubectl takes it: `deployment`, `deploy`, `deployments.apps`, ...; several
    /// comma-separated (`serviceimports,endpointslices`) print one table each.
    pub kind: String,
    /// One object's name (default: list).
    pub name: Option<String>,
    /// Namespace in the member (default: the hub kubeconfig context's).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Label selector, e.g. `app=web`.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// The member cluster to read (`local` reads the hub).
    #[arg(short = 'm', long = "cluster", conflicts_with = "all_clusters")]
    pub cluster: Option<String>,
    /// Every member cluster (adds a CLUSTER column).
    #[arg(short = 'M', long = "all-clusters")]
    pub all_clusters: bool,
    /// `wide`, `yaml`, `json` or `name` (default: a table).
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

/// `flotilla auth ...`
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Record a FleetRoleBinding: bind a ClusterRole on the selected members and allow the
    /// hub's cluster gateway to them.
    GrantPrivileges(GrantArgs),
    /// Show, per cluster, what a user may do there (the member's SelfSubjectRulesReview).
    ListPrivileges(ListPrivilegesArgs),
}

/// `flotilla auth grant-privileges ...`
#[derive(Debug, Clone, Args)]
pub struct GrantArgs {
    /// The user to grant to.
    #[arg(long, required_unless_present = "group", conflicts_with = "group")]
    pub user: Option<String>,
    /// The group to grant to.
    #[arg(long)]
    pub group: Option<String>,
    /// Clusters by name, comma-separated.
    #[arg(
        long = "for-cluster",
        value_delimiter = ',',
        required_unless_present = "for_cluster_selector"
    )]
    pub for_cluster: Vec<String>,
    /// Clusters by label, `k=v[,k=v]`.
    #[arg(long = "for-cluster-selector")]
    pub for_cluster_selector: Option<String>,
    /// Bind in this namespace only (a RoleBinding; default: cluster-wide).
    #[arg(long = "for-namespace")]
    pub for_namespace: Option<String>,
    /// Read-only access (ClusterRole `view`).
    #[arg(long, conflicts_with = "clusterrole")]
    pub readonly: bool,
    /// The ClusterRole to bind (default `edit`).
    #[arg(long)]
    pub clusterrole: Option<String>,
}

/// `flotilla auth list-privileges ...`
#[derive(Debug, Clone, Args)]
pub struct ListPrivilegesArgs {
    /// The user to inspect.
    #[arg(long)]
    pub user: String,
    /// The user's groups.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Namespace the rules are reviewed in.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

/// `flotilla kubeconfig ...`
#[derive(Debug, Subcommand)]
pub enum KubeconfigCommand {
    /// Mint a client certificate signed by the CA in DATA_DIR and write a kubeconfig for it.
    Create {
        /// The hub's data dir (its CA signs the certificate).
        #[arg(long)]
        data_dir: PathBuf,
        /// The user name (the certificate's CN).
        #[arg(long)]
        user: String,
        /// Groups (the certificate's O), repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Where to write the kubeconfig (default: stdout).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

/// Parses `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn join_kubeconfig_is_not_the_hub_kubeconfig() {
        let cli = Cli::parse_from(["flotilla", "cluster", "join", "member.kc", "--name", "m"]);
        assert_eq!(cli.kubeconfig, None);
        let cli = Cli::parse_from([
            "flotilla",
            "--kubeconfig",
            "hub.kc",
            "cluster",
            "join",
            "member.kc",
            "--name",
            "m",
        ]);
        assert_eq!(cli.kubeconfig, Some(PathBuf::from("hub.kc")));
        match cli.command {
            Command::Cluster(ClusterCommand::Join { kubeconfig, .. }) => {
                assert_eq!(kubeconfig, PathBuf::from("member.kc"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert_eq!(parse_duration("3").unwrap().as_secs(), 3);
        assert!(parse_duration("3x").is_err());
    }
}
