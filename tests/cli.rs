//! The offline commands, run as a user runs them: the built binary, real files.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_example_lints_without_errors() {
    let mut files: Vec<String> = Vec::new();
    for dir in [
        "examples/playbooks",
        "examples/stackpulse",
        "examples/triggers",
    ] {
        for entry in std::fs::read_dir(dir).expect("examples exist").flatten() {
            files.push(entry.path().display().to_string());
        }
    }
    assert!(files.len() >= 6, "examples went missing: {files:?}");
    let args: Vec<&str> = std::iter::once("lint")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = run(&args);
    assert!(
        out.status.success(),
        "lint failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !text(&out.stdout).contains("error:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn lint_reports_each_problem_with_file_and_line_and_exits_1() {
    let out = run(&["lint", "tests/fixtures/bad-playbook.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for expected in [
        "tests/fixtures/bad-playbook.yaml:9: error: spec.steps[1].id: 'check' is already the id",
        "tests/fixtures/bad-playbook.yaml:11: error: spec.steps[1].dependsOn[0]: no step has id 'nowhere'",
        "tests/fixtures/bad-playbook.yaml:13: error: spec.steps[1].env.BROKEN: template does not parse",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn convert_of_the_seed_playbook_is_the_checked_in_canonical_example() {
    let out = run(&[
        "convert",
        "examples/stackpulse/redis-incident-enrichment.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = std::fs::read_to_string("examples/playbooks/redis-incident-enrichment.yaml")
        .expect("example exists");
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&text(&out.stdout)), body(&expected));
    assert!(
        text(&out.stderr).contains("renamed 'redis-incident-enrichment'"),
        "notes say what changed"
    );
}

#[test]
fn a_cloudwatch_playbook_with_secret_params_as_env_values_converts_and_lints_clean() {
    let fixture = "tests/fixtures/stackpulse/aws-retrieve-cloudwatch-logs.yaml";
    let out = run(&["convert", fixture]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for param in ["AWSAccessKeyID", "AWSSecretAccessKey"] {
        assert!(
            stderr.contains(&format!("secret param '{param}' as the whole value")),
            "stderr says what was turned into a reference:\n{stderr}"
        );
    }
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("AWS_SECRET_ACCESS_KEY: '{{ secret .params.AWSSecretAccessKey }}'"),
        "{stdout}"
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let converted = dir.path().join("retrieve-cloudwatch-logs.yaml");
    std::fs::write(&converted, &stdout).expect("writing the converted file");
    let lint = run(&["lint", &converted.display().to_string()]);
    assert!(
        lint.status.success() && !text(&lint.stdout).contains("error"),
        "the converted file lints clean:\n{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );
}

#[test]
fn render_puts_secrets_in_refs_and_escapes_alert_references() {
    let out = run(&[
        "render",
        "tests/fixtures/secret-playbook.yaml",
        "--param",
        "Instance=redis.prod",
        "--alert",
        "tests/fixtures/alert-with-reference.json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let job: serde_json::Value =
        serde_yaml::from_str(yaml.trim_start_matches("---\n")).expect("one Job as YAML");
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .clone();
    let secret = env
        .iter()
        .find(|e| e["valueFrom"]["secretKeyRef"]["key"] == "Redis_Secret")
        .expect("the secret arrives as a secretKeyRef");
    assert_eq!(
        secret["valueFrom"]["secretKeyRef"]["name"],
        "playbook-secrets"
    );
    let var = secret["name"].as_str().expect("secret var name");
    let url = env
        .iter()
        .find(|e| e["name"] == "REDIS_URL")
        .expect("REDIS_URL");
    assert_eq!(url["value"], format!("redis://:$({var})@redis.prod:6379/"));
    let summary = env
        .iter()
        .find(|e| e["name"] == "SUMMARY")
        .expect("SUMMARY");
    assert_eq!(
        summary["value"], "$$(REDIS_URL) leaked?",
        "alert text cannot reference another variable"
    );
}

#[test]
fn render_prints_the_bare_pod_a_pod_runner_creates() {
    let out = run(&[
        "render",
        "tests/fixtures/secret-playbook.yaml",
        "--param",
        "Instance=redis.prod",
        "--runner",
        "tests/fixtures/pod-runner.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pod: serde_json::Value =
        serde_yaml::from_str(text(&out.stdout).trim_start_matches("---\n")).expect("one object");
    assert_eq!(pod["kind"], "Pod", "{pod}");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["kind"], "Execution",
        "a bare Pod is owned by its run, as the Job would be: {pod}"
    );
}

#[test]
fn render_names_a_bad_param_flag() {
    let out = run(&[
        "render",
        "tests/fixtures/secret-playbook.yaml",
        "--param",
        "Instance",
    ]);
    // A malformed flag is a usage error (clap's exit code 2), as for `start`.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("\"Instance\" has no '=': write NAME=VALUE"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn start_names_a_bad_param_flag_before_reaching_for_a_cluster() {
    let out = Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
        .args(["start", "redis", "--param", "Port6379"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid value 'Port6379' for '--param <NAME=VALUE>': \"Port6379\" has no '=': write NAME=VALUE, e.g. --param Namespace=prod"),
        "{stderr}"
    );
}

#[test]
fn approve_without_a_cluster_says_how_to_point_at_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
        .args(["approve", "run-1", "restart"])
        .env("KUBECONFIG", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: no cluster to talk to: set KUBECONFIG"),
        "{stderr}"
    );
}

#[test]
fn reject_needs_a_reason_before_reaching_for_a_cluster() {
    let out = run(&["reject", "run-1", "restart"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--reason <REASON>"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
        .args(["reject", "run-1", "restart", "--reason", " "])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("--reason is empty: say why the step must not run"),
        "{out:?}"
    );
}

#[test]
fn run_refuses_a_zero_log_limit_and_says_when_there_is_no_cluster() {
    let out = run(&["run", "--log-limit-bytes", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--log-limit-bytes"));

    // Port 0: the HTTP server binds first, and 8080 may be taken on a test machine.
    let out = Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
        .args([
            "run",
            "--namespace",
            "nowhere",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("connecting to the cluster"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_says_which_address_is_taken_and_how_to_change_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("its address").to_string();
    let out = run(&["run", "--http-addr", &addr]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: cannot listen on {addr}: address in use; set --http-addr")
    );
}

#[test]
fn run_leader_elect_says_what_is_missing_before_reaching_for_a_cluster() {
    let leader_run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
            .args(["run", "--http-addr", "127.0.0.1:0", "--leader-elect"])
            .args(extra)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_NAMESPACE")
            .output()
            .expect("the binary runs")
    };
    let out = leader_run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("set --leader-elect-namespace or POD_NAMESPACE"),
        "{}",
        text(&out.stderr)
    );
    let out = leader_run(&[
        "--leader-elect-namespace=ops",
        "--leader-elect-lease-duration-seconds=5",
        "--leader-elect-renew-before-seconds=5",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "--leader-elect-renew-before-seconds (5) must be less than \
             --leader-elect-lease-duration-seconds (5)"
        ),
        "{}",
        text(&out.stderr)
    );
    // The election's flags mean nothing without --leader-elect.
    let out = run(&["run", "--leader-elect-lease-name=x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--leader-elect"),
        "{}",
        text(&out.stderr)
    );
}

/// The review of a fixed week of Executions, as a person reads it and as a script
/// parses it: both forms are pinned by golden files (UPDATE_GOLDEN=1 rewrites them).
#[test]
fn report_over_a_file_matches_the_golden_table_and_json() {
    let dir = "tests/fixtures/report";
    for (format, golden) in [
        ("table", "report.txt"),
        ("json", "report.json"),
        ("markdown", "report.md"),
    ] {
        let out = run(&[
            "report",
            "--file",
            &format!("{dir}/executions.yaml"),
            "--since",
            "7d",
            "--until",
            "2026-11-23T00:00:00Z",
            "--format",
            format,
        ]);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let got = text(&out.stdout);
        let path = format!("{}/{dir}/{golden}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).expect("golden file written");
        }
        let want = std::fs::read_to_string(&path).expect("golden file exists");
        assert_eq!(
            got, want,
            "{format} differs from {path}; UPDATE_GOLDEN=1 after a deliberate change"
        );
    }
}

#[test]
fn report_says_what_is_wrong_with_a_file_or_a_time() {
    let out = run(&["report", "--file", "tests/fixtures/report/missing.yaml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tests/fixtures/report/missing.yaml"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "report",
        "--file",
        "tests/fixtures/report/executions.yaml",
        "--until",
        "monday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("RFC 3339"),
        "{}",
        text(&out.stderr)
    );
}
