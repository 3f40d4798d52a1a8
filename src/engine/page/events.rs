//! Which Events the execution page keeps, decided without I/O. The page's Event cache
//! is filed per Execution and holds at most [`KEPT`] Events for each (the newest), so a
//! run with thousands of transitions, or a tenant creating Events about someone's
//! Execution, costs the operator a fixed amount of memory per Execution and the page
//! the same few lines. An Event is filed under an Execution only when it names one in
//! the Event's own namespace: the API server lets an Event with `eventTime` point at
//! an object in any namespace, and such an Event must not reach that object's page.

use super::{EventView, MAX_EVENTS};

/// Most Events kept per Execution: as many as its page shows.
pub const KEPT: usize = MAX_EVENTS;
/// Most Executions not (yet) in the Execution cache that Events are kept for. Events
/// about a run usually arrive after the run itself, but the two watches are not
/// ordered; past this many, the Events of the one filed first go. Without it, Events
/// naming made-up uids (anyone who may create Events in a namespace can write them)
/// would each hold an entry for the Events' lifetime.
pub const MAX_UNKNOWN_RUNS: usize = 1000;
/// Most bytes of an Event's message kept (the API server takes 1 KiB for an
/// events.k8s.io note, but a core/v1 Event's message up to the object's size).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The Execution an Event is filed under: its namespace and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionKey {
    pub namespace: String,
    pub uid: String,
}

/// What an Event says it is about, and where it lives.
#[derive(Clone, Copy, Debug, Default)]
pub struct About<'a> {
    /// The Event's own namespace.
    pub namespace: Option<&'a str>,
    /// `involvedObject.kind`, `.namespace` and `.uid`.
    pub kind: Option<&'a str>,
    pub object_namespace: Option<&'a str>,
    pub uid: Option<&'a str>,
}

/// The Execution whose page an Event belongs on: one it names by uid, in the
/// Event's own namespace. `None` for anything else (another kind, no uid, another
/// namespace than the Event's).
pub fn filed_under(about: &About) -> Option<ExecutionKey> {
    let namespace = about.namespace.filter(|n| !n.is_empty())?;
    let uid = about.uid.filter(|u| !u.is_empty())?;
    (about.kind == Some("Execution") && about.object_namespace == Some(namespace)).then(|| {
        ExecutionKey {
            namespace: namespace.to_string(),
            uid: uid.to_string(),
        }
    })
}

/// One kept Event: its name (updates and deletes find it by that) and its view.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept {
    pub name: String,
    pub view: EventView,
}

/// Files `event` among `kept` (one Execution's), keeping the newest `cap`: an Event
/// of the same name is replaced (its count went up); past `cap` the oldest goes,
/// which may be `event` itself. Ties in age go by name, so the outcome does not
/// depend on arrival order.
pub fn keep(kept: &mut Vec<Kept>, event: Kept, cap: usize) {
    match kept.iter_mut().find(|k| k.name == event.name) {
        Some(old) => *old = event,
        None => kept.push(event),
    }
    while kept.len() > cap {
        let oldest = kept
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| (a.view.order, &a.name).cmp(&(b.view.order, &b.name)))
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                kept.swap_remove(i);
            }
            None => break,
        }
    }
}

