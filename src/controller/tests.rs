//! Which Executions a Pod or Playbook event wakes.

use super::*;
use kube::runtime::watcher::Event;
use serde_json::json;

fn store_of<K>(objects: Vec<K>) -> Store<K>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, mut writer) = reflector::store::<K>();
    for obj in objects {
        writer.apply_watcher_event(&Event::Apply(obj));
    }
    store
}

fn execution(name: &str, uid: &str, playbook: &str, started: bool) -> DeserializeGuard<Execution> {
    let status = started.then(|| json!({"playbook": {"steps": []}}));
    DeserializeGuard(Ok(serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {"playbookRef": {"name": playbook}},
        "status": status,
    }))
    .expect("an Execution")))
}

fn pod(owner_job: Option<&str>, uid_label: &str) -> Pod {
    let owners = owner_job.map(|j| {
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": j, "uid": "j-uid", "controller": true}])
    });
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "ownerReferences": owners,
                     "labels": {LABEL_EXECUTION_UID: uid_label}},
    }))
    .expect("a Pod")
}

#[test]
fn a_pod_wakes_the_execution_that_owns_its_job() {
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "run-a-1-x", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "stackpulse.io/v1", "kind": "Execution", "name": "run-a",
             "uid": "a-uid", "controller": true}]},
    }))
    .expect("a Job");
    let jobs = store_of(vec![job]);
    let execs = store_of(vec![execution("run-b", "b-uid", "pb", true)]);
    let via_job = execution_of_pod(&pod(Some("run-a-1-x"), "a-uid"), &jobs, &execs);
    assert_eq!(via_job, Some(ObjectRef::new("run-a").within("ns")));
    // The Job is not cached yet: the uid label finds the Execution.
    let via_label = execution_of_pod(&pod(Some("unknown"), "b-uid"), &jobs, &execs);
    assert_eq!(via_label, Some(ObjectRef::new("run-b").within("ns")));
    assert_eq!(execution_of_pod(&pod(None, "nobody"), &jobs, &execs), None);
    // A bare step Pod (`Runner.spec.workload: Pod`) is its Execution's own.
    let bare: Pod = serde_json::from_value(json!({
        "metadata": {"name": "run-c-1-x", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "stackpulse.io/v1", "kind": "Execution", "name": "run-c",
             "uid": "c-uid", "controller": true}]},
    }))
    .expect("a Pod");
    let direct = execution_of_pod(&bare, &jobs, &execs);
    assert_eq!(direct, Some(ObjectRef::new("run-c").within("ns")));
}

#[test]
fn a_playbook_wakes_only_the_executions_waiting_for_it() {
    // A run that failed before its snapshot (the Playbook was invalid) waits for nothing.
    let mut failed = execution("failed", "4", "pb", false);
    if let Ok(e) = &mut failed.0 {
        e.status = Some(crate::api::ExecutionStatus {
            phase: crate::api::ExecutionPhase::Failed,
            ..Default::default()
        });
    }
    let execs = store_of(vec![
        execution("waiting", "1", "pb", false),
        execution("started", "2", "pb", true),
        execution("other", "3", "other-pb", false),
        failed,
    ]);
    let pb: DeserializeGuard<Playbook> = DeserializeGuard(Ok(serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
        "metadata": {"name": "pb", "namespace": "ns"},
        "spec": {"steps": [{"id": "a", "image": "busybox"}]},
    }))
    .expect("a Playbook")));
    assert_eq!(
        waiting_for(&pb, &execs),
        [ObjectRef::new("waiting").within("ns")]
    );
}

fn runner(name: &str, ns: &str) -> DeserializeGuard<Runner> {
    DeserializeGuard(Ok(serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Runner",
        "metadata": {"name": name, "namespace": ns},
        "spec": {},
    }))
    .expect("a Runner")))
}

fn playbook_in(name: &str, ns: &str) -> DeserializeGuard<Playbook> {
    DeserializeGuard(Ok(serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"steps": [{"id": "a", "image": "busybox"}]},
    }))
    .expect("a Playbook")))
}

#[test]
fn a_runner_wakes_the_playbooks_of_its_namespace_only() {
    let playbooks = store_of(vec![
        playbook_in("one", "ns"),
        playbook_in("two", "ns"),
        playbook_in("elsewhere", "other"),
    ]);
    let mut woken = playbook::playbooks_of_namespace(&runner("prod", "ns"), &playbooks);
    woken.sort_by_key(|r| r.name.clone());
    assert_eq!(
        woken,
        [
            ObjectRef::new("one").within("ns"),
            ObjectRef::new("two").within("ns")
        ]
    );
}

#[test]
fn runner_names_are_those_of_the_namespace_that_deserialize() {
    let malformed: DeserializeGuard<Runner> = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Runner",
        "metadata": {"name": "broken", "namespace": "ns"},
        "spec": {"maxParallel": "many"},
    }))
    .expect("a guard holds even a malformed Runner");
    assert!(malformed.0.is_err());
    let runners = store_of(vec![
        runner("prod", "ns"),
        runner("default", "ns"),
        runner("staging", "other"),
        malformed,
    ]);
    assert_eq!(playbook::runner_names(&runners, "ns"), ["default", "prod"]);
}

#[test]
fn a_runner_wakes_the_executions_of_its_namespace_waiting_for_an_approval() {
    let with_step = |name: &str, ns: &str, state: &str| -> DeserializeGuard<Execution> {
        DeserializeGuard(Ok(serde_json::from_value(json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name, "namespace": ns, "uid": name},
            "spec": {"playbookRef": {"name": "pb"}},
            "status": {"phase": "Running", "steps": [
                {"id": "check", "state": "Succeeded"}, {"id": "restart", "state": state}]},
        }))
        .expect("an Execution")))
    };
    let execs = store_of(vec![
        with_step("waiting", "ns", "WaitingApproval"),
        with_step("running", "ns", "Running"),
        with_step("elsewhere", "other", "WaitingApproval"),
        execution("pending", "p-uid", "pb", false),
    ]);
    assert_eq!(
        approvals_on(&runner("default", "ns"), &execs),
        [ObjectRef::new("waiting").within("ns")]
    );
}
