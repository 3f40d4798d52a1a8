//! A step's log on the execution page: `GET /ui/executions/{ns}/{name}/log?step=ID`,
//! read through `pods/log` (one API call per click, not per page view), bounded by
//! `--page-log-limit-bytes`, for people who may `get pods/log` in the namespace.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde::Deserialize;

use super::auth::GET_POD_LOGS;
use super::{Shared, text, visible_detail};
use crate::engine::page as view;

#[derive(Deserialize)]
pub(super) struct LogQuery {
    step: String,
}

/// The log of a step's current attempt, if the user may read pod logs there: its
/// Job's pod found by the `job-name` label, or the bare Pod of that name (one or two
/// API calls per click, not per page).
pub(super) async fn step_log(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let (_, session, user) = match visible_detail(&shared, &headers, &ns, &name).await {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    if !shared
        .sessions
        .allowed(&session, &user, GET_POD_LOGS, &ns)
        .await
    {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not read pod logs in namespace {ns}: ask for `get pods/log` there",
                user.name
            ),
        );
    }
    let job = shared
        .caches
        .executions
        .get(&ObjectRef::new(&name).within(&ns))
        .and_then(|g| {
            g.0.as_ref()
                .ok()
                .and_then(|e| view::step_job(e, &q.step).map(str::to_string))
        });
    let Some(job) = job else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "step {:?} of {ns}/{name} has no Job yet: no log to show",
                q.step
            ),
        );
    };
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let listed = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await;
    let pod = match listed {
        // A step run as a bare Pod (`Runner.spec.workload: Pod`) is named like its Job.
        Ok(list) if list.items.is_empty() => pods.get_opt(&job).await.ok().flatten(),
        Ok(list) => list.items.into_iter().next(),
        Err(e) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("listing the pods of Job {job}: {e}"),
            );
        }
    };
    let Some(pod) = pod else {
        return text(
            StatusCode::NOT_FOUND,
            format!("Job {job} has no pod any more (deleted with its Job?): no log to show"),
        );
    };
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone());
    let params = LogParams {
        container,
        limit_bytes: Some(shared.config.log_limit_bytes),
        ..LogParams::default()
    };
    match pods.logs(&pod.name_any(), &params).await {
        Ok(log) => text(StatusCode::OK, log),
        Err(e) => text(
            StatusCode::BAD_GATEWAY,
            format!("reading the log of pod {}: {e}", pod.name_any()),
        ),
    }
}
