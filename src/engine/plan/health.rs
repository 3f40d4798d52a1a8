//! Is a running step's pod still on its way, or has it failed without its container
//! ever ending? Pure: the controller extracts [`PodFacts`] from the Pod (`observe`),
//! the planner asks [`judge`] and fails the attempt (its `retries` apply) with the
//! message, which quotes the kubelet's or scheduler's own words and says what to change.
//!
//! Without this a step whose image does not pull, whose Secret key is missing, whose
//! image runs as root under `runAsNonRoot`, or whose pod fits no node would stay
//! Running until its timeout (for ever without one), and its `finally` steps with it.
//!
//! Two clocks, both counted from the attempt's `startedAt` (in status, so a restarted
//! controller counts on from the same moment):
//! - the *start timeout* for states that can clear on their own: an image still
//!   pulling or backing off (a registry down for a minute), a pod no node has room
//!   for yet, a container still being created;
//! - a short [`CONFIG_GRACE`] for states that cannot clear without a change by a
//!   person: a malformed image name, a missing Secret or key, runAsNonRoot against a
//!   root image. The grace lets a Secret created a moment after the run still count.
//!   A start timeout shorter than the grace wins: a state that cannot clear on its
//!   own never gets longer than one that can.
//!
//! Ended containers are not judged here (their exit code and reason are, in `step`),
//! except for the one reason worth its own words: [`oom_message`].

/// Seconds a container that cannot be configured or created may stay so before its
/// attempt fails (the kubelet retries it meanwhile).
pub const CONFIG_GRACE: i64 = 10;

/// What the controller saw of a step's pod while its container had not ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFacts {
    pub name: String,
    /// `Pending`, `Running`, `Failed`, … (empty: not reported yet).
    pub phase: String,
    /// The pod's `status.reason` (`Evicted`, …) and `status.message`.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The step container's waiting state.
    pub waiting: Option<Waiting>,
    /// The scheduler's message while `PodScheduled` is False for `Unschedulable`.
    pub unschedulable: Option<String>,
    /// A `DisruptionTarget` condition that is True: its reason and message (the node
    /// went away, the taint manager or the API evicted the pod, …).
    pub disruption: Option<Waiting>,
    /// The pod has a deletionTimestamp.
    pub deleting: bool,
}

/// A reason and the message that goes with it, as the kubelet (or a controller) wrote them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: Option<String>,
}

/// The verdict on one running attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Nothing wrong that can be seen.
    Fine,
    /// Not right yet, but not long enough to fail: look again in this many seconds.
    Wait(i64),
    /// The attempt has failed: the step's message.
    Failed(String),
}

/// The clock of one attempt, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// When the attempt started.
    pub started: i64,
    pub now: i64,
    /// The step's start timeout.
    pub start_timeout: i64,
}

impl Clock {
    /// Failed with `message` once `limit` seconds have passed since the start, else
    /// wait for the rest.
    fn after(self, limit: i64, message: impl FnOnce() -> String) -> Health {
        let due = self.started.saturating_add(limit);
        if self.now >= due {
            Health::Failed(message())
        } else {
            Health::Wait(due - self.now)
        }
    }
}

