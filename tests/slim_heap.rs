//! What one finished Execution costs in the Execution cache, counted in heap bytes
//! (a counting allocator: exact, not timed): whole (what the controller's cache
//! kept), without the playbook snapshot (what the page's kept), and slimmed
//! (`engine::slim`, what the one cache keeps now). The run is the memory bench's
//! (`tests/bench/memory.rs`): 4 steps of ~2 KiB of JSON output each, started by an
//! Alertmanager alert. And what one step attempt's Job and Pod cost in the
//! controller's caches, whole and slimmed (`engine::slim::attempt`).
//! `cargo test --test slim_heap -- --nocapture` prints them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use playbook_operator::api::Execution;
use playbook_operator::engine::slim::{attempt, slim};
use serde_json::{Value, json};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller promised for `layout`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The memory bench's step output (~2 KiB of JSON).
fn output() -> Value {
    let items: Vec<Value> = (0..24)
        .map(|i| json!({"pod": format!("redis-{i}-7d9f8b6c5d-x2k4q"), "ready": i % 3 != 0, "restarts": i}))
        .collect();
    json!({"items": items, "checked": 24})
}

/// A finished run as the API server returns it (managedFields left out: every cache
/// drops them).
fn finished() -> Execution {
    let text = std::fs::read_to_string("examples/alerts/alertmanager-redis-down.json")
        .expect("the example alert");
    let payload: Value = serde_json::from_str(&text).expect("JSON");
    let alert = payload["alerts"][0].clone();
    let steps: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"id": format!("s{i}"), "image": "busybox",
                        "env": {"ALERT": "{{ .alert.labels.instance }}"}})
        })
        .collect();
    let statuses: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"id": format!("s{i}"), "phase": "enrich", "state": "Succeeded", "attempt": 1,
               "jobName": format!("mem-1-s{i}-1-0a1b2c3d"), "jobUid": "0f6c8f5e-2b8a-4c1e-9d3b-7a6e5f4d3c2b",
               "startedAt": "2026-11-25T12:01:32Z", "finishedAt": "2026-11-25T12:01:33Z",
               "exitCode": 0, "outputs": output()})
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": "mem-1", "namespace": "bench-memory-0a1b2c3d",
                     "uid": "4f2b7c1e-8a9d-4e3f-b2c1-0d9e8f7a6b5c", "generation": 1,
                     "resourceVersion": "123456", "creationTimestamp": "2026-11-25T12:01:31Z"},
        "spec": {"playbookRef": {"name": "mem"}, "alert": alert,
                 "requestedBy": "system:admin", "requestedByGroups": ["system:masters", "system:authenticated"]},
        "status": {"phase": "Succeeded", "observedGeneration": 1,
                   "startedAt": "2026-11-25T12:01:32Z", "finishedAt": "2026-11-25T12:01:40Z",
                   "playbook": {"steps": steps}, "steps": statuses,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                   "message": "", "lastTransitionTime": "2026-11-25T12:01:40Z"}]}
    }))
    .expect("a valid Execution")
}

/// One test at a time: tests run on parallel threads, and the count is global.
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    COUNTING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Heap bytes each of `n` copies made by `make` holds.
fn bytes_each<T>(n: usize, make: impl Fn() -> T) -> isize {
    let before = LIVE.load(Ordering::Relaxed);
    let kept: Vec<T> = (0..n).map(|_| make()).collect();
    let after = LIVE.load(Ordering::Relaxed);
    let each = (after - before - (n * size_of::<T>()) as isize) / n as isize;
    drop(kept);
    each + size_of::<T>() as isize
}

/// A fixture of `tests/fixtures`: a step's Job or Pod read from the memory bench's
/// cluster (`kubectl get -o json`, managedFields left out: every cache drops them).
fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(format!("tests/fixtures/{name}")).expect("the fixture");
    serde_json::from_str(&text).expect("a valid object")
}

#[test]
fn a_slimmed_finished_run_holds_a_fraction_of_the_whole() {
    let _alone = alone();
    let n = 100;
    let whole = bytes_each(n, finished);
    let no_snapshot = bytes_each(n, || {
        let mut e = finished();
        if let Some(s) = e.status.as_mut() {
            s.playbook = None;
        }
        e
    });
    let slimmed = bytes_each(n, || {
        let mut e = finished();
        slim(&mut e);
        e
    });
    println!(
        "heap per finished Execution: whole {whole} B, without snapshot {no_snapshot} B, slimmed {slimmed} B"
    );
    assert!(
        slimmed * 4 < whole,
        "slimmed {slimmed} B is not under a quarter of the whole {whole} B"
    );
}

#[test]
fn a_slimmed_step_job_and_pod_hold_under_two_thirds_of_the_whole() {
    let _alone = alone();
    let n = 100;
    let job = || fixture::<Job>("step-job.json");
    let pod = || fixture::<Pod>("step-pod.json");
    let (whole_job, whole_pod) = (bytes_each(n, job), bytes_each(n, pod));
    let slim_job = bytes_each(n, || {
        let mut j = job();
        attempt::job(&mut j);
        j
    });
    let slim_pod = bytes_each(n, || {
        let mut p = pod();
        attempt::pod(&mut p);
        p
    });
    println!(
        "heap per step attempt: Job whole {whole_job} B, slimmed {slim_job} B; Pod whole {whole_pod} B, slimmed {slim_pod} B"
    );
    assert!(
        (slim_job + slim_pod) * 3 < (whole_job + whole_pod) * 2,
        "slimmed {} B is not under two thirds of the whole {} B",
        slim_job + slim_pod,
        whole_job + whole_pod
    );
}
