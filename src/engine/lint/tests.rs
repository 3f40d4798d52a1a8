//! Lint tests: each check fires on a bad spec and stays quiet on its fixed twin; files
//! get their findings on the right line.

use super::*;
use crate::engine::convert;

fn spec(yaml: &str) -> PlaybookSpec {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("test spec parses: {e}\n{yaml}"))
}

/// (check, bad spec, expected finding: severity, path, part of the message, fixed spec).
const CASES: &[(&str, &str, Severity, &str, &str, &str)] = &[
    (
        "duplicate id inside a block",
        "steps: [{id: a, image: x}, {id: b, steps: [{id: a, image: y}]}]",
        Severity::Error,
        "spec.steps[1].steps[0].id",
        "already the id of spec.steps[0]",
        "steps: [{id: a, image: x}, {id: b, steps: [{id: c, image: y}]}]",
    ),
    (
        "invalid id",
        "steps: [{id: Get_Pods, image: x}]",
        Severity::Error,
        "spec.steps[0].id",
        "e.g. 'get-pods'",
        "steps: [{id: get-pods, image: x}]",
    ),
    (
        "both step and block",
        "steps: [{id: a, image: x, steps: [{id: b, image: y}]}]",
        Severity::Error,
        "spec.steps[0]",
        "both a step",
        "steps: [{id: a, steps: [{id: b, image: y}]}]",
    ),
    (
        "neither step nor block",
        "steps: [{id: a}]",
        Severity::Error,
        "spec.steps[0]",
        "neither image nor steps",
        "steps: [{id: a, image: x}]",
    ),
    (
        "empty block",
        "steps: [{id: a, steps: []}]",
        Severity::Error,
        "spec.steps[0].steps",
        "at least one step",
        "steps: [{id: a, steps: [{id: b, image: x}]}]",
    ),
    (
        "step in a block without image",
        "steps: [{id: a, steps: [{id: b}]}]",
        Severity::Error,
        "spec.steps[0].steps[0]",
        "has no image",
        "steps: [{id: a, steps: [{id: b, image: x}]}]",
    ),
    (
        "step-only field on a block",
        "steps: [{id: a, env: {X: y}, steps: [{id: b, image: x}]}]",
        Severity::Warning,
        "spec.steps[0].env",
        "move it onto the steps",
        "steps: [{id: a, steps: [{id: b, image: x, env: {X: y}}]}]",
    ),
    (
        "foreach with two sources",
        "steps: [{id: a, foreach: {path: x, range: [0, 2]}, steps: [{id: b, image: x}]}]",
        Severity::Error,
        "spec.steps[0].foreach",
        "exactly one of path, range and items",
        "steps: [{id: a, foreach: {range: [0, 2]}, steps: [{id: b, image: x}]}]",
    ),
    (
        "empty range",
        "steps: [{id: a, image: x, foreach: {range: [3, 1]}}]",
        Severity::Warning,
        "spec.steps[0].foreach.range",
        "never runs",
        "steps: [{id: a, image: x, foreach: {range: [1, 3]}}]",
    ),
    (
        "dependsOn an unknown id",
        "steps: [{id: get-pods, image: x}, {id: b, image: y, dependsOn: [get-pod]}]",
        Severity::Error,
        "spec.steps[1].dependsOn[0]",
        "did you mean 'get-pods'",
        "steps: [{id: get-pods, image: x}, {id: b, image: y, dependsOn: [get-pods]}]",
    ),
    (
        "dependsOn itself",
        "steps: [{id: a, image: x, dependsOn: [a]}]",
        Severity::Error,
        "spec.steps[0].dependsOn[0]",
        "depends on itself",
        "steps: [{id: a, image: x, dependsOn: []}]",
    ),
    (
        "dependsOn cycle",
        "steps: [{id: a, image: x, dependsOn: [c]}, {id: b, image: x}, {id: c, image: x}]",
        Severity::Error,
        "spec.steps",
        "cycle: a → c → b → a",
        "steps: [{id: a, image: x, dependsOn: []}, {id: b, image: x}, {id: c, image: x, dependsOn: [a]}]",
    ),
    (
        "secret param printed as text",
        "params: [{name: Pw, type: secret}]\nsteps: [{id: a, image: x, env: {P: 'u:{{ $.params.Pw }}'}}]",
        Severity::Error,
        "spec.steps[0].env.P",
        "use {{ secret .params.Pw }}",
        "params: [{name: Pw, type: secret}]\nsteps: [{id: a, image: x, env: {P: 'u:{{ secret $.params.Pw }}'}}]",
    ),
    (
        "secret param printed at the root",
        "params: [{name: Pw, type: secret}]\nsteps: [{id: a, image: x, args: ['{{ .Pw | quote }}']}]",
        Severity::Error,
        "spec.steps[0].args[0]",
        "prints secret param 'Pw'",
        "params: [{name: Pw, type: secret}]\nsteps: [{id: a, image: x, args: ['{{ if .Pw }}set{{ end }}']}]",
    ),
    (
        "duplicate param",
        "params: [{name: A}, {name: A}]\nsteps: [{id: a, image: x}]",
        Severity::Error,
        "spec.params[1].name",
        "declared twice",
        "params: [{name: A}, {name: B}]\nsteps: [{id: a, image: x}]",
    ),
    (
        "invalid param name",
        "params: [{name: 9lives}]\nsteps: [{id: a, image: x}]",
        Severity::Error,
        "spec.params[0].name",
        "not a valid param name",
        "params: [{name: nine_lives}]\nsteps: [{id: a, image: x}]",
    ),
];

