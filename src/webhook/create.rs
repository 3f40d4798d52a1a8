//! The create path of a webhook request: every Execution the alerts asked for is
//! tried (none waits on another's failure), and each answer is judged by
//! `engine::alert::intake`: created, a duplicate (an object of that name made for the
//! same alert), refused for good (listed in the answer), or failed for now (the
//! request becomes a 503 and the sender retries).

use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use super::Shared;
use crate::api::Execution;
use crate::controller::FIELD_MANAGER;
use crate::engine::alert::intake::{self, Answer, Verdict};

/// One Execution the request asked for.
pub(super) struct Wanted {
    pub namespace: String,
    pub name: String,
    pub trigger: String,
}

impl Wanted {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What became of one Execution.
pub(super) enum Done {
    Created,
    Duplicate,
    /// Refused for good: the text for the answer's `errors`.
    Refused(String),
    /// Failed for now: the request is answered 503.
    Failed(String),
}

/// Creates the Executions (at most `--webhook-concurrency` in flight across all
/// requests) and says what became of each.
pub(super) async fn create_all(shared: &Shared, starts: Vec<Execution>) -> Vec<(Wanted, Done)> {
    futures::stream::iter(starts)
        .map(|exec| async move {
            let _slot = shared.in_flight.acquire().await.ok();
            let wanted = Wanted {
                namespace: exec.namespace().unwrap_or_default(),
                name: exec.name_any(),
                trigger: exec
                    .spec
                    .trigger_ref
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
            };
            let done = create(shared, &wanted, &exec).await;
            (wanted, done)
        })
        .buffer_unordered(shared.config.concurrency.max(1))
        .collect()
        .await
}

async fn create(shared: &Shared, wanted: &Wanted, exec: &Execution) -> Done {
    let full = wanted.full_name();
    let api: Api<Execution> = Api::namespaced(shared.client.clone(), &wanted.namespace);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let created = api.create(&pp, exec).await;
    match classify(&full, created.as_ref().map(|_| ())) {
        Verdict::Created => Done::Created,
        Verdict::Permanent(why) => Done::Refused(why),
        Verdict::Transient(why) => Done::Failed(why),
        Verdict::Exists => {
            // `list` by name, not `get`: the operator's role has list on Executions.
            let by_name = ListParams::default().fields(&format!("metadata.name={}", wanted.name));
            match api.list_metadata(&by_name).await {
                Ok(list) => {
                    let found = list.items.first().map(|o| o.labels().clone());
                    match intake::existing(&full, exec.labels(), found.as_ref()) {
                        Some(Ok(())) => Done::Duplicate,
                        Some(Err(why)) => Done::Refused(why),
                        None => Done::Failed(format!(
                            "{full} existed, then was gone when read back: retry creates it"
                        )),
                    }
                }
                Err(e) => match classify(&full, Err(&e)) {
                    Verdict::Transient(why) | Verdict::Permanent(why) => Done::Failed(why),
                    Verdict::Created | Verdict::Exists => {
                        Done::Failed(format!("reading back {full} failed: {e}"))
                    }
                },
            }
        }
    }
}

/// The API answer as the pure core sees it.
fn classify(full: &str, result: Result<(), &kube::Error>) -> Verdict {
    match result {
        Ok(()) => intake::classify(full, &Answer::Created),
        Err(kube::Error::Api(s)) => intake::classify(
            full,
            &Answer::Refused {
                code: s.code,
                reason: &s.reason,
                message: &s.message,
            },
        ),
        Err(other) => intake::classify(full, &Answer::Unreachable(&other.to_string())),
    }
}
