//! The webhook's create path: what one API answer to an Execution create means for
//! the request. One tenant's refusal (a ResourceQuota, a Terminating namespace, a
//! webhook's 422) fails that Execution only, and is listed in the answer with the API
//! server's reason; a failure that retrying can mend makes the request a 503, so the
//! sender delivers again and what was created is then found as a duplicate.
//!
//! A name that exists is a duplicate only when that object was made for the same
//! alert by the same trigger (its labels say so): anyone who may create Executions in
//! a namespace can compute a name and pre-create it, and must not thereby drop a
//! real alert in silence.

use std::collections::BTreeMap;

use super::trigger::{LABEL_ALERT, LABEL_TRIGGER};

/// How the API server answered one create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    Created,
    /// An error status: its HTTP code, `reason` (`AlreadyExists`, `Forbidden`...) and
    /// message.
    Refused {
        code: u16,
        reason: &'a str,
        message: &'a str,
    },
    /// No answer: the connection failed or timed out.
    Unreachable(&'a str),
}

/// What a create answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Created,
    /// An object of that name exists: read it and ask [`existing`].
    Exists,
    /// Retrying cannot help (until someone changes the cluster): the Execution is
    /// listed under `errors` with this text, the rest of the request goes on.
    Permanent(String),
    /// Retrying can help: the request is answered 503.
    Transient(String),
}

/// Classifies the answer to creating Execution `full_name` (`namespace/name`).
pub fn classify(full_name: &str, answer: &Answer) -> Verdict {
    match *answer {
        Answer::Created => Verdict::Created,
        Answer::Refused {
            code: 409,
            reason: "AlreadyExists",
            ..
        } => Verdict::Exists,
        // Too many requests, the API server's own trouble, and other 409s (a write
        // raced ours) pass with time.
        Answer::Refused {
            code,
            reason,
            message,
        } if code == 409 || code == 429 || code >= 500 => Verdict::Transient(format!(
            "the API server could not create {full_name} now ({code} {reason}: {message})"
        )),
        Answer::Refused {
            code,
            reason,
            message,
        } => Verdict::Permanent(format!(
            "{full_name}: the API server refused it ({code} {reason}: {message}); fix that in namespace {ns} (quota, RBAC, admission) and the alert's next delivery starts it",
            ns = full_name.split('/').next().unwrap_or(""),
        )),
        Answer::Unreachable(why) => Verdict::Transient(format!(
            "cannot reach the API server to create {full_name} ({why})"
        )),
    }
}

/// What an existing object of the Execution's name is: a duplicate (`Ok`) when it
/// carries the same alert and trigger labels as the one the alert asks for, else an
/// error for the answer. `None`: it vanished between the create and the read, so
/// retrying creates it.
pub fn existing(
    full_name: &str,
    wanted: &BTreeMap<String, String>,
    found: Option<&BTreeMap<String, String>>,
) -> Option<Result<(), String>> {
    let found = found?;
    let same = |key: &str| wanted.get(key).is_some() && wanted.get(key) == found.get(key);
    if same(LABEL_ALERT) && same(LABEL_TRIGGER) {
        return Some(Ok(()));
    }
    let said = |key: &str| {
        found
            .get(key)
            .map_or("none".to_string(), |v| format!("{v:?}"))
    };
    Some(Err(format!(
        "an Execution named {full_name} exists but was not made for this alert (its labels {LABEL_TRIGGER}={} and {LABEL_ALERT}={}, wanted {} and {}): delete or rename it, and the alert's next delivery starts its run",
        said(LABEL_TRIGGER),
        said(LABEL_ALERT),
        wanted.get(LABEL_TRIGGER).map_or("none", String::as_str),
        wanted.get(LABEL_ALERT).map_or("none", String::as_str),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_has_its_verdict() {
        let refused = |code, reason, message| Answer::Refused {
            code,
            reason,
            message,
        };
        let quota = "executions.stackpulse.io \"t-1\" is forbidden: exceeded quota: no-runs, requested: count/executions.stackpulse.io=1, used: count/executions.stackpulse.io=0, limited: count/executions.stackpulse.io=0";
        // (answer, verdict kind, part of the text)
        let table = [
            (Answer::Created, "created", ""),
            (refused(409, "AlreadyExists", "exists"), "exists", ""),
            (
                refused(403, "Forbidden", quota),
                "permanent",
                "403 Forbidden: executions.stackpulse.io \"t-1\" is forbidden: exceeded quota",
            ),
            (
                refused(
                    403,
                    "Forbidden",
                    "unable to create new content in namespace b because it is being terminated",
                ),
                "permanent",
                "being terminated",
            ),
            (
                refused(422, "Invalid", "spec.params: Invalid value"),
                "permanent",
                "422 Invalid",
            ),
            (
                refused(400, "BadRequest", "x"),
                "permanent",
                "fix that in namespace ns",
            ),
            (
                refused(404, "NotFound", "namespaces \"gone\" not found"),
                "permanent",
                "not found",
            ),
            (
                refused(409, "Conflict", "the object has been modified"),
                "transient",
                "409 Conflict",
            ),
            (
                refused(429, "TooManyRequests", "slow down"),
                "transient",
                "429",
            ),
            (refused(500, "InternalError", "etcd"), "transient", "500"),
            (refused(503, "ServiceUnavailable", "x"), "transient", "503"),
            (refused(504, "Timeout", "x"), "transient", "504"),
            (
                Answer::Unreachable("connection refused"),
                "transient",
                "connection refused",
            ),
        ];
        for (answer, kind, text) in table {
            let got = classify("ns/t-1", &answer);
            let (got_kind, got_text) = match &got {
                Verdict::Created => ("created", ""),
                Verdict::Exists => ("exists", ""),
                Verdict::Permanent(t) => ("permanent", t.as_str()),
                Verdict::Transient(t) => ("transient", t.as_str()),
            };
            assert_eq!(got_kind, kind, "{answer:?}");
            assert!(got_text.contains(text), "{answer:?}: {got_text}");
            if kind == "permanent" || kind == "transient" {
                assert!(
                    got_text.contains("ns/t-1"),
                    "names the Execution: {got_text}"
                );
            }
        }
    }

    #[test]
    fn only_an_object_made_for_the_same_alert_is_a_duplicate() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let wanted = labels(&[(LABEL_TRIGGER, "redis-down"), (LABEL_ALERT, "abc")]);
        let dup = existing("ns/x", &wanted, Some(&wanted.clone()));
        assert_eq!(dup, Some(Ok(())));
        let mut more = wanted.clone();
        more.insert("team".into(), "db".into());
        assert_eq!(existing("ns/x", &wanted, Some(&more)), Some(Ok(())));
        for found in [
            labels(&[]),
            labels(&[(LABEL_TRIGGER, "redis-down")]),
            labels(&[(LABEL_TRIGGER, "redis-down"), (LABEL_ALERT, "other")]),
            labels(&[(LABEL_TRIGGER, "other"), (LABEL_ALERT, "abc")]),
        ] {
            let got = existing("ns/x", &wanted, Some(&found));
            let Some(Err(msg)) = got else {
                panic!("{found:?} is no duplicate, got {got:?}");
            };
            assert!(
                msg.contains("an Execution named ns/x exists but was not made for this alert"),
                "{msg}"
            );
        }
        // Wanted labels missing (never so from a trigger) never match an empty object.
        assert!(matches!(
            existing("ns/x", &labels(&[]), Some(&labels(&[]))),
            Some(Err(_))
        ));
        assert_eq!(existing("ns/x", &wanted, None), None);
    }
}
