//! `playbook-operator run`: the controller and its HTTP server (metrics, probes,
//! alert webhooks), until SIGTERM or Ctrl-C.
//!
//! The CLI's `main` is synchronous; the Tokio runtime is built here, for this command
//! only, so the offline commands stay free of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use tracing_subscriber::EnvFilter;

use crate::controller::{self, Config, DEFAULT_LOG_LIMIT_BYTES};
use crate::engine::alert::signature::DEFAULT_REPLAY_WINDOW_SECONDS;
use crate::engine::alert::trigger::Tenancy;
use crate::engine::plan::Limits;
use crate::webhook::auth::{CredentialFiles, GRAFANA_SIGNATURE_HEADER, LinesFile};
use crate::{leader, page, server, webhook};

/// `--external-url`: an absolute http(s) URL, kept without its trailing slash.
fn external_url(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) || s.len() <= 8 {
        return Err(format!(
            "{s:?} is not an absolute http(s) URL: give the address people open, e.g. https://pbo.example.com"
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Watch this namespace only (default: all namespaces).
    #[arg(long, short = 'n', env = "PLAYBOOK_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Most bytes read of one step's log (`pods/log?limitBytes=`).
    #[arg(long, default_value_t = DEFAULT_LOG_LIMIT_BYTES, value_parser = clap::value_parser!(i64).range(1..))]
    pub log_limit_bytes: i64,
    /// Most bytes of a step's parsed output kept inline in the Execution's status
    /// (a step's `outputs.inlineBytes` overrides it); larger output goes to a
    /// ConfigMap owned by the Execution.
    #[arg(long, default_value_t = Limits::default().step_output_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=256 * 1024))]
    pub output_inline_bytes: usize,
    /// The hard cap: most bytes of a step's parsed output kept at all; past it the
    /// output is cut at a JSON boundary and marked truncated. At most 1,000,000: a
    /// ConfigMap holds 1 MiB with its metadata.
    #[arg(long, default_value_t = Limits::default().max_output_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1_000_000))]
    pub output_max_bytes: usize,
    /// Longest a step attempt may run when the step sets no `timeoutSeconds`; then it
    /// fails as timed out (0: no default, such a step may run for ever).
    #[arg(long, default_value_t = Limits::default().default_timeout_seconds, value_parser = clap::value_parser!(i64).range(0..))]
    pub step_default_timeout_seconds: i64,
    /// Longest a step's container may take to start (image pull, a node to run on)
    /// when the step sets no `startTimeoutSeconds`; then the attempt fails with the
    /// kubelet's or scheduler's reason.
    #[arg(long, default_value_t = Limits::default().start_timeout_seconds, value_parser = clap::value_parser!(i64).range(1..))]
    pub step_start_timeout_seconds: i64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where the HTTP server listens: /metrics, /healthz, /readyz (port 0: any free
    /// port; the log line "serving HTTP" gives it).
    #[arg(long, env = "PLAYBOOK_OPERATOR_HTTP_ADDR", default_value = server::DEFAULT_ADDR)]
    pub http_addr: SocketAddr,
    /// Where people reach this operator's HTTP server (e.g. https://pbo.example.com):
    /// `.execution.url` in templates becomes the run's page there
    /// (URL/ui/executions/NAMESPACE/NAME).
    #[arg(long, env = "PLAYBOOK_OPERATOR_EXTERNAL_URL", value_parser = external_url)]
    pub external_url: Option<String>,
    /// Most memory (address space, bytes) the process that runs one jq filter may
    /// map. Default: half the container's cgroup memory limit, at most 1 GiB (1 GiB
    /// without a limit); set it below the pod's limit minus the operator's own use.
    #[arg(long, env = "PLAYBOOK_OPERATOR_JQ_MEMORY_BYTES", value_parser = clap::value_parser!(u64).range(16 * 1024 * 1024..))]
    pub jq_memory_bytes: Option<u64>,
    /// Most bytes of a step log the execution page returns.
    #[arg(long, default_value_t = page::DEFAULT_LOG_LIMIT_BYTES, value_parser = clap::value_parser!(i64).range(1..))]
    pub page_log_limit_bytes: i64,
    /// The execution page is served over plain http (local testing only): its
    /// cookies go without `Secure`, which browsers would otherwise not send back.
    #[arg(long)]
    pub page_plain_http: bool,
    /// A page session ends after this many seconds without a request.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_session_idle_seconds: u64,
    /// A page session ends this many seconds after signing in, however busy.
    #[arg(long, default_value_t = 43200, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_session_max_seconds: u64,
    /// Chat channels and Slack approvers (YAML, README "Notifications and chat
    /// approvals"); mount it from a Secret. Read at start.
    #[arg(long, env = "PLAYBOOK_OPERATOR_NOTIFY_CONFIG_FILE")]
    pub notify_config_file: Option<PathBuf>,
    /// Longest one HTTP call to chat may take (then it is retried with backoff).
    #[arg(long, default_value_t = crate::notify::DEFAULT_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub notify_timeout_seconds: u64,
    #[command(flatten)]
    pub election: ElectionArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// The alert webhooks (`POST /webhooks/{alertmanager,grafana,pagerduty,generic}` on
/// `--http-addr`). Credentials come from files, one value per line, re-read when
/// they change: mount them from a Secret (the operator needs no access to Secrets).
#[derive(clap::Args, Debug)]
pub struct WebhookArgs {
    /// Bearer tokens accepted on every webhook, one per line (several while rotating).
    /// Without it (and without a source's secret file) the webhooks refuse everything.
    #[arg(long, env = "PLAYBOOK_OPERATOR_WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// PagerDuty webhook signing secrets, one per line: requests to
    /// /webhooks/pagerduty with a valid X-PagerDuty-Signature need no token.
    #[arg(long, env = "PLAYBOOK_OPERATOR_WEBHOOK_PAGERDUTY_SECRET_FILE")]
    pub webhook_pagerduty_secret_file: Option<PathBuf>,
    /// Grafana contact point HMAC secrets, one per line.
    #[arg(long, env = "PLAYBOOK_OPERATOR_WEBHOOK_GRAFANA_SECRET_FILE")]
    pub webhook_grafana_secret_file: Option<PathBuf>,
    /// The header of Grafana's HMAC signature (the contact point's "Header").
    #[arg(long, default_value = GRAFANA_SIGNATURE_HEADER)]
    pub webhook_grafana_signature_header: String,
    /// The contact point's "Timestamp Header", when set there: then the signature
    /// covers the timestamp, and the replay window applies.
    #[arg(long)]
    pub webhook_grafana_timestamp_header: Option<String>,
    /// Secrets of the generic webhook's HMAC (X-Playbook-Signature over
    /// `X-Playbook-Timestamp:BODY`), one per line.
    #[arg(long, env = "PLAYBOOK_OPERATOR_WEBHOOK_GENERIC_SECRET_FILE")]
    pub webhook_generic_secret_file: Option<PathBuf>,
    /// A signed timestamp further than this from the operator's clock is refused.
    #[arg(long, default_value_t = DEFAULT_REPLAY_WINDOW_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_replay_window_seconds: u64,
    /// Largest webhook body accepted; larger ones are answered 413.
    #[arg(long, default_value_t = webhook::DEFAULT_MAX_BODY_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub webhook_max_body_bytes: usize,
    /// Executions waiting to be created, all requests together; past it requests
    /// are answered 429 (the sender retries).
    #[arg(long, default_value_t = webhook::DEFAULT_QUEUE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub webhook_queue: usize,
    /// Execution creates in flight to the API server at once.
    #[arg(long, default_value_t = webhook::DEFAULT_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub webhook_concurrency: usize,
    /// The alert label that names the namespace an alert belongs to: with it, a
    /// Trigger in namespace N matches only alerts whose label is N (off: every
    /// Trigger sees every alert, one tenant).
    #[arg(long, value_name = "LABEL")]
    pub webhook_tenant_label: Option<String>,
    /// Namespaces whose Triggers see every alert despite --webhook-tenant-label
    /// (comma-separated or repeated).
    #[arg(long, value_name = "NS", value_delimiter = ',')]
    pub webhook_admin_namespaces: Vec<String>,
}

impl WebhookArgs {
    /// The webhook config; a credentials file that cannot be read stops the start.
    pub fn config(
        &self,
        namespace: Option<String>,
        requested_by: String,
    ) -> anyhow::Result<webhook::Config> {
        let open = |flag: &str, path: &Option<PathBuf>| -> anyhow::Result<Option<LinesFile>> {
            path.as_deref()
                .map(|p| LinesFile::open(p).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                .transpose()
        };
        Ok(webhook::Config {
            namespace,
            requested_by,
            credentials: CredentialFiles {
                tokens: open("webhook-token-file", &self.webhook_token_file)?,
                pagerduty: open(
                    "webhook-pagerduty-secret-file",
                    &self.webhook_pagerduty_secret_file,
                )?,
                grafana: open(
                    "webhook-grafana-secret-file",
                    &self.webhook_grafana_secret_file,
                )?,
                generic: open(
                    "webhook-generic-secret-file",
                    &self.webhook_generic_secret_file,
                )?,
                grafana_signature_header: self.webhook_grafana_signature_header.clone(),
                grafana_timestamp_header: self.webhook_grafana_timestamp_header.clone(),
                replay_window_seconds: self.webhook_replay_window_seconds,
            },
            max_body_bytes: self.webhook_max_body_bytes,
            queue: self.webhook_queue,
            concurrency: self.webhook_concurrency,
            tenancy: Tenancy {
                label: self.webhook_tenant_label.clone().filter(|l| !l.is_empty()),
                admin_namespaces: self
                    .webhook_admin_namespaces
                    .iter()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect(),
            },
        })
    }
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
    // A playbook's jq filter may loop or recurse without end: never in this process.
    let cgroup = crate::jq_sandbox::cgroup_memory_limit();
    let jq_memory = crate::jq_sandbox::install(
        args.jq_memory_bytes
            .unwrap_or_else(|| crate::jq_sandbox::sandbox_memory(cgroup)),
    );
    let election = args.election.election()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        // Bound first: a taken port is reported before anything else starts.
        let listener = server::bind(args.http_addr).await?;
        // The config is kept: the page builds clients for signed-in people from its
        // address and CA (not its credentials); chat approvals impersonate with it.
        let kube_config = kube::Config::infer()
            .await
            .context("connecting to the cluster (in-cluster config or KUBECONFIG)")?;
        let client = kube::Client::try_from(kube_config.clone())
            .context("connecting to the cluster (in-cluster config or KUBECONFIG)")?;
        let channels = Arc::new(match &args.notify_config_file {
            Some(path) => crate::notify::load(path)?,
            None => Default::default(),
        });
        // Executions created from alerts are requested by the operator itself: the
        // admission policy wants the creator's own user name in spec.requestedBy.
        let requested_by = crate::cli::cluster::whoami(&client).await?;
        let webhook_config = args
            .webhooks
            .config(args.namespace.clone(), requested_by.clone())?;
        let config = Config {
            namespace: args.namespace.clone(),
            log_limit_bytes: args.log_limit_bytes,
            limits: Limits {
                step_output_bytes: args.output_inline_bytes,
                max_output_bytes: args.output_max_bytes,
                default_timeout_seconds: args.step_default_timeout_seconds,
                start_timeout_seconds: args.step_start_timeout_seconds,
                ..Limits::default()
            },
            // In a Deployment, the pod name tells replicas' Events apart (with leader
            // election, the identity in the Lease: the pod name too, by default).
            instance: election
                .as_ref()
                .map(|e| e.identity().to_string())
                .or_else(|| std::env::var("POD_NAME").ok().filter(|n| !n.is_empty())),
            external_url: args.external_url.clone(),
            ..Config::default()
        };
        // One signal stops both the controller and the HTTP server.
        let shutdown = shutdown_signal().shared();
        tracing::info!(
            namespace = config.namespace.as_deref().unwrap_or("(all)"),
            log_limit_bytes = config.log_limit_bytes,
            output_inline_bytes = config.limits.step_output_bytes,
            jq_memory_bytes = jq_memory,
            container_memory_limit = cgroup,
            output_max_bytes = config.limits.max_output_bytes,
            step_default_timeout_seconds = config.limits.default_timeout_seconds,
            step_start_timeout_seconds = config.limits.start_timeout_seconds,
            "starting the controller"
        );
        // The server also stops when the controller does on its own (its watches
        // ended): a process that serves probes for a dead controller would hide it.
        let (stopped, controller_stopped) = tokio::sync::oneshot::channel::<()>();
        let stop = futures::future::select(shutdown.clone(), controller_stopped)
            .map(|_| ())
            .shared();
        let (webhooks, webhook_task) = webhook::start(
            client.clone(),
            webhook_config,
            config.metrics.clone(),
            stop.clone(),
        );
        tracing::info!(
            requested_by,
            "serving alert webhooks on /webhooks/{{source}}"
        );
        // One Execution watch and cache per process, on every replica: the page's
        // (like the webhooks' Trigger cache), and the controller's and the notifier's
        // once this replica leads. The page's task runs the watch.
        let (executions, execution_watch) =
            crate::cache::Executions::start(client.clone(), args.namespace.as_deref());
        let (page_routes, page_task) = page::start_with(
            client.clone(),
            kube_config.clone(),
            page::Config {
                namespace: args.namespace.clone(),
                external_url: args.external_url.clone(),
                log_limit_bytes: args.page_log_limit_bytes,
                plain_http: args.page_plain_http,
                sessions: page::session::Limits {
                    idle: Duration::from_secs(args.page_session_idle_seconds),
                    absolute: Duration::from_secs(args.page_session_max_seconds),
                    ..page::session::Limits::default()
                },
            },
            &executions,
        );
        let page_task = async {
            futures::join!(page_task, execution_watch);
        };
        let page_task = futures::future::select(Box::pin(page_task), stop.clone()).map(|_| ());
        tracing::info!("serving the execution page on /ui/");
        let notify_timeout = Duration::from_secs(args.notify_timeout_seconds);
        let mut router = server::router(config.metrics.clone())
            .merge(webhooks)
            .merge(page_routes);
        if let Some(slack) =
            crate::notify::interact::routes(crate::notify::interact::Interactions {
                channels: channels.clone(),
                kube: kube_config,
                namespace: args.namespace.clone(),
                replay_window_seconds: args.webhooks.webhook_replay_window_seconds,
                timeout: notify_timeout,
            })
        {
            tracing::info!(
                "serving Slack interactions on {}",
                crate::notify::interact::PATH
            );
            router = router.merge(slack);
        }
        let http = server::serve(listener, router, stop);
        let notifier = crate::notify::Config {
            channels,
            namespace: args.namespace.clone(),
            external_url: args.external_url.clone(),
            timeout: notify_timeout,
            metrics: config.metrics.clone(),
        };
        let metrics = config.metrics.clone();
        let controller = async move {
            // The notifier runs where the controller does: one poster per run.
            let result = match &election {
                None => {
                    futures::join!(
                        controller::run_with(
                            client.clone(),
                            config,
                            executions.clone(),
                            shutdown.clone()
                        ),
                        crate::notify::run_with(client.clone(), notifier, &executions, shutdown)
                    );
                    Ok(())
                }
                Some(election) => {
                    let run = |stop: leader::Stop| async {
                        futures::join!(
                            controller::run_with(
                                client.clone(),
                                config,
                                executions.clone(),
                                stop.clone()
                            ),
                            crate::notify::run_with(client.clone(), notifier, &executions, stop)
                        );
                    };
                    leader::run_elected(client.clone(), election, &metrics, shutdown, run).await
                }
            };
            let _ = stopped.send(());
            result
        };
        let (elected, served, (), ()) = futures::join!(controller, http, webhook_task, page_task);
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
