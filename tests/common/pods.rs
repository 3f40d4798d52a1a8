//! Waiting for pods and reading their logs.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::TIMEOUT;

/// Polls until `pred` holds for the pod (or `timeout`); returns the pod. Panics with
/// the pod's last state on timeout.
pub async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(pod)) = api.get_opt(name).await {
            if pred(&pod) {
                return pod;
            }
            last = Some(pod);
        }
        if Instant::now() > deadline {
            panic!(
                "pod {name}: not {what} within {timeout:?}; last status: {}",
                last.and_then(|p| p.status)
                    .map(|s| serde_json::to_string_pretty(&s).unwrap())
                    .unwrap_or_else(|| "(pod not found)".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The phase of a pod ("" if none yet).
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Waits for the (first) pod of Job `job` to reach a terminal phase (Succeeded or
/// Failed) and returns it.
pub async fn wait_job_pod_terminal(pods: &Api<Pod>, job: &str, timeout: Duration) -> Pod {
    let deadline = Instant::now() + timeout;
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    loop {
        let list = pods
            .list(&lp)
            .await
            .unwrap_or_else(|e| panic!("listing pods of job {job}: {e}"));
        if let Some(pod) = list
            .items
            .into_iter()
            .find(|p| matches!(pod_phase(p), "Succeeded" | "Failed"))
        {
            return pod;
        }
        if Instant::now() > deadline {
            panic!("no pod of job {job} reached Succeeded or Failed within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A pod's log through the `pods/log` API. kwok learns of a new ClusterLogs/Logs
/// object through its own watch, so right after a fixture is set it may still answer
/// 400 "no logs found" (more so on a busy machine): retry that until [`TIMEOUT`].
pub async fn pod_log(pods: &Api<Pod>, pod: &str, params: &kube::api::LogParams) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match pods.logs(pod, params).await {
            Ok(text) => return text,
            Err(kube::Error::Api(s))
                if s.code == 400
                    && s.message.contains("no logs found")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading the log of pod {pod}: {e}"),
        }
    }
}
