//! Alerts in, end to end on the local control plane: a real Alertmanager (the
//! binary tests/cluster/build.sh builds) sends its webhook to the operator's
//! `/webhooks/alertmanager`; each alert starts exactly one Execution per matching
//! Trigger, which runs to Succeeded, and Alertmanager's repeats create nothing new.
//! Then the answers of the webhook server itself (400, 401, 403, 404, 413) and a
//! resolution cancelling its run (`cancelOnResolve`), over real HTTP.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test alerts_e2e`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::alertmanager::{Alertmanager, temp_file};
use common::http::post;
use common::operator::*;
use kube::api::{Api, ListParams};
use playbook_operator::api::{Execution, ExecutionPhase, Trigger};
use playbook_operator::webhook;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-webhook-token";

async fn webhook_config(ns: &TestNamespace, dir: &PathBuf, max_body: usize) -> webhook::Config {
    let tokens = temp_file(dir, "tokens", &format!("# webhook tokens\n{TOKEN}\n"));
    webhook::Config {
        max_body_bytes: max_body,
        ..common::webhook::config(ns, &tokens).await
    }
}

async fn executions(ns: &TestNamespace) -> Vec<Execution> {
    let api: Api<Execution> = ns.api();
    api.list(&ListParams::default())
        .await
        .expect("listing Executions")
        .items
}

