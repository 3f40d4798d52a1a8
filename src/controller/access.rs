//! The Runner `use` check's I/O: a SubjectAccessReview per (requester, namespace,
//! Runner), answers kept a short while, so the planner gets a verdict for every
//! Runner a run may reach (`engine::access` decides which, and what a denial says).
//!
//! Answers are cached for [`TTL`] in a bounded cache: a storm of runs from one
//! Trigger costs one review per Runner every few seconds, not one per step, and a
//! revoked RoleBinding stops new steps within [`TTL`]. A review that fails (the API
//! server is unavailable) is a transient error of the reconcile, retried with
//! backoff, never a denial that would fail the step for good.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use super::Error;
use crate::api::GROUP;
use crate::engine::access::{self, Requester, RunnerAccess, Verdict};
use crate::engine::plan::PlanInput;

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(5);
/// Most answers kept (requesters x namespaces x Runners).
const CAPACITY: usize = 4096;

type Key = (Requester, String, String);

/// Recent answers, by (requester, namespace, Runner).
pub struct AccessCache(quick_cache::sync::Cache<Key, (Instant, bool)>);

impl Default for AccessCache {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(CAPACITY))
    }
}

impl AccessCache {
    /// The verdicts the planner needs for `input`: one per Runner the playbook may
    /// reach (none before the playbook is known).
    pub async fn runner_access(
        &self,
        client: &Client,
        input: &PlanInput,
    ) -> Result<RunnerAccess, Error> {
        let Some(playbook) = input.status.playbook.as_ref().or(input.playbook.as_ref()) else {
            return Ok(RunnerAccess::new());
        };
        let names = access::runners_to_check(playbook, input.runners.keys());
        let namespace = &input.execution.namespace;
        let Some(requester) = Requester::of(&input.spec) else {
            return Ok(names
                .into_iter()
                .map(|n| {
                    let v = access::no_requester(&n);
                    (n, v)
                })
                .collect());
        };
        let checks = names.into_iter().map(|runner| {
            let requester = &requester;
            async move {
                let allowed = self.allowed(client, requester, namespace, &runner).await?;
                let v = access::verdict(requester, &runner, namespace, allowed);
                Ok::<(String, Verdict), Error>((runner, v))
            }
        });
        Ok(try_join_all(checks).await?.into_iter().collect())
    }

    async fn allowed(
        &self,
        client: &Client,
        requester: &Requester,
        namespace: &str,
        runner: &str,
    ) -> Result<bool, Error> {
        let key = (requester.clone(), namespace.to_string(), runner.to_string());
        if let Some((at, allowed)) = self.0.get(&key)
            && at.elapsed() < TTL
        {
            return Ok(allowed);
        }
        let review = review(requester, namespace, runner);
        let answer = Api::<SubjectAccessReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|source| Error::ReviewAccess {
                user: requester.user.clone(),
                runner: runner.to_string(),
                source,
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        self.0.insert(key, (Instant::now(), allowed));
        Ok(allowed)
    }
}

/// "May `requester` use `runners/NAME` in `namespace`?"
fn review(requester: &Requester, namespace: &str, runner: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(requester.user.clone()),
            groups: Some(requester.groups.clone()).filter(|g| !g.is_empty()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some(access::USE_VERB.into()),
                group: Some(GROUP.into()),
                resource: Some(access::RUNNERS.into()),
                name: Some(runner.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}
