//! History pruning keeps what safety needs, on the local control plane:
//! - a pruned run's remediation still counts toward `limits.remediations` (it moved
//!   to the Playbook's `status.remediationClaims` before the run was deleted), also
//!   for an operator killed and started again;
//! - a pruned alert's redelivery starts nothing and is answered as a duplicate (the
//!   run's name moved to the Trigger's `status.prunedAlerts`), while a new firing of
//!   the same alert still starts a run.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test ledger_e2e`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::http::post;
use common::operator::*;
use common::process::OperatorProcess;
use kube::api::Api;
use playbook_operator::api::{Execution, ExecutionPhase, Playbook, StepState, Trigger};
use playbook_operator::webhook;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-ledger-token";

/// Polls until Execution `name` is gone (deleted by history pruning).
async fn wait_gone(ns: &TestNamespace, name: &str) {
    let api: Api<Execution> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get_opt(name).await.expect("reading a run").is_some() {
        assert!(Instant::now() < deadline, "{name} not pruned within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_remediation_still_counts_toward_the_limit() {
    let ns = setup("ledger").await;
    ns.set_default_log(&step_log("restarted", json!({"ok": true})))
        .await;
    playbook_spec(
        &ns,
        "restart",
        json!({
            "historyLimit": {"succeeded": 1},
            "limits": {"remediations": {"max": 2, "perSeconds": 3600}},
            "steps": [{"id": "restart", "image": "busybox", "phase": "remediate"}]
        }),
    )
    .await;
    let mut operator = OperatorProcess::start(&ns, &[]);

    let first = execution(&ns, "run-1", "restart", json!({})).await;
    assert_eq!(
        wait_final(&ns, "run-1").await.phase,
        ExecutionPhase::Succeeded
    );
    execution(&ns, "run-2", "restart", json!({})).await;
    assert_eq!(
        wait_final(&ns, "run-2").await.phase,
        ExecutionPhase::Succeeded
    );
    // historyLimit.succeeded 1: run-1 goes, and its claim stays on the Playbook.
    wait_gone(&ns, "run-1").await;
    let pb: Playbook = ns.api().get("restart").await.expect("reading the Playbook");
    let ledger = pb.status.unwrap_or_default().remediation_claims;
    assert_eq!(
        ledger
            .iter()
            .map(|c| (c.execution.as_str(), Some(c.uid.as_str())))
            .collect::<Vec<_>>(),
        vec![("run-1", first.metadata.uid.as_deref())],
        "the pruned run's claim: {ledger:?}"
    );

    // An operator started afresh reads the ledger from the cluster.
    operator.kill("after run-1 was pruned");
    operator.restart();
    execution(&ns, "run-3", "restart", json!({})).await;
    let third = wait_status(
        &ns,
        "run-3",
        "remediating or held",
        Duration::from_secs(60),
        |s| {
            s.steps.iter().any(|st| {
                st.id == "restart"
                    && (st.job_name.is_some() || st.state == StepState::WaitingApproval)
            })
        },
    )
    .await;
    assert_eq!(
        third.phase,
        ExecutionPhase::WaitingApproval,
        "the third remediation in the window is held: {third:?}"
    );
    let message = step(&third, "restart").message.clone().unwrap_or_default();
    assert!(
        message.contains("2 remediations for key '' in the last 1h; limit 2"),
        "the pruned run is counted: {message}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let run3 = ns
        .api::<Execution>()
        .get("run-3")
        .await
        .expect("reading run-3");
    let status = run3.status.unwrap_or_default();
    assert!(
        step(&status, "restart").job_name.is_none(),
        "no Job for a held run: {status:?}"
    );
    drop(operator);
    ns.cleanup().await;
}

async fn webhook_config(ns: &TestNamespace, dir: &Path) -> webhook::Config {
    std::fs::create_dir_all(dir).expect("temp dir");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).expect("writing the token file");
    common::webhook::config(ns, &tokens).await
}

/// An Alertmanager notification (webhook v4) of one firing alert, as Alertmanager
/// sends it again at every `repeat_interval` while the alert fires.
fn notification(instance: &str, fingerprint: &str, starts_at: &str) -> Value {
    let labels = json!({"alertname": "RedisDown", "instance": instance});
    json!({
        "version": "4", "status": "firing", "receiver": "playbook-operator",
        "groupKey": format!("{{}}:{{instance=\"{instance}\"}}"),
        "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing", "labels": labels, "annotations": {},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint
        }]
    })
}