async fn metric(addr: SocketAddr, series: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

async fn trigger(ns: &TestNamespace, name: &str, spec: Value) -> Trigger {
    create(
        ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Trigger", "metadata": {"name": name}, "spec": spec}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alerts_start_one_execution_per_alert_and_trigger() {
    let ns = setup("alerts").await;
    let dir = std::env::temp_dir().join(format!("pbo-{}", ns.name));
    runner(&ns, "default", json!({})).await;
    ns.set_default_log(&step_log(
        "looked at the instance",
        json!({"healthy": false}),
    ))
    .await;
    playbook(
        &ns,
        "diagnose",
        json!([{"id": "look", "image": "busybox", "env": {"INSTANCE": "{{ .Instance }}"}}]),
    )
    .await;
    trigger(
        &ns,
        "redis-down",
        json!({
            "playbookRef": {"name": "diagnose"},
            "sources": ["alertmanager"],
            "match": {"labels": {"alertname": "RedisDown"}, "status": "firing"},
            "params": {"Instance": "{{ .alert.labels.instance }}"}
        }),
    )
    .await;
    trigger(
        &ns,
        "any-critical",
        json!({
            "playbookRef": {"name": "diagnose"},
            "match": {"matchers": [{"name": "severity", "op": "=~", "value": "crit.*"}]},
            "when": "{{ eq .alert.status \"firing\" }}",
            "params": {"Instance": "{{ .alert.labels.instance }}"}
        }),
    )
    .await;
    // Matches nothing: a different source.
    trigger(
        &ns,
        "grafana-only",
        json!({"playbookRef": {"name": "diagnose"}, "sources": ["grafana"]}),
    )
    .await;

    let config = webhook_config(&ns, &dir, webhook::DEFAULT_MAX_BODY_BYTES).await;
    let requested_by = config.requested_by.clone();
    let (operator, addr) = Operator::start_with_webhooks(&ns, config).await;
    let am = Alertmanager::start(&dir, addr, TOKEN);
    am.wait_ready().await;

    let alerts = json!([
        {"labels": {"alertname": "RedisDown", "instance": "redis-0:6379", "severity": "critical"},
         "annotations": {"summary": "redis-0 is down"}},
        {"labels": {"alertname": "RedisDown", "instance": "redis-1:6379", "severity": "critical"},
         "annotations": {"summary": "redis-1 is down"}}
    ]);
    am.post_alerts(&alerts).await;

    // 2 alerts x 2 matching triggers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = executions(&ns).await;
    while got.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "4 Executions within 30 s; got {}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        got = executions(&ns).await;
    }
    for exec in &got {
        let name = exec.metadata.name.clone().unwrap_or_default();
        let status = wait_final(&ns, &name).await;
        assert_eq!(
            status.phase,
            ExecutionPhase::Succeeded,
            "{name}: {status:?}"
        );
        assert_eq!(
            exec.spec.requested_by.as_deref(),
            Some(requested_by.as_str())
        );
        let instance = exec
            .spec
            .alert
            .as_ref()
            .map(|a| a["labels"]["instance"].clone());
        assert_eq!(
            exec.spec.params.as_ref().map(|p| p["Instance"].clone()),
            instance,
            "{name}"
        );
        let labels = exec.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("stackpulse.io/source").map(String::as_str),
            Some("alertmanager")
        );
        let job_env = jobs_of_step(&ns, "look").await;
        assert!(!job_env.is_empty());
    }

    // Alertmanager repeats the notification every 2 s (at-least-once delivery); the
    // operator must see repeats and create nothing for them.
    let dupes = r#"playbook_webhook_duplicates_total{source="alertmanager"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(addr, dupes).await.unwrap_or(0.0) < 4.0 {
        assert!(
            Instant::now() < deadline,
            "no repeated notifications within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Posting the same alerts again is the same notification too.
    am.post_alerts(&alerts).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        executions(&ns).await.len(),
        4,
        "repeats created nothing new"
    );
    let created = r#"playbook_webhook_executions_created_total{source="alertmanager"}"#;
    assert_eq!(metric(addr, created).await, Some(4.0));
    assert_eq!(
        metric(
            addr,
            r#"playbook_webhook_requests_total{source="alertmanager",code="202"}"#
        )
        .await
        .map(|n| n >= 2.0),
        Some(true)
    );

    // Trigger status: counts written (coalesced) within a few seconds.
    let api: Api<Trigger> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = api.get("redis-down").await.expect("the trigger");
        let s = t.status.unwrap_or_default();
        if s.executions_created == 2 && s.matched >= 4 && s.last_matched_at.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "trigger status: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let other = api
        .get("grafana-only")
        .await
        .expect("the trigger")
        .status
        .unwrap_or_default();
    assert_eq!(other.matched, 0);

    drop(am);
    operator.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_server_answers_why() {
    let ns = setup("webhooks").await;
    let dir = std::env::temp_dir().join(format!("pbo-{}", ns.name));
    runner(&ns, "default", json!({})).await;
    ns.set_default_log(&step_log("ok", json!({}))).await;
    // The second step waits for an approval, so the run is still going when its
    // alert resolves.
    playbook(&ns, "fix", json!([
        {"id": "look", "image": "busybox"},
        {"id": "restart", "image": "busybox", "phase": "remediate", "approval": {"required": true}}
    ])).await;
    trigger(
        &ns,
        "disk",
        json!({
            "playbookRef": {"name": "fix"}, "sources": ["generic"], "cancelOnResolve": true,
            "match": {"status": "firing"}
        }),
    )
    .await;
    trigger(
        &ns,
        "broken",
        json!({
            "playbookRef": {"name": "fix"},
            "match": {"matchers": [{"name": "host", "op": "=~", "value": "db-(0"}]}
        }),
    )
    .await;
    let (operator, addr) =
        Operator::start_with_webhooks(&ns, webhook_config(&ns, &dir, 4096).await).await;
    let auth = format!("Bearer {TOKEN}");
    let ok = [("Authorization", auth.as_str())];
    let firing = br#"{"id": "disk-1", "status": "firing", "labels": {"host": "db-0"}}"#;

    // Wait for the Trigger cache (503 until listed).
    let deadline = Instant::now() + Duration::from_secs(15);
    let (code, body) = loop {
        let (code, body) = post(addr, "/webhooks/generic", &ok, firing).await;
        if code != 503 || Instant::now() > deadline {
            break (code, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    let created = answer["created"][0]
        .as_str()
        .expect("one created")
        .to_string();
    assert!(
        created.starts_with(&format!("{}/disk-", ns.name)),
        "{answer}"
    );
    assert!(
        answer["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("broken") && e.contains("not a valid regular expression")),
        "{answer}"
    );
    let (code, body) = post(addr, "/webhooks/generic", &ok, firing).await;
    assert_eq!(code, 202);
    let again: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        again["duplicates"][0].as_str(),
        Some(created.as_str()),
        "{again}"
    );
    assert_eq!(again["created"], json!([]));

    // (path, headers, body, expected code, what the answer must say)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/webhooks/generic",
            vec![],
            firing.to_vec(),
            401,
            "Authorization: Bearer",
        ),
        (
            "/webhooks/generic",
            vec![("Authorization", "Bearer wrong")],
            firing.to_vec(),
            403,
            "not one of the operator's webhook tokens",
        ),
        (
            "/webhooks/generic",
            ok.to_vec(),
            b"{\"id\": \"x\", \"status\": ".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "/webhooks/alertmanager",
            ok.to_vec(),
            b"{\"alerts\": 1}".to_vec(),
            400,
            "`alerts` must be a list",
        ),
        (
            "/webhooks/nagios",
            ok.to_vec(),
            firing.to_vec(),
            404,
            "no alert source \"nagios\"",
        ),
        (
            "/webhooks/generic",
            ok.to_vec(),
            vec![b' '; 5000],
            413,
            "--webhook-max-body-bytes",
        ),
    ];
    for (path, headers, body, want, says) in cases {
        let (code, text) = post(addr, path, &headers, &body).await;
        assert_eq!(code, want, "{path}: {text}");
        assert!(
            text.contains(says),
            "{path} {want}: {text:?} should say {says:?}"
        );
    }
    assert_eq!(
        metric(
            addr,
            r#"playbook_webhook_requests_total{source="generic",code="401"}"#
        )
        .await,
        Some(1.0)
    );

    // The run waits for its approval; the resolution cancels it.
    let name = created
        .split_once('/')
        .map(|(_, n)| n.to_string())
        .unwrap_or_default();
    wait_status(
        &ns,
        &name,
        "waiting for approval",
        Duration::from_secs(60),
        |s| s.phase == ExecutionPhase::WaitingApproval,
    )
    .await;
    let resolved = br#"{"id": "disk-1", "status": "resolved", "labels": {"host": "db-0"}}"#;
    let (code, body) = post(addr, "/webhooks/generic", &ok, resolved).await;
    assert_eq!(code, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["cancelled"], json!([created]), "{answer}");
    assert_eq!(
        answer["created"],
        json!([]),
        "the trigger wants firing alerts only"
    );
    let status = wait_final(&ns, &name).await;
    assert_eq!(status.phase, ExecutionPhase::Cancelled, "{status:?}");

    // Ready on the Triggers: the broken one says what to fix.
    let api: Api<Trigger> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(15);
    let ready = |t: &Trigger| {
        t.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned())
    };
    loop {
        let broken = api.get("broken").await.expect("the trigger");
        let disk = api.get("disk").await.expect("the trigger");
        if let (Some(b), Some(d)) = (ready(&broken), ready(&disk)) {
            assert_eq!(
                (b.status.as_str(), b.reason.as_str()),
                ("False", "Invalid"),
                "{b:?}"
            );
            assert!(
                b.message.contains("not a valid regular expression"),
                "{b:?}"
            );
            assert_eq!(d.status, "True", "{d:?}");
            // The counts, written by another field manager, stay next to it.
            let counts = disk.status.unwrap_or_default();
            if counts.matched >= 2 {
                assert_eq!(counts.executions_created, 1, "{counts:?}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Ready and counts on the Triggers within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    operator.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
}
