//! Chat notifications and Slack approvals on the local control plane, against the
//! local stand-in for Slack and Teams of `tests/common/slack.rs` (their documented wire
//! formats: the test machines cannot reach the real services).
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test notify_e2e`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::http::post;
use common::on_call::*;
use common::operator::*;
use common::slack::*;
use common::slack_approval::*;
use playbook_operator::api::{Decision, Execution, ExecutionPhase, Trigger};
use playbook_operator::engine::notify::config::NotifyConfig;
use playbook_operator::metrics::Metrics;
use playbook_operator::{notify, server};
use serde_json::{Value, json};

const TOKEN: &str = "e2e-webhook-token";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const EXTERNAL_URL: &str = "https://pbo.example.com";

fn config_text(ns: &TestNamespace, fake: &Fake) -> String {
    format!(
        r#"
channels:
  - name: sre
    namespaces: [{ns}]
    slack: {{token: xoxb-e2e-token, channel: C0SRE, apiUrl: "{api}"}}
  - name: sre-teams
    namespaces: [{ns}]
    teams: {{url: "{teams}"}}
slackApprovals:
  signingSecret: {SIGNING_SECRET}
  users:
    U0BOB: {{user: bob, groups: [sre]}}
    U0ALICE: {{user: alice}}
"#,
        ns = ns.name,
        api = fake.url("/api"),
        teams = fake.url("/teams/workflows/1?sig=s3cret"),
    )
}

/// The operator with webhooks, the notifier and the Slack interaction route.
struct Setup {
    operator: Operator,
    webhooks: SocketAddr,
    slack_route: SocketAddr,
    metrics: Arc<Metrics>,
    _tasks: Tasks,
    _dir: tempfile::TempDir,
}

/// The notifier and the Slack route's server, stopped with the test.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn start(ns: &TestNamespace, fake: &Fake, timeout: Duration) -> Setup {
    let dir = tempfile::tempdir().expect("a temp dir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).expect("the token file");
    let (operator, webhooks) =
        Operator::start_with_webhooks(ns, common::webhook::config(ns, &tokens).await).await;
    let channels = Arc::new(NotifyConfig::parse(&config_text(ns, fake)).expect("a valid config"));
    let metrics = Arc::new(Metrics::new());
    let notifier = notify::run(
        ns.client.clone(),
        notify::Config {
            channels: channels.clone(),
            namespace: Some(ns.name.clone()),
            external_url: Some(EXTERNAL_URL.into()),
            timeout,
            metrics: metrics.clone(),
        },
        futures::future::pending(),
    );
    let routes = notify::interact::routes(notify::interact::Interactions {
        channels,
        kube: common::config().await,
        namespace: Some(ns.name.clone()),
        replay_window_seconds: 300,
        timeout,
    })
    .expect("the Slack route (slackApprovals is configured)");
    let listener = server::bind(([127, 0, 0, 1], 0).into())
        .await
        .expect("a port");
    let slack_route = listener.local_addr().expect("an address");
    let http = server::serve(listener, routes, futures::future::pending());
    let tasks = vec![
        tokio::spawn(notifier),
        tokio::spawn(async move {
            let _ = http.await;
        }),
    ];
    Setup {
        operator,
        webhooks,
        slack_route,
        metrics,
        _tasks: Tasks(tasks),
        _dir: dir,
    }
}

/// Fires a generic alert `RedisDown` (id `alert`) and returns the run it created.
async fn fire(addr: SocketAddr, id: &str) -> String {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let alert = json!({"id": id, "labels": {"alertname": "RedisDown"},
        "annotations": {"summary": "redis-0 is down"}})
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = post(addr, "/webhooks/generic", &headers, alert.as_bytes()).await;
        if code == 503 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(code, 202, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("JSON");
        let created = answer["created"][0].as_str().expect("one run created");
        return created.split('/').nth(1).expect("ns/name").to_string();
    }
}

async fn trigger(ns: &TestNamespace, notify: Option<&str>) -> Trigger {
    let mut spec = json!({"playbookRef": {"name": "guarded"}, "sources": ["generic"],
        "match": {"labels": {"alertname": "RedisDown"}}});
    if let Some(c) = notify {
        spec["notify"] = json!({"channel": c});
    }
    create(
        ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Trigger",
        "metadata": {"name": "redis-down"}, "spec": spec}),
    )
    .await
}

/// Audit events (one JSON object per line) that patched Execution `name`.
fn audited_patches(ns: &str, name: &str) -> Vec<Value> {
    let path = common::local_cluster_env()
        .and_then(|env| env.get("AUDIT_LOG").cloned())
        .expect("the local cluster's env file names AUDIT_LOG (tests/cluster/up.sh)");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["verb"] == "patch"
                && e["objectRef"]["resource"] == "executions"
                && e["objectRef"]["namespace"] == ns
                && e["objectRef"]["name"] == name
                && e["objectRef"]["subresource"].is_null()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_run_has_one_slack_message_updated_in_place_and_bob_approves_from_slack() {
    let ns = setup_on_call("notify-slack").await;
    let fake = Fake::start().await;
    guarded_with(&ns, "sre").await;
    trigger(&ns, None).await;
    let s = start(&ns, &fake, Duration::from_secs(5)).await;
    let run = fire(s.webhooks, "redis-0-down").await;
    wait_waiting(&ns, &run).await;

    // The message shows the wait with Approve / Reject for the plan it shows.
    let (calls, value) = approve_button(&fake).await;
    let hash = plan_hash(&ns, &run, "restart").await;
    let shown: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        shown["hash"],
        hash.as_str(),
        "the button names the plan shown"
    );
    assert_eq!(calls[0].path, "/api/chat.postMessage");
    assert_eq!(calls[0].auth.as_deref(), Some("Bearer xoxb-e2e-token"));
    assert_eq!(calls[0].body["channel"], "C0SRE");
    let first = calls[0].body.to_string();
    for want in [
        "guarded",
        "RedisDown: redis-0 is down",
        &format!("{EXTERNAL_URL}/ui/executions/{}/{run}", ns.name),
    ] {
        assert!(
            first.contains(want),
            "the first message names {want}: {first}"
        );
    }

    // Refused: a bad signature, an old timestamp (both 401, nothing believed), and a
    // Slack user nobody mapped (told why, through response_url).
    let response_url = fake.url("/response/1");
    let approve = interaction("U0BOB", "approve", &value, &response_url);
    let (code, body) = click(s.slack_route, &approve, "not-the-signing-secret", now()).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");
    let (code, body) = click(s.slack_route, &approve, SIGNING_SECRET, now() - 301).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("outside the replay window"), "{body}");
    let eve = interaction("U0EVE", "approve", &value, &fake.url("/response/eve"));
    let reply = click_and_reply(&fake, s.slack_route, &eve, SIGNING_SECRET, "/response/eve").await;
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("(U0EVE) is not mapped to a Kubernetes user"),
        "{text}"
    );
    let exec: Execution = ns.api().get(&run).await.unwrap();
    assert!(exec.spec.approvals.is_empty(), "{:?}", exec.spec.approvals);

    // bob's click approves, written as bob (impersonated by the operator's user).
    let reply = click_and_reply(
        &fake,
        s.slack_route,
        &approve,
        SIGNING_SECRET,
        "/response/1",
    )
    .await;
    bobs_approval(&ns, &reply, &run, &hash).await;

    // One chat.postMessage, then only chat.update of that message; the last shows
    // the end and who approved which plan.
    let want_end = format!("bob approved `restart` (plan `{hash}`)");
    let calls = fake
        .wait("/api/", "the final update", |c| {
            c.last().is_some_and(|l| {
                l.body.to_string().contains("Succeeded") && l.body.to_string().contains(&want_end)
            })
        })
        .await;
    let posts = calls
        .iter()
        .filter(|c| c.path == "/api/chat.postMessage")
        .count();
    assert_eq!(posts, 1, "{calls:#?}");
    for c in &calls[1..] {
        assert_eq!(c.path, "/api/chat.update");
        assert_eq!(c.body["ts"], POSTED_TS);
        assert_eq!(c.body["channel"], "C0SRE");
    }
    assert!(
        calls.len() >= 3,
        "updated at the wait and at the end: {calls:#?}"
    );
    let notified = exec
        .status
        .as_ref()
        .and_then(|s| s.notify.clone())
        .expect("status.notify");
    assert_eq!(notified.message_ts.as_deref(), Some(POSTED_TS));

    // The API server's audit log: the approval's patch was made by the operator's
    // user, as bob.
    let operator_user = playbook_operator::cli::whoami(&ns.client).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let found = audited_patches(&ns.name, &run)
            .into_iter()
            .find(|e| e["impersonatedUser"]["username"] == "bob");
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no audit event of a patch as bob: {:#?}",
            audited_patches(&ns.name, &run)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        event["user"]["username"],
        operator_user.as_str(),
        "{event:#}"
    );
    assert_eq!(event["responseStatus"]["code"], 200, "{event:#}");
    s.operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_outage_delays_no_run_and_is_counted_and_shown() {
    let ns = setup("notify-outage").await;
    ns.set_default_log(&step_log("done", json!({"ok": true})))
        .await;
    let fake = Fake::start().await;
    let steps = json!([{"id": "a", "image": "busybox"}, {"id": "b", "image": "busybox"}]);
    playbook_spec(&ns, "quiet", json!({"steps": steps})).await;
    playbook_spec(
        &ns,
        "loud",
        json!({"steps": steps, "notify": {"channel": "sre"}}),
    )
    .await;
    let s = start(&ns, &fake, Duration::from_secs(2)).await;

    // A baseline without chat, then the same playbook with Slack failing (500), then hanging.
    let timed = |name: &'static str, pb: &'static str| {
        let ns = &ns;
        async move {
            let t = Instant::now();
            execution(ns, name, pb, json!({})).await;
            let status = wait_final(ns, name).await;
            assert_eq!(
                status.phase,
                ExecutionPhase::Succeeded,
                "{name}: {status:?}"
            );
            t.elapsed()
        }
    };
    let baseline = timed("baseline", "quiet").await;
    fake.set(Mode::Fail);
    let failing = timed("failing", "loud").await;
    fake.set(Mode::Hang);
    let hanging = timed("hanging", "loud").await;
    eprintln!("run times: no chat {baseline:?}, Slack 500 {failing:?}, Slack hanging {hanging:?}");
    for (what, took) in [("500", failing), ("hang", hanging)] {
        assert!(
            took < baseline + Duration::from_secs(5),
            "Slack {what} delayed the run: {took:?} vs {baseline:?}"
        );
    }

    // The failures are counted, and status (and so the page) says so.
    let failed = wait_status(
        &ns,
        "failing",
        "status.notify says not sent",
        common::TIMEOUT,
        |st| {
            st.notify
                .as_ref()
                .and_then(|n| n.error.as_deref())
                .is_some_and(|e| e.contains("could not be sent"))
        },
    )
    .await;
    let error = failed.notify.unwrap().error.unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(!error.contains("xoxb"), "{error}");
    let hung = wait_status(
        &ns,
        "hanging",
        "status.notify says timed out",
        common::TIMEOUT,
        |st| {
            st.notify
                .as_ref()
                .and_then(|n| n.error.as_deref())
                .is_some_and(|e| e.contains("no answer within the timeout"))
        },
    )
    .await;
    let exec: Execution = ns.api().get("hanging").await.unwrap();
    let detail =
        playbook_operator::engine::page::detail(&exec, vec![], k8s_openapi::jiff::Timestamp::now());
    assert!(
        detail.chat.as_deref().is_some_and(
            |c| c.starts_with("Chat (sre): the message to chat channel sre could not be sent")
        ),
        "{:?} {hung:?}",
        detail.chat
    );
    let metrics = s.metrics.render();
    let failures: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("playbook_notify_messages_total{")
                && l.contains("channel=\"sre\"")
                && l.contains("result=\"failed\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(failures >= 2.0, "{metrics}");
    s.operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_a_card_at_the_start_the_approval_wait_and_the_end_with_the_page_link() {
    let ns = setup_on_call("notify-teams").await;
    let fake = Fake::start().await;
    // The Trigger's channel wins over the Playbook's.
    guarded_with(&ns, "sre").await;
    trigger(&ns, Some("sre-teams")).await;
    let s = start(&ns, &fake, Duration::from_secs(5)).await;
    let run = fire(s.webhooks, "redis-1-down").await;
    wait_waiting(&ns, &run).await;
    fake.wait("/teams/", "the start and wait cards", |c| c.len() >= 2)
        .await;
    let hash = plan_hash(&ns, &run, "restart").await;
    let bob = common::user_client("bob").await;
    let session = playbook_operator::cli::cluster::Session {
        client: bob,
        namespace: ns.name.clone(),
    };
    let asked = playbook_operator::cli::approve::Asked {
        step: "restart",
        decision: Decision::Approve,
        reason: None,
        plan: Some(&hash),
        requester: playbook_operator::cli::approve::Requester::LeaveToApiServer,
    };
    playbook_operator::cli::approve::write(&session, &run, &asked)
        .await
        .expect("bob approves");
    assert_eq!(wait_final(&ns, &run).await.phase, ExecutionPhase::Succeeded);
    let cards = fake.wait("/teams/", "the end card", |c| c.len() >= 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        fake.calls("/teams/").len(),
        3,
        "one card per event: {cards:#?}"
    );
    let link = format!("{EXTERNAL_URL}/ui/executions/{}/{run}", ns.name);
    let expected = [
        ("started", "Open the run"),
        ("waits for approval", "Open to approve"),
        ("Succeeded", "Open the run"),
    ];
    for (card, (headline, button)) in cards.iter().zip(expected) {
        assert_eq!(card.body["type"], "message");
        let content = &card.body["attachments"][0]["content"];
        assert_eq!(
            card.body["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let title = content["body"][0]["text"].as_str().unwrap();
        assert!(title.contains(headline), "{title}");
        assert_eq!(content["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(content["actions"][0]["title"], button, "{content:#}");
        assert_eq!(content["actions"][0]["url"], link.as_str());
    }
    assert!(
        fake.calls("/api/").is_empty(),
        "the Playbook's Slack channel is not used"
    );
    s.operator.stop().await;
    ns.cleanup().await;
}