/// Delivers `body` to the webhook (again while it answers 503: the Trigger cache
/// is still listing) and returns its 202 answer.
async fn deliver(addr: std::net::SocketAddr, body: &Value) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = post(
            addr,
            "/webhooks/alertmanager",
            &headers,
            body.to_string().as_bytes(),
        )
        .await;
        if code == 503 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(code, 202, "the webhook's answer: {text}");
        return serde_json::from_str(&text).expect("a JSON answer");
    }
}

fn names(answer: &Value, field: &str) -> Vec<String> {
    answer[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| Some(v.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_alerts_redelivery_starts_nothing() {
    let ns = setup("ledger-alerts").await;
    let dir = std::env::temp_dir().join(format!("pbo-{}", ns.name));
    ns.set_default_log(&step_log("looked", json!({"healthy": false})))
        .await;
    playbook_spec(
        &ns,
        "diagnose",
        json!({
            "historyLimit": {"succeeded": 1},
            "steps": [{"id": "look", "image": "busybox"}]
        }),
    )
    .await;
    let _: Trigger = create(
        &ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Trigger",
            "metadata": {"name": "redis-down"},
            "spec": {
                "playbookRef": {"name": "diagnose"},
                "sources": ["alertmanager"],
                "match": {"labels": {"alertname": "RedisDown"}, "status": "firing"}
            }
        }),
    )
    .await;
    let config = webhook_config(&ns, &dir).await;
    let (operator, addr) = Operator::start_with_webhooks(&ns, config).await;

    let redis0 = notification("redis-0:6379", "aaaa000000000001", "2026-12-05T08:00:00Z");
    let redis1 = notification("redis-1:6379", "aaaa000000000002", "2026-12-05T08:00:05Z");
    let first = deliver(addr, &redis0).await;
    let [pruned] = names(&first, "created")
        .try_into()
        .expect("one run created");
    let pruned_name = pruned.rsplit('/').next().unwrap_or_default().to_string();
    assert_eq!(
        wait_final(&ns, &pruned_name).await.phase,
        ExecutionPhase::Succeeded
    );
    let second = deliver(addr, &redis1).await;
    let [kept] = names(&second, "created")
        .try_into()
        .expect("one run created");
    let kept_name = kept.rsplit('/').next().unwrap_or_default().to_string();
    assert_eq!(
        wait_final(&ns, &kept_name).await.phase,
        ExecutionPhase::Succeeded
    );
    // historyLimit.succeeded 1: the first alert's run goes, its name stays on the Trigger.
    wait_gone(&ns, &pruned_name).await;
    let trigger: Trigger = ns
        .api()
        .get("redis-down")
        .await
        .expect("reading the Trigger");
    let record = trigger.status.unwrap_or_default().pruned_alerts;
    assert_eq!(
        record
            .iter()
            .map(|p| p.execution.as_str())
            .collect::<Vec<_>>(),
        vec![pruned_name.as_str()],
        "{record:?}"
    );
    assert_eq!(
        record[0].starts_at.as_ref().map(|t| t.0.to_string()),
        Some("2026-12-05T08:00:00Z".to_string())
    );
    // The record is written before the run is deleted; the webhook reads it from its
    // own Trigger watch, which shows it within milliseconds.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Alertmanager's repeat of the first alert: a duplicate, and no run.
    let again = deliver(addr, &redis0).await;
    assert_eq!(names(&again, "created"), Vec::<String>::new(), "{again}");
    assert_eq!(names(&again, "duplicates"), vec![pruned.clone()], "{again}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api: Api<Execution> = ns.api();
    assert!(
        api.get_opt(&pruned_name).await.expect("reading").is_none(),
        "the redelivery started nothing"
    );

    // The same series firing anew (a new startsAt) is a new alert: it runs.
    let anew = notification("redis-0:6379", "aaaa000000000001", "2026-12-05T09:00:00Z");
    let third = deliver(addr, &anew).await;
    assert_eq!(names(&third, "created").len(), 1, "{third}");
    operator.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
}
