//! Stopping the controllers on SIGTERM within a bounded time.
//!
//! kube-runtime's graceful shutdown lets in-flight reconciles finish, but a controller
//! whose caches never became ready (SIGTERM right after start, or while the API server
//! cannot be listed) holds its runner until they are, so the process never exits and
//! the kubelet kills it at the end of the pod's grace period. Cutting a reconcile
//! short is safe (a restart at any line neither loses a result nor runs a step
//! twice), so the wait is bounded.

use std::future::Future;
use std::time::Duration;

use futures::future::{Either, select};

/// How long in-flight reconciles may take to finish once shutdown is asked for: well
/// inside Kubernetes' default 30 s termination grace period.
pub const GRACE: Duration = Duration::from_secs(5);

/// Runs `work` until it ends; once `shutdown` completes, for at most `grace` more.
pub async fn within(
    work: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let (work, shutdown) = (std::pin::pin!(work), std::pin::pin!(shutdown));
    if let Either::Right(((), work)) = select(work, shutdown).await
        && tokio::time::timeout(grace, work).await.is_err()
    {
        tracing::info!(
            grace_seconds = grace.as_secs(),
            "controllers still busy (or their caches never filled) after the grace: stopping them"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    /// How long `within` took, in the paused clock, for work that takes `work` (never
    /// ends: `None`) and a shutdown asked for after `shutdown` (never: `None`); and
    /// whether the work finished.
    async fn run(work: Option<u64>, shutdown: Option<u64>) -> (Duration, bool) {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let work = async move {
            match work {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
            flag.store(true, Ordering::SeqCst);
        };
        let shutdown = async move {
            match shutdown {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        let start = tokio::time::Instant::now();
        within(work, shutdown, GRACE).await;
        (start.elapsed(), done.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn work_runs_to_its_end_and_is_cut_only_past_the_grace() {
        let secs = Duration::from_secs;
        // (work ends after, shutdown after) → (returns after, work finished)
        let cases = [
            ((Some(3), None), (secs(3), true)),
            ((Some(3), Some(10)), (secs(3), true)),
            ((Some(12), Some(10)), (secs(12), true)),
            ((Some(20), Some(10)), (secs(15), false)),
            ((None, Some(1)), (secs(6), false)),
        ];
        for ((work, shutdown), want) in cases {
            assert_eq!(
                run(work, shutdown).await,
                want,
                "work {work:?}, shutdown {shutdown:?}"
            );
        }
    }
}
