//! Schedules on the local control plane, on the real minute (a seconds-granularity
//! hook would test something else than what runs): two operator replicas with the
//! leader SIGKILLed just before a tick start exactly one run per tick over three
//! minutes; meanwhile, in another namespace, `Forbid` skips a tick while the last run
//! waits for approval and starts it once that run is approved and ends, a suspended
//! Schedule starts nothing and, resumed, starts one run for the latest tick, a bad
//! expression is refused by the API server or reported by `Ready=False`, and the
//! runs act for the Schedule's writer.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test schedule_e2e` (about
//! 3.5 minutes: the two tests run side by side).

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Timelike, Utc};
use common::on_call::{
    executions_as, grant_on_call, invalid, json_patch, plan_hash, wait_for_policies,
};
use common::operator::{Operator, from_json, playbook, runner, setup, step_log};
use common::process::OperatorProcess;
use common::{TestNamespace, user_client};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, Schedule};
use playbook_operator::engine::schedule::{LABEL_SCHEDULE, execution_name, tick_of};
use serde_json::{Value, json};

const LEASE_SECONDS: u64 = 4;

fn schedule_json(name: &str, spec: Value) -> Schedule {
    from_json(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Schedule",
        "metadata": {"name": name},
        "spec": spec
    }))
}

async fn runs_of(ns: &TestNamespace, schedule: &str) -> Vec<Execution> {
    let lp = ListParams::default().labels(&format!("{LABEL_SCHEDULE}={schedule}"));
    let mut runs = ns
        .api::<Execution>()
        .list(&lp)
        .await
        .expect("listing runs")
        .items;
    runs.sort_by_key(|e| e.metadata.name.clone());
    runs
}

/// Sleeps until the clock next shows `seconds` past a whole minute.
async fn until_second(seconds: u32) -> DateTime<Utc> {
    let now = Utc::now();
    let boundary = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a whole minute")
        + chrono::Duration::minutes(1);
    let at = boundary + chrono::Duration::seconds(i64::from(seconds));
    let wait = if now.second() < seconds {
        at - chrono::Duration::minutes(1) - now
    } else {
        at - now
    };
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    Utc::now()
}

async fn sleep_until(t: DateTime<Utc>) {
    tokio::time::sleep((t - Utc::now()).to_std().unwrap_or_default()).await;
}

