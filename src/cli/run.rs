//! `playbook-operator run`: the controller and its HTTP server (metrics, probes),
//! until SIGTERM or Ctrl-C.
//!
//! The CLI's `main` is synchronous; the Tokio runtime is built here, for this command
//! only, so the offline commands stay free of it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use tracing_subscriber::EnvFilter;

use crate::controller::{self, Config, DEFAULT_LOG_LIMIT_BYTES};
use crate::{leader, server};

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Watch this namespace only (default: all namespaces).
    #[arg(long, short = 'n', env = "PLAYBOOK_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Most bytes read of one step's log (`pods/log?limitBytes=`).
    #[arg(long, default_value_t = DEFAULT_LOG_LIMIT_BYTES, value_parser = clap::value_parser!(i64).range(1..))]
    pub log_limit_bytes: i64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where the HTTP server listens: /metrics, /healthz, /readyz (port 0: any free
    /// port; the log line "serving HTTP" gives it).
    #[arg(long, env = "PLAYBOOK_OPERATOR_HTTP_ADDR", default_value = server::DEFAULT_ADDR)]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub election: ElectionArgs,
}

/// Leader election: with several replicas, the holder of a Lease reconciles and
/// every replica serves HTTP (see `leader`).
#[derive(clap::Args, Debug)]
pub struct ElectionArgs {
    /// Reconcile only while holding the leader Lease (for more than one replica).
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "playbook-operator", requires = "leader_elect")]
    pub leader_elect_lease_name: String,
    /// Namespace of the Lease (in a pod: its own, from the downward API). Not tied to
    /// --leader-elect by clap, like the identity: their env vars are set in every pod.
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_elect_namespace: Option<String>,
    /// This replica's name in the Lease (default: POD_NAME, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub leader_elect_identity: Option<String>,
    /// A leader that stops renewing loses the Lease after this many seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..), requires = "leader_elect")]
    pub leader_elect_lease_duration_seconds: u64,
    /// The leader renews this many seconds before the Lease would expire.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), requires = "leader_elect")]
    pub leader_elect_renew_before_seconds: u64,
}

impl ElectionArgs {
    /// The election to run, or `None` without `--leader-elect`.
    fn election(&self) -> anyhow::Result<Option<leader::Election>> {
        if !self.leader_elect {
            return Ok(None);
        }
        let namespace = self
            .leader_elect_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .context(
                "--leader-elect needs the Lease's namespace: set --leader-elect-namespace \
                 or POD_NAMESPACE (the Helm chart sets it from the downward API)",
            )?;
        let identity = self
            .leader_elect_identity
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(leader::default_identity);
        let election = leader::Election::new(
            self.leader_elect_lease_name.clone(),
            namespace,
            identity,
            Duration::from_secs(self.leader_elect_lease_duration_seconds),
            Duration::from_secs(self.leader_elect_renew_before_seconds),
        )?;
        Ok(Some(election))
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_format);
    let election = args.election.election()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        // Bound first: a taken port is reported before anything else starts.
        let listener = server::bind(args.http_addr).await?;
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster (in-cluster config or KUBECONFIG)")?;
        let config = Config {
            namespace: args.namespace.clone(),
            log_limit_bytes: args.log_limit_bytes,
            // In a Deployment, the pod name tells replicas' Events apart (with leader
            // election, the identity in the Lease: the pod name too, by default).
            instance: election
                .as_ref()
                .map(|e| e.identity().to_string())
                .or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty())),
            ..Config::default()
        };
        // One signal stops both the controller and the HTTP server.
        let shutdown = shutdown_signal().shared();
        tracing::info!(
            namespace = config.namespace.as_deref().unwrap_or("(all)"),
            log_limit_bytes = config.log_limit_bytes,
            "starting the controller"
        );
        // The server also stops when the controller does on its own (its watches
        // ended): a process that serves probes for a dead controller would hide it.
        let (stopped, controller_stopped) = tokio::sync::oneshot::channel::<()>();
        let http = server::serve(
            listener,
            server::router(config.metrics.clone()),
            futures::future::select(shutdown.clone(), controller_stopped).map(|_| ()),
        );
        let metrics = config.metrics.clone();
        let controller = async move {
            let result = match &election {
                None => {
                    controller::run(client.clone(), config, shutdown).await;
                    Ok(())
                }
                Some(election) => {
                    let run = |stop| controller::run(client.clone(), config, stop);
                    leader::run_elected(client.clone(), election, &metrics, shutdown, run).await
                }
            };
            let _ = stopped.send(());
            result
        };
        let (elected, served) = futures::join!(controller, http);
        served?;
        elected?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `RUST_LOG` filters (default `info`); text for people, JSON for log pipelines.
/// Reconcile spans carry the `execution` field, Job lines the `step`.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests calling `run` twice) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Completes on SIGTERM (what Kubernetes sends a stopping pod) or SIGINT (Ctrl-C).
/// A oneshot channel, because the controller wants a `Sync` future and a signal
/// stream is not one.
async fn shutdown_signal() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: finishing in-flight reconciles");
        let _ = tx.send(());
    });
    let _ = rx.await;
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
