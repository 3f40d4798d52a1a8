//! The index finds every object the store has, whatever the order of watch events.

use super::*;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector;
use serde_json::json;

fn pod(ns: &str, name: &str, uid: Option<&str>) -> Pod {
    let labels = uid.map(|u| json!({LABEL_EXECUTION_UID: u}));
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "labels": labels}}))
        .expect("a Pod")
}

fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    names
}

/// Feeds `events` as the controller's watch does (index, store, index) and checks after
/// each that every labelled object in the store is found through the index.
fn feed(index: &ByExecution<Pod>, events: Vec<watcher::Event<Pod>>) -> Store<Pod> {
    let (store, mut writer) = reflector::store::<Pod>();
    for event in events {
        index.before(&event);
        writer.apply_watcher_event(&event);
        for obj in store.state() {
            let (Some(ns), Some(uid)) = (obj.metadata.namespace.as_deref(), execution_uid(&*obj))
            else {
                continue;
            };
            assert!(
                index.of(ns, uid, &store).iter().any(|o| o == &obj),
                "{:?} is in the store but not found after {event:?}",
                obj.metadata.name
            );
        }
        index.after(&event, &store);
    }
    store
}

#[test]
fn finds_a_runs_objects_in_its_namespace_only() {
    let index = ByExecution::default();
    let store = feed(
        &index,
        vec![
            watcher::Event::Apply(pod("a", "a-s1", Some("u1"))),
            watcher::Event::Apply(pod("a", "a-s2", Some("u1"))),
            watcher::Event::Apply(pod("a", "other-s1", Some("u2"))),
            // Someone else's object that claims the run: in another namespace.
            watcher::Event::Apply(pod("b", "forged", Some("u1"))),
            watcher::Event::Apply(pod("a", "unlabelled", None)),
        ],
    );
    assert_eq!(names(index.of("a", "u1", &store)), ["a-s1", "a-s2"]);
    assert_eq!(names(index.of("a", "u2", &store)), ["other-s1"]);
    assert_eq!(names(index.of("b", "u1", &store)), ["forged"]);
    assert!(index.of("a", "u3", &store).is_empty());
}

#[test]
fn a_relabelled_or_deleted_object_is_no_longer_found_and_leaves_no_entry() {
    let index = ByExecution::default();
    let store = feed(
        &index,
        vec![
            watcher::Event::Apply(pod("a", "p", Some("u1"))),
            watcher::Event::Apply(pod("a", "p", Some("u2"))),
        ],
    );
    assert!(index.of("a", "u1", &store).is_empty(), "the old label");
    assert_eq!(names(index.of("a", "u2", &store)), ["p"]);

    let index = ByExecution::default();
    let store = feed(
        &index,
        vec![
            watcher::Event::Apply(pod("a", "p", Some("u1"))),
            watcher::Event::Apply(pod("a", "q", Some("u1"))),
            watcher::Event::Delete(pod("a", "p", Some("u1"))),
        ],
    );
    assert_eq!(names(index.of("a", "u1", &store)), ["q"]);
    let index = ByExecution::default();
    let store = feed(
        &index,
        vec![
            watcher::Event::Apply(pod("a", "p", Some("u1"))),
            watcher::Event::Delete(pod("a", "p", Some("u1"))),
        ],
    );
    assert!(index.of("a", "u1", &store).is_empty());
    assert!(
        index.lock().is_empty(),
        "no entry is left for a run with no objects"
    );
}

#[test]
fn a_relist_drops_what_the_list_no_longer_has() {
    let index = ByExecution::default();
    let store = feed(
        &index,
        vec![
            watcher::Event::Apply(pod("a", "gone", Some("u1"))),
            watcher::Event::Apply(pod("a", "kept", Some("u1"))),
            // The watch broke and listed again; "gone" was deleted meanwhile.
            watcher::Event::Init,
            watcher::Event::InitApply(pod("a", "kept", Some("u1"))),
            watcher::Event::InitApply(pod("a", "new", Some("u2"))),
            watcher::Event::InitDone,
        ],
    );
    assert_eq!(names(index.of("a", "u1", &store)), ["kept"]);
    assert_eq!(names(index.of("a", "u2", &store)), ["new"]);
    let indexed: usize = index.lock().values().map(HashSet::len).sum();
    assert_eq!(indexed, 2, "the index is the store's after the relist");
}
