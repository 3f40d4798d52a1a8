//! Every way a pod shows a failure, and when each fails its attempt.

use super::*;

const IMAGE: &str = "registry.example/tool:1";

fn pod(phase: &str) -> PodFacts {
    PodFacts {
        name: "run-a-1-x".into(),
        phase: phase.into(),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: &str) -> PodFacts {
    PodFacts {
        waiting: Some(Waiting {
            reason: reason.into(),
            message: Some(message.into()).filter(|m: &String| !m.is_empty()),
        }),
        ..pod("Pending")
    }
}

/// `elapsed` seconds after the attempt started, with a start timeout of 300 s.
fn at(elapsed: i64) -> Clock {
    Clock {
        started: 1000,
        now: 1000 + elapsed,
        start_timeout: 300,
    }
}

/// What a verdict is, for the table: `fine`, `wait N`, or `failed: MESSAGE`.
fn show(h: Health) -> String {
    match h {
        Health::Fine => "fine".into(),
        Health::Wait(n) => format!("wait {n}"),
        Health::Failed(m) => format!("failed: {m}"),
    }
}

#[test]
fn verdicts() {
    let secret_key = "couldn't find key no-such-key in Secret prod/slack";
    let non_root =
        "container has runAsNonRoot and image will run as root (pod: \"p_ns(uid)\", container: a)";
    let unschedulable =
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";
    let disrupted = PodFacts {
        disruption: Some(Waiting {
            reason: "DeletionByTaintManager".into(),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
        }),
        ..pod("Running")
    };
    let evicted = PodFacts {
        reason: Some("Evicted".into()),
        message: Some("The node was low on resource: memory.".into()),
        ..pod("Failed")
    };
    let node_lost = PodFacts {
        reason: Some("NodeLost".into()),
        ..pod("Failed")
    };
    let deleting = PodFacts {
        deleting: true,
        ..pod("Running")
    };
    let unplaced = PodFacts {
        unschedulable: Some(unschedulable.into()),
        ..pod("Pending")
    };
    #[rustfmt::skip]
    let table: Vec<(&str, Option<PodFacts>, i64, String)> = vec![
        ("a running container is fine", Some(pod("Running")), 5000, "fine".into()),
        ("a pod just created waits for the start timeout", Some(pod("Pending")), 0, "wait 300".into()),
        ("a pod with no phase yet waits too", Some(pod("")), 299, "wait 1".into()),
        ("a pod Pending past the start timeout fails", Some(pod("Pending")), 300,
            "failed: pod run-a-1-x did not start within 300s (phase Pending)".into()),
        ("no pod yet waits", None, 10, "wait 290".into()),
        ("no pod past the start timeout fails and says where to look", None, 300,
            "failed: Job job-1 had no pod after 300s: see `kubectl describe job job-1` (a ResourceQuota or Pod Security admission may refuse its pod)".into()),
        ("ErrImagePull waits for the start timeout", Some(waiting("ErrImagePull", "no such host")), 60, "wait 240".into()),
        ("ImagePullBackOff fails after it, quoting the kubelet", Some(waiting("ImagePullBackOff", "Back-off pulling image")), 300,
            format!("failed: image \"{IMAGE}\" could not be pulled within 300s (ImagePullBackOff: Back-off pulling image): check the image name and tag, and the Runner's imagePullSecrets")),
        ("ErrImageNeverPull too", Some(waiting("ErrImageNeverPull", "Container image \"x\" is not present with pull policy of Never")), 301,
            format!("failed: image \"{IMAGE}\" could not be pulled within 300s (ErrImageNeverPull: Container image \"x\" is not present with pull policy of Never): check the image name and tag, and the Runner's imagePullSecrets")),
        ("InvalidImageName gets only the short grace", Some(waiting("InvalidImageName", "")), 9, "wait 1".into()),
        ("InvalidImageName fails after it", Some(waiting("InvalidImageName", "")), 10,
            format!("failed: image \"{IMAGE}\" is not a valid image reference (InvalidImageName): fix the step's image")),
        ("a missing Secret key names the key", Some(waiting("CreateContainerConfigError", secret_key)), 10,
            format!("failed: container could not be configured (CreateContainerConfigError: {secret_key}): create the Secret or the key it names, or fix the step's env or envFrom")),
        ("a missing Secret waits out the grace", Some(waiting("CreateContainerConfigError", "secret \"x\" not found")), 3, "wait 7".into()),
        ("runAsNonRoot against a root image says what to change", Some(waiting("CreateContainerConfigError", non_root)), 10,
            format!("failed: container could not be configured (CreateContainerConfigError: {non_root}): use an image that runs as a non-root user, or set runAsUser in the Runner's securityContext")),
        ("a missing ConfigMap", Some(waiting("CreateContainerConfigError", "configmap \"c\" not found")), 10,
            "failed: container could not be configured (CreateContainerConfigError: configmap \"c\" not found): create the ConfigMap or the key it names".into()),
        ("another config error", Some(waiting("CreateContainerConfigError", "bad")), 10,
            "failed: container could not be configured (CreateContainerConfigError: bad): fix the step's env, envFrom or the Runner's securityContext".into()),
        ("CreateContainerError", Some(waiting("CreateContainerError", "exec format error")), 11,
            "failed: container could not be created (CreateContainerError: exec format error): fix the step's image, command or the Runner's securityContext".into()),
        ("ContainerCreating waits for the start timeout", Some(waiting("ContainerCreating", "")), 299, "wait 1".into()),
        ("ContainerCreating fails after it", Some(waiting("ContainerCreating", "")), 300,
            "failed: container did not start within 300s (ContainerCreating)".into()),
        ("an unschedulable pod waits for the start timeout", Some(unplaced.clone()), 100, "wait 200".into()),
        ("an unschedulable pod fails after it, quoting the scheduler", Some(unplaced), 300,
            format!("failed: pod could not be scheduled within 300s: {unschedulable}: check the Runner's nodeSelector, tolerations and affinity, and the step's resources.requests")),
        ("an evicted pod fails at once, with the kubelet's words", Some(evicted), 0,
            "failed: pod run-a-1-x was evicted: The node was low on resource: memory.".into()),
        ("a pod failed for another reason", Some(node_lost), 0, "failed: pod run-a-1-x failed (NodeLost)".into()),
        ("a pod failed with no reason", Some(pod("Failed")), 0, "failed: pod run-a-1-x failed before its container ended".into()),
        ("a disruption target fails at once", Some(disrupted), 0,
            "failed: pod run-a-1-x was stopped by the cluster (DeletionByTaintManager: Taint manager: deleting due to NoExecute taint): its node may be gone or draining".into()),
        ("a pod deleted before its container ended", Some(deleting), 0,
            "failed: pod run-a-1-x was deleted before its container ended".into()),
    ];
    let mut failures = Vec::new();
    for (case, facts, elapsed, want) in table {
        let got = show(judge(facts.as_ref(), "job-1", IMAGE, at(elapsed)));
        if got != want {
            failures.push(format!("{case}:\n  got  {got}\n  want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_step_start_timeout_of_its_own_counts() {
    let clock = Clock {
        started: 0,
        now: 5,
        start_timeout: 5,
    };
    let got = judge(Some(&waiting("ErrImagePull", "")), "j", IMAGE, clock);
    assert_eq!(
        got,
        Health::Failed(format!(
            "image \"{IMAGE}\" could not be pulled within 5s (ErrImagePull): check the image name and tag, and the Runner's imagePullSecrets"
        ))
    );
}

/// A step's start timeout shorter than the config grace wins: with 3 s, a missing
/// Secret key fails after 3 s, not 10.
#[test]
fn a_start_timeout_shorter_than_the_grace_wins() {
    let key = "couldn't find key k in Secret ns/s";
    #[rustfmt::skip]
    let table = [
        ("CreateContainerConfigError", key, 2, "wait 1".to_string()),
        ("CreateContainerConfigError", key, 3, format!("failed: container could not be configured (CreateContainerConfigError: {key}): create the Secret or the key it names, or fix the step's env or envFrom")),
        ("InvalidImageName", "", 3, format!("failed: image \"{IMAGE}\" is not a valid image reference (InvalidImageName): fix the step's image")),
        ("CreateContainerError", "", 1, "wait 2".to_string()),
    ];
    for (reason, message, now, want) in table {
        let clock = Clock {
            started: 0,
            now,
            start_timeout: 3,
        };
        let got = show(judge(Some(&waiting(reason, message)), "j", IMAGE, clock));
        assert_eq!(got, want, "{reason} after {now}s");
    }
}

#[test]
fn out_of_memory_names_the_limit() {
    assert_eq!(
        oom_message(137, Some("64Mi")),
        "exit code 137 (OOMKilled): ran out of memory at its limit of 64Mi: raise resources.limits.memory"
    );
    assert_eq!(
        oom_message(137, None),
        "exit code 137: ran out of memory (OOMKilled) with no memory limit: set resources.requests.memory and resources.limits.memory"
    );
}

/// `TROUBLE_REASONS` is exactly what `judge` has words of its own for: each listed
/// reason fails with a message other than the start timeout's, and an unlisted one
/// gets that generic message (so a reason added to the match must join the list).
#[test]
fn the_trouble_reasons_are_those_judged_on_their_own() {
    let generic = |reason: &str| format!("failed: container did not start within 300s ({reason})");
    let verdict = |reason: &str| show(judge(Some(&waiting(reason, "")), "j", IMAGE, at(300)));
    for reason in TROUBLE_REASONS {
        assert_ne!(verdict(reason), generic(reason), "{reason}");
    }
    for reason in ["ContainerCreating", "PodInitializing", "SomethingNew"] {
        assert_eq!(verdict(reason), generic(reason), "{reason}");
    }
}
