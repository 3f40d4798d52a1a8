//! Leader election for `run --leader-elect`: of several replicas, the one holding a
//! `coordination.k8s.io` Lease runs the controller; every replica serves HTTP.
//!
//! The Lease is kept by `kube-lease-manager` (get and patch on one Lease; create only when it is missing, the chart creates it).
//! [`run_elected`] waits for the Lease, then runs the controller until shutdown or
//! until the Lease is lost:
//! - shutdown (SIGTERM): the controller finishes its in-flight reconciles, then the
//!   Lease is released, so a standby takes over at once instead of after the lease
//!   duration;
//! - Lease lost (not renewed in time, e.g. the API server was unreachable): the
//!   controller stops and [`run_elected`] returns [`Error::Lost`]; the process exits
//!   and is restarted as a standby. Starting over is simpler and safer than resuming
//!   with caches and state from a term that ended. Writes during the short overlap
//!   are idempotent (status by server-side apply, Jobs under deterministic names).

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// What tells the elected controller to stop: shutdown, or the Lease lost. `Shared`,
/// because the controller wants a `Sync` future.
pub type Stop = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// Where the Lease is and who this replica is ([`Election::new`] checks it).
#[derive(Clone, Debug)]
pub struct Election {
    lease_name: String,
    namespace: String,
    /// This replica's name in `spec.holderIdentity` (the pod name in a Deployment).
    identity: String,
    /// A holder that stops renewing loses the Lease after this long.
    lease_duration: Duration,
    /// The holder renews this long before the Lease would expire.
    renew_before: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "leader election: cannot use Lease {namespace}/{name}: {source} (the operator's \
         service account needs get and patch on it, and create unless it exists; the Helm \
         chart creates it and its Role grants get and patch)"
    )]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error(
        "leader election: lost Lease {namespace}/{name} (not renewed within its duration, \
         or its manager stopped); exiting so that this replica restarts as a standby"
    )]
    Lost { namespace: String, name: String },
    #[error(
        "leader election: --leader-elect-renew-before-seconds ({renew_before}) must be \
         less than --leader-elect-lease-duration-seconds ({duration})"
    )]
    Timing { renew_before: u64, duration: u64 },
}

impl Election {
    /// Checks the timing: the leader must renew before its Lease expires.
    pub fn new(
        lease_name: String,
        namespace: String,
        identity: String,
        lease_duration: Duration,
        renew_before: Duration,
    ) -> Result<Self, Error> {
        if renew_before >= lease_duration {
            return Err(Error::Timing {
                renew_before: renew_before.as_secs(),
                duration: lease_duration.as_secs(),
            });
        }
        Ok(Self {
            lease_name,
            namespace,
            identity,
            lease_duration,
            renew_before,
        })
    }

    fn lost(&self) -> Error {
        Error::Lost {
            namespace: self.namespace.clone(),
            name: self.lease_name.clone(),
        }
    }

    fn lease_error(&self, source: LeaseManagerError) -> Error {
        Error::Lease {
            namespace: self.namespace.clone(),
            name: self.lease_name.clone(),
            source,
        }
    }
}

/// Runs `controller` while this replica holds the Lease, until `shutdown` completes
/// (Ok, after the Lease is released) or the Lease is lost ([`Error::Lost`]).
/// `controller` gets the future that tells it to stop. The metrics show the role:
/// `playbook_leader`, and `/readyz` answers 200 for a standby (it serves webhooks).
pub async fn run_elected<S, F, Fut>(
    client: Client,
    election: &Election,
    metrics: &Metrics,
    shutdown: S,
    controller: F,
) -> Result<(), Error>
where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
    F: FnOnce(Stop) -> Fut,
    Fut: Future<Output = ()>,
{
    let (duration, grace) = (
        election.lease_duration.as_secs(),
        election.renew_before.as_secs(),
    );
    metrics.set_leader(false);
    let manager = LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(duration)
        .with_grace(grace)
        .build()
        .await
        .map_err(|e| election.lease_error(e))?;
    let (mut is_leader, manager_task) = manager.watch().await;
    tracing::info!(
        lease = %format!("{}/{}", election.namespace, election.lease_name),
        identity = %election.identity,
        "standby: waiting for the leader Lease"
    );

    // None: shut down while waiting. Some(false): the manager's task ended on its own
    // (it retries API errors with a backoff, so this is not expected).
    let acquired = {
        let wait = is_leader
            .wait_for(|leader| *leader)
            .map(|r| Some(r.is_ok()));
        tokio::select! {
            acquired = wait => acquired,
            () = shutdown.clone() => None,
        }
    };
    let mut outcome = Ok(());
    if acquired == Some(false) {
        outcome = Err(election.lost());
    }
    if acquired == Some(true) {
        metrics.set_leader(true);
        tracing::info!(identity = %election.identity, "became the leader: starting the controller");
        let (lost_tx, lost_rx) = watch::channel(false);
        let lost = lost_lease(is_leader.clone(), lost_tx);
        let stop = {
            let mut lost_rx = lost_rx.clone();
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    _ = lost_rx.wait_for(|lost| *lost) => {}
                }
            }
            .boxed()
            .shared()
        };
        // The watcher of the Lease ends with the controller (dropped with this select).
        tokio::select! {
            () = controller(stop) => {}
            () = lost => {}
        }
        if *lost_rx.borrow() {
            metrics.set_leader(false);
            outcome = Err(election.lost());
        }
    }
    // Closing the channel makes the manager's task release the Lease (a no-op for a
    // standby, or for a Lease already lost) and end.
    drop(is_leader);
    match tokio::time::timeout(Duration::from_secs(5), manager_task).await {
        Ok(Ok(Ok(_))) if acquired == Some(true) => {
            tracing::info!(identity = %election.identity, "leader Lease released")
        }
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the leader Lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the leader Lease task failed"),
        Err(_) => tracing::warn!("releasing the leader Lease took over 5 s; it expires by itself"),
    }
    metrics.set_leader(false);
    outcome
}

/// Completes never while this replica keeps the Lease; raises `lost` and keeps
/// pending once it has lost it (the controller is stopping gracefully meanwhile).
async fn lost_lease(mut is_leader: watch::Receiver<bool>, lost: watch::Sender<bool>) {
    // An error means the manager's task ended: no one renews the Lease any more.
    let _ = is_leader.wait_for(|leader| !*leader).await;
    tracing::error!("lost the leader Lease: stopping the controller");
    lost.send_replace(true);
    std::future::pending::<()>().await
}

impl Election {
    /// This replica's name in the Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

/// The identity of this replica when none is given: the pod name in a Deployment
/// (POD_NAME from the downward API), else the host name and process id.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "playbook-operator".to_string());
    format!("{host}-{}", std::process::id())
}