/// Cases that need the template engine (parse errors, what a template reads) and the
/// parsers' validation.
const ENGINE_CASES: &[(&str, &str, Severity, &str, &str, &str)] = &[
    (
        "template does not parse",
        "steps: [{id: a, image: x, env: {X: '{{ .a '}}]",
        Severity::Error,
        "spec.steps[0].env.X",
        "template does not parse: line 1",
        "steps: [{id: a, image: x, env: {X: '{{ .a }}'}}]",
    ),
    (
        "template in when does not parse",
        "steps: [{id: a, image: x, when: '{{ if }}'}]",
        Severity::Error,
        "spec.steps[0].when",
        "template does not parse",
        "steps: [{id: a, image: x, when: '{{ eq 1 1 }}'}]",
    ),
    (
        "reads .steps of an unknown id",
        "steps: [{id: get-pods, image: x}, {id: b, image: y, args: ['{{ .steps.get_pods.outputs }}']}]",
        Severity::Error,
        "spec.steps[1].args[0]",
        "no step has id 'get_pods'",
        "steps: [{id: get-pods, image: x}, {id: b, image: y, args: ['{{ $.''get-pods''.items }}']}]",
    ),
    (
        "reads an unknown root",
        "steps: [{id: a, image: x}, {id: b, image: y, when: '{{ gt .Clients.connected 1 }}'}]",
        Severity::Warning,
        "spec.steps[1].when",
        "reads .Clients: not a param",
        "params: [{name: Clients}]\nsteps: [{id: a, image: x}, {id: b, image: y, when: '{{ gt .Clients.connected 1 }}'}]",
    ),
    (
        "alert text in a sh -c script",
        "steps: [{id: a, image: redis, command: [sh, -c], args: ['redis-cli -h {{ .alert.labels.instance }} ping']}]",
        Severity::Warning,
        "spec.steps[0].args[0]",
        "into a `-c` shell script unquoted",
        "steps: [{id: a, image: redis, command: [sh, -c], args: ['redis-cli -h {{ .alert.labels.instance | shellQuote }} ping']}]",
    ),
    (
        "reads an undeclared param",
        "steps: [{id: a, image: x, env: {N: '{{ .params.Namespace }}'}}]",
        Severity::Warning,
        "spec.steps[0].env.N",
        "does not declare",
        "params: [{name: Namespace}]\nsteps: [{id: a, image: x, env: {N: '{{ .params.Namespace }}'}}]",
    ),
    (
        "loop variable outside its loop",
        "steps: [{id: a, image: x, foreach: {items: [1], value: pod}}, {id: b, image: x, env: {P: '{{ .pod }}'}}]",
        Severity::Warning,
        "spec.steps[1].env.P",
        "reads .pod",
        "steps: [{id: a, image: x, foreach: {items: [1], value: pod}, env: {P: '{{ .pod }}'}}, {id: b, image: x}]",
    ),
    (
        "bad param default",
        "params: [{name: A, default: '{{ .event.x '}]\nsteps: [{id: a, image: x}]",
        Severity::Error,
        "spec.params[0].default",
        "template does not parse",
        "params: [{name: A, default: '{{ .event.x }}'}]\nsteps: [{id: a, image: x}]",
    ),
    (
        "bad severity template",
        "steps: [{id: a, image: x}]\nseverity: '{{ if .x }}critical'",
        Severity::Error,
        "spec.severity",
        "template does not parse",
        "steps: [{id: a, image: x}]\nseverity: '{{ if .alert.labels.page }}critical{{ end }}'",
    ),
    (
        "bad remediation limit key",
        "steps: [{id: a, image: x, phase: remediate}]\nlimits: {remediations: {max: 3, perSeconds: 3600, key: '{{ .alert.labels.namespace '}}",
        Severity::Error,
        "spec.limits.remediations.key",
        "template does not parse",
        "steps: [{id: a, image: x, phase: remediate}]\nlimits: {remediations: {max: 3, perSeconds: 3600, key: '{{ .alert.labels.namespace }}'}}",
    ),
    (
        "bad foreach break",
        "steps: [{id: a, image: x, foreach: {range: [0, 2], break: '{{ .a.x'}}]",
        Severity::Error,
        "spec.steps[0].foreach.break",
        "template does not parse",
        "steps: [{id: a, image: x, foreach: {range: [0, 2], break: '{{ .a.x }}'}}]",
    ),
    (
        "invalid output parser",
        "steps: [{id: a, image: x, outputParser: {name: regex, pattern: '(?P<x'}}]",
        Severity::Error,
        "spec.steps[0].outputParser",
        "",
        "steps: [{id: a, image: x, outputParser: {name: regex, pattern: '(?P<x>\\d+)'}}]",
    ),
    (
        "a built-in parser misspelt is not taken for an image",
        "steps: [{id: a, image: x, outputParser: {name: jsn}}]",
        Severity::Error,
        "spec.steps[0].outputParser",
        "outputParser 'jsn' is unknown (known: json, raw, yaml, kv, redis-info, regex, lines, table, or an image reference such as registry.example/parsers/name:1): did you mean 'json'?",
        "steps: [{id: a, image: x, outputParser: {name: registry.example/parsers/uptime:1}}]",
    ),
];

