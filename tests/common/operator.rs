//! What the controller e2e tests share: the operator in process, objects from JSON,
//! and polls on an Execution's status.
//!
//! The operator runs **in process**: [`Operator::start`] spawns `controller::run` on
//! the test's Tokio runtime, scoped to the test's namespace, with the admin client. So
//! tests run in parallel without two controllers fighting over one Execution, and a
//! failure shows the controller's state in the same output.

use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionStatus, Playbook, Runner, StepState, StepStatus};
use playbook_operator::controller::{self, Config};
use playbook_operator::{server, webhook};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::TestNamespace;

/// A controller for one namespace, stopped gracefully by [`Operator::stop`] (or
/// aborted when dropped, e.g. when the test panics).
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub fn start(ns: &TestNamespace) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let config = Config {
            namespace: Some(ns.name.clone()),
            ..Config::default()
        };
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(controller::run(ns.client.clone(), config, shutdown));
        Self {
            stop: Some(tx),
            task,
        }
    }

    /// Like [`Operator::start`], with the HTTP server (`/metrics`, `/readyz`) as
    /// `run` serves it, on 127.0.0.1 and a free port: returns that address.
    pub async fn start_serving(ns: &TestNamespace) -> (Self, std::net::SocketAddr) {
        Self::serve(ns, None).await
    }

    /// [`Operator::start_serving`] with the alert webhooks too, as `run` serves them
    /// (`requestedBy` is the test client's own user name, as `run` learns its own).
    pub async fn start_with_webhooks(
        ns: &TestNamespace,
        webhooks: webhook::Config,
    ) -> (Self, std::net::SocketAddr) {
        Self::serve(ns, Some(webhooks)).await
    }

    async fn serve(
        ns: &TestNamespace,
        webhooks: Option<webhook::Config>,
    ) -> (Self, std::net::SocketAddr) {
        let (tx, rx) = oneshot::channel::<()>();
        let config = Config {
            namespace: Some(ns.name.clone()),
            ..Config::default()
        };
        let listener = server::bind(([127, 0, 0, 1], 0).into())
            .await
            .expect("binds a free port");
        let addr = listener.local_addr().expect("a bound address");
        let shutdown = async move {
            let _ = rx.await;
        }
        .shared();
        let mut router = server::router(config.metrics.clone());
        let mut webhook_task = None;
        if let Some(webhooks) = webhooks {
            let (routes, task) = webhook::start(
                ns.client.clone(),
                webhooks,
                config.metrics.clone(),
                shutdown.clone(),
            );
            router = router.merge(routes);
            webhook_task = Some(task);
        }
        let http = server::serve(listener, router, shutdown.clone());
        let controller = controller::run(ns.client.clone(), config, shutdown);
        let task = tokio::spawn(async move {
            let webhooks = async move {
                if let Some(task) = webhook_task {
                    task.await;
                }
            };
            let ((), served, ()) = futures::join!(controller, http, webhooks);
            served.expect("the HTTP server runs until shutdown");
        });
        let operator = Self {
            stop: Some(tx),
            task,
        };
        (operator, addr)
    }

    /// Graceful shutdown: the future returns once in-flight reconciles are done.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = &mut self.task;
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the controller stops within 10 s of its shutdown signal")
            .expect("the controller task does not panic");
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn setup(prefix: &str) -> TestNamespace {
    let client = super::client().await;
    super::install_crds(&client).await;
    TestNamespace::with_client(client, prefix).await
}

pub fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

pub async fn create<K>(ns: &TestNamespace, obj: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = ns.api();
    api.create(&PostParams::default(), &from_json(obj))
        .await
        .unwrap_or_else(|e| panic!("creating a {}: {e}", K::kind(&Default::default())))
}

pub async fn runner(ns: &TestNamespace, name: &str, annotations: Value) -> Runner {
    create(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Runner",
            "metadata": {"name": name},
            "spec": {"annotations": annotations}
        }),
    )
    .await
}

pub async fn playbook(ns: &TestNamespace, name: &str, steps: Value) -> Playbook {
    playbook_spec(ns, name, json!({ "steps": steps })).await
}

/// A Playbook with a whole spec (`finally`, `historyLimit`, ...).
pub async fn playbook_spec(ns: &TestNamespace, name: &str, spec: Value) -> Playbook {
    create(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
            "metadata": {"name": name},
            "spec": spec
        }),
    )
    .await
}

pub async fn execution(ns: &TestNamespace, name: &str, playbook: &str, params: Value) -> Execution {
    create(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"playbookRef": {"name": playbook}, "params": params}
        }),
    )
    .await
}

/// A StackPulse step log: what the step says, the end marker, its JSON output.
pub fn step_log(says: &str, output: Value) -> String {
    format!("{says}\n<-- END -->\n{output}\n")
}

/// Polls (every 50 ms, up to `timeout`) until `pred` holds for the Execution's status.
pub async fn wait_status(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&ExecutionStatus) -> bool,
) -> ExecutionStatus {
    let api: Api<Execution> = ns.api();
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(exec)) = api.get_opt(name).await {
            let status = exec.status.unwrap_or_default();
            if pred(&status) {
                return status;
            }
            last = Some(status);
        }
        assert!(
            Instant::now() < deadline,
            "Execution {name}: not {what} within {timeout:?}; last status:\n{}",
            serde_yaml::to_string(&last).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets `spec.cancel` on Execution `name`, as a person stopping a run does.
pub async fn cancel(ns: &TestNamespace, name: &str) {
    ns.api::<Execution>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .unwrap_or_else(|e| panic!("setting spec.cancel on {name}: {e}"));
}

pub async fn wait_final(ns: &TestNamespace, name: &str) -> ExecutionStatus {
    wait_status(ns, name, "final", Duration::from_secs(60), |s| {
        s.phase.is_final()
    })
    .await
}

/// Polls until the Execution's step `id` is Running with its Job named.
pub async fn wait_step_running(ns: &TestNamespace, name: &str, id: &str) -> ExecutionStatus {
    let what = format!("step {id} Running");
    wait_status(ns, name, &what, Duration::from_secs(60), |s| {
        s.steps
            .iter()
            .any(|st| st.id == id && st.state == StepState::Running && st.job_name.is_some())
    })
    .await
}

pub fn step<'a>(status: &'a ExecutionStatus, id: &str) -> &'a StepStatus {
    status
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in status: {:?}", status.steps))
}

pub fn env_value(job: &Job, name: &str) -> Option<String> {
    let pod = job.spec.as_ref()?.template.spec.as_ref()?;
    let env = pod.containers.first()?.env.as_ref()?;
    env.iter().find(|e| e.name == name)?.value.clone()
}

pub async fn jobs_of_step(ns: &TestNamespace, step: &str) -> Vec<Job> {
    let api: Api<Job> = ns.api();
    let lp = ListParams::default().labels(&format!("stackpulse.io/step={step}"));
    api.list(&lp).await.expect("listing Jobs").items
}
