//! The filter's memory: a change wakes once, a re-list only what changed, a deletion always.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;

/// An object whose Wake is its `trouble` label (none: quiet).
fn obj(uid: &str, trouble: Option<&str>) -> ConfigMap {
    let labels = trouble
        .map(|t| json!({ "trouble": t }))
        .unwrap_or(json!({}));
    serde_json::from_value(json!({
        "metadata": { "name": uid, "namespace": "ns", "uid": uid, "labels": labels }
    }))
    .expect("a ConfigMap")
}

fn wake(cm: &ConfigMap) -> Wake {
    Wake {
        ended: false,
        trouble: cm.labels().get("trouble").cloned(),
    }
}

/// Feeds `events`, returns the uids woken, in order.
fn woken(wakes: &mut Wakes, events: Vec<Event<ConfigMap>>) -> Vec<String> {
    events
        .into_iter()
        .filter_map(|e| wakes.on(e, wake))
        .map(|o| o.uid().unwrap_or_default())
        .collect()
}

#[test]
fn objects_wake_on_a_change_of_their_wake_only() {
    let mut wakes = Wakes::default();
    let got = woken(
        &mut wakes,
        vec![
            Event::Apply(obj("a", None)),          // first seen, quiet
            Event::Apply(obj("a", None)),          // nothing new
            Event::Apply(obj("a", Some("oom"))),   // wakes
            Event::Apply(obj("a", Some("oom"))),   // the same again
            Event::Apply(obj("b", Some("pull"))),  // first seen, not quiet: wakes
            Event::Delete(obj("b", Some("pull"))), // deletions always wake
        ],
    );
    assert_eq!(got, ["a", "b", "b"]);
}

#[test]
fn a_relist_wakes_what_changed_meanwhile_and_forgets_what_is_gone() {
    let mut wakes = Wakes::default();
    let before = woken(
        &mut wakes,
        vec![
            Event::Apply(obj("a", Some("x"))),
            Event::Apply(obj("gone", Some("y"))),
        ],
    );
    assert_eq!(before, ["a", "gone"]);
    let relist = woken(
        &mut wakes,
        vec![
            Event::Init,
            Event::InitApply(obj("a", Some("x"))), // unchanged
            Event::InitApply(obj("new", Some("z"))), // appeared during the gap
            Event::InitDone,
        ],
    );
    assert_eq!(relist, ["new"]);
    assert!(
        !wakes.last.contains_key("gone"),
        "forgotten after the re-list"
    );
    // Seen again later, "gone" counts as first seen.
    assert_eq!(
        woken(&mut wakes, vec![Event::Apply(obj("gone", None))]),
        Vec::<String>::new()
    );
}
