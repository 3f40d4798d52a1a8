//! How the planner ends attempts whose pod fails without its container ending, whose
//! Job disappears or is refused, and steps that would otherwise run for ever. The
//! verdicts themselves are `health`'s table; these are the stories around them:
//! retries apply, `finally` runs, a Job name is never created twice.

use super::scenario::Act::*;
use super::scenario::{Case, case, run_all, step};
use crate::api::ExecutionPhase::{Failed, Running};

fn cases() -> Vec<Case> {
    vec![
        case(
            "a step without timeoutSeconds times out at the operator's default",
            vec![step("a")],
            vec![
                Plan,
                Requeue(Some(3600)),
                Wait(3599),
                Plan,
                States("a=Running"),
                Wait(1),
                Plan,
                States("a=Failed"),
                Msg("a", "timed out after 3600s (the operator's default step timeout: set the step's timeoutSeconds to give it longer)"),
                Deletes(1),
                PhaseIs(Failed),
            ],
        ),
        case(
            "a step's own timeout wins over the default",
            vec![step("a").timeout(7200)],
            vec![Plan, Wait(3600), Plan, States("a=Running"), Requeue(Some(3600))],
        ),
        case(
            "an image that does not pull fails the attempt after the start timeout; retries apply",
            vec![step("a").retries(1, 0)],
            vec![
                Plan,
                Plan,
                Waits("a", "ImagePullBackOff", "Back-off pulling image \"example.com/a:1\""),
                Plan,
                States("a=Running"),
                Requeue(Some(300)),
                Wait(300),
                Plan,
                States("a=Running"),
                Attempt("a", 2),
                Events(&["StepRetrying", "StepStarted"]),
                Deletes(1),
                Waits("a", "ErrImagePull", "no such host"),
                Wait(300),
                Plan,
                States("a=Failed"),
                Msg("a", "image \"example.com/a:1\" could not be pulled within 300s (ErrImagePull: no such host): check the image name and tag, and the Runner's imagePullSecrets (after 2 attempts)"),
            ],
        ),
        case(
            "a missing Secret key fails after the short grace, and finally runs",
            vec![step("a")],
            vec![
                Plan,
                Waits("a", "CreateContainerConfigError", "couldn't find key token in Secret prod/slack"),
                Wait(9),
                Plan,
                States("a=Running"),
                Requeue(Some(1)),
                Wait(1),
                Plan,
                States("a=Failed | f=Running"),
                Msg("a", "couldn't find key token in Secret prod/slack): create the Secret or the key it names"),
                Events(&["StepFailed", "FinallyStarted"]),
            ],
        )
        .finally(vec![step("f")]),
        case(
            "a container killed at its memory limit says which limit to raise",
            vec![step("a")],
            vec![
                Plan,
                Oom("a", Some("64Mi")),
                Plan,
                States("a=Failed"),
                Msg("a", "exit code 137 (OOMKilled): ran out of memory at its limit of 64Mi: raise resources.limits.memory"),
            ],
        ),
        case(
            "a Job deleted while its step ran fails the attempt; the retry is a new Job",
            vec![step("a").retries(1, 0)],
            vec![
                Plan, // the status that says it runs has the Job's uid
                DeleteJob("a"),
                Plan,
                Attempt("a", 2),
                States("a=Running"),
                Creates(1),
                Events(&["StepRetrying", "StepStarted"]),
                Plan,
                DeleteJob("a"),
                Plan,
                States("a=Failed"),
                Msg("a", "Job run-1-a-2-"),
                Msg("a", " was deleted while the step ran (after 2 attempts)"),
                Creates(0),
            ],
        ),
        case(
            "a Job never seen is created again under its name, not taken for deleted",
            vec![step("a")],
            vec![Plan, Lose("a"), Plan, Recreated("a"), States("a=Running")],
        ),
        case(
            "a Job replaced under the same name is not the one that ran",
            vec![step("a")],
            vec![
                Plan,
                Plan,
                ReplaceJob("a"),
                Plan,
                States("a=Failed"),
                Msg("a", "was deleted while the step ran"),
            ],
        ),
        case(
            "a Job the API server refuses fails the step at once, without retrying",
            vec![step("a").retries(3, 0)],
            vec![
                Plan,
                Refused("a", "the API server refused Job run-1-a-1: 422 Invalid: spec.template.spec.containers[0].resources.requests: must be less than or equal to cpu limit"),
                Plan,
                States("a=Failed"),
                Attempt("a", 1),
                Msg("a", "must be less than or equal to cpu limit"),
                Deletes(0),
                Creates(0),
            ],
        ),
        case(
            "a DeadlineExceeded Job without a timeout of the step's own says so",
            vec![step("a")],
            vec![
                Plan,
                JobDeadline("a"),
                Plan,
                States("a=Failed"),
                Msg("a", "Job failed: DeadlineExceeded: Job was active longer than specified deadline"),
            ],
        ),
        case(
            "a pod still starting does not fail before its time",
            vec![step("a")],
            vec![
                Plan,
                Waits("a", "ContainerCreating", ""),
                Wait(299),
                Plan,
                States("a=Running"),
                PhaseIs(Running),
            ],
        ),
    ]
}

#[test]
fn failures() {
    run_all(cases().into_iter());
}

#[test]
fn a_step_start_timeout_of_its_own_counts() {
    let mut short = step("a");
    short.0.step.start_timeout_seconds = Some(20);
    run_all(
        [case(
            "startTimeoutSeconds: 20",
            vec![short],
            vec![
                Plan,
                Waits("a", "ErrImagePull", "x"),
                Plan,
                Requeue(Some(20)),
                Wait(20),
                Plan,
                Msg("a", "could not be pulled within 20s"),
            ],
        )]
        .into_iter(),
    );
}
