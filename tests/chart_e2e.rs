//! The Helm chart on the local control plane: `helm install` succeeds, and the
//! operator binary, run on this machine **as the chart's ServiceAccount** (a token
//! from the TokenRequest API), runs playbooks end to end with exactly the rights the
//! chart grants.
//!
//! Least privilege is proven from the API server's audit log (tests/cluster/up.sh
//! records what service accounts do): every (verb, group, resource) the chart's
//! ClusterRole (a Role with `watchNamespace`) and Lease Role grant was used by the
//! operator during the run, and the operator was denied nothing but the one probe it
//! makes on purpose (a Runner's Secret: 403 means "unchecked"). So a rule removed from the chart fails the run
//! (the operator is denied, or a step of the run never happens), and a rule added
//! without use fails here. Rights granted for code still on other branches are
//! listed in [`NOT_YET_USED`] and must stay unused until that code lands.
//!
//! The Deployment's pods never run the operator (kwok fakes the kubelet), so the
//! operator is a child process with the ServiceAccount's token.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestNamespace;
use common::helm::{Release, cluster_env};
use common::operator::{
    create, execution, playbook, playbook_spec, setup, step_log, wait_final, wait_status,
};
use common::process::OperatorProcess;
use common::service_account::{TokenKubeconfig, client_from, service_account_kubeconfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::Client;
use kube::api::{Api, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, Playbook, Runner, StepState};
use serde_json::json;

/// (verb, API group, resource[/subresource]) the chart grants for code on other
/// branches: alert webhooks (Triggers, Executions they start) and image output
/// parsers (ConfigMaps owned by Executions). When that code lands and its e2e use
/// reaches this run, the test says which entry to delete from here.
const NOT_YET_USED: &[(&str, &str, &str)] = &[
    // Alerts: this run posts none (tests/alerts_e2e.rs does, as admin).
    ("create", "stackpulse.io", "executions"),
    ("patch", "stackpulse.io", "executions"),
    ("patch", "stackpulse.io", "triggers/status"),
    // History pruning of alert-started runs (tests/ledger_e2e.rs, as admin).
    ("get", "stackpulse.io", "triggers"),
    // Schedules: this run makes none (tests/schedule_e2e.rs does, as admin).
    ("patch", "stackpulse.io", "schedules/status"),
    // Never a request: the admission policy asks the authorizer whether the writer of
    // an Execution that acts for a Trigger's writer may `delegate`
    // (tests/tenancy_e2e.rs shows a user without it refused).
    ("delegate", "stackpulse.io", "executions"),
];

/// Denied on purpose: the Runner controller reads a Runner's Secret's metadata and
/// takes 403 as "unchecked", because the chart grants nothing on Secrets.
const DENIED_ON_PURPOSE: &[(&str, &str, &str)] = &[("get", "", "secrets")];

/// (verb, group, resource[/subresource]) of every rule.
fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    out
}

/// What `user` did according to the audit log: (verb, group, resource, allowed).
fn audited(user: &str) -> BTreeSet<(String, String, String, bool)> {
    let path = cluster_env("AUDIT_LOG");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["user"]["username"] != user {
            continue;
        }
        let Some(obj) = event["objectRef"].as_object() else {
            continue; // discovery and other non-resource requests
        };
        let field = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let resource = match field("subresource") {
            "" => field("resource").to_string(),
            sub => format!("{}/{sub}", field("resource")),
        };
        let allowed = event["annotations"]["authorization.k8s.io/decision"] == "allow";
        out.insert((
            event["verb"].as_str().unwrap_or("").to_string(),
            field("apiGroup").to_string(),
            resource,
            allowed,
        ));
    }
    out
}

