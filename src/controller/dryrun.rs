//! The dry-run reconcile (`spec.dryRun`): render once with `engine::dryrun`, write
//! the status once, done. No Job, no remediation count, no approval wait: the
//! planner is never called for a dry run. A restart before the write renders again
//! (the same steps); after it, the final phase makes this a no-op but for the TTL.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::apply::write_status;
use super::{Context, Error, history};
use crate::api::{Execution, ExecutionStatus};
use crate::engine::dryrun::{Input, finish};
use crate::engine::plan::PlanInput;
use crate::engine::template;

/// How long the templates of one dry run may take together (as for a plan).
const RENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon to look again for a Playbook that does not exist yet.
const PLAYBOOK_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn reconcile(
    exec: &Execution,
    ctx: &Context,
    mut input: PlanInput,
) -> Result<Action, Error> {
    let ns = input.execution.namespace.clone();
    let name = exec.name_any();
    let mut status = input.status.clone();
    if !status.phase.is_final() {
        if input.status.playbook.is_none() && input.playbook.is_none() {
            let waiting = Some(format!(
                "waiting for Playbook '{}' in namespace {ns}",
                exec.spec.playbook_ref.name
            ));
            if status.message != waiting {
                status.message = waiting;
                write_status::<Execution>(&ctx.client, &ns, &name, &status).await?;
            }
            return Ok(Action::requeue(PLAYBOOK_WAIT));
        }
        // The same answer a real run would get: a Runner the requester may not
        // `use` shows as a step that Fails.
        input.runner_access = Some(ctx.access.runner_access(&ctx.client, &input).await?);
        if let Some(done) = render_off_runtime(input).await? {
            write_status::<Execution>(&ctx.client, &ns, &name, &done).await?;
            tracing::info!(message = ?done.message, "dry run rendered");
            status = done;
        }
    }
    let ttl = history::enforce(ctx, exec, &status).await?;
    Ok(ttl.map_or_else(Action::await_change, Action::requeue))
}

/// Renders on a blocking thread, as plans are: templates are user code.
async fn render_off_runtime(input: PlanInput) -> Result<Option<ExecutionStatus>, Error> {
    let now = Timestamp::now();
    let deadline = Instant::now() + RENDER_TIMEOUT;
    let name = format!("{}/{}", input.execution.namespace, input.execution.name);
    tokio::task::spawn_blocking(move || {
        let playbook = input.status.playbook.as_ref().or(input.playbook.as_ref())?;
        let dry = Input {
            execution: &input.execution,
            spec: &input.spec,
            playbook,
            runners: &input.runners,
            runner_access: input.runner_access.as_ref(),
        };
        template::with_deadline(deadline, || finish(&dry, &input.status, now))
    })
    .await
    .map_err(|e| Error::Plan {
        name,
        message: e.to_string(),
    })
}