fn replica(ns: &TestNamespace, name: &str) -> OperatorProcess {
    OperatorProcess::start_as(
        ns,
        name,
        &[
            "--leader-elect",
            "--leader-elect-lease-name=playbook-operator",
            &format!("--leader-elect-lease-duration-seconds={LEASE_SECONDS}"),
            "--leader-elect-renew-before-seconds=2",
        ],
        &[("POD_NAMESPACE", &ns.name), ("POD_NAME", name)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_a_killed_leader_start_exactly_one_run_per_minute() {
    let ns = setup("schedule-ha").await;
    runner(&ns, "default", json!({common::DURATION_ANNOTATION: "1s"})).await;
    ns.set_default_log(&step_log("ok", json!({"ok": true})))
        .await;
    playbook(&ns, "check", json!([{"id": "check", "image": "busybox"}])).await;
    let mut a = replica(&ns, "replica-a");
    a.wait_log("became the leader").await;
    let mut b = replica(&ns, "replica-b");
    b.wait_log("standby: waiting for the leader Lease").await;

    // Created mid-minute, so that no tick is near while the replicas settle.
    let created = until_second(20).await;
    ns.api::<Schedule>()
        .create(
            &PostParams::default(),
            &schedule_json(
                "every-minute",
                json!({"playbookRef": {"name": "check"}, "schedule": "*/1 * * * *",
                       "historyLimit": {"succeeded": 10, "failed": 10}}),
            ),
        )
        .await
        .expect("creating the Schedule");
    let first_tick = created
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a whole minute")
        + chrono::Duration::minutes(1);
    let ticks: Vec<DateTime<Utc>> = (0..3)
        .map(|i| first_tick + chrono::Duration::minutes(i))
        .collect();

    // First tick, by replica-a; then SIGKILL it 3 s before the second tick: the
    // standby takes the Lease only after the tick, and starts its run late, once.
    sleep_until(ticks[1] - chrono::Duration::seconds(3)).await;
    assert_eq!(
        runs_of(&ns, "every-minute").await.len(),
        1,
        "one run after the first tick"
    );
    a.kill("3 s before the second tick");
    b.wait_log("became the leader").await;

    // The third tick, plus time for a late (duplicate) create to show.
    sleep_until(ticks[2] + chrono::Duration::seconds(25)).await;
    let runs = runs_of(&ns, "every-minute").await;
    let names: Vec<String> = runs
        .iter()
        .filter_map(|e| e.metadata.name.clone())
        .collect();
    let wanted: Vec<String> = ticks
        .iter()
        .map(|t| execution_name("every-minute", *t))
        .collect();
    assert_eq!(names, wanted, "exactly one run per tick, named after it");
    for (run, tick) in runs.iter().zip(&ticks) {
        assert_eq!(tick_of(run.annotations()), Some(*tick), "{names:?}");
        let started = run
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_default();
        let late = started - tick.timestamp();
        // The second one waits for the Lease (4 s) and the standby's jitter.
        assert!(
            (0..=15).contains(&late),
            "{:?} started {late} s after its tick",
            run.metadata.name
        );
        assert_eq!(
            run.spec.schedule_ref.as_ref().map(|r| r.name.as_str()),
            Some("every-minute")
        );
    }
    let status = ns
        .api::<Schedule>()
        .get("every-minute")
        .await
        .expect("reading the Schedule")
        .status
        .unwrap_or_default();
    assert_eq!(
        status.last_schedule_time.map(|t| t.0.as_second()),
        Some(ticks[2].timestamp())
    );
    assert_eq!(
        status.next_schedule_time.map(|t| t.0.as_second()),
        Some((ticks[2] + chrono::Duration::minutes(1)).timestamp())
    );
    assert_eq!(
        status.last_execution.map(|r| r.name),
        Some(wanted[2].clone())
    );
    let exited = b.terminate();
    assert!(exited.success(), "{exited}");
    ns.cleanup().await;
}

/// alice may write Schedules and use the default Runner.
async fn grant_schedules(ns: &TestNamespace) {
    let rules = json!([
        {"apiGroups": ["stackpulse.io"], "resources": ["schedules"],
         "verbs": ["get", "list", "create", "patch"]},
        {"apiGroups": ["stackpulse.io"], "resources": ["runners"], "verbs": ["use"]}
    ]);
    let alice = json!([common::rbac::user("alice")]);
    common::rbac::grant(&ns.client, &ns.name, "scheduler", rules, alice).await;
}

async fn wait_schedule(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    pred: impl Fn(&Schedule) -> bool,
) -> Schedule {
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let s = ns
            .api::<Schedule>()
            .get(name)
            .await
            .expect("reading the Schedule");
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "Schedule {name}: not {what}: {:?}",
            s.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_suspend_and_bad_expressions() {
    let ns = setup("schedule-policy").await;
    grant_on_call(&ns).await;
    grant_schedules(&ns).await;
    wait_for_policies(&ns).await;
    ns.set_default_log(&step_log("ok", json!({"ok": true})))
        .await;
    playbook(
        &ns,
        "guarded",
        json!([{"id": "restart", "image": "busybox", "approval": {"required": true}}]),
    )
    .await;
    let operator = Operator::start(&ns);
    let alice: Api<Schedule> = Api::namespaced(user_client("alice").await, &ns.name);

    // Refused by the API server: the CRD's rule counts fields.
    let refused = alice
        .create(
            &PostParams::default(),
            &schedule_json(
                "four",
                json!({"playbookRef": {"name": "guarded"}, "schedule": "* * * *"}),
            ),
        )
        .await;
    let message = invalid(refused, "a 4-field schedule");
    assert!(
        message.contains("spec.schedule must be 5 fields"),
        "{message}"
    );
    // Five fields but hour 99: only the parser can tell; Ready=False says what to fix.
    alice
        .create(
            &PostParams::default(),
            &schedule_json(
                "hour-99",
                json!({"playbookRef": {"name": "guarded"}, "schedule": "0 99 * * *"}),
            ),
        )
        .await
        .expect("five fields pass the API server");
    let bad = wait_schedule(&ns, "hour-99", "Ready=False", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False")
        })
    })
    .await;
    let condition = &bad.status.unwrap_or_default().conditions[0];
    assert!(
        condition.message.contains("hour 0-23"),
        "{}",
        condition.message
    );

    let created = until_second(5).await;
    for (name, extra) in [
        ("forbid", json!({"concurrencyPolicy": "Forbid"})),
        ("paused", json!({"suspend": true})),
    ] {
        let mut spec = json!({"playbookRef": {"name": "guarded"}, "schedule": "*/1 * * * *"});
        spec.as_object_mut()
            .expect("an object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        alice
            .create(&PostParams::default(), &schedule_json(name, spec))
            .await
            .unwrap_or_else(|e| panic!("alice creating Schedule {name}: {e}"));
    }
    let first_tick = created.with_second(0).expect("a whole minute") + chrono::Duration::minutes(1);
    let first_tick = first_tick.with_nanosecond(0).expect("whole seconds");
    // The first tick's run waits for approval; it acts for alice, the writer.
    let first = execution_name("forbid", first_tick);
    common::operator::wait_status(
        &ns,
        &first,
        "waiting for approval",
        Duration::from_secs(90),
        |s| s.phase == ExecutionPhase::WaitingApproval,
    )
    .await;
    let run = ns
        .api::<Execution>()
        .get(&first)
        .await
        .expect("the first run");
    assert_eq!(
        run.spec.requested_by.as_deref(),
        Some("alice"),
        "the run acts for the Schedule's writer"
    );

    // Past the second tick: Forbid held it back, and said so.
    let second = first_tick + chrono::Duration::minutes(1);
    sleep_until(second + chrono::Duration::seconds(15)).await;
    let names: Vec<String> = runs_of(&ns, "forbid")
        .await
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();
    assert_eq!(
        names,
        vec![first.clone()],
        "Forbid starts nothing while the run waits"
    );
    let events = ns
        .api::<Event>()
        .list(&ListParams::default().fields("regarding.name=forbid"))
        .await
        .expect("listing Events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Skipped")
                && e.note.as_deref().is_some_and(|n| n.contains(&first))),
        "a Skipped Event names the waiting run: {:?}",
        events
            .items
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );
    let forbid = ns
        .api::<Schedule>()
        .get("forbid")
        .await
        .expect("the Schedule")
        .status
        .unwrap_or_default();
    assert_eq!(forbid.active, vec![first.clone()]);
    assert_eq!(
        forbid.last_schedule_time.map(|t| t.0.as_second()),
        Some(first_tick.timestamp())
    );

    // Suspended: two ticks passed, nothing started.
    assert!(
        runs_of(&ns, "paused").await.is_empty(),
        "a suspended Schedule starts nothing"
    );
    let paused = ns
        .api::<Schedule>()
        .get("paused")
        .await
        .expect("the Schedule")
        .status
        .unwrap_or_default();
    assert_eq!(
        (paused.last_schedule_time, paused.next_schedule_time),
        (None, None)
    );

    // bob approves the waiting run: once it ends, Forbid starts the tick it held back
    // (no deadline), at once rather than at the next tick.
    let hash = plan_hash(&ns, &first, "restart").await;
    executions_as("bob", &ns)
        .await
        .patch(
            &first,
            &PatchParams::default(),
            &json_patch(json!([{"op": "add", "path": "/spec/approvals",
                "value": [{"step": "restart", "user": "bob", "planHash": hash}]}])),
        )
        .await
        .expect("bob approves");
    let held = execution_name("forbid", second);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !runs_of(&ns, "forbid")
        .await
        .iter()
        .any(|e| e.metadata.name.as_deref() == Some(held.as_str()))
    {
        assert!(
            Instant::now() < deadline,
            "Forbid did not start the held tick's run {held} within 30 s of the last run's end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        Utc::now() < second + chrono::Duration::minutes(1),
        "started before the next tick"
    );

    // Resumed without a deadline: one run at once, for the latest missed tick.
    alice
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("alice resumes the Schedule");
    let resumed = wait_schedule(&ns, "paused", "resumed", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.last_schedule_time.is_some())
    })
    .await;
    // The latest tick before the resume (read back, so a minute turning meanwhile
    // cannot make the test guess wrong).
    let latest = resumed
        .status
        .as_ref()
        .and_then(|st| st.last_schedule_time.as_ref())
        .map(|t| t.0.as_second())
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .expect("lastScheduleTime");
    assert!(
        (Utc::now() - latest) < chrono::Duration::seconds(90),
        "the latest tick, not an older one: {latest}"
    );
    let names: Vec<String> = runs_of(&ns, "paused")
        .await
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();
    assert_eq!(
        names,
        vec![execution_name("paused", latest)],
        "one run, for the latest tick: {:?}",
        resumed.status
    );
    operator.stop().await;
    ns.cleanup().await;
}