/// The verdict on a step attempt whose Job exists and whose container has not ended:
/// `pod` is what its pod shows (`None`: the Job has no pod), `job` the Job's name and
/// `image` the step's image, both for the messages.
pub fn judge(pod: Option<&PodFacts>, job: &str, image: &str, clock: Clock) -> Health {
    let t = clock.start_timeout;
    let Some(pod) = pod else {
        // The Job controller could not create its pod (a ResourceQuota, Pod Security
        // admission) or has not yet: Events on the Job say which.
        return clock.after(t, || {
            format!("Job {job} had no pod after {t}s: see `kubectl describe job {job}` (a ResourceQuota or Pod Security admission may refuse its pod)")
        });
    };
    if let Some(d) = &pod.disruption {
        return Health::Failed(format!(
            "pod {} was stopped by the cluster ({}{}): its node may be gone or draining",
            pod.name,
            d.reason,
            said(d.message.as_deref())
        ));
    }
    if pod.phase == "Failed" {
        let reason = pod.reason.as_deref().unwrap_or_default();
        let message = said(pod.message.as_deref());
        return Health::Failed(match reason {
            "Evicted" => format!("pod {} was evicted{message}", pod.name),
            "" => format!(
                "pod {} failed before its container ended{message}",
                pod.name
            ),
            _ => format!("pod {} failed ({reason}){message}", pod.name),
        });
    }
    if pod.deleting {
        return Health::Failed(format!(
            "pod {} was deleted before its container ended",
            pod.name
        ));
    }
    if let Some(w) = &pod.waiting {
        return waiting(w, image, clock);
    }
    if let Some(message) = &pod.unschedulable {
        return clock.after(t, || {
            format!("pod could not be scheduled within {t}s: {message}: check the Runner's nodeSelector, tolerations and affinity, and the step's resources.requests")
        });
    }
    if pod.phase == "Pending" || pod.phase.is_empty() {
        return clock.after(t, || {
            format!(
                "pod {} did not start within {t}s (phase {})",
                pod.name,
                if pod.phase.is_empty() {
                    "unknown"
                } else {
                    "Pending"
                }
            )
        });
    }
    Health::Fine
}

/// The waiting reasons [`judge`] fails an attempt on (each with its own message and
/// clock); any other (`ContainerCreating`, `PodInitializing`, …) is a container on its
/// way, failed only by the start timeout. `engine::wake` wakes an Execution on these.
pub const TROUBLE_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The verdict on a container that waits for the kubelet.
fn waiting(w: &Waiting, image: &str, clock: Clock) -> Health {
    let t = clock.start_timeout;
    let grace = CONFIG_GRACE.min(t);
    let why = format!("{}{}", w.reason, said(w.message.as_deref()));
    match w.reason.as_str() {
        "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" => clock.after(t, || {
            format!("image \"{image}\" could not be pulled within {t}s ({why}): check the image name and tag, and the Runner's imagePullSecrets")
        }),
        "InvalidImageName" => clock.after(grace, || {
            format!("image \"{image}\" is not a valid image reference ({why}): fix the step's image")
        }),
        "CreateContainerConfigError" => clock.after(grace, || {
            format!(
                "container could not be configured ({why}): {}",
                config_fix(w.message.as_deref().unwrap_or_default())
            )
        }),
        "CreateContainerError" => clock.after(grace, || {
            format!("container could not be created ({why}): fix the step's image, command or the Runner's securityContext")
        }),
        // ContainerCreating, PodInitializing, …: on the way, for at most the start timeout.
        _ => clock.after(t, || format!("container did not start within {t}s ({why})")),
    }
}

/// What to change for a `CreateContainerConfigError`, from the kubelet's message.
fn config_fix(message: &str) -> &'static str {
    if message.contains("runAsNonRoot") {
        "use an image that runs as a non-root user, or set runAsUser in the Runner's securityContext"
    } else if message.contains("ecret") {
        "create the Secret or the key it names, or fix the step's env or envFrom"
    } else if message.contains("onfigMap") || message.contains("onfigmap") {
        "create the ConfigMap or the key it names"
    } else {
        "fix the step's env, envFrom or the Runner's securityContext"
    }
}

/// The message of a container the kernel killed at its memory limit (`limit`, as the
/// Job asked for it; `None`: it had none, so the node ran out).
pub fn oom_message(exit_code: i32, limit: Option<&str>) -> String {
    match limit {
        Some(limit) => format!(
            "exit code {exit_code} (OOMKilled): ran out of memory at its limit of {limit}: raise resources.limits.memory"
        ),
        None => format!(
            "exit code {exit_code}: ran out of memory (OOMKilled) with no memory limit: set resources.requests.memory and resources.limits.memory"
        ),
    }
}

/// `: MESSAGE` when there is one.
fn said(message: Option<&str>) -> String {
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => format!(": {m}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
