//! Which Pod and Job changes wake an Execution: every state `health::judge` fails an
//! attempt on, a container's end and a Job's failure do; a pod on its way does not.

use super::*;
use crate::engine::plan::health::Waiting;

fn on_its_way(phase: &str) -> PodFacts {
    PodFacts {
        name: "run-a-1-x".into(),
        phase: phase.into(),
        ..Default::default()
    }
}

fn waiting(reason: &str) -> PodFacts {
    PodFacts {
        waiting: Some(Waiting {
            reason: reason.into(),
            message: Some("the kubelet's words".into()),
        }),
        ..on_its_way("Pending")
    }
}

/// Whether the change `before` → `after` of one Pod wakes its Execution.
fn wakes(before: &PodFacts, after: &PodFacts, ended: bool) -> bool {
    pod(false, before) != pod(ended, after)
}

#[test]
fn a_pod_wakes_its_execution_only_on_what_the_planner_acts_on() {
    let pending = on_its_way("Pending");
    let mut table: Vec<(String, PodFacts, PodFacts, bool, bool)> = vec![
        (
            "first seen, no status yet".into(),
            on_its_way(""),
            on_its_way("Pending"),
            false,
            false,
        ),
        (
            "scheduled, container creating".into(),
            pending.clone(),
            waiting("ContainerCreating"),
            false,
            false,
        ),
        (
            "init containers".into(),
            pending.clone(),
            waiting("PodInitializing"),
            false,
            false,
        ),
        (
            "running".into(),
            waiting("ContainerCreating"),
            on_its_way("Running"),
            false,
            false,
        ),
        (
            "step container ended".into(),
            on_its_way("Running"),
            on_its_way("Running"),
            true,
            true,
        ),
        (
            "ended and the pod Succeeded".into(),
            on_its_way("Running"),
            on_its_way("Succeeded"),
            true,
            true,
        ),
        (
            "evicted".into(),
            on_its_way("Running"),
            PodFacts {
                reason: Some("Evicted".into()),
                ..on_its_way("Failed")
            },
            false,
            true,
        ),
        (
            "failed before its container ended".into(),
            on_its_way("Running"),
            on_its_way("Failed"),
            false,
            true,
        ),
        (
            "deleted".into(),
            on_its_way("Running"),
            PodFacts {
                deleting: true,
                ..on_its_way("Running")
            },
            false,
            true,
        ),
        (
            "no node fits".into(),
            pending.clone(),
            PodFacts {
                unschedulable: Some("0/2 nodes are available".into()),
                ..pending.clone()
            },
            false,
            true,
        ),
        (
            "its node goes away".into(),
            on_its_way("Running"),
            PodFacts {
                disruption: Some(Waiting {
                    reason: "DeletionByTaintManager".into(),
                    message: None,
                }),
                ..on_its_way("Running")
            },
            false,
            true,
        ),
    ];
    // Every waiting reason the failure handling has words of its own for wakes, from a
    // pod on its way and from a container creating.
    for reason in TROUBLE_REASONS {
        table.push((
            format!("{reason} from pending"),
            pending.clone(),
            waiting(reason),
            false,
            true,
        ));
        table.push((
            format!("{reason} from creating"),
            waiting("ContainerCreating"),
            waiting(reason),
            false,
            true,
        ));
    }
    // A pull that keeps failing alternates between the two reasons: each is a new
    // message for the planner, but the same reason again is not.
    table.push((
        "pull back-off after a pull error".into(),
        waiting("ErrImagePull"),
        waiting("ImagePullBackOff"),
        false,
        true,
    ));
    table.push((
        "the same pull error again".into(),
        waiting("ErrImagePull"),
        waiting("ErrImagePull"),
        false,
        false,
    ));
    let failures: Vec<String> = table
        .into_iter()
        .filter(|(_, before, after, ended, want)| wakes(before, after, *ended) != *want)
        .map(|(case, _, _, _, want)| format!("{case}: want wakes={want}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_pod_first_seen_on_its_way_is_quiet_and_one_already_ended_is_not() {
    assert_eq!(pod(false, &on_its_way("Pending")), Wake::default());
    assert_eq!(pod(false, &waiting("ContainerCreating")), Wake::default());
    assert_ne!(pod(true, &on_its_way("Succeeded")), Wake::default());
    assert_ne!(
        pod(false, &waiting("CreateContainerConfigError")),
        Wake::default()
    );
}

#[test]
fn a_job_wakes_its_execution_when_it_fails_or_goes_away() {
    let deadline = JobFailure {
        reason: "DeadlineExceeded".into(),
        message: "Job was active longer than specified deadline".into(),
    };
    let backoff = JobFailure {
        reason: "BackoffLimitExceeded".into(),
        message: String::new(),
    };
    assert_eq!(
        job(None, false),
        Wake::default(),
        "a Job running or complete is quiet"
    );
    assert_ne!(job(Some(&deadline), false), Wake::default());
    assert_ne!(job(Some(&deadline), false), job(Some(&backoff), false));
    assert_ne!(job(None, true), Wake::default());
}