/// Removes the Event named `name` (deleted, e.g. by the API server's Event TTL).
pub fn forget(kept: &mut Vec<Kept>, name: &str) {
    kept.retain(|k| k.name != name);
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn ev(name: &str, order: i64, count: i32) -> Kept {
        Kept {
            name: name.to_string(),
            view: EventView {
                at: None,
                order,
                kind: "Normal".into(),
                reason: "StepStarted".into(),
                message: String::new(),
                count,
            },
        }
    }

    fn names(kept: &[Kept]) -> Vec<(String, i32)> {
        let mut v: Vec<(String, i32)> = kept
            .iter()
            .map(|k| (k.name.clone(), k.view.count))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_event_is_filed_only_under_an_execution_of_its_own_namespace() {
        let key = |ns: &str, uid: &str| {
            Some(ExecutionKey {
                namespace: ns.into(),
                uid: uid.into(),
            })
        };
        let about = |ns, kind, object_ns, uid| About {
            namespace: ns,
            kind,
            object_namespace: object_ns,
            uid,
        };
        let ex = Some("Execution");
        for (what, a, want) in [
            (
                "same namespace",
                about(Some("prod"), ex, Some("prod"), Some("u1")),
                key("prod", "u1"),
            ),
            (
                "a tenant's Event about another namespace's run",
                about(Some("tenant"), ex, Some("prod"), Some("u1")),
                None,
            ),
            (
                "no object namespace",
                about(Some("prod"), ex, None, Some("u1")),
                None,
            ),
            (
                "no Event namespace",
                about(None, ex, Some("prod"), Some("u1")),
                None,
            ),
            (
                "another kind",
                about(Some("prod"), Some("Pod"), Some("prod"), Some("u1")),
                None,
            ),
            ("no uid", about(Some("prod"), ex, Some("prod"), None), None),
            (
                "empty uid",
                about(Some("prod"), ex, Some("prod"), Some("")),
                None,
            ),
        ] {
            assert_eq!(filed_under(&a), want, "{what}");
        }
    }

    #[test]
    fn keep_holds_the_newest_and_replaces_by_name() {
        type Case = (
            &'static str,
            Vec<Kept>,
            Kept,
            usize,
            Vec<(&'static str, i32)>,
        );
        let cases: Vec<Case> = vec![
            (
                "room left: added",
                vec![ev("a", 1, 1)],
                ev("b", 2, 1),
                3,
                vec![("a", 1), ("b", 1)],
            ),
            (
                "full: the oldest goes",
                vec![ev("a", 1, 1), ev("b", 2, 1)],
                ev("c", 3, 1),
                2,
                vec![("b", 1), ("c", 1)],
            ),
            (
                "full and the new one is the oldest: it is not kept",
                vec![ev("b", 2, 1), ev("c", 3, 1)],
                ev("a", 1, 1),
                2,
                vec![("b", 1), ("c", 1)],
            ),
            (
                "same name: replaced, not added",
                vec![ev("a", 1, 1), ev("b", 2, 1)],
                ev("a", 5, 7),
                2,
                vec![("a", 7), ("b", 1)],
            ),
            (
                "same age: the name decides, whatever came first",
                vec![ev("y", 1, 1), ev("z", 1, 1)],
                ev("x", 1, 1),
                2,
                vec![("y", 1), ("z", 1)],
            ),
            (
                "a cap of zero keeps nothing",
                vec![],
                ev("a", 1, 1),
                0,
                vec![],
            ),
        ];
        for (what, mut kept, new, cap, want) in cases {
            keep(&mut kept, new, cap);
            let want: Vec<(String, i32)> = want.into_iter().map(|(n, c)| (n.into(), c)).collect();
            assert_eq!(names(&kept), want, "{what}");
        }
    }

    #[test]
    fn a_flood_keeps_the_newest_cap_in_any_arrival_order() {
        // 10,000 Events about one run, newest first and oldest first: the same 50.
        for reversed in [false, true] {
            let mut kept = Vec::new();
            let mut orders: Vec<i64> = (0..10_000).collect();
            if reversed {
                orders.reverse();
            }
            for o in orders {
                keep(&mut kept, ev(&format!("e{o:05}"), o, 1), KEPT);
                assert!(kept.len() <= KEPT);
            }
            let mut got: Vec<i64> = kept.iter().map(|k| k.view.order).collect();
            got.sort();
            assert_eq!(got, (10_000 - KEPT as i64..10_000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn forget_removes_by_name() {
        let mut kept = vec![ev("a", 1, 1), ev("b", 2, 1)];
        forget(&mut kept, "a");
        forget(&mut kept, "missing");
        assert_eq!(names(&kept), vec![("b".to_string(), 1)]);
    }
}