fn run(cases: &[(&str, &str, Severity, &str, &str, &str)]) {
    for (check, bad, severity, path, message, good) in cases {
        let found = lint_playbook(&spec(bad), None);
        assert!(
            found
                .iter()
                .any(|f| f.severity == *severity && f.path == *path && f.message.contains(message)),
            "{check}: expected {severity} at {path} saying '{message}', got {found:#?}"
        );
        let quiet = lint_playbook(&spec(good), None);
        assert!(
            quiet.is_empty(),
            "{check}: the fixed spec should be clean, got {quiet:#?}"
        );
    }
}

#[test]
fn each_check_fires_and_stays_quiet() {
    run(CASES);
}

#[test]
fn template_and_parser_checks_fire_and_stay_quiet() {
    run(ENGINE_CASES);
}

#[test]
fn runners_are_checked_only_against_a_given_list() {
    let s = spec(
        "steps: [{id: a, image: x, runner: prood}, {id: b, image: x}, {id: c, image: x, runner: '{{ .params.R }}'}]\nparams: [{name: R, type: runner}]",
    );
    assert!(lint_playbook(&s, None).is_empty());
    let known = vec!["prod".to_string()];
    let found = lint_playbook(&s, Some(&known));
    let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    // Step b sets no runner: it runs as a plain Job, so there is nothing to report.
    assert_eq!(paths, ["spec.steps[0].runner"], "{found:#?}");
    assert!(found[0].message.contains("did you mean 'prod'"));
}

#[test]
fn examples_lint_without_errors() {
    let files = [
        (
            "stackpulse/redis-incident-enrichment.yaml",
            include_str!("../../../examples/stackpulse/redis-incident-enrichment.yaml"),
        ),
        (
            "stackpulse/restart-crashlooping-pods.yaml",
            include_str!("../../../examples/stackpulse/restart-crashlooping-pods.yaml"),
        ),
        (
            "stackpulse/redis-alerts-trigger.yaml",
            include_str!("../../../examples/stackpulse/redis-alerts-trigger.yaml"),
        ),
        (
            "playbooks/redis-incident-enrichment.yaml",
            include_str!("../../../examples/playbooks/redis-incident-enrichment.yaml"),
        ),
        (
            "playbooks/restart-crashlooping-pods.yaml",
            include_str!("../../../examples/playbooks/restart-crashlooping-pods.yaml"),
        ),
        (
            "triggers/redis-alerts.yaml",
            include_str!("../../../examples/triggers/redis-alerts.yaml"),
        ),
    ];
    for (name, text) in files {
        let errors: Vec<String> = lint_file(text, name)
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    }
}