/// Whether `client` may `verb` the `resource` (`resource/subresource` for one) of API
/// `group` in `ns`, by the API server's word (SelfSubjectAccessReview).
async fn can_i(client: &Client, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: Some(ns.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SelfSubjectAccessReview {verb} {resource}: {e}"))
        .status
        .is_some_and(|s| s.allowed)
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

/// The chart's release in a new namespace, its Deployment checked, and the operator
/// started as its ServiceAccount with its leader election: the operator and the
/// ServiceAccount's kubeconfig.
async fn install_and_run_as_the_chart(
    ns: &TestNamespace,
    values: &[&str],
) -> (Release, OperatorProcess, TokenKubeconfig) {
    // The harness installed the CRDs and the (cluster-wide, shared) admission policies
    // first: the chart skips CRDs that exist, and leaves the policies to the harness
    // (uninstalling the release would delete them).
    let mut all = vec![
        "admissionPolicies.enabled=false",
        "leaderElection.leaseDurationSeconds=6",
        "leaderElection.renewBeforeSeconds=2",
    ];
    all.extend_from_slice(values);
    let release = Release::install(ns, &all);
    let name = release.fullname();
    let deployment = ns
        .api::<Deployment>()
        .get(&name)
        .await
        .expect("the chart's Deployment");
    let spec = deployment.spec.expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("a pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(name.as_str()));

    let kubeconfig = service_account_kubeconfig(ns, &name).await;
    let kubeconfig_str = kubeconfig.path().to_string_lossy().into_owned();
    let lease_flag = format!("--leader-elect-lease-name={name}");
    let operator = OperatorProcess::start_as(
        ns,
        "sa",
        &[
            "--leader-elect",
            &lease_flag,
            "--leader-elect-lease-duration-seconds=6",
            "--leader-elect-renew-before-seconds=2",
        ],
        &[
            ("KUBECONFIG", &kubeconfig_str),
            ("POD_NAMESPACE", &ns.name),
            ("POD_NAME", "chart-e2e-0"),
        ],
    );
    operator.wait_log("became the leader").await;
    (release, operator, kubeconfig)
}

/// A run that uses every right once: two quick runs (outputs read from the step log;
/// historyLimit deletes the older), one cancelled run (its Job deleted), Runners and
/// Playbooks made Ready, Events for the transitions. Then SIGTERM releases the Lease.
async fn exercise(ns: &TestNamespace, mut operator: OperatorProcess, lease: &str) {
    // Bob may read this namespace's runs (granted first: RBAC takes a moment to apply).
    let reads_runs = json!([{"apiGroups": ["stackpulse.io"], "resources": ["executions"],
                             "verbs": ["get", "list"]}]);
    let bob = json!([common::rbac::user("bob")]);
    common::rbac::grant(&ns.client, &ns.name, "run-reader", reads_runs, bob).await;
    ns.set_default_log(&step_log("checking", json!({"ok": true})))
        .await;
    create::<Runner>(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Runner",
            "metadata": {"name": "slow"},
            "spec": {
                "annotations": {common::DURATION_ANNOTATION: "120s"},
                "secretName": "playbook-secrets"
            }
        }),
    )
    .await;
    playbook_spec(
        ns,
        "quick",
        json!({
            "steps": [{"id": "check", "image": "busybox"}],
            "historyLimit": {"succeeded": 1}
        }),
    )
    .await;
    playbook(
        ns,
        "long",
        json!([{"id": "wait", "image": "sleep", "runner": "slow"}]),
    )
    .await;
    execution(ns, "quick-1", "quick", json!({})).await;
    let first = wait_final(ns, "quick-1").await;
    assert_eq!(first.phase, ExecutionPhase::Succeeded, "{first:?}");
    let check = common::operator::step(&first, "check");
    assert_eq!(
        check.outputs.as_ref().map(|o| o["ok"].clone()),
        Some(json!(true)),
        "the output comes from the step's log: {check:?}"
    );
    execution(ns, "quick-2", "quick", json!({})).await;
    assert_eq!(
        wait_final(ns, "quick-2").await.phase,
        ExecutionPhase::Succeeded
    );
    let executions: Api<Execution> = ns.api();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while executions
        .get_opt("quick-1")
        .await
        .expect("reading quick-1")
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "quick-1 not deleted by historyLimit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An output past its step's inline budget (0 here) goes to a ConfigMap the
    // operator creates, and is read back (GET) for the next step's template.
    playbook(
        ns,
        "spill",
        json!([
            {"id": "check", "image": "busybox", "outputs": {"inlineBytes": 0}},
            {"id": "use", "image": "busybox", "env": {"OK": "{{ .steps.check.outputs.ok }}"}}
        ]),
    )
    .await;
    execution(ns, "spill-1", "spill", json!({})).await;
    let spilled = wait_final(ns, "spill-1").await;
    assert_eq!(spilled.phase, ExecutionPhase::Succeeded, "{spilled:?}");
    assert!(
        common::operator::step(&spilled, "check")
            .outputs_ref
            .is_some(),
        "the output was spilled: {spilled:?}"
    );
    let used = common::operator::jobs_of_step(ns, "use").await;
    assert_eq!(
        used.first()
            .and_then(|j| common::operator::env_value(j, "OK"))
            .as_deref(),
        Some("true")
    );

    execution(ns, "long-1", "long", json!({})).await;
    wait_status(ns, "long-1", "running", Duration::from_secs(30), |s| {
        s.steps
            .iter()
            .any(|st| st.state == StepState::Running && st.job_name.is_some())
    })
    .await;
    common::operator::cancel(ns, "long-1").await;
    assert_eq!(
        wait_final(ns, "long-1").await.phase,
        ExecutionPhase::Cancelled
    );

    // Ready conditions: the chart's default Runner, the Runner whose Secret the
    // operator may not read, the Playbooks.
    for runner in ["default", "slow"] {
        wait_condition::<Runner>(ns, runner).await;
    }
    for playbook in ["quick", "long", "spill"] {
        wait_condition::<Playbook>(ns, playbook).await;
    }

    // The execution page, as alice: signing in is a TokenReview, her list a
    // SubjectAccessReview (no grant here, so she sees no run of this namespace).
    let addr = operator.http_addr().await;
    let cookie = common::http::page_sign_in(addr, &common::user_token("alice"))
        .await
        .unwrap_or_else(|a| panic!("alice signs in: {} {}", a.status, a.body));
    let (status, body) = common::http::get_with(addr, "/ui/", &[("Cookie", &cookie)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"), "signed in as alice: {body}");
    assert!(
        !body.contains("quick-2"),
        "alice may not see this namespace: {body}"
    );

    // Bob reads this namespace's runs: a finished run's page shows it whole, read from
    // the API server by the operator (its cache keeps finished runs slimmed).
    let bob = common::http::page_sign_in(addr, &common::user_token("bob"))
        .await
        .unwrap_or_else(|a| panic!("bob signs in: {} {}", a.status, a.body));
    let detail = format!("/ui/executions/{}/quick-2", ns.name);
    let (status, body) = common::http::get_with(addr, &detail, &[("Cookie", &bob)]).await;
    assert_eq!(status, 200, "bob sees the finished run whole: {body}");
    assert!(body.contains("check"), "its step is on the page: {body}");

    let exited = operator.terminate();
    assert!(exited.success(), "{exited}");
    let lease = ns
        .api::<Lease>()
        .get(lease)
        .await
        .expect("the leader Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "SIGTERM releases the Lease"
    );
}

/// From the audit log: the ServiceAccount `sa` of `ns` used every right in `rules`
/// (but those of [`NOT_YET_USED`], which it must not have used yet) and was denied
/// nothing but [`DENIED_ON_PURPOSE`].
fn assert_used_exactly(ns: &TestNamespace, sa: &str, rules: &[PolicyRule]) {
    let triple = |(v, g, r): &(&str, &str, &str)| (v.to_string(), g.to_string(), r.to_string());
    let did = audited(&format!("system:serviceaccount:{}:{sa}", ns.name));
    let denied: BTreeSet<_> = did
        .iter()
        .filter(|d| !d.3)
        .map(|(v, g, r, _)| (v.clone(), g.clone(), r.clone()))
        .collect();
    let on_purpose: BTreeSet<_> = DENIED_ON_PURPOSE.iter().map(triple).collect();
    assert_eq!(
        denied, on_purpose,
        "the operator was denied something the chart should grant (or no longer probes \
         its Runner's Secret)"
    );
    let used: BTreeSet<_> = did
        .iter()
        .filter(|d| d.3)
        .map(|(v, g, r, _)| (v.clone(), g.clone(), r.clone()))
        .collect();
    let grants = granted(rules);
    let not_yet: BTreeSet<_> = NOT_YET_USED.iter().map(triple).collect();
    let unused: Vec<_> = grants
        .iter()
        .filter(|g| !used.contains(*g) && !not_yet.contains(*g))
        .collect();
    assert!(
        unused.is_empty(),
        "the chart grants rights the operator never used in a full run (remove them from \
         the chart, or make this test exercise them): {unused:?}\nused: {used:?}"
    );
    let landed: Vec<_> = not_yet.intersection(&used).collect();
    assert!(
        landed.is_empty(),
        "now used, so delete them from NOT_YET_USED: {landed:?}"
    );
    let ungranted: Vec<_> = not_yet.difference(&grants).collect();
    assert!(
        ungranted.is_empty(),
        "NOT_YET_USED names rights the chart does not grant: {ungranted:?}"
    );
}

/// The ServiceAccount cannot read Secrets or create Pods, by the API's word and in
/// fact. Called after the audit check: these 403s are the test's, not the operator's.
async fn assert_no_secrets_no_pods(sa: &Client, ns: &str) {
    for (verb, group, resource) in [
        ("get", "", "secrets"),
        ("list", "", "secrets"),
        ("watch", "", "secrets"),
        ("create", "", "pods"),
        ("delete", "", "pods"),
        ("create", "", "pods/exec"),
        ("update", "batch", "jobs"),
        ("patch", "batch", "jobs"),
    ] {
        assert!(
            !can_i(sa, verb, group, resource, ns).await,
            "the operator's ServiceAccount may {verb} {resource}"
        );
    }
    assert!(
        can_i(sa, "create", "batch", "jobs", ns).await,
        "sanity: it may create Jobs"
    );
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), ns);
    assert_eq!(
        code(secrets.list(&Default::default()).await.unwrap_err()),
        403
    );
    assert_eq!(
        code(secrets.get("playbook-secrets").await.unwrap_err()),
        403
    );
    let pods: Api<Pod> = Api::namespaced(sa.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "not-allowed"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("a Pod");
    assert_eq!(
        code(pods.create(&PostParams::default(), &pod).await.unwrap_err()),
        403
    );
}

/// Default values: all namespaces, so a ClusterRole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_and_its_service_account_runs_playbooks_with_least_privilege() {
    let ns = setup("chart").await;
    let (release, operator, kubeconfig) = install_and_run_as_the_chart(&ns, &[]).await;
    let name = release.fullname();
    exercise(&ns, operator, &name).await;

    let cluster_role = Api::<ClusterRole>::all(ns.client.clone())
        .get(&name)
        .await
        .expect("the chart's ClusterRole");
    let lease_role = ns
        .api::<Role>()
        .get(&format!("{name}-leader-election"))
        .await
        .expect("the chart's leader-election Role");
    let mut rules = cluster_role.rules.unwrap_or_default();
    rules.extend(lease_role.rules.unwrap_or_default());
    rules.extend(page_rules(&ns, &name).await);
    assert_used_exactly(&ns, &name, &rules);

    let sa = client_from(kubeconfig.path()).await;
    assert_no_secrets_no_pods(&sa, &ns.name).await;
    assert!(
        can_i(&sa, "list", "stackpulse.io", "executions", "default").await,
        "sanity: with a ClusterRole it watches every namespace"
    );
    drop(kubeconfig);
    drop(release);
    ns.cleanup().await;
}

/// `watchNamespace`: the same rules as a Role in that namespace, no ClusterRole, and
/// nothing anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_namespace_the_rights_stop_at_that_namespace() {
    let ns = setup("chart-ns").await;
    let watch = format!("watchNamespace={}", ns.name);
    let (release, operator, kubeconfig) = install_and_run_as_the_chart(&ns, &[&watch]).await;
    let name = release.fullname();
    exercise(&ns, operator, &name).await;

    let cluster_role = Api::<ClusterRole>::all(ns.client.clone())
        .get_opt(&name)
        .await
        .expect("looking for a ClusterRole");
    assert!(cluster_role.is_none(), "no ClusterRole with watchNamespace");
    let mut rules = Vec::new();
    for role in [name.clone(), format!("{name}-leader-election")] {
        let role = ns
            .api::<Role>()
            .get(&role)
            .await
            .expect("the chart's Roles");
        rules.extend(role.rules.unwrap_or_default());
    }
    rules.extend(page_rules(&ns, &name).await);
    assert_used_exactly(&ns, &name, &rules);

    let sa = client_from(kubeconfig.path()).await;
    assert_no_secrets_no_pods(&sa, &ns.name).await;
    for (verb, group, resource) in [
        ("list", "stackpulse.io", "executions"),
        ("create", "batch", "jobs"),
        ("get", "", "pods/log"),
    ] {
        assert!(
            !can_i(&sa, verb, group, resource, "default").await,
            "with watchNamespace the ServiceAccount may {verb} {resource} elsewhere"
        );
    }
    drop(kubeconfig);
    drop(release);
    ns.cleanup().await;
}

/// The execution page's ClusterRole (TokenReview, SubjectAccessReview): cluster-scoped
/// kinds, so a ClusterRole with `watchNamespace` too.
async fn page_rules(ns: &TestNamespace, name: &str) -> Vec<PolicyRule> {
    Api::<ClusterRole>::all(ns.client.clone())
        .get(&format!("{name}-page"))
        .await
        .expect("the chart's page ClusterRole")
        .rules
        .unwrap_or_default()
}

/// Waits until the object's status holds a `Ready` condition (True or False: the
/// operator wrote it).
async fn wait_condition<K>(ns: &TestNamespace, name: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = ns.api();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let obj = api.get(name).await.expect("reading the object");
        let value = serde_json::to_value(&obj).expect("serializes");
        let has_ready = value["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready"));
        if has_ready {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: no Ready condition within 30 s: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