#[test]
fn file_findings_point_at_lines() {
    let text = "\
# a comment
apiVersion: stackpulse.io/v1
kind: Playbook
metadata:
  name: p
spec:
  steps:
  - id: a
    image: x
    continueOnFailure: true
---
apiVersion: stackpulse.io/v1
kind: Playbook
metadata: {name: q}
spec:
  steps:
    - id: 5
      image: [x]
---
apiVersion: stackpulse.io/v1
kind: Playbok
metadata: {name: r}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
---
apiVersion: stackpulse.io/v1
kind: Playbook
metadata:
  name: dialect_form
parameters:
  - {name: Pw, type: secret}
steps:
  - name: x/a
    env:
      USER: me
      PASSWORD: 'pw={{ $.params.Pw }}'
---
steps: [
";
    let found: Vec<String> = lint_file(text, "f.yaml")
        .iter()
        .map(|f| f.to_string())
        .collect();
    let want = [
        "f.yaml:10: error: spec.steps[0].continueOnFailure: unknown field 'continueOnFailure'",
        "f.yaml:17: error: does not match the schema: spec.steps[0]: invalid type: integer `5`, expected a string",
        "f.yaml:21: error: kind: unknown kind 'Playbok'",
        "f.yaml:38: error: spec.steps[0].env.PASSWORD: prints secret param 'Pw' as text",
        "f.yaml:41: error: not valid YAML",
    ];
    assert_eq!(found.len(), want.len(), "{found:#?}");
    for (f, w) in found.iter().zip(want) {
        assert!(f.starts_with(w), "{f}\n  should start with\n{w}");
    }
}

#[test]
fn dialect_errors_point_at_the_source() {
    let text = "kind: Playbook\napiVersion: stackpulse.io/v1\nmetadata: {name: p}\nsteps:\n  - id: a\n    name: x\n  - foreach: {in: {range: [1]}, steps: [{name: y}]}\n";
    let found = lint_file(text, "d.yaml");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].line, Some(7));
    assert!(
        found[0]
            .message
            .contains("steps[1].foreach.in.range: must be [from, to]")
    );
}

#[test]
fn converted_paths_map_back_to_the_dialect() {
    let c = convert::convert(include_str!(
        "../../../examples/stackpulse/restart-crashlooping-pods.yaml"
    ))
    .expect("converts");
    let origins = &c.origins[0];
    let cases = [
        (
            "spec.steps[2].steps[1].continueOnError",
            "steps[2].steps[1].ignoreFailure",
        ),
        ("spec.steps[3].foreach.path", "steps[3].foreach.in"),
        (
            "spec.steps[3].steps[0].env.POD_NAME",
            "steps[3].foreach.steps[0].env.POD_NAME",
        ),
        (
            "spec.params[1].integrationType",
            "parameters[1].options.integration_type",
        ),
        ("spec.description", "metadata.description"),
        ("spec.steps[0].outputParser", "steps[0].output_parser"),
    ];
    for (canonical, source) in cases {
        assert_eq!(file::to_source(canonical, origins), source);
    }
}

#[test]
fn finally_steps_are_linted_like_steps() {
    let s = spec(
        "steps: [{id: a, image: x}]\nfinally: [{id: cleanup, image: x, env: {P: '{{ .execution.phase }}', BAD: '{{ if }}'}}, {id: a, image: x}]",
    );
    let found = lint_playbook(&s, None);
    let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"spec.finally[0].env.BAD"), "{found:#?}");
    assert!(
        !paths.contains(&"spec.finally[0].env.P"),
        ".execution.phase is known: {found:#?}"
    );
    assert!(
        found.iter().any(|f| f
            .message
            .contains("finally step 'a': id 'a' is also a step's id")),
        "{found:#?}"
    );
}

#[test]
fn a_schedule_file_is_checked_like_the_controller_checks_it() {
    let text = "\
apiVersion: stackpulse.io/v1
kind: Schedule
metadata: {name: nightly}
spec: {playbookRef: {name: p}, schedule: '0 25 * * *'}
---
apiVersion: stackpulse.io/v1
kind: Schedule
metadata: {name: berlin}
spec: {playbookRef: {name: p}, schedule: '@daily', timeZone: Europe/Berln, suspnd: true}
---
apiVersion: stackpulse.io/v1
kind: Schedule
metadata: {name: fine}
spec: {playbookRef: {name: p}, schedule: '*/15 9-17 * * MON-FRI', timeZone: Europe/Berlin}
";
    let found: Vec<String> = lint_file(text, "s.yaml")
        .iter()
        .map(|f| f.to_string())
        .collect();
    let want = [
        "s.yaml:4: error: spec.schedule: \"0 25 * * *\":",
        "s.yaml:9: error: spec.suspnd: unknown field 'suspnd'",
        "s.yaml:9: error: spec.timeZone: unknown time zone \"Europe/Berln\"",
    ];
    assert_eq!(found.len(), want.len(), "{found:#?}");
    for (f, w) in found.iter().zip(want) {
        assert!(f.starts_with(w), "{f}\n  should start with\n{w}");
    }
    assert!(found[0].contains("hour 0-23"), "{}", found[0]);
}
